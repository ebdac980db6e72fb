//! The job scheduler against a real daemon: `[[jobs]]` from fly.toml run on their interval
//! (commands with the app's env, HTTP calls on a healthy machine), never overlap (a due run
//! is skipped and recorded), retry, time out, can be triggered, stopped, started and
//! cancelled mid-run, and answer the LSH endpoints (`/status`, `/jobs`, `POST /jobs`,
//! `/jobs/{id}/trigger`).
//!
//! One test binary, its tests split by theme.

#[path = "../common/mod.rs"]
mod common;

mod going;
mod lsh;
mod schedule;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use common::api::Api;
use common::daemon::TestDaemon;

const DEADLINE: Duration = Duration::from_secs(30);

const JOBS: &str = r#"
[[jobs]]
  name = "tick"
  command = "echo tick from $LAKEFLY_JOB_NAME of $LAKEFLY_APP_NAME"
  interval = "1s"

[[jobs]]
  name = "slow"
  command = "sleep 2.5; echo done"
  interval = "1s"

[[jobs]]
  name = "flaky"
  command = "echo trying; exit 3"
  retries = 2

[[jobs]]
  name = "stuck"
  command = "sleep 30"
  timeout = "1s"

[[jobs]]
  name = "maintenance"
  method = "POST"
  path = "/maintenance"
"#;

/// The jobs example with quick jobs instead of its own.
fn app_dir(temp: &Path) -> PathBuf {
    let dir = temp.join("jobs");
    std::fs::create_dir(&dir).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jobs");
    std::fs::copy(example.join("app.py"), dir.join("app.py")).unwrap();
    let config = std::fs::read_to_string(example.join("fly.toml")).unwrap();
    let head = &config[..config.find("# Every 10 minutes").unwrap()];
    std::fs::write(dir.join("fly.toml"), format!("{head}{JOBS}")).unwrap();
    dir
}

fn deploy(d: &TestDaemon, dir: &Path) {
    common::lakefly(
        dir,
        &[
            "--remote",
            &d.api,
            "deploy",
            "-c",
            dir.join("fly.toml").to_str().unwrap(),
        ],
    )
    .expect_code(0);
}

async fn jobs_by_name(api: &Api) -> serde_json::Map<String, Value> {
    let (status, list) = api.send(Method::GET, "/v1/apps/jobs/jobs", None).await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|j| (j["name"].as_str().unwrap().to_string(), j.clone()))
        .collect()
}

async fn runs(api: &Api, id: u64) -> Vec<Value> {
    let (status, runs) = api
        .send(Method::GET, &format!("/v1/jobs/{id}/runs?limit=100"), None)
        .await;
    assert_eq!(status, 200, "{runs}");
    runs.as_array().unwrap().clone()
}

/// Waits until the runs of `id` satisfy `check`, or fails at the deadline.
async fn wait_runs(api: &Api, id: u64, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let until = Instant::now() + DEADLINE;
    loop {
        let list = runs(api, id).await;
        if check(&list) {
            return list;
        }
        assert!(Instant::now() < until, "{what}: runs so far {list:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Triggers `app`'s one job; its id.
async fn trigger_only_job(api: &Api, app: &str) -> u64 {
    let (status, jobs) = api
        .send(Method::GET, &format!("/v1/apps/{app}/jobs"), None)
        .await;
    assert_eq!(status, 200, "{jobs}");
    let id = jobs[0]["id"].as_u64().unwrap();
    let (status, body) = api
        .send(Method::POST, &format!("/v1/jobs/{id}/trigger"), None)
        .await;
    assert!(status < 300, "{body}");
    id
}

fn finished(runs: &[Value], status: &str) -> usize {
    runs.iter().filter(|r| r["status"] == status).count()
}
