//! After a `kill -9` of the daemon: no orphan, no duplicate, and no signal to a pid that
//! now belongs to another program.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use super::common::api::Api;
use super::common::daemon::TestDaemon;
use super::common::process::{alive, wait_gone};
use super::wait_pids;

#[tokio::test]
async fn after_kill_9_of_the_daemon_machines_run_again_once_and_leftovers_are_stopped() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let mut d = TestDaemon::start_in(&state, &[]);
    let api = Api::new(&d);
    api.create_app("survivor").await;
    let pids = temp.path().join("pids");
    let m = api
        .create_machine(
            "survivor",
            json!({ "command": format!("echo $$ >> {}; exec sleep 600", pids.display()), "kill_signal": "SIGTERM" }),
        )
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    let old = wait_pids(&pids, 1)[0];
    d.kill9();
    assert!(alive(old), "the machine outlives a crashed daemon");

    let d = TestDaemon::start_in(&state, &[]);
    let api = Api::new(&d);
    let new = wait_pids(&pids, 2)[1];
    assert_ne!(new, old);
    assert!(
        !alive(old),
        "the leftover was stopped before the fresh start"
    );
    let (_, list) = api
        .send(reqwest::Method::GET, "/v1/apps/survivor/machines", None)
        .await;
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "no duplicate machine");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["pid"], new);
}

#[tokio::test]
async fn a_recorded_pid_that_now_belongs_to_another_program_is_never_signalled() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let mut d = TestDaemon::start_in(&state, &[]);
    let api = Api::new(&d);
    api.create_app("reuse").await;
    let pids = temp.path().join("pids");
    let m = api
        .create_machine(
            "reuse",
            json!({ "command": format!("echo $$ >> {}; exec sleep 600", pids.display()) }),
        )
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    let old = wait_pids(&pids, 1)[0];
    d.kill9();
    // The machine dies while no daemon watches, and its pid goes to another program: the
    // state still names the pid, with the old process's start time.
    Command::new("kill")
        .args(["-KILL", &old.to_string()])
        .status()
        .unwrap();
    wait_gone(old, Duration::from_secs(5));
    let mut decoy = Command::new("sleep")
        .arg("600")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let decoy_pid = decoy.id();
    {
        let db = rusqlite::Connection::open(state.join("state.db")).unwrap();
        let changed = db
            .execute(
                "UPDATE machines SET pid = ?1 WHERE id = ?2",
                rusqlite::params![decoy_pid, id],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }
    let d = TestDaemon::start_in(&state, &[]);
    let fresh = wait_pids(&pids, 2)[1];
    assert!(alive(fresh));
    assert!(
        decoy.try_wait().unwrap().is_none(),
        "the other program was signalled"
    );
    let _ = decoy.kill();
    let _ = decoy.wait();
    drop(d);
}
