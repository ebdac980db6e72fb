//! `lakefly deploy` end to end against a real daemon: a release goes live; a broken one
//! fails with exit 7 and the previous release keeps running, untouched.

mod common;

use std::path::{Path, PathBuf};

use common::daemon::TestDaemon;
use common::Run;
use serde_json::Value;

/// A copy of the hello example to change.
fn hello_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("hello");
    std::fs::create_dir(&app).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello");
    for file in ["fly.toml", "app.py"] {
        std::fs::copy(example.join(file), app.join(file)).unwrap();
    }
    (dir, app)
}

fn deploy(d: &TestDaemon, app: &Path, extra: &[&str]) -> Run {
    let config = app.join("fly.toml");
    let mut args = vec!["--remote", &d.api, "deploy", "-c", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    common::lakefly(Path::new("."), &args)
}

fn status(d: &TestDaemon) -> Value {
    common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "hello", "--json"],
    )
    .expect_code(0)
    .json()
}

#[test]
fn a_release_goes_live_and_an_unchanged_app_uploads_nothing() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    let run = deploy(&d, &app, &[]).expect_code(0);
    assert!(
        run.stderr.contains("==> created app hello"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("==> uploaded the bundle"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("machine") && run.stderr.contains("is healthy"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.trim_end().ends_with("==> release v1 is live"),
        "{}",
        run.stderr
    );
    let s = status(&d);
    assert_eq!(
        (
            s["release"]["version"].as_u64(),
            s["release"]["status"].as_str()
        ),
        (Some(1), Some("complete"))
    );
    assert_eq!(s["machines"][0]["health"], "passing");
    assert_eq!(s["machines"][0]["release_version"], 1);

    let again = deploy(&d, &app, &["--strategy", "bluegreen"]).expect_code(0);
    assert!(
        again.stderr.contains("nothing to upload"),
        "{}",
        again.stderr
    );
    let s = status(&d);
    assert_eq!(s["release"]["version"], 2);
    let machines = s["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 1, "the old machine is gone: {machines:?}");
    assert_eq!(machines[0]["release_version"], 2);
}

#[test]
fn a_crashing_release_fails_with_exit_7_and_the_previous_one_keeps_running() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    let before = status(&d)["machines"][0].clone();

    std::fs::write(
        app.join("app.py"),
        "import sys\nprint('boom: missing DATABASE_URL', flush=True)\nsys.exit(3)\n",
    )
    .unwrap();
    let run = deploy(&d, &app, &[]).expect_code(7);
    assert!(
        run.stderr.contains("appears to be crashing"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("boom: missing DATABASE_URL"),
        "the machine's last log lines: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("error: release v2 of hello failed"),
        "{}",
        run.stderr
    );

    let after = status(&d);
    assert_eq!(after["release"]["version"], 1, "v1 stays current");
    let machines = after["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 1, "{machines:?}");
    assert_eq!(machines[0]["id"], before["id"], "the old machine is back");
    assert_eq!(machines[0]["state"], "started");
    let releases = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "releases", "-a", "hello", "--json"],
    )
    .expect_code(0)
    .json();
    assert_eq!(releases[0]["status"], "failed");
    assert_eq!(releases[1]["status"], "complete");
}

#[test]
fn a_failing_release_command_stops_the_release_before_any_machine_is_touched() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    let before = status(&d)["machines"][0].clone();
    let mut config = std::fs::read_to_string(app.join("fly.toml")).unwrap();
    config = config.replace(
        "strategy = \"rolling\"",
        "strategy = \"rolling\"\n  release_command = \"echo migrating; exit 4\"",
    );
    std::fs::write(app.join("fly.toml"), config).unwrap();
    let run = deploy(&d, &app, &[]).expect_code(7);
    assert!(
        run.stderr.contains("release_command exited 4"),
        "{}",
        run.stderr
    );
    let after = status(&d)["machines"][0].clone();
    assert_eq!(
        (after["id"].clone(), after["pid"].clone()),
        (before["id"].clone(), before["pid"].clone())
    );
}

#[test]
fn an_invalid_config_stops_before_anything_is_sent() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    std::fs::write(
        app.join("fly.toml"),
        "app = \"hello\"\n[deploy]\nstrategy = \"sideways\"\n",
    )
    .unwrap();
    let run = deploy(&d, &app, &[]).expect_code(3);
    assert!(run.stderr.contains("fly.toml:3:12"), "{}", run.stderr);
    let apps = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "apps", "list", "--json"],
    )
    .expect_code(0)
    .json();
    assert_eq!(apps, serde_json::json!([]));
}

