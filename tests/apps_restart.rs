//! `lakefly apps restart`: the app's running machines restarted in place, one at a time,
//! each healthy again before the next (the edge tests check that no request fails through
//! it). Here: a machine that does not come back stops the restart with an error that says
//! which and why, and leaves the machines after it alone.

mod common;

use std::path::Path;

use common::daemon::TestDaemon;
use common::files::app_with;
use common::Run;

fn lakefly(d: &TestDaemon, args: &[&str]) -> Run {
    d.cli(Path::new("."), args)
}

#[test]
fn a_machine_that_does_not_come_back_stops_the_restart_and_says_why() {
    let d = TestDaemon::start();
    let root = tempfile::tempdir().unwrap();
    // Each group's process starts once: it takes the file it needs with it. `a` sorts
    // before `b`, so its machine is restarted first, and `b`'s is never touched.
    let toml = r#"app = "once"
[processes]
  a = "test -f a.ready && rm a.ready && exec sleep 600"
  b = "test -f b.ready && rm b.ready && exec sleep 600"
"#;
    let app = app_with(
        root.path(),
        "once",
        &[("fly.toml", toml), ("a.ready", ""), ("b.ready", "")],
    );
    let config = app.join("fly.toml");
    lakefly(&d, &["deploy", "-c", config.to_str().unwrap()]).expect_code(0);
    let status = lakefly(&d, &["status", "-a", "once", "--json"])
        .expect_code(0)
        .json();
    let pid_of = |status: &serde_json::Value, group: &str| {
        let machines = status["machines"].as_array().unwrap();
        let machine = machines
            .iter()
            .find(|m| m["process_group"] == group)
            .unwrap();
        (
            machine["id"].as_str().unwrap().to_string(),
            machine["pid"].clone(),
        )
    };
    let (a, _) = pid_of(&status, "a");
    let (_, b_pid) = pid_of(&status, "b");

    let run = lakefly(&d, &["apps", "restart", "-a", "once"]).expect_code(1);
    // Each step shows as it happens.
    assert!(
        run.stderr.contains(&format!("    machine {a} stopped\n"))
            && run.stderr.contains(&format!("    machine {a} started\n"))
            && run.stderr.contains(&format!("    machine {a} exited\n"))
            && run.stderr.find("exited\n") < run.stderr.find("error: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("machine {a} exited"))
            && run
                .stderr
                .contains("the machines after it were not restarted")
            && run.stderr.contains("hint: "),
        "{}",
        run.stderr
    );
    let status = lakefly(&d, &["status", "-a", "once", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(pid_of(&status, "b").1, b_pid, "b's machine was restarted");

    // An app that does not exist is not found (exit 5).
    let run = lakefly(&d, &["apps", "restart", "nope"]).expect_code(5);
    assert!(run.stderr.contains("nope"), "{}", run.stderr);
}
