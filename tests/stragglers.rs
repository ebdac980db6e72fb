//! A machine's processes that left its process group (`setsid`, a server that daemonizes,
//! `nohup worker &`) go with it, as systemd's control-group kill takes them: at a stop,
//! when its main process exits, and when the next daemon finds them left by a crashed one.
//! Another daemon's machine of the same id is not touched.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::api::Api;
use common::daemon::TestDaemon;
use common::files::copy_dir;
use common::process::{alive, wait_gone, wait_pid_file};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(20);

/// A machine command that starts `sleep` in a session of its own, which writes its pid to
/// `straggler.pid` in the machine's directory once it is there (so the group's own kill
/// cannot catch it), then, once that file is there, runs `then`.
fn leaving(then: &str) -> String {
    format!(
        "setsid sh -c 'echo $$ > straggler.tmp && mv straggler.tmp straggler.pid && exec sleep 600' & \
         while [ ! -e straggler.pid ]; do sleep 0.05; done; {then}"
    )
}

/// The pid file `leaving` writes for app `app` of daemon `d`.
fn pid_file(d: &TestDaemon, app: &str) -> PathBuf {
    d.state.join("apps").join(app).join("work/straggler.pid")
}

/// Starts a machine of a new app `app` running `command`; its id and its straggler's pid
/// (which may be gone already, when the machine's process ended).
async fn machine_with_straggler(d: &TestDaemon, app: &str, command: &str) -> (String, u64) {
    let api = Api::new(d);
    api.create_app(app).await;
    let spec = json!({ "command": command, "kill_timeout": "1s" });
    let id = api.create_machine(app, spec).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = pid_file(d, app);
    let pid = tokio::task::block_in_place(|| wait_pid_file(&file, DEADLINE));
    (id, pid)
}

/// The app's log as `lakefly logs --no-tail` prints it.
fn logs(d: &TestDaemon, app: &str) -> String {
    d.cli(Path::new("."), &["logs", "-a", app, "--no-tail"])
        .expect_code(0)
        .stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_takes_what_left_the_group_and_leaves_another_daemons_alone() {
    // A state directory copied to make another daemon's (a host cloned, a backup restored
    // beside it) gives out the same machine ids as the original.
    let temp = tempfile::tempdir().unwrap();
    let (state, copy) = (temp.path().join("state"), temp.path().join("copy"));
    TestDaemon::start_in(&state, &[]).stop();
    copy_dir(&state, &copy);
    let d = TestDaemon::start_in(&state, &[]);
    let other = TestDaemon::start_in(&copy, &[]);
    let (id, pid) = machine_with_straggler(&d, "web", &leaving("exec sleep 600")).await;
    assert!(alive(pid), "the straggler runs beside the machine");
    let (other_id, other_pid) =
        machine_with_straggler(&other, "web", &leaving("exec sleep 600")).await;
    assert_eq!(id, other_id);

    let (status, body) = Api::new(&d)
        .send(
            reqwest::Method::POST,
            &format!("/v1/apps/web/machines/{id}/stop"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    tokio::task::block_in_place(|| wait_gone(pid, DEADLINE));
    assert!(alive(other_pid), "another daemon's machine is not touched");
    let log = tokio::task::block_in_place(|| logs(&d, "web"));
    assert!(
        log.contains("lakefly: killed a process that left the machine's process group: sleep (pid")
            && log.contains("run servers in the foreground"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_daemonizes_does_not_outlive_the_process_lakefly_watched() {
    let d = TestDaemon::start();
    // As `nginx` or `redis-server --daemonize yes`: the command returns, the server runs on.
    let (_, pid) = machine_with_straggler(&d, "daemonizes", &leaving("exit 0")).await;
    tokio::task::block_in_place(|| wait_gone(pid, DEADLINE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_daemon_kills_what_a_crashed_one_left_outside_a_group() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let mut d = TestDaemon::start_in(&state, &[]);
    let (_, pid) = machine_with_straggler(&d, "web", &leaving("exec sleep 600")).await;
    assert!(alive(pid), "the straggler runs beside the machine");
    d.kill9();
    assert!(alive(pid), "nothing stopped it with the daemon");
    std::fs::remove_file(pid_file(&d, "web")).unwrap();
    let d = TestDaemon::start_in(&state, &[]);
    tokio::task::block_in_place(|| wait_gone(pid, DEADLINE));
    // The machine runs again, with a straggler of its own.
    let file = pid_file(&d, "web");
    let again = tokio::task::block_in_place(|| wait_pid_file(&file, DEADLINE));
    assert!(alive(again));
}
