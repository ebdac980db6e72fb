//! No machine runs an older release once a deploy is live: one the edge made for a request
//! while the release rolled out (a group scaled to zero, with `auto_start_machines`) is
//! of the release that was current then, and went unseen by the rollout, so it served the
//! old code until the next deploy.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::TestDaemon;
use common::files::{app_with, OK_PY};
use serde_json::Value;

const APP: &str = "from ok import serve\nserve()\n";

/// `web` serves with auto start; `worker` has no check and no port, so its new machine
/// counts once it has stayed up 10 s: the rollout goes on that long.
const CONFIG: &str = r#"app = "zero"
kill_signal = "SIGTERM"
[processes]
  web = "python3 app.py"
  worker = "sleep 1000"
[http_service]
  internal_port = 8080
  processes = ["web"]
  auto_start_machines = true
"#;

fn status(d: &TestDaemon) -> Value {
    d.cli(Path::new("."), &["status", "-a", "zero", "--json"])
        .expect_code(0)
        .json()
}

/// Polls `status` until `done` holds, failing the test after 30 s.
fn wait_status(d: &TestDaemon, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = status(d);
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{what}: {now}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_made_for_a_request_during_a_rollout_does_not_outlive_it() {
    let d = TestDaemon::start();
    let temp = tempfile::tempdir().unwrap();
    let app = app_with(
        temp.path(),
        "zero",
        &[OK_PY, ("app.py", APP), ("fly.toml", CONFIG)],
    );
    tokio::task::block_in_place(|| {
        d.cli(&app, &["deploy"]).expect_code(0);
        d.cli(&app, &["scale", "count", "web=0", "--yes"])
            .expect_code(0);
        d.cli(&app, &["deploy", "--detach", "-e", "V=2"])
            .expect_code(0);
        wait_status(&d, "v2 rolls out", |s| s["rolling_out"] == 2);
    });

    // v1 is current still: the edge makes a web machine of it for this request.
    let edge = d.edge_addr().to_string();
    let resp = common::http_client()
        .get(format!("http://{edge}/"))
        .header("Host", "zero.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    tokio::task::block_in_place(|| {
        let live = wait_status(&d, "v2 goes live", |s| {
            s["release"]["version"] == 2 && s["release"]["status"] == "complete"
        });
        assert!(live["rolling_out"].is_null(), "{live}");
        wait_status(&d, "no machine of v1 is left", |s| {
            let machines = s["machines"].as_array().unwrap();
            machines.iter().all(|m| m["release_version"] == 2)
        });
    });
}
