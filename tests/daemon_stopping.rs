//! While lakeflyd stops (SIGTERM, `systemctl stop`), its machines get their kill signal and
//! kill_timeout, which can take a while. In that window it starts nothing: a change asked
//! then is refused (exit 8, as a daemon that is not there), and a rollout under way is
//! left for the next start to undo, so no machine outlives the daemon and the app comes
//! back on the release it ran.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::TestDaemon;
use common::files::{app_with, OK_PY};
use common::process::alive;
use common::{lakefly, lakefly_spawn, machine_ids, Run};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);

/// An HTTP app on `$PORT`. With `SLOW_STOP` set, SIGTERM makes it write a file named by
/// its pid into `$MARKS` and wait for `$MARKS/go` before it exits, as an app finishing
/// its work would: the daemon's stop takes as long as the test wants.
const APP: &str = r#"import os, signal, sys, time
from ok import serve

def slow_stop(*_):
    marks = os.environ["MARKS"]
    open(os.path.join(marks, "stopping-%d" % os.getpid()), "w").close()
    for _ in range(1200):
        if os.path.exists(os.path.join(marks, "go")):
            break
        time.sleep(0.05)
    os._exit(0)

if os.environ.get("SLOW_STOP"):
    signal.signal(signal.SIGTERM, slow_stop)
serve()
"#;

/// `app`'s config; `[env]` is the test's to add with `deploy -e`.
fn config(app: &str) -> String {
    format!(
        r#"app = "{app}"
kill_signal = "SIGTERM"
kill_timeout = "60s"
[processes]
  web = "python3 app.py"
[http_service]
  internal_port = 8080
  processes = ["web"]
[deploy]
  strategy = "rolling"
  max_unavailable = 1
"#
    )
}

/// A directory for `app` under `root`, and its marks directory.
fn setup(root: &Path, app: &str) -> (PathBuf, PathBuf) {
    let dir = app_with(
        root,
        app,
        &[OK_PY, ("app.py", APP), ("fly.toml", &config(app))],
    );
    let marks = root.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    (dir, marks)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many machines have begun their slow stop.
fn stopping(marks: &Path) -> usize {
    std::fs::read_dir(marks)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("stopping-")
        })
        .count()
}

/// The live processes whose environment says they are a machine of `app` (named for
/// this test process, so a run that failed before leaves nothing that counts here).
fn processes_of(app: &str) -> Vec<u64> {
    let needle = format!("FLY_APP_NAME={app}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| String::from_utf8_lossy(&env).contains(&needle))
        })
        .filter(|&pid| alive(pid))
        .collect()
}

fn machines(dir: &Path, api: &str) -> Vec<Value> {
    let list = lakefly(dir, &["--remote", api, "machines", "list", "--json"])
        .expect_code(0)
        .json();
    list.as_array().unwrap().to_vec()
}

/// Deploys [`APP`] from `dir` as release 1, slow to stop, to the daemon at `api`.
fn deploy_slow_to_stop(dir: &Path, api: &str, marks: &Path) {
    let marks = format!("MARKS={}", marks.display());
    let args = ["--remote", api, "deploy", "-e", "SLOW_STOP=1", "-e", &marks];
    lakefly(dir, &args).expect_code(0);
}

#[test]
fn a_change_asked_while_the_daemon_stops_is_refused_and_nothing_outlives_it() {
    let app = &format!("stop-refuses-{}", std::process::id());
    let temp = tempfile::tempdir().unwrap();
    let (dir, marks) = setup(temp.path(), app);
    let mut d = TestDaemon::start();
    let api = d.api.clone();
    deploy_slow_to_stop(&dir, &api, &marks);

    d.terminate();
    wait_until("the machine is told to stop", || stopping(&marks) == 1);

    let scale = lakefly(&dir, &["--remote", &api, "scale", "count", "2", "--yes"]);
    let scale = scale.expect_code(8);
    assert!(
        scale.stderr.contains("lakeflyd is stopping") && scale.stderr.contains("hint: "),
        "{}",
        scale.stderr
    );
    // Reads are still answered, and say why nothing changes.
    assert_eq!(machines(&dir, &api).len(), 1);
    let status = lakefly(&dir, &["--remote", &api, "status"]).expect_code(0);
    assert!(
        status
            .stderr
            .contains("warning: the daemon is stopping: its machines are being stopped"),
        "{}",
        status.stderr
    );

    std::fs::write(marks.join("go"), "").unwrap();
    assert!(d.wait_exit().success());
    assert_eq!(processes_of(app), Vec::<u64>::new(), "left running");
}

#[test]
fn a_rollout_the_stop_cuts_short_creates_nothing_more_and_the_next_start_undoes_it() {
    let app = &format!("stop-mid-rollout-{}", std::process::id());
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let (dir, marks) = setup(temp.path(), app);
    let mut d = TestDaemon::start_in(&state, &[]);
    let api = d.api.clone();
    deploy_slow_to_stop(&dir, &api, &marks);
    lakefly(&dir, &["--remote", &api, "scale", "count", "2", "--yes"]).expect_code(0);
    let old = machine_ids(&machines(&dir, &api));
    assert_eq!(old.len(), 2);

    // v2's first machine passes, and the first old one takes its time to stop...
    let deploy = lakefly_spawn(&dir, &["--remote", &api, "deploy", "-e", "V=2"]);
    wait_until("the rollout stops an old machine", || stopping(&marks) == 1);
    // ... when lakeflyd is told to stop (the other old one then hears so too); the
    // rollout would create v2's second machine once that stop ends.
    d.terminate();
    wait_until("the shutdown stops the other one", || stopping(&marks) == 2);
    std::fs::write(marks.join("go"), "").unwrap();
    assert!(d.wait_exit().success());
    assert_eq!(processes_of(app), Vec::<u64>::new(), "left running");

    let _d = TestDaemon::start_at(api.trim_start_matches("http://"), &state, &[]);
    let deadline = Instant::now() + DEADLINE;
    let mut deploy = deploy;
    while deploy.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the deploy never heard its end");
        std::thread::sleep(Duration::from_millis(50));
    }
    let followed = Run::from(deploy.wait_with_output().unwrap()).expect_code(7);
    assert!(
        followed
            .stderr
            .contains("lakeflyd stopped during the rollout; the previous release is kept"),
        "{}",
        followed.stderr
    );
    wait_until("both old machines run again, and only they", || {
        let now = machines(&dir, &api);
        machine_ids(&now) == old
            && now
                .iter()
                .all(|m| m["state"] == "started" && m["release_version"] == 1)
    });
}
