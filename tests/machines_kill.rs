//! `lakefly machines kill`: a signal for a machine's main process, as `kill -HUP $(cat
//! app.pid)` was before. A signal the app handles leaves it running (a reload); SIGKILL,
//! the default, ends it and the restart policy starts it again; a stopped machine has
//! nothing to signal. flyctl's spellings (`machine`, `m`, `ls`) reach the same commands.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::TestDaemon;
use common::files::marked_app;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);

/// Writes "reloaded" to `$MARK` at each SIGHUP and runs on.
const APP: &str = r#"import os, signal
def reload(*_):
    with open(os.environ["MARK"], "a") as mark:
        mark.write("reloaded\n")
signal.signal(signal.SIGHUP, reload)
while True:
    signal.pause()
"#;

/// The app's one machine, as `machines list --json` shows it.
fn machine(d: &TestDaemon, dir: &Path) -> Value {
    let list = d
        .cli(dir, &["machine", "ls", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    list[0].clone()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_signal_reaches_the_machines_process_and_sigkill_restarts_it() {
    let temp = tempfile::tempdir().unwrap();
    let (dir, mark) = marked_app(temp.path(), "reloader", "", APP);
    let d = TestDaemon::start();
    d.cli(&dir, &["deploy"]).expect_code(0);
    let before = machine(&d, &dir);
    let id = before["id"].as_str().unwrap();
    let pid = before["pid"].as_u64().unwrap();

    // A reload: the app handles it and runs on as the same process.
    let sent = d
        .cli(&dir, &["m", "kill", id, "--signal", "hup", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(sent["signal"], "SIGHUP", "{sent}");
    assert_eq!(sent["pid"].as_u64(), Some(pid), "{sent}");
    wait_until("the app has reloaded", || {
        std::fs::read_to_string(&mark).is_ok_and(|m| m == "reloaded\n")
    });
    let after = machine(&d, &dir);
    assert_eq!(after["state"], "started", "{after}");
    assert_eq!(after["pid"].as_u64(), Some(pid), "{after}");

    // The default, SIGKILL: the process ends, and on-failure starts it again.
    let killed = d.cli(&dir, &["machines", "kill", id]).expect_code(0);
    assert!(
        killed
            .stderr
            .contains(&format!("sent SIGKILL to machine {id} (pid {pid})")),
        "{}",
        killed.stderr
    );
    wait_until("the machine runs again as a new process", || {
        let now = machine(&d, &dir);
        now["state"] == "started" && now["pid"].as_u64().is_some_and(|p| p != pid)
    });
    assert_eq!(machine(&d, &dir)["restarts"], 1);
    let events = d
        .cli(
            &dir,
            &[
                "events",
                "--kind",
                "machine.signaled",
                "--tail",
                "10",
                "--no-follow",
                "--json",
            ],
        )
        .expect_code(0);
    let signals: Vec<Value> = events
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = signals
        .iter()
        .map(|e| e["data"]["signal"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["SIGHUP", "SIGKILL"], "{signals:?}");

    // A stopped machine has nothing to signal: refused as a conflict, with the way out.
    d.cli(&dir, &["machines", "stop", id]).expect_code(0);
    let refused = d
        .cli(&dir, &["machines", "kill", id, "-s", "SIGTERM"])
        .expect_code(6);
    assert!(
        refused.stderr.contains(&format!(
            "machine {id} is stopped: no process runs to signal"
        )) && refused
            .stderr
            .contains(&format!("lakefly machines start {id}")),
        "{}",
        refused.stderr
    );

    // A name that is no signal is refused before anything is sent, naming the flag.
    let bad = d
        .cli(&dir, &["machines", "kill", id, "-s", "SIGNOPE"])
        .expect_code(2);
    assert!(bad.stderr.contains("--signal"), "{}", bad.stderr);
}
