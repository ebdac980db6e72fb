//! A machine stopped before a deploy (`machines stop`, or idle under
//! `auto_stop_machines`) stays stopped: the deploy replaces it with a stopped machine of
//! the new release, as flyctl leaves a stopped machine stopped, and a failed deploy
//! leaves it as it was. Before, every deploy started it, and a rolling deploy that failed
//! after its turn started it again.

mod common;

use std::path::Path;

use common::daemon::TestDaemon;
use common::files::{app_with, CHECKED_APP_PY, OK_PY};
use serde_json::Value;

/// Serves 200 on `$PORT`. In `MODE=second-crashes` the release's first machine serves
/// and every later one exits 1 at once (the marker is in the release's shared directory).
const APP: &str = r#"import os, sys
from ok import serve

if os.environ.get("MODE") == "second-crashes":
    try:
        os.mkdir("first")
    except FileExistsError:
        print("not the first machine: crashing", flush=True)
        sys.exit(1)

serve()
"#;

/// The app's fly.toml.
fn config() -> String {
    let rolling = "[deploy]\n  strategy = \"rolling\"\n  max_unavailable = 1\n";
    format!("app = \"idle\"\nkill_signal = \"SIGTERM\"\n{CHECKED_APP_PY}{rolling}")
}

/// A daemon with release 1 of the app on `count` machines, the first of them stopped;
/// the `-c` argument for the app and the machines' ids as they were.
fn one_of_n_stopped(d: &TestDaemon, root: &Path, count: usize) -> (String, Vec<Value>) {
    let app = app_with(
        root,
        "idle",
        &[OK_PY, ("app.py", APP), ("fly.toml", &config())],
    );
    let config = app.join("fly.toml").to_str().unwrap().to_string();
    let here = Path::new(".");
    d.cli(here, &["deploy", "-c", &config]).expect_code(0);
    let n = count.to_string();
    d.cli(here, &["scale", "count", &n, "--yes", "-a", "idle"])
        .expect_code(0);
    let first = machines(d)[0]["id"].as_str().unwrap().to_string();
    d.cli(here, &["machines", "stop", &first, "-a", "idle"])
        .expect_code(0);
    let before = machines(d);
    assert_eq!(before.len(), count, "{before:?}");
    assert_eq!(
        states(&before).iter().filter(|s| *s == "stopped").count(),
        1
    );
    (config, before)
}

fn machines(d: &TestDaemon) -> Vec<Value> {
    let status = d
        .cli(Path::new("."), &["status", "-a", "idle", "--json"])
        .expect_code(0)
        .json();
    status["machines"].as_array().unwrap().clone()
}

fn states(machines: &[Value]) -> Vec<String> {
    let mut states: Vec<String> = (machines.iter())
        .map(|m| m["state"].as_str().unwrap().to_string())
        .collect();
    states.sort();
    states
}

#[test]
fn a_deploy_replaces_a_stopped_machine_with_a_stopped_one() {
    let d = TestDaemon::start();
    let temp = tempfile::tempdir().unwrap();
    let (config, before) = one_of_n_stopped(&d, temp.path(), 2);

    let run = d.cli(Path::new("."), &["deploy", "-c", &config, "-e", "V=2"]);
    let run = run.expect_code(0);
    assert!(
        run.stderr
            .contains("stopped as the machine it replaces was"),
        "{}",
        run.stderr
    );

    let after = machines(&d);
    assert_eq!(states(&after), ["started", "stopped"], "{after:?}");
    for machine in &after {
        assert_eq!(machine["release_version"], 2, "{after:?}");
        assert!(
            !before.iter().any(|old| old["id"] == machine["id"]),
            "old machines are gone after the deploy: {after:?}"
        );
    }
    // The stopped one is the new release's, ready for a start.
    let stopped = after.iter().find(|m| m["state"] == "stopped").unwrap();
    let id = stopped["id"].as_str().unwrap();
    d.cli(Path::new("."), &["machines", "start", id, "-a", "idle"])
        .expect_code(0);
}

#[test]
fn a_failed_deploy_leaves_a_stopped_machine_stopped() {
    let d = TestDaemon::start();
    let temp = tempfile::tempdir().unwrap();
    let (config, before) = one_of_n_stopped(&d, temp.path(), 3);

    // The first new machine passes and an old one gives way; the second crashes.
    let v2 = ["deploy", "-c", &config, "-e", "MODE=second-crashes"];
    let run = d.cli(Path::new("."), &v2).expect_code(7);
    assert!(
        run.stderr.contains("release v1 keeps running"),
        "{}",
        run.stderr
    );

    let after = machines(&d);
    let ids = |ms: &[Value]| common::machine_ids(ms);
    assert_eq!(ids(&after), ids(&before), "{after:?}");
    for old in &before {
        let now = after.iter().find(|m| m["id"] == old["id"]).unwrap();
        assert_eq!(now["state"], old["state"], "{after:?}");
        assert_eq!(now["release_version"], 1, "{after:?}");
    }
}

#[test]
fn a_deploy_of_an_app_whose_machines_are_all_stopped_starts_none_and_says_so() {
    let d = TestDaemon::start();
    let temp = tempfile::tempdir().unwrap();
    let (config, _) = one_of_n_stopped(&d, temp.path(), 1);

    let run = d.cli(Path::new("."), &["deploy", "-c", &config, "-e", "V=2"]);
    let run = run.expect_code(0);
    assert!(
        run.stderr
            .contains("no machine of this release has run yet"),
        "{}",
        run.stderr
    );
    let after = machines(&d);
    assert_eq!(states(&after), ["stopped"], "{after:?}");
    assert_eq!(after[0]["release_version"], 2, "{after:?}");
}

#[test]
fn scaling_down_removes_a_stopped_machine_before_one_that_runs() {
    let d = TestDaemon::start();
    let temp = tempfile::tempdir().unwrap();
    let (_, before) = one_of_n_stopped(&d, temp.path(), 3);
    let stopped = before.iter().find(|m| m["state"] == "stopped").unwrap();

    let scale = ["scale", "count", "2", "--yes", "-a", "idle"];
    d.cli(Path::new("."), &scale).expect_code(0);
    let after = machines(&d);
    assert_eq!(states(&after), ["started", "started"], "{after:?}");
    assert!(!after.iter().any(|m| m["id"] == stopped["id"]), "{after:?}");
}