#[test]
fn rollback_goes_back_to_the_last_complete_release_as_a_new_release() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    std::fs::write(
        app.join("fly.toml"),
        std::fs::read_to_string(app.join("fly.toml"))
            .unwrap()
            .replace("GREETING = \"hello\"", "GREETING = \"v2\""),
    )
    .unwrap();
    deploy(&d, &app, &[]).expect_code(0);
    let run = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "rollback", "-a", "hello"],
    )
    .expect_code(0);
    assert!(
        run.stderr.contains("==> release v3 is live"),
        "{}",
        run.stderr
    );
    let releases = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "releases", "-a", "hello", "--json"],
    )
    .expect_code(0)
    .json();
    assert_eq!(releases[0]["description"], "rollback to v1");
    assert_eq!(releases[0]["status"], "complete");
    assert_eq!(status(&d)["release"]["version"], 3);
    let missing = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "rollback", "9", "-a", "hello"],
    )
    .expect_code(5);
    assert!(
        missing
            .stderr
            .starts_with("error: release v9 does not exist"),
        "{}",
        missing.stderr
    );
}

#[test]
fn canary_and_immediate_replace_every_machine_and_a_second_deploy_at_once_is_refused() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    for (round, strategy) in [(2, "canary"), (3, "immediate")] {
        let run = deploy(&d, &app, &["--strategy", strategy]).expect_code(0);
        assert!(
            run.stderr
                .contains(&format!("==> release v{round} is live")),
            "{}",
            run.stderr
        );
        let s = status(&d);
        let machines = s["machines"].as_array().unwrap();
        assert_eq!(machines.len(), 1, "{strategy}: {machines:?}");
        assert_eq!(machines[0]["release_version"], round, "{strategy}");
    }
    // A release whose check cannot pass for a while keeps v4 running...
    let config = std::fs::read_to_string(app.join("fly.toml"))
        .unwrap()
        .replace("grace_period = \"1s\"", "grace_period = \"3s\"");
    std::fs::write(app.join("fly.toml"), config).unwrap();
    deploy(&d, &app, &["--detach"]).expect_code(0);
    // ...so a second one is refused with the running version named.
    let run = deploy(&d, &app, &["--detach"]).expect_code(6);
    assert!(
        run.stderr
            .contains("error: release v4 of this app is still rolling out"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_dockerfile_app_runs_without_a_container_engine() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("svc");
    std::fs::create_dir_all(app.join("src")).unwrap();
    std::fs::write(
        app.join("fly.toml"),
        "app = \"svc\"\n[build]\n  dockerfile = \"Dockerfile.lsh\"\n[http_service]\n  internal_port = 8080\n  [[http_service.checks]]\n    grace_period = \"0s\"\n    interval = \"200ms\"\n    path = \"/\"\n",
    )
    .unwrap();
    std::fs::write(
        app.join("Dockerfile.lsh"),
        "FROM python:3.11-slim\nWORKDIR /srv/app\nENV GREETING=\"from the image\" STATE_DIR=/srv/app/state\nCOPY src/ ./\nRUN pip install nothing\nCMD [\"python3\", \"server.py\"]\n",
    )
    .unwrap();
    std::fs::write(
        app.join("src/server.py"),
        r#"import os
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("%s|%s|%s" % (os.environ["GREETING"], os.environ["STATE_DIR"], os.getcwd())).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#,
    )
    .unwrap();
    let config = app.join("fly.toml");
    let run = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "deploy", "-c", config.to_str().unwrap()],
    )
    .expect_code(0);
    assert!(
        run.stderr
            .contains("not applied on the host: line 5: RUN pip install nothing"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("runs `python3 server.py`"),
        "{}",
        run.stderr
    );
    let s = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "svc", "--json"],
    )
    .expect_code(0)
    .json();
    let port = s["machines"][0]["port"].as_u64().unwrap();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
    use std::io::{Read, Write};
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let parts: Vec<&str> = body.split('|').collect();
    assert_eq!(parts[0], "from the image");
    assert!(
        parts[1].ends_with("1-tree/state"),
        "STATE_DIR mapped onto the tree: {body}"
    );
    assert!(
        parts[2].ends_with("1-tree"),
        "the machine runs in the tree: {body}"
    );
}
