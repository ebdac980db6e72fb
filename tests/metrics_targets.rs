//! `[[metrics]]` through Prometheus HTTP service discovery: `GET /v1/metrics/targets`
//! lists where each started machine serves its app's metrics now, and each target answers
//! with the app's own figures.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::daemon::TestDaemon;
use common::Run;
use serde_json::Value;

/// Answers `path` with `body` on `$PORT`, or on the port given as its argument; when that
/// port is taken, it runs on without it (as an app whose exporter thread failed does).
const APP: &str = r#"
import os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
path, body = sys.argv[1], sys.argv[2]
port = int(sys.argv[3]) if len(sys.argv) > 3 else int(os.environ["PORT"])
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        found = self.path == path
        self.send_response(200 if found else 404)
        self.end_headers()
        self.wfile.write(body.encode() if found else b"no")
    def log_message(self, *a): pass
try:
    server = HTTPServer(("127.0.0.1", port), H)
except OSError:
    time.sleep(3600)
server.serve_forever()
"#;

/// The targets the daemon lists, for `query`.
async fn targets(d: &TestDaemon, query: &str) -> Vec<Value> {
    let url = d.url(&format!("/v1/metrics/targets{query}"));
    let answer = common::http_client().get(url).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

/// What a target answers at its metrics path.
async fn scrape(target: &Value) -> String {
    let url = format!(
        "http://{}{}",
        target["targets"][0].as_str().unwrap(),
        target["labels"]["__metrics_path__"].as_str().unwrap()
    );
    let answer = common::http_client().get(url).send().await.unwrap();
    answer.text().await.unwrap()
}

/// `lakefly --remote <d> ARGS` in `dir`, off the test's runtime.
async fn cli(d: &TestDaemon, dir: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--remote".to_string(), d.api.clone()];
    all.extend(args.iter().map(|a| a.to_string()));
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        common::lakefly(&dir, &args)
    })
    .await
    .unwrap()
}

/// The `instance` labels of `targets` in `group`.
fn instances(targets: &[Value], group: &str) -> BTreeSet<String> {
    targets
        .iter()
        .filter(|t| t["labels"]["process_group"] == group)
        .map(|t| t["labels"]["instance"].as_str().unwrap().to_string())
        .collect()
}

/// The ids of `app`'s started machines of `group`.
async fn started(d: &TestDaemon, app: &Path, group: &str) -> BTreeSet<String> {
    let status = cli(d, app, &["status", "--json"])
        .await
        .expect_code(0)
        .json();
    status["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["process_group"] == group && m["state"] == "started")
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn each_started_machine_is_a_target_where_it_serves_its_metrics_now() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let app: PathBuf = dir.path().to_path_buf();
    let app = app.as_path();
    let fixed = common::free_port();
    std::fs::write(app.join("app.py"), APP).unwrap();
    std::fs::write(
        app.join("fly.toml"),
        format!(
            r#"app = "metered"
[processes]
  web = "python3 app.py /metrics 'web_requests_total 7'"
  worker = "python3 app.py /stats 'worker_jobs_total 3' {fixed}"
[http_service]
  internal_port = 8080
  processes = ["web"]
[[metrics]]
  port = 8080
  path = "/metrics"
  processes = ["web"]
[[metrics]]
  port = {fixed}
  path = "/stats"
  https = false
  processes = ["worker"]
"#
        ),
    )
    .unwrap();
    cli(&d, app, &["deploy"]).await.expect_code(0);
    cli(&d, app, &["scale", "count", "web=2", "--yes"])
        .await
        .expect_code(0);
    // An app without [[metrics]] has no target.
    let (_other_dir, other) = common::files::hello_copy();
    cli(&d, &other, &["deploy"]).await.expect_code(0);

    let all = targets(&d, "").await;
    assert_eq!(all.len(), 3, "{all:#?}");
    assert_eq!(instances(&all, "web"), started(&d, app, "web").await);
    assert_eq!(instances(&all, "worker"), started(&d, app, "worker").await);
    for target in &all {
        let labels = &target["labels"];
        assert_eq!(labels["app"], "metered", "{target}");
        assert!(labels.get("__scheme__").is_none(), "{target}");
        let figures = scrape(target).await;
        match labels["process_group"].as_str().unwrap() {
            "web" => assert_eq!(figures, "web_requests_total 7"),
            _ => {
                assert_eq!(target["targets"][0], format!("127.0.0.1:{fixed}"));
                assert_eq!(figures, "worker_jobs_total 3");
            }
        }
    }
    // Each web machine is its own target, on its own port.
    let web: BTreeSet<&str> = (all.iter())
        .filter(|t| t["labels"]["process_group"] == "web")
        .map(|t| t["targets"][0].as_str().unwrap())
        .collect();
    assert_eq!(web.len(), 2, "{all:#?}");

    // A stopped machine is no target; a redeploy's new machines are.
    let stopped = started(&d, app, "web").await.into_iter().next().unwrap();
    cli(&d, app, &["machines", "stop", &stopped])
        .await
        .expect_code(0);
    let now = targets(&d, "?app=metered").await;
    assert!(!instances(&now, "web").contains(&stopped), "{now:#?}");
    assert_eq!(instances(&now, "web").len(), 1, "{now:#?}");
    cli(&d, app, &["deploy"]).await.expect_code(0);
    let redeployed = targets(&d, "?app=metered").await;
    assert_eq!(instances(&redeployed, "web"), started(&d, app, "web").await);
    assert!(instances(&redeployed, "web").is_disjoint(&instances(&all, "web")));

    // Two workers: the port they both ask for is one machine's, listed once, for it.
    cli(&d, app, &["scale", "count", "worker=2", "--yes"])
        .await
        .expect_code(0);
    let workers = started(&d, app, "worker").await;
    assert_eq!(workers.len(), 2);
    let listed = targets(&d, "?app=metered").await;
    let listed_workers = instances(&listed, "worker");
    assert_eq!(listed_workers.len(), 1, "{listed:#?}");
    assert!(listed_workers.is_subset(&workers), "{listed:#?}");
    let worker = (listed.iter())
        .find(|t| t["labels"]["process_group"] == "worker")
        .unwrap();
    assert_eq!(scrape(worker).await, "worker_jobs_total 3");

    assert!(targets(&d, "?app=hello").await.is_empty());
    let unknown = (common::http_client().get(d.url("/v1/metrics/targets?app=nope")))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}
