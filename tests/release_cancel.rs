//! `lakefly releases cancel` and `apps destroy` of an app with a release rolling out: the
//! release fails at once instead of waiting out `wait_timeout`, its new machines go, and
//! the release before keeps running.

mod common;

use std::path::Path;

use common::daemon::TestDaemon;
use common::files::{edit_file, hello_copy};
use common::Run;
use serde_json::Value;

fn lakefly(d: &TestDaemon, app: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--remote", d.api.as_str(), "-a", "hello"];
    all.extend_from_slice(args);
    common::lakefly(app, &all)
}

fn status(d: &TestDaemon, app: &Path) -> Value {
    lakefly(d, app, &["status", "--json"]).expect_code(0).json()
}

/// Waits (up to a deadline) until an event of `kind` says `text`.
fn wait_for_event(d: &TestDaemon, app: &Path, kind: &str, text: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let events = lakefly(d, app, &["events", "--no-tail", "--kind", kind]);
        let said = events.expect_code(0).stdout;
        if said.contains(text) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{said}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Makes the next release of the hello copy at `app` one that never becomes healthy (its
/// check asks for `/ready`, which the app always answers 404) and would wait 10 minutes.
fn never_healthy(app: &Path) {
    let config = app.join("fly.toml");
    edit_file(&config, "path = \"/health\"", "path = \"/ready\"");
    edit_file(
        &config,
        "strategy = \"rolling\"",
        "strategy = \"rolling\"\n  wait_timeout = \"10m\"",
    );
}

#[test]
fn a_cancelled_release_fails_at_once_and_the_one_before_keeps_running() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    lakefly(&d, &app, &["deploy"]).expect_code(0);
    let before = status(&d, &app)["machines"][0]["id"].clone();
    // Nothing rolls out: nothing to cancel.
    let idle = lakefly(&d, &app, &["releases", "cancel"]).expect_code(6);
    assert!(
        idle.stderr
            .contains("error: no release of this app is rolling out"),
        "{}",
        idle.stderr
    );

    never_healthy(&app);
    lakefly(&d, &app, &["deploy", "--detach"]).expect_code(0);
    let releases = lakefly(&d, &app, &["releases", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(releases[0]["status"], "running", "{releases}");
    // The rollout says why it waits as soon as the check fails, not at wait_timeout.
    let failing = "is not healthy yet: http_service.checks[0]: 404 http://127.0.0.1:";
    wait_for_event(&d, &app, "deploy.progress", failing);
    // `status` says so beside the release that runs, and how to stop it.
    assert_eq!(status(&d, &app)["rolling_out"], 2);
    let text = lakefly(&d, &app, &["status"]).expect_code(0).stdout;
    assert!(
        text.contains(
            "Release  v1 (complete); v2 rolling out (`lakefly releases cancel` stops it)"
        ),
        "{text}"
    );
    let cancelled = lakefly(&d, &app, &["releases", "cancel", "v2"]).expect_code(0);
    assert!(
        cancelled.stderr.contains("==> cancelling release v2")
            && cancelled
                .stderr
                .contains("release v2 failed: cancelled: asked to stop")
            && cancelled.stderr.contains("==> release v1 keeps running"),
        "{}",
        cancelled.stderr
    );
    let now = status(&d, &app);
    assert_eq!(now["release"]["version"], 1, "{now}");
    assert!(now.get("rolling_out").is_none(), "{now}");
    let machines = now["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 1, "the new machine went: {now}");
    assert_eq!(machines[0]["id"], before);
    assert_eq!(machines[0]["state"], "started");
    let releases = lakefly(&d, &app, &["releases", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(releases[0]["status"], "failed", "{releases}");

    // Once it ended, a cancel of it is a conflict; of a release never made, not found.
    let again = lakefly(&d, &app, &["releases", "cancel", "2", "--json"]).expect_code(6);
    assert!(
        again.stderr.contains("\"code\":\"not_rolling_out\""),
        "{}",
        again.stderr
    );
    lakefly(&d, &app, &["releases", "cancel", "9"]).expect_code(5);
}

#[test]
fn destroying_an_app_with_a_release_rolling_out_cancels_it_first() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    lakefly(&d, &app, &["deploy"]).expect_code(0);
    never_healthy(&app);
    lakefly(&d, &app, &["deploy", "--detach"]).expect_code(0);
    assert_eq!(status(&d, &app)["machines"].as_array().unwrap().len(), 2);
    let pids: Vec<u64> = status(&d, &app)["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["pid"].as_u64())
        .collect();
    assert_eq!(pids.len(), 2);

    lakefly(&d, &app, &["apps", "destroy", "hello", "--yes"]).expect_code(0);
    lakefly(&d, &app, &["status"]).expect_code(5);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|stat| stat.contains(") Z ")),
            "machine process {pid} outlived its app"
        );
    }
}

#[test]
fn a_cancel_stops_a_release_command_that_hangs_with_sigterm_first() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    lakefly(&d, &app, &["deploy"]).expect_code(0);
    // A migration stuck on a lock: it would hold the release for its 10 minutes.
    let hangs = r#"release_command = "sh -c 'trap \"echo rolled back; exit 1\" TERM; echo migrating; while :; do sleep 0.1; done'"
  release_command_timeout = "10m""#;
    edit_file(
        &app.join("fly.toml"),
        "strategy = \"rolling\"",
        &format!("strategy = \"rolling\"\n  {hangs}"),
    );
    lakefly(&d, &app, &["deploy", "--detach"]).expect_code(0);
    wait_for_event(&d, &app, "release.command", "detail=migrating");

    let cancelled = lakefly(&d, &app, &["releases", "cancel"]).expect_code(0);
    assert!(
        cancelled
            .stderr
            .contains("release v2 failed: cancelled while its release_command ran: asked to stop")
            && cancelled.stderr.contains("==> release v1 keeps running"),
        "{}",
        cancelled.stderr
    );
    // It was told to stop before it was killed, so it could clean up after itself.
    let logs = lakefly(&d, &app, &["logs", "--no-tail"])
        .expect_code(0)
        .stdout;
    assert!(logs.contains("rolled back"), "{logs}");
    let now = status(&d, &app);
    assert_eq!(now["release"]["version"], 1, "{now}");
    assert_eq!(now["machines"].as_array().unwrap().len(), 1, "{now}");
}

#[test]
fn while_an_app_is_destroyed_none_of_its_machines_starts_again() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    // A worker that takes its whole kill_timeout to stop, so the destroy is seen going.
    let config = "app = \"slow\"\nkill_timeout = \"3s\"\n[processes]\n  app = \"sh -c 'trap \\\"\\\" INT TERM; while :; do sleep 0.1; done'\"\n";
    let app = common::files::app_with(dir.path(), "slow", &[("fly.toml", config)]);
    let cli = |args: &[&str]| {
        let mut all = vec!["--remote", d.api.as_str(), "-a", "slow"];
        all.extend_from_slice(args);
        common::lakefly(&app, &all)
    };
    cli(&["deploy"]).expect_code(0);
    cli(&["scale", "count", "2", "--yes"]).expect_code(0);
    let ids = cli(&["machines", "list", "-q"]).expect_code(0).stdout;
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids.len(), 2, "{ids:?}");

    let destroy = std::process::Command::new(env!("CARGO_BIN_EXE_lakefly"))
        .args(["--remote", &d.api, "apps", "destroy", "slow", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once a machine is stopping, the destroy has begun.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let stopping = loop {
        let listed = cli(&["machines", "list", "--json"]).json();
        let found = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["state"] == "stopping")
            .map(|m| m["id"].as_str().unwrap().to_string());
        if let Some(id) = found {
            break id;
        }
        assert!(std::time::Instant::now() < deadline, "{listed}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let other = ids.iter().find(|id| **id != stopping).unwrap();
    let refused = cli(&["machines", "restart", other]).expect_code(6);
    assert!(
        refused.stderr.contains("the app is being destroyed"),
        "{}",
        refused.stderr
    );
    let destroyed = destroy.wait_with_output().unwrap();
    assert!(
        destroyed.status.success(),
        "{}",
        String::from_utf8_lossy(&destroyed.stderr)
    );
    cli(&["status"]).expect_code(5);
}
