//! A rollout cut short by a daemon crash: at the next start the release ends `failed`, its
//! new machines go, the old ones it had stopped run again, and the `lakefly deploy` that was
//! following it hears so and exits 7, as for any failed deploy. A build the crash left
//! running is stopped.

mod common;

use std::time::{Duration, Instant};

use common::daemon::TestDaemon;
use common::files::app_with;
use common::process::{alive, wait_gone, wait_pid_file};
use common::{lakefly, lakefly_spawn, Run};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);

/// v1 serves on `$PORT`; v2's first machine does too, its second never listens (it cannot
/// take the gate), so the rollout is caught between them: one old machine already stopped.
fn config(version: u32, gate: &std::path::Path) -> String {
    let serve = r#"exec python3 -m http.server \"$PORT\" --bind 127.0.0.1"#;
    let command = if version == 1 {
        serve.to_string()
    } else {
        format!(r#"mkdir \"$GATE\" 2>/dev/null && {serve} || exec sleep 600"#)
    };
    format!(
        r#"app = "interrupted"
kill_signal = "SIGTERM"
[env]
  GATE = "{}"
  VERSION = "{version}"
[processes]
  app = "{command}"
[http_service]
  internal_port = 8080
[deploy]
  strategy = "rolling"
"#,
        gate.display()
    )
}

fn machines(dir: &std::path::Path, api: &str) -> Vec<Value> {
    let list = lakefly(dir, &["--remote", api, "machines", "list", "--json"])
        .expect_code(0)
        .json();
    list.as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] != "destroyed")
        .cloned()
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the `lakefly deploy` that was following did, once it has heard how its release
/// ended (killed, and failing the test, if it never does).
fn ended(mut deploy: std::process::Child) -> Run {
    let deadline = Instant::now() + DEADLINE;
    while deploy.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = deploy.kill();
            panic!("the deploy that was following never heard how its release ended");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Run::from(deploy.wait_with_output().unwrap())
}

#[test]
fn a_rollout_cut_short_by_a_crash_gives_the_app_back_to_its_previous_release() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let gate = temp.path().join("gate");
    let mut d = TestDaemon::start_in(&state, &[]);
    let api = d.api.clone();
    let dir = app_with(temp.path(), "app", &[("fly.toml", &config(1, &gate))]);
    lakefly(&dir, &["--remote", &api, "deploy"]).expect_code(0);
    lakefly(&dir, &["--remote", &api, "scale", "count", "2", "--yes"]).expect_code(0);
    let old: Vec<String> = machines(&dir, &api)
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(old.len(), 2);

    std::fs::write(dir.join("fly.toml"), config(2, &gate)).unwrap();
    let deploy = lakefly_spawn(&dir, &["--remote", &api, "deploy"]);
    // Caught mid-rollout: an old machine stopped for the first new one, the second new one
    // created and never healthy.
    wait_until("one old machine is stopped and two new ones exist", || {
        let now = machines(&dir, &api);
        let stopped = now
            .iter()
            .filter(|m| old.contains(&m["id"].as_str().unwrap().to_string()))
            .filter(|m| m["state"] == "stopped")
            .count();
        let new = now.iter().filter(|m| m["release_version"] == 2).count();
        stopped == 1 && new == 2
    });
    d.kill9();

    // Back at the same address, so the deploy still following it reconnects.
    let _d = TestDaemon::start_at(api.trim_start_matches("http://"), &state, &[]);
    let followed = ended(deploy).expect_code(7);
    assert!(
        followed
            .stderr
            .contains("lakeflyd stopped during the rollout; the previous release is kept")
            && followed.stderr.contains("1 old one started again"),
        "{}",
        followed.stderr
    );
    wait_until("both old machines run again", || {
        let now = machines(&dir, &api);
        now.len() == 2
            && now.iter().all(|m| {
                old.contains(&m["id"].as_str().unwrap().to_string())
                    && m["state"] == "started"
                    && m["release_version"] == 1
            })
    });
    let releases = lakefly(&dir, &["--remote", &api, "releases", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(releases[0]["version"], 2);
    assert_eq!(releases[0]["status"], "failed", "{releases}");
    let status = lakefly(&dir, &["--remote", &api, "status", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(status["release"]["version"], 1, "{status}");
}

#[test]
fn a_release_cut_short_in_its_build_leaves_the_machines_alone() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let gate = temp.path().join("gate");
    let building = temp.path().join("building");
    let mut d = TestDaemon::start_in(&state, &[]);
    let api = d.api.clone();
    let dir = app_with(temp.path(), "app", &[("fly.toml", &config(1, &gate))]);
    lakefly(&dir, &["--remote", &api, "deploy"]).expect_code(0);
    let before = machines(&dir, &api);
    assert_eq!(before.len(), 1);

    // A build that would run for ten minutes, its pid written where the test reads it.
    let slow_build = format!(
        "{config}\n[build]\n  command = \"echo $$ > {pid}.tmp && mv {pid}.tmp {pid} && exec sleep 600\"\n",
        config = config(1, &gate).replace("VERSION = \"1\"", "VERSION = \"2\""),
        pid = building.display(),
    );
    std::fs::write(dir.join("fly.toml"), slow_build).unwrap();
    let deploy = lakefly_spawn(&dir, &["--remote", &api, "deploy"]);
    let build = wait_pid_file(&building, DEADLINE);
    d.kill9();
    assert!(
        alive(build),
        "a daemon killed outright cannot stop its build"
    );
    let _d = TestDaemon::start_at(api.trim_start_matches("http://"), &state, &[]);
    // The next one does, before it runs anything.
    wait_gone(build, DEADLINE);
    let followed = ended(deploy).expect_code(7);
    assert!(
        followed
            .stderr
            .contains("lakeflyd stopped before the release changed any machine"),
        "{}",
        followed.stderr
    );
    wait_until("the v1 machine runs again", || {
        let now = machines(&dir, &api);
        now.len() == 1
            && now[0]["id"] == before[0]["id"]
            && now[0]["state"] == "started"
            && now[0]["release_version"] == 1
    });
}
