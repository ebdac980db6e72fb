//! `lakefly machines stop -s SIGNAL --timeout DURATION` and `machines restart -s SIGNAL
//! --time DURATION`, as flyctl's `machine stop` and `machine restart`: one stop with
//! another signal or time before SIGKILL than the machine's `kill_signal` and
//! `kill_timeout`, which stay as they are for every other stop.

mod common;

use std::path::Path;

use common::daemon::TestDaemon;
use common::files::marked_app;
use serde_json::Value;

/// A machine that writes to `$MARK`: "ready" once its handlers are in place, and on
/// SIGTERM "terminated", then exits 0; SIGINT (fly.toml's default `kill_signal`) goes to
/// `on_sigint`, a Python signal handler.
fn app(on_sigint: &str) -> String {
    format!(
        r#"import os, signal, sys
def say(what):
    with open(os.environ["MARK"], "a") as mark:
        mark.write(what + "\n")
def terminated(*_):
    say("terminated")
    sys.exit(0)
signal.signal(signal.SIGINT, {on_sigint})
signal.signal(signal.SIGTERM, terminated)
say("ready")
while True:
    signal.pause()
"#
    )
}

/// Waits until `mark` says `text`: the app has its signal handlers in place.
fn wait_for(mark: &Path, text: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let said = std::fs::read_to_string(mark).unwrap_or_default();
        if said == text {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{said:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The app's one machine, as `machines list --json` shows it.
fn machine(d: &TestDaemon, dir: &Path) -> Value {
    let list = d.cli(dir, &["machines", "list", "--json"]).expect_code(0);
    let list = list.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    list[0].clone()
}

#[test]
fn a_stop_takes_another_signal_or_timeout_than_the_machines_own() {
    let temp = tempfile::tempdir().unwrap();
    // A stop the app's own way would wait the whole minute, then SIGKILL it.
    // It ignores SIGINT.
    let app = app("signal.SIG_IGN");
    let (dir, mark) = marked_app(temp.path(), "stubborn", "kill_timeout = \"60s\"\n", &app);
    let d = TestDaemon::start();
    d.cli(&dir, &["deploy"]).expect_code(0);
    let id = machine(&d, &dir)["id"].as_str().unwrap().to_string();
    wait_for(&mark, "ready\n");

    let stopped = d.cli(&dir, &["machines", "stop", &id, "-s", "SIGTERM"]);
    stopped.expect_code(0);
    assert_eq!(
        std::fs::read_to_string(&mark).unwrap(),
        "ready\nterminated\n"
    );
    let now = machine(&d, &dir);
    assert_eq!(now["state"], "stopped", "{now}");
    assert_eq!(now["last_exit"]["code"], 0, "{now}");

    d.cli(&dir, &["machines", "start", &id]).expect_code(0);
    wait_for(&mark, "ready\nterminated\nready\n");
    d.cli(&dir, &["machines", "stop", &id, "--timeout", "1"])
        .expect_code(0);
    let now = machine(&d, &dir);
    assert_eq!(now["state"], "stopped", "{now}");
    assert_eq!(now["last_exit"]["signal"], "SIGKILL", "{now}");
    assert_eq!(
        std::fs::read_to_string(&mark).unwrap(),
        "ready\nterminated\nready\n",
        "SIGINT, its own kill_signal, went first; SIGTERM never came"
    );

    // A restart's stop the same way: SIGTERM at once, then SIGKILL after a second.
    d.cli(&dir, &["machines", "start", &id]).expect_code(0);
    let mut said = "ready\nterminated\nready\nready\n".to_string();
    wait_for(&mark, &said);
    d.cli(&dir, &["machines", "restart", &id, "-s", "TERM"])
        .expect_code(0);
    said.push_str("terminated\nready\n");
    wait_for(&mark, &said);
    d.cli(&dir, &["machines", "restart", &id, "--time", "1"])
        .expect_code(0);
    said.push_str("ready\n");
    wait_for(&mark, &said);
    let now = machine(&d, &dir);
    assert_eq!(now["state"], "started", "{now}");
    assert_eq!(now["last_exit"]["signal"], "SIGKILL", "{now}");

    let bad = d.cli(&dir, &["machines", "stop", &id, "-s", "SIGNOPE"]);
    let bad = bad.expect_code(2);
    assert!(bad.stderr.contains("is not a signal"), "{}", bad.stderr);

    // Stopped the way it stops, or the daemon's own stop at the test's end would wait out
    // its minute, be killed first, and leave it running.
    d.cli(&dir, &["machines", "stop", &id, "-s", "SIGTERM"])
        .expect_code(0);
}

#[test]
fn a_forced_restart_kills_at_once_as_flyctls_does() {
    let temp = tempfile::tempdir().unwrap();
    // It says it got SIGINT, and runs on.
    let app = app(r#"lambda *_: say("interrupted")"#);
    let (dir, mark) = marked_app(temp.path(), "forced", "kill_timeout = \"1s\"\n", &app);
    let d = TestDaemon::start();
    d.cli(&dir, &["deploy"]).expect_code(0);
    let id = machine(&d, &dir)["id"].as_str().unwrap().to_string();
    wait_for(&mark, "ready\n");

    // Its own way: SIGINT first, which it only says it got, then SIGKILL.
    d.cli(&dir, &["machines", "restart", &id]).expect_code(0);
    wait_for(&mark, "ready\ninterrupted\nready\n");
    // Forced: SIGKILL at once, nothing asked first (and not waited on: it has no checks
    // to pass).
    let forced = [
        "machines",
        "restart",
        &id,
        "--force",
        "--skip-health-checks",
    ];
    d.cli(&dir, &forced).expect_code(0);
    wait_for(&mark, "ready\ninterrupted\nready\nready\n");
    let now = machine(&d, &dir);
    assert_eq!(now["last_exit"]["signal"], "SIGKILL", "{now}");
    // The app's restart forced the same way (flyctl's `apps restart --force-stop`).
    d.cli(&dir, &["apps", "restart", "--force-stop"])
        .expect_code(0);
    wait_for(
        &mark,
        "ready
interrupted
ready
ready
ready
",
    );
    let both = d.cli(&dir, &["machines", "restart", &id, "--force", "-s", "TERM"]);
    let both = both.expect_code(2);
    assert!(
        both.stderr.contains("cannot be used with"),
        "{}",
        both.stderr
    );
    // flyctl's wait on a stop is taken, and said to change nothing.
    let stop = d.cli(
        &dir,
        &[
            "machines",
            "stop",
            &id,
            "-s",
            "TERM",
            "--wait-timeout",
            "5s",
        ],
    );
    assert!(stop
        .expect_code(0)
        .stderr
        .contains("note: --wait-timeout changes nothing"),);
}
