//! A release whose new machine passes its check and then crashes while the rollout goes
//! on (the next batch starting, the last old machine stopping) fails: the machines it had
//! replaced run again, as for a release that never passed. Without this, a rolling deploy
//! of a release that crashes seconds after starting replaced every machine of the app,
//! one healthy-looking batch at a time.

mod common;

use std::path::Path;

use common::daemon::TestDaemon;
use common::files::{app_with, CHECKED_APP_PY, OK_PY};
use common::Run;
use serde_json::Value;

/// In `MODE=crash`, the release's first machine serves until the second one starts, then
/// exits 1 (a crash seconds after its check passed); the second waits for that exit
/// before it listens, so it cannot pass its check first. Both work in the release's
/// shared directory, where the marker files go.
///
/// In `MODE=crash-when-old-stops`, a machine serves until an old machine is told to stop
/// (`$SHARED/old-stopping`), then exits 1; the old one (`MODE=ok`) stops only once the
/// daemon has recorded that exit, so the crash comes before the rollout's end.
const APP: &str = r#"import json, os, sys, time, threading, signal, urllib.request
from ok import serve

first = False
if os.environ.get("MODE") == "crash":
    try:
        os.mkdir("first")
        first = True
    except FileExistsError:
        open("second", "w").close()
        while not os.path.exists("first-gone"):
            time.sleep(0.05)

def crash_when_second_starts():
    while not os.path.exists("second"):
        time.sleep(0.05)
    print("first machine: crashing", flush=True)
    open("first-gone", "w").close()
    os._exit(1)

def crash_when_old_stops():
    while not os.path.exists(os.environ["SHARED"] + "/old-stopping"):
        time.sleep(0.05)
    print("new machine: crashing", flush=True)
    os._exit(1)

def stop_once_the_crash_is_recorded(*_):
    open(os.environ["SHARED"] + "/old-stopping", "w").close()
    url = os.environ["API"] + "/v1/apps/smoke/machines"
    for _ in range(600):
        machines = json.load(urllib.request.urlopen(url))
        if any(m.get("release_version") == 2 and m["restarts"] > 0 for m in machines):
            break
        time.sleep(0.05)
    os._exit(0)

if first:
    threading.Thread(target=crash_when_second_starts, daemon=True).start()
if os.environ.get("MODE") == "crash-when-old-stops":
    threading.Thread(target=crash_when_old_stops, daemon=True).start()
if os.environ.get("MODE") == "ok" and "SHARED" in os.environ:
    signal.signal(signal.SIGTERM, stop_once_the_crash_is_recorded)
serve()
"#;

/// The app's fly.toml.
fn config() -> String {
    let rolling = "[deploy]\n  strategy = \"rolling\"\n  max_unavailable = 1\n";
    format!("app = \"smoke\"\nkill_signal = \"SIGTERM\"\nkill_timeout = \"60s\"\n{CHECKED_APP_PY}{rolling}")
}

/// An app dir running [`APP`] under [`config`], and the `-c` argument for it.
fn smoke_app(root: &Path) -> String {
    let app = app_with(
        root,
        "smoke",
        &[OK_PY, ("app.py", APP), ("fly.toml", &config())],
    );
    app.join("fly.toml").to_str().unwrap().to_string()
}

fn status(d: &TestDaemon) -> Value {
    d.cli(Path::new("."), &["status", "-a", "smoke", "--json"])
        .expect_code(0)
        .json()
}

/// Release 1 still runs on exactly the machines it ran on `before`.
fn release_1_runs_on(d: &TestDaemon, before: &Value) {
    let after = status(d);
    assert_eq!(after["release"]["version"], 1, "{after}");
    assert_eq!(machine_ids(&after), machine_ids(before), "{after}");
    for machine in after["machines"].as_array().unwrap() {
        assert_eq!(machine["state"], "started", "{after}");
        assert_eq!(machine["release_version"], 1, "{after}");
    }
}

fn machine_ids(status: &Value) -> Vec<String> {
    common::machine_ids(status["machines"].as_array().unwrap())
}

/// `run` is a deploy that failed for a machine that exited after passing its checks.
fn assert_failed_after_passing(run: &Run) {
    assert!(
        run.stderr.contains("after it passed its checks")
            && run.stderr.contains("exited with code 1")
            && run.stderr.contains("hint: release v1 keeps running"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_machine_that_crashes_after_passing_its_check_fails_the_rolling_deploy() {
    let d = TestDaemon::start();
    let temp = tempfile::tempdir().unwrap();
    let config = smoke_app(temp.path());
    let here = Path::new(".");
    d.cli(here, &["deploy", "-c", &config, "-e", "MODE=ok"])
        .expect_code(0);
    d.cli(here, &["scale", "count", "2", "--yes", "-a", "smoke"])
        .expect_code(0);
    let before = status(&d);
    assert_eq!(machine_ids(&before).len(), 2, "{before}");

    let run = d.cli(here, &["deploy", "-c", &config, "-e", "MODE=crash"]);
    let run = run.expect_code(7);
    assert_failed_after_passing(&run);
    assert!(
        run.stderr.contains("first machine: crashing"),
        "the crashed machine's last lines: {}",
        run.stderr
    );
    release_1_runs_on(&d, &before);
}

#[test]
fn a_machine_that_crashes_while_the_last_old_one_stops_fails_the_deploy() {
    let d = TestDaemon::start();
    let temp = tempfile::tempdir().unwrap();
    let config = smoke_app(temp.path());
    let shared = format!("SHARED={}", temp.path().display());
    let api = format!("API={}", d.api);
    let here = Path::new(".");
    let v1 = [
        "deploy", "-c", &config, "-e", "MODE=ok", "-e", &shared, "-e", &api,
    ];
    d.cli(here, &v1).expect_code(0);
    let before = status(&d);

    let v2 = [
        "deploy",
        "-c",
        &config,
        "-e",
        "MODE=crash-when-old-stops",
        "-e",
        &shared,
    ];
    let run = d.cli(here, &v2).expect_code(7);
    assert_failed_after_passing(&run);
    release_1_runs_on(&d, &before);
}
