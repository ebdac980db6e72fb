//! Stops that reach the whole process group within the kill timeout, a shell's app
//! finishing its shutdown, a simple command run as the machine itself, and a daemon's
//! SIGTERM.

use std::time::{Duration, Instant};

use serde_json::json;

use super::common::api::Api;
use super::common::daemon::TestDaemon;
use super::common::process::{alive, wait_gone};
use super::{wait_pids, WAIT};

#[tokio::test]
async fn a_machine_that_ignores_sigterm_is_gone_within_kill_timeout_with_its_children() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("stubborn").await;
    let work = tempfile::tempdir().unwrap();
    let pids = work.path().join("pids");
    let script = format!(
        "trap '' TERM; sleep 600 & echo $! >> {p}; (trap '' TERM; sleep 600) & echo $! >> {p}; echo $$ >> {p}; while :; do sleep 1; done",
        p = pids.display()
    );
    let machine = api
        .create_machine(
            "stubborn",
            json!({ "command": script, "kill_signal": "SIGTERM", "kill_timeout": "1s" }),
        )
        .await;
    let id = machine["id"].as_str().unwrap();
    let all = wait_pids(&pids, 3);
    let start = Instant::now();
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &format!("/v1/apps/stubborn/machines/{id}/stop"),
            None,
        )
        .await;
    let took = start.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "stopped");
    assert!(
        took < Duration::from_secs(4),
        "stop took {took:?} with a 1s kill timeout"
    );
    for pid in all {
        wait_gone(pid, Duration::from_secs(2));
    }
}

#[tokio::test]
async fn an_app_under_a_shell_finishes_its_graceful_shutdown_after_the_shell_exits() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("graceful").await;
    let work = tempfile::tempdir().unwrap();
    let (ready, done) = (work.path().join("ready"), work.path().join("done"));
    // A list, so not exec'd: `sh -c` runs python as its child, and the shell exits at the
    // SIGTERM at once while python takes its time to finish.
    let app = format!(
        "import pathlib, signal, sys, time\n\
         def stop(*_):\n    time.sleep(0.5)\n    pathlib.Path({done:?}).write_text('finished')\n    sys.exit(0)\n\
         signal.signal(signal.SIGTERM, stop)\n\
         pathlib.Path({ready:?}).write_text('')\n\
         time.sleep(600)\n",
        done = done.display().to_string(),
        ready = ready.display().to_string(),
    );
    std::fs::write(work.path().join("app.py"), app).unwrap();
    let command = format!("cd {} && python3 app.py", work.path().display());
    let machine = api
        .create_machine(
            "graceful",
            json!({ "command": command, "kill_signal": "SIGTERM", "kill_timeout": "10s" }),
        )
        .await;
    let id = machine["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the app never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &format!("/v1/apps/graceful/machines/{id}/stop"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("stopped")),
        "{body}"
    );
    // The stop was answered once the app had finished, not cut off by a SIGKILL.
    assert_eq!(
        std::fs::read_to_string(&done).ok().as_deref(),
        Some("finished")
    );
}

/// The program name of process `pid` ("" once it is gone).
fn comm(pid: u64) -> String {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    comm.trim().to_string()
}

/// The processes whose parent is `pid`, from each one's `/proc/N/stat`.
fn children(pid: u64) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    (entries.flatten())
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .filter(|n| {
            let stat = std::fs::read_to_string(format!("/proc/{n}/stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`: the name may hold spaces, so read after its `)`.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) == Some(pid)
        })
        .collect()
}

/// One simple command replaces the shell that starts it: the machine's pid is the
/// program's; a list keeps its shell, and runs as written.
#[tokio::test]
async fn a_simple_command_is_the_machines_process_itself() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("direct").await;
    for (command, program) in [("sleep 600", "sleep"), ("true && sleep 600", "sh")] {
        let machine = api
            .create_machine("direct", json!({ "command": command }))
            .await;
        let id = machine["id"].as_str().unwrap();
        let deadline = Instant::now() + WAIT;
        let pid = loop {
            let m = api.machine("direct", id).await;
            if let Some(pid) = m["pid"].as_u64() {
                break pid;
            }
            assert!(Instant::now() < deadline, "{m}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The pid is known from the fork, a moment before `sh -c` execs anything: looked
        // at once `sleep` runs, as that pid or as its child.
        loop {
            let own = comm(pid);
            if own == "sleep" || children(pid).into_iter().any(|c| comm(c) == "sleep") {
                assert_eq!(own, program, "{command}");
                break;
            }
            assert!(Instant::now() < deadline, "{command}: {own}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn sigterm_stops_machines_and_a_restart_brings_them_back() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let mut d = TestDaemon::start_in(&state, &[]);
    let api = Api::new(&d);
    api.create_app("cycle").await;
    let pids = temp.path().join("pids");
    api.create_machine("cycle", json!({ "command": format!("echo $$ >> {}; exec sleep 600", pids.display()), "kill_signal": "SIGTERM" }))
        .await;
    let first = wait_pids(&pids, 1)[0];
    assert!(d.stop().success());
    assert!(!alive(first), "clean shutdown stops machines");
    let _d = TestDaemon::start_in(&state, &[]);
    let second = wait_pids(&pids, 2)[1];
    assert!(alive(second));
}
