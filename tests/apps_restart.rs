//! `lakefly apps restart` and `lakefly machines restart ID...`: machines restarted in
//! place, one at a time, each healthy again before the next (the edge tests check that no
//! request fails through it). Here: a machine that does not come back stops the restart
//! with an error that says which and why, and leaves the machines after it alone; named
//! machines go in the order given, each waited on; `--skip-health-checks` does not wait
//! (either command).

mod common;

use std::path::Path;

use common::daemon::TestDaemon;
use common::files::{app_with, CHECKED_APP_PY, OK_PY};
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

/// Serves 200 on `$PORT` two seconds after it starts: a machine restarted is healthy only
/// then, long after a restart that does not wait has moved on.
const SLOW_START: &str = "import time\ntime.sleep(2)\nfrom ok import serve\nserve()\n";

/// An app of two such machines, deployed; their ids, in the order they were made.
fn two_slow_machines(d: &TestDaemon, root: &Path) -> Vec<String> {
    let toml = format!("app = \"slow\"\n{CHECKED_APP_PY}");
    let app = app_with(
        root,
        "slow",
        &[OK_PY, ("app.py", SLOW_START), ("fly.toml", &toml)],
    );
    let config = app.join("fly.toml");
    let config = config.to_str().unwrap();
    lakefly(d, &["deploy", "-c", config]).expect_code(0);
    lakefly(d, &["scale", "count", "2", "-c", config, "--yes"]).expect_code(0);
    let listed = lakefly(d, &["machines", "list", "-a", "slow", "-q"]).expect_code(0);
    let ids: Vec<String> = listed.stdout.lines().map(str::to_string).collect();
    assert_eq!(ids.len(), 2, "{}", listed.stdout);
    ids
}

/// The id of the app's last event so far.
fn last_event(d: &TestDaemon) -> String {
    let args = ["events", "-a", "slow", "--no-tail", "-n", "1", "--json"];
    lakefly(d, &args).expect_code(0).json()["id"].to_string()
}

/// The app's `machine.*` events after `since`, as (kind, machine, health).
fn steps_since(d: &TestDaemon, since: &str) -> Vec<(String, String, String)> {
    let args = [
        "events",
        "-a",
        "slow",
        "--no-tail",
        "--since",
        since,
        "--kind",
        "machine.",
        "--json",
    ];
    let run = lakefly(d, &args).expect_code(0);
    run.stdout
        .lines()
        .map(|line| {
            let e: serde_json::Value = serde_json::from_str(line).unwrap();
            let field = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (
                field(&e["kind"]),
                field(&e["data"]["machine"]),
                field(&e["data"]["health"]),
            )
        })
        .collect()
}

/// Where in `steps` the first `kind` of `machine` is (with `health` when given).
fn step(steps: &[(String, String, String)], kind: &str, machine: &str, health: &str) -> usize {
    steps
        .iter()
        .position(|(k, m, h)| k == kind && m == machine && (health.is_empty() || h == health))
        .unwrap_or_else(|| panic!("no {kind} {health} of {machine} in {steps:?}"))
}

/// Whether `first`, stopped before `second`, passed its checks again before `second` was
/// stopped.
fn waited_on(steps: &[(String, String, String)], first: &str, second: &str) -> bool {
    let (from, to) = (
        step(steps, "machine.stopped", first, ""),
        step(steps, "machine.stopped", second, ""),
    );
    assert!(from < to, "{first} was not stopped first: {steps:?}");
    steps[from..to]
        .iter()
        .any(|(k, m, h)| k == "machine.health" && m == first && h == "passing")
}

/// Waits, up to a deadline, until both of the app's machines pass their checks.
fn both_healthy(d: &TestDaemon) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let listed = lakefly(d, &["machines", "list", "-a", "slow", "--json"]).expect_code(0);
        let machines = listed.json();
        let machines = machines.as_array().unwrap();
        if machines.iter().all(|m| m["health"] == "passing") {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{machines:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn named_machines_restart_in_the_order_given_each_healthy_before_the_next() {
    let d = TestDaemon::start();
    let root = tempfile::tempdir().unwrap();
    let ids = two_slow_machines(&d, root.path());
    let (first, second) = (&ids[1], &ids[0]);
    let since = last_event(&d);

    let run = lakefly(
        &d,
        &["machines", "restart", first, second, "-a", "slow", "--json"],
    );
    let run = run.expect_code(0);
    // Answered once each is healthy again: one object per machine, in the order given.
    let answered: Vec<serde_json::Value> = (run.stdout.lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answered.len(), 2, "{}", run.stdout);
    for (machine, id) in answered.iter().zip([first, second]) {
        assert_eq!(machine["id"], id.as_str(), "{}", run.stdout);
        assert_eq!(machine["state"], "started", "{machine}");
        assert_eq!(machine["health"], "passing", "{machine}");
    }
    let steps = steps_since(&d, &since);
    assert!(
        waited_on(&steps, first, second),
        "the second was stopped before the first was healthy again: {steps:?}"
    );

    // Not waited on: the second stops as soon as the first has started again.
    let since = last_event(&d);
    let args = [
        "machines",
        "restart",
        first,
        second,
        "-a",
        "slow",
        "--skip-health-checks",
    ];
    lakefly(&d, &args).expect_code(0);
    let steps = steps_since(&d, &since);
    assert!(!waited_on(&steps, first, second), "{steps:?}");

    // The same for the app's restart, which goes in the order the machines were made.
    both_healthy(&d);
    let since = last_event(&d);
    let args = ["apps", "restart", "slow", "--skip-health-checks"];
    let run = lakefly(&d, &args).expect_code(0);
    assert!(
        run.stderr.contains("the next as soon as one has started"),
        "{}",
        run.stderr
    );
    let steps = steps_since(&d, &since);
    assert!(!waited_on(&steps, &ids[0], &ids[1]), "{steps:?}");

    // A machine that is not the app's is said, and none is touched.
    let run = lakefly(&d, &["machines", "restart", first, "nope", "-a", "slow"]);
    let run = run.expect_code(5);
    assert!(run.stderr.contains("nope"), "{}", run.stderr);
}
