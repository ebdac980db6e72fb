//! `lakeflyd --smoke-time`: a deploy's new machine must have run that long, from its
//! start, before the old machine it replaces stops (flyctl's smoke checks). A release
//! whose machine passes its check and crashes a second later fails, and the old machine
//! runs on; before, the rollout ended as the check passed, the old machine stopped, and
//! the app was left crashing.

mod common;

use std::path::Path;

use common::daemon::TestDaemon;
use common::files::{app_with, CHECKED_APP_PY, OK_PY};
use serde_json::Value;

/// Serves 200 on `$PORT`; in `MODE=crash-soon` it exits 1 a second and a half after
/// answering its first request (the health check).
const APP: &str = r#"import os, threading
from ok import Ok, serve

class CrashSoon(Ok):
    def do_GET(self):
        super().do_GET()
        threading.Timer(1.5, lambda: os._exit(1)).start()

serve(CrashSoon if os.environ.get("MODE") == "crash-soon" else Ok)
"#;

/// The app's fly.toml.
fn config() -> String {
    format!("app = \"smoke\"\nkill_signal = \"SIGTERM\"\n{CHECKED_APP_PY}")
}

/// A daemon watching new machines for `smoke_time`, with release 1 of the app deployed
/// (by one that did not, so it takes no time); the `-c` argument for the app.
fn deployed(temp: &Path, smoke_time: &str) -> (TestDaemon, String) {
    let state = temp.join("state");
    let mut d = TestDaemon::start_in(&state, &[]);
    let app = app_with(
        temp,
        "smoke",
        &[OK_PY, ("app.py", APP), ("fly.toml", &config())],
    );
    let config = app.join("fly.toml").to_str().unwrap().to_string();
    d.cli(Path::new("."), &["deploy", "-c", &config])
        .expect_code(0);
    d.stop();
    let d = TestDaemon::start_in(&state, &["--smoke-time", smoke_time]);
    (d, config)
}

fn machines(d: &TestDaemon) -> Vec<Value> {
    let status = d
        .cli(Path::new("."), &["status", "-a", "smoke", "--json"])
        .expect_code(0)
        .json();
    status["machines"].as_array().unwrap().clone()
}

/// `at` (RFC 3339, as events and machines record times) as milliseconds.
fn millis(at: &Value) -> i64 {
    let at = at.as_str().unwrap_or_else(|| panic!("no time: {at}"));
    chrono::DateTime::parse_from_rfc3339(at)
        .unwrap()
        .timestamp_millis()
}

#[test]
fn a_machine_that_crashes_within_the_smoke_time_fails_the_deploy() {
    let temp = tempfile::tempdir().unwrap();
    // Long enough for the crash to come within it under any load; the failure ends it.
    let (d, config) = deployed(temp.path(), "60s");
    let before = machines(&d);

    let v2 = ["deploy", "-c", &config, "-e", "MODE=crash-soon"];
    let run = d.cli(Path::new("."), &v2).expect_code(7);
    assert!(
        run.stderr.contains("is healthy")
            && run.stderr.contains("after it passed its checks")
            && run.stderr.contains("exited with code 1")
            && run.stderr.contains("release v1 keeps running"),
        "{}",
        run.stderr
    );
    let after = machines(&d);
    assert_eq!(common::machine_ids(&after), common::machine_ids(&before));
    assert_eq!(after[0]["state"], "started", "{after:?}");
    assert_eq!(after[0]["release_version"], 1, "{after:?}");
}

#[test]
fn the_old_machine_stops_only_once_the_new_one_has_run_the_smoke_time() {
    let temp = tempfile::tempdir().unwrap();
    let (d, config) = deployed(temp.path(), "4s");
    let old = machines(&d)[0]["id"].clone();

    d.cli(Path::new("."), &["deploy", "-c", &config, "-e", "V=2"])
        .expect_code(0);
    let new = machines(&d)[0].clone();
    assert_ne!(new["id"], old);
    let events = d
        .cli(
            Path::new("."),
            &["events", "--no-tail", "-a", "smoke", "--json"],
        )
        .expect_code(0);
    let events: Vec<Value> = (events.stdout.lines())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // The old machine's last stop, against the new one's start as the daemon counts it.
    let stopped = (events.iter().rev())
        .find(|e| e["kind"] == "machine.stopped" && e["data"]["machine"] == old)
        .unwrap_or_else(|| panic!("no stop of {old}: {events:?}"));
    let ran = millis(&stopped["time"]) - millis(&new["started_at"]);
    assert!(
        ran >= 4000,
        "the old machine stopped {ran} ms after the new one started"
    );
}

#[test]
fn smoke_checks_false_counts_a_machine_once_its_checks_pass() {
    let temp = tempfile::tempdir().unwrap();
    let (d, config) = deployed(temp.path(), "60s");

    let v2 = ["deploy", "-c", &config, "-e", "V=2", "--smoke-checks=false"];
    let run = d.cli(Path::new("."), &v2).expect_code(0);
    assert!(
        run.stderr.contains("is healthy") && !run.stderr.contains("stays up"),
        "{}",
        run.stderr
    );
    assert_eq!(machines(&d)[0]["release_version"], 2);
}

#[test]
fn a_release_cancelled_while_its_machine_is_watched_fails_at_once() {
    let temp = tempfile::tempdir().unwrap();
    // Long enough that only the cancel ends the watch.
    let (d, config) = deployed(temp.path(), "10m");
    let before = machines(&d);
    let here = Path::new(".");

    d.cli(here, &["deploy", "-c", &config, "-e", "V=2", "--detach"])
        .expect_code(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let progress = [
            "events",
            "--no-tail",
            "-a",
            "smoke",
            "--kind",
            "deploy.progress",
        ];
        let said = d.cli(here, &progress).expect_code(0).stdout;
        if said.contains("stays up: ") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{said}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let cancelled = d
        .cli(here, &["releases", "cancel", "-a", "smoke"])
        .expect_code(0);
    assert!(
        cancelled.stderr.contains("release v2 failed: cancelled"),
        "{}",
        cancelled.stderr
    );
    let after = machines(&d);
    assert_eq!(common::machine_ids(&after), common::machine_ids(&before));
    assert_eq!(after[0]["state"], "started", "{after:?}");
}
