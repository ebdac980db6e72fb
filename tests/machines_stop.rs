//! `lakefly machines stop -s SIGNAL --timeout DURATION` and `machines restart -s SIGNAL
//! --time DURATION`, as flyctl's `machine stop` and `machine restart`: one stop with
//! another signal or time before SIGKILL than the machine's `kill_signal` and
//! `kill_timeout`, which stay as they are for every other stop; and `machines wait`, which
//! a script runs after either.

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

/// `lakefly machines wait ID [--state S] [-w D]`, as flyctl's `machine wait`: it returns
/// once the machine is in the state asked for, gives up when the time runs out, and at
/// once when the machine is destroyed.
#[test]
fn wait_returns_once_the_machine_is_in_the_state_asked_for() {
    use std::io::BufRead;
    let temp = tempfile::tempdir().unwrap();
    let (dir, mark) = marked_app(temp.path(), "waited", "", &app("signal.SIG_DFL"));
    let d = TestDaemon::start();
    d.cli(&dir, &["deploy"]).expect_code(0);
    let id = machine(&d, &dir)["id"].as_str().unwrap().to_string();
    wait_for(&mark, "ready\n");
    let waiting = |args: &[&str]| {
        let mut all = vec!["--remote", d.api.as_str(), "machines", "wait", &id];
        all.extend_from_slice(args);
        let mut child = common::lakefly_spawn(&dir, &all);
        // What it says first, then the machine's state once it has looked (and follows
        // its events): from here on no change is missed.
        let mut said = String::new();
        let stderr = child.stderr.as_mut().expect("piped");
        let mut stderr = std::io::BufReader::new(stderr);
        for _ in 0..2 {
            stderr.read_line(&mut said).expect("stderr");
        }
        assert!(said.starts_with("waiting up to "), "{said}");
        assert!(
            said.ends_with(&format!("\n    machine {id} is stopped\n")),
            "{said}"
        );
        child
    };

    // Running: settled already.
    let settled = d.cli(&dir, &["machines", "wait", &id, "--json"]);
    assert_eq!(settled.expect_code(0).json()["state"], "started");
    d.cli(&dir, &["machines", "stop", &id]).expect_code(0);
    let late = d.cli(
        &dir,
        &["machines", "wait", &id, "--state", "started", "-w", "1s"],
    );
    let late = late.expect_code(1);
    assert!(
        late.stderr.contains(&format!(
            "machine {id} did not reach \"started\" within 1s: it is stopped"
        )),
        "{}",
        late.stderr
    );
    // The states on the way are shown as it waits.
    assert!(
        late.stderr
            .contains(&format!("\n    machine {id} is stopped\n")),
        "{}",
        late.stderr
    );

    // Started while it waits, by a start given no machine: on a terminal it asks which,
    // as flyctl's (and without one it says to name it).
    let waiter = waiting(&["--state", "started", "-w", "60s"]);
    let unnamed = d.cli(&dir, &["machines", "start"]).expect_code(2);
    assert!(
        unnamed
            .stderr
            .contains("lakefly machines start needs a machine id"),
        "{}",
        unnamed.stderr
    );
    let start = [
        "--remote",
        d.api.as_str(),
        "-a",
        "waited",
        "machines",
        "start",
    ];
    // Several may be named where a command takes them (`all`, `1,2`, `1-2`).
    let steps = serde_json::json!([["machine [1-1]: ", "all\r"]]);
    let shown = common::terminal::drive(&steps, &start, &[]);
    assert!(shown.contains(&format!("1  {id}")), "{shown}");
    assert!(shown.trim_end().ends_with("exit=0"), "{shown}");
    let started = common::Run::from(waiter.wait_with_output().expect("waited"));
    let started = started.expect_code(0);
    assert!(
        started.stderr.contains(&format!("machine {id} is started")),
        "{}",
        started.stderr
    );

    // Destroyed while it waits for a start: it will never come.
    d.cli(&dir, &["machines", "stop", &id]).expect_code(0);
    let for_start = waiting(&["--state", "started", "-w", "60s"]);
    let for_destroy = waiting(&["--state", "destroyed", "-w", "60s"]);
    d.cli(&dir, &["machines", "destroy", &id]).expect_code(0);
    let gone = common::Run::from(for_start.wait_with_output().expect("waited"));
    let gone = gone.expect_code(1);
    assert!(
        gone.stderr.contains(&format!(
            "machine {id} did not reach \"started\": it is destroyed"
        )),
        "{}",
        gone.stderr
    );
    let destroyed = common::Run::from(for_destroy.wait_with_output().expect("waited"));
    assert!(destroyed
        .expect_code(0)
        .stderr
        .contains(&format!("machine {id} is destroyed")),);

    // Gone already: destroyed is reached; anything else, and an id never seen, is not
    // found.
    let after = d.cli(
        &dir,
        &["machines", "wait", &id, "--state", "destroyed", "--json"],
    );
    assert_eq!(after.expect_code(0).json()["state"], "destroyed");
    d.cli(&dir, &["machines", "wait", &id, "--state", "started"])
        .expect_code(5);
    d.cli(
        &dir,
        &["machines", "wait", "0badc0de", "--state", "destroyed"],
    )
    .expect_code(5);

    let bad = d.cli(&dir, &["machines", "wait", &id, "--state", "suspended"]);
    let bad = bad.expect_code(2);
    assert!(bad.stderr.contains("wait for `stopped`"), "{}", bad.stderr);
}
