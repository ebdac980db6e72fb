//! Health: an app with a port is healthy once it listens; http checks follow the app's
//! answers (over TLS with `protocol = "https"`), and each change is an event carrying the
//! check's last output.

mod common;

use std::time::Duration;

use common::daemon::{wait_logged, StoreLock, TestDaemon};
use common::sse::{Message, Sse};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

/// A tiny HTTP app: `/health` answers 500 while a file named `sick` exists in its cwd.
const APP: &str = r#"
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        sick = os.path.exists("sick")
        self.send_response(500 if sick and self.path == "/health" else 200)
        self.end_headers()
        self.wfile.write(b"sick" if sick else b"ok")
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

async fn setup(d: &TestDaemon, app: &str) -> Sse {
    let resp = common::http_client()
        .post(d.url("/v1/apps"))
        .json(&json!({ "name": app }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    Sse::connect(
        &d.url(&format!("/v1/events?app={app}&kind=machine.health")),
        None,
    )
    .await
}

async fn create(d: &TestDaemon, app: &str, spec: Value) -> String {
    let resp = common::http_client()
        .post(d.url(&format!("/v1/apps/{app}/machines")))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn next_health(sse: &mut Sse) -> Message {
    sse.next(WAIT).await.expect("a health event")
}

/// `lakefly checks list --json` of `app`.
async fn checks_list(d: &TestDaemon, app: &str) -> Value {
    cli(d, &["checks", "list", "-a", app, "--json"]).await
}

/// `lakefly --remote <daemon> ARGS`, which must succeed, as JSON.
async fn cli(d: &TestDaemon, args: &[&str]) -> Value {
    let mut all = vec!["--remote".to_string(), d.api.clone()];
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        common::lakefly(std::path::Path::new("."), &args)
            .expect_code(0)
            .json()
    })
    .await
    .unwrap()
}

fn python_app(dir: &std::path::Path) -> String {
    std::fs::write(dir.join("app.py"), APP).unwrap();
    "exec python3 app.py".to_string()
}

#[tokio::test]
async fn without_checks_a_machine_is_healthy_once_its_port_listens() {
    let d = TestDaemon::start();
    let work = tempfile::tempdir().unwrap();
    let mut sse = setup(&d, "plain").await;
    let id = create(&d, "plain", json!({ "command": python_app(work.path()), "workdir": work.path(), "internal_port": 8080 })).await;
    let m = next_health(&mut sse).await;
    assert_eq!(m.data["data"]["machine"], id.as_str());
    assert_eq!(m.data["data"]["health"], "passing");
    assert!(m.data["data"]["output"]
        .as_str()
        .unwrap()
        .ends_with("accepts connections"));
    let shown: Value = common::http_client()
        .get(d.url(&format!("/v1/apps/plain/machines/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["health"], "passing");
}

#[tokio::test]
async fn http_checks_follow_the_apps_answers_and_carry_the_output() {
    let d = TestDaemon::start();
    let work = tempfile::tempdir().unwrap();
    let mut sse = setup(&d, "checked").await;
    // `legacy` is of a type lakefly does not run (the config reader says so): it is left
    // out, and does not hold the machine at `unknown`.
    let checks = json!({
        "health": { "type": "http", "path": "/health", "interval": "100ms", "timeout": "1s", "grace_period": "0ms" },
        "legacy": { "type": "script" },
    });
    let id = create(
        &d,
        "checked",
        json!({ "command": python_app(work.path()), "workdir": work.path(), "internal_port": 8080, "checks": checks }),
    )
    .await;
    // Until it listens the check fails; then it passes.
    let mut m = next_health(&mut sse).await;
    while m.data["data"]["health"] != "passing" {
        m = next_health(&mut sse).await;
    }
    assert!(
        m.data["data"]["output"]
            .as_str()
            .unwrap()
            .starts_with("200 "),
        "{}",
        m.data
    );
    // `lakefly checks list` shows each check's latest result.
    let listed = checks_list(&d, "checked").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(
        (
            &listed[0]["machine"],
            &listed[0]["name"],
            &listed[0]["status"]
        ),
        (&json!(id), &json!("health"), &json!("passing"))
    );
    assert!(
        listed[0]["output"].as_str().unwrap().starts_with("200 "),
        "{listed}"
    );
    std::fs::write(work.path().join("sick"), "").unwrap();
    let m = next_health(&mut sse).await;
    assert_eq!(m.data["data"]["health"], "critical");
    assert_eq!(m.data["data"]["check"], "health");
    let listed = checks_list(&d, "checked").await;
    assert_eq!(listed[0]["status"], "critical", "{listed}");
    assert!(
        listed[0]["output"].as_str().unwrap().starts_with("500 "),
        "{listed}"
    );
    // By name, as flyctl's `--check-name`: that check, or none.
    let named = ["checks", "list", "-a", "checked", "--json", "--check-name"];
    let health = cli(&d, &[&named[..], &["health"]].concat()).await;
    assert_eq!(health.as_array().map(Vec::len), Some(1), "{health}");
    assert_eq!(health[0]["name"], "health");
    let other = cli(&d, &[&named[..], &["ready"]].concat()).await;
    assert_eq!(other, json!([]));
    // `machines status` has it all for the one machine: its state, its checks and its
    // own recent events (filtered by the daemon: `events --machine`).
    let shown = cli(&d, &["machines", "status", &id, "-a", "checked", "--json"]).await;
    assert_eq!(shown["machine"]["id"], id.as_str());
    // The check runs every 100 ms, so `updated_at` moves between the two reads.
    let without_time = |checks: &serde_json::Value| {
        let mut checks = checks.clone();
        for check in checks.as_array_mut().into_iter().flatten() {
            if let Some(check) = check.as_object_mut() {
                check.remove("updated_at");
            }
        }
        checks
    };
    assert_eq!(without_time(&shown["checks"]), without_time(&listed));
    assert_eq!(shown["checks"][0]["status"], "critical", "{shown}");
    let events = shown["events"].as_array().unwrap();
    assert!(
        events.iter().all(|e| e["data"]["machine"] == id.as_str())
            && events.iter().any(|e| e["kind"] == "machine.started")
            && events.last().unwrap()["data"]["health"] == "critical",
        "{shown}"
    );
    assert!(
        m.data["data"]["output"]
            .as_str()
            .unwrap()
            .starts_with("500 ")
            && m.data["data"]["output"].as_str().unwrap().ends_with("sick"),
        "{}",
        m.data
    );
    std::fs::remove_file(work.path().join("sick")).unwrap();
    assert_eq!(
        next_health(&mut sse).await.data["data"]["health"],
        "passing"
    );
}

/// A check runs from the machine's start: within its grace period a failure does not count
/// (the machine stays `unknown`, `checks list` shows what the check saw), and a pass counts
/// at once instead of after the grace period (an auto-started machine's waiting request,
/// a rollout). Before, the first check ran only once the grace period was over.
#[tokio::test]
async fn within_its_grace_period_a_failure_is_not_counted_and_a_pass_counts_at_once() {
    let d = TestDaemon::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("sick"), "").unwrap();
    let mut sse = setup(&d, "starting").await;
    // Far longer than this test may take: whatever it sees happens within the grace period.
    let checks = json!({
        "health": { "type": "http", "path": "/health", "interval": "1h", "timeout": "1s", "grace_period": "1h" },
    });
    let id = create(
        &d,
        "starting",
        json!({ "command": python_app(work.path()), "workdir": work.path(), "internal_port": 8080, "checks": checks }),
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let seen = loop {
        let listed = checks_list(&d, "starting").await;
        if listed[0]["output"]
            .as_str()
            .is_some_and(|o| o.starts_with("500 "))
        {
            break listed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the check did not run within its grace period: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(seen[0]["status"], "unknown", "{seen}");
    let shown = common::api::Api::new(&d).machine("starting", &id).await;
    assert_eq!(shown["health"], "unknown", "{shown}");
    std::fs::remove_file(work.path().join("sick")).unwrap();
    // The first health event: passing, never critical on the way.
    let m = next_health(&mut sse).await;
    assert_eq!(
        (&m.data["data"]["machine"], &m.data["data"]["health"]),
        (&json!(id), &json!("passing")),
        "{}",
        m.data
    );
}

#[tokio::test]
async fn a_machine_without_port_or_checks_is_healthy_after_staying_up() {
    let d = TestDaemon::start();
    let mut sse = setup(&d, "worker").await;
    create(&d, "worker", json!({ "command": "exec sleep 600" })).await;
    let m = next_health(&mut sse).await;
    assert_eq!(m.data["data"]["health"], "passing");
}

#[tokio::test]
async fn tcp_and_http_checks_on_a_closed_port_are_critical_and_say_why() {
    let d = TestDaemon::start();
    // A port nobody listens on: bind, note, release.
    let port = common::free_port();
    for (app, kind, prefix) in [
        ("closed-tcp", "tcp", format!("port {port}: ")),
        ("closed-http", "http", format!("http://127.0.0.1:{port}/: ")),
    ] {
        let mut sse = setup(&d, app).await;
        let checks = json!({ "alive": { "type": kind, "port": port, "interval": "100ms", "grace_period": "0ms" } });
        create(
            &d,
            app,
            json!({ "command": "exec sleep 600", "checks": checks }),
        )
        .await;
        let m = next_health(&mut sse).await;
        assert_eq!(m.data["data"]["health"], "critical");
        // What the connection attempt met, not only that it failed.
        let output = m.data["data"]["output"].as_str().unwrap();
        assert!(
            output.starts_with(&prefix) && output.to_lowercase().contains("refused"),
            "{}",
            m.data
        );
    }
}

#[tokio::test]
async fn the_hello_example_runs_from_its_fly_toml_and_passes_its_check() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello");
    let loaded = lakefly::config::load(&dir.join("fly.toml")).unwrap();
    let (cfg, _) = loaded.into_valid().unwrap();
    let mut spec = lakefly::config::plan::machine_spec(&cfg, "app", None, None).unwrap();
    assert_eq!(spec.checks.len(), 1, "the http_service check");
    spec.workdir = Some(dir.to_string_lossy().into_owned());

    let d = TestDaemon::start();
    let mut sse = setup(&d, "hello").await;
    let id = create(&d, "hello", serde_json::to_value(&spec).unwrap()).await;
    let mut m = next_health(&mut sse).await;
    while m.data["data"]["health"] != "passing" {
        m = next_health(&mut sse).await;
    }
    assert_eq!(m.data["data"]["check"], "http_service.checks[0]");
    let machine: Value = common::http_client()
        .get(d.url(&format!("/v1/apps/hello/machines/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let port = machine["port"].as_u64().unwrap();
    let body: Value = common::http_client()
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["app"], "hello");
    assert_eq!(body["machine"], id.as_str());
}

/// An HTTPS app with the test certificate (tests/fixtures/tls), answering `secure <Host>`.
fn https_app(dir: &std::path::Path) -> String {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let app = format!(
        r#"
import os, ssl
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"secure " + self.headers.get("Host", "").encode())
    def log_message(self, *a): pass
server = HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain({cert:?}, {key:?})
server.socket = tls.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#,
        cert = fixtures.join("cert.pem").to_str().unwrap(),
        key = fixtures.join("key.pem").to_str().unwrap(),
    );
    std::fs::write(dir.join("app.py"), app).unwrap();
    "exec python3 app.py".to_string()
}

#[tokio::test]
async fn https_checks_speak_tls_and_verify_unless_told_not_to() {
    let d = TestDaemon::start();
    let work = tempfile::tempdir().unwrap();
    let mut sse = setup(&d, "secure").await;
    let check = |extra: Value| {
        let mut check = json!({ "type": "http", "protocol": "https", "path": "/health", "interval": "100ms", "timeout": "2s", "grace_period": "0ms" });
        check
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        check
    };
    // tls_skip_verify: the test CA is nobody's, yet the check passes over TLS.
    let skipping = json!({ "tls": check(json!({ "tls_skip_verify": true })) });
    create(
        &d,
        "secure",
        json!({ "command": https_app(work.path()), "workdir": work.path(), "internal_port": 8080, "checks": skipping }),
    )
    .await;
    let mut m = next_health(&mut sse).await;
    while m.data["data"]["health"] != "passing" {
        m = next_health(&mut sse).await;
    }
    let output = m.data["data"]["output"].as_str().unwrap();
    assert!(output.starts_with("200 https://127.0.0.1:"), "{output}");
    assert!(output.ends_with("/health: secure 127.0.0.1"), "{output}");

    // Verified against the host's CA store, which does not know the test CA.
    let mut sse = setup(&d, "verified").await;
    let verifying = json!({ "tls": check(json!({ "extra": { "tls_server_name": "localhost" } })) });
    create(
        &d,
        "verified",
        json!({ "command": https_app(work.path()), "workdir": work.path(), "internal_port": 8080, "checks": verifying }),
    )
    .await;
    // Until it listens the check fails to connect; then the certificate fails it.
    let mut m = next_health(&mut sse).await;
    while !m.data["data"]["output"]
        .as_str()
        .unwrap()
        .contains("TLS handshake")
    {
        m = next_health(&mut sse).await;
    }
    assert_eq!(m.data["data"]["health"], "critical");
    let output = m.data["data"]["output"].as_str().unwrap();
    assert!(output.contains("UnknownIssuer"), "{output}");
}

/// A health change the store cannot take (a full disk; here another process holding
/// SQLite's write lock past the daemon's busy timeout) is recorded once it can, not lost
/// until the health changes again.
#[tokio::test]
async fn a_health_change_the_store_missed_is_recorded_once_it_can() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let log = temp.path().join("daemon.log");
    let d = TestDaemon::start_logging_to(&state, &log);
    let work = tempfile::tempdir().unwrap();
    let mut sse = setup(&d, "missed").await;
    let checks = json!({
        "health": { "type": "http", "path": "/health", "interval": "100ms", "timeout": "1s", "grace_period": "0ms" },
    });
    let id = create(
        &d,
        "missed",
        json!({ "command": python_app(work.path()), "workdir": work.path(), "internal_port": 8080, "checks": checks }),
    )
    .await;
    while next_health(&mut sse).await.data["data"]["health"] != "passing" {}
    let lock = StoreLock::take(&state);
    std::fs::write(work.path().join("sick"), "").unwrap();
    wait_logged(&log, "could not record health");
    drop(lock);
    let m = next_health(&mut sse).await;
    assert_eq!(
        (
            m.data["data"]["machine"].as_str(),
            m.data["data"]["health"].as_str()
        ),
        (Some(id.as_str()), Some("critical"))
    );
    let shown = cli(&d, &["machines", "status", &id, "-a", "missed", "--json"]).await;
    assert_eq!(shown["machine"]["health"], "critical", "{shown}");
    // The journal of events says it as a warning, for `journalctl -u lakeflyd`.
    let critical = format!("health=critical machine={id}");
    wait_logged(&log, &critical);
    let logged = std::fs::read_to_string(&log).unwrap();
    let line = logged.lines().find(|l| l.contains(&critical)).unwrap();
    assert!(
        line.contains("WARN")
            && line.contains("lakefly::events")
            && line.contains("app=\"missed\""),
        "{line}"
    );
}
