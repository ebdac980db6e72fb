//! Scaling around deploys: counts kept, health-gated scale up, scale refused mid-rollout,
//! and destroying an app.

use std::path::Path;

use super::common::daemon::TestDaemon;
use super::common::files::hello_copy;
use super::common::Run;
use super::{deploy, deploy_example, deploy_gated, status};

/// `lakefly --remote <d> -a hello ARGS`.
fn hello_cli(d: &TestDaemon, args: &[&str]) -> Run {
    let mut all = vec!["--remote", d.api.as_str(), "-a", "hello"];
    all.extend_from_slice(args);
    super::common::lakefly(Path::new("."), &all)
}

#[test]
fn scale_up_waits_for_health_scale_down_removes_the_newest_and_deploys_keep_the_count() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    let cli = |args: &[&str]| hello_cli(&d, args);
    let unconfirmed = cli(&["scale", "count", "3"]).expect_code(2);
    assert!(
        unconfirmed.stderr.contains("scale hello: app: 1 -> 3"),
        "the plan is printed: {}",
        unconfirmed.stderr
    );
    assert!(
        unconfirmed.stderr.contains("hint: pass --yes"),
        "{}",
        unconfirmed.stderr
    );
    let up = cli(&["scale", "count", "3", "--yes"]).expect_code(0);
    assert!(
        up.stderr.contains("==> app: 1 -> 3 machines"),
        "{}",
        up.stderr
    );
    // Each new machine is shown as it is created and as it passes its checks.
    assert_eq!(
        (
            up.stderr.matches("    created machine ").count(),
            up.stderr.matches(" is healthy\n").count()
        ),
        (2, 2),
        "{}",
        up.stderr
    );
    let s = status(&d);
    let machines = s["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 3);
    assert!(
        machines.iter().all(|m| m["health"] == "passing"),
        "scaling up waits for health: {machines:?}"
    );
    let oldest = machines[0]["id"].clone();

    // flyctl's `--region`, as scripts write it: one host is one region.
    let same = cli(&["scale", "count", "app=3", "--yes", "--region", "ams"]).expect_code(0);
    assert!(same.stderr.contains("already scaled"), "{}", same.stderr);
    assert!(
        same.stderr
            .contains("note: --region changes nothing: one host is one region"),
        "{}",
        same.stderr
    );
    let capped = cli(&["scale", "count", "3", "--max-per-region", "2"]).expect_code(2);
    assert!(
        capped.stderr.contains("'--max-per-region <N>'")
            && capped.stderr.contains("give the count you want"),
        "{}",
        capped.stderr
    );
    let scaled = cli(&["events", "--no-tail", "--kind", "scale.", "--json"]).expect_code(0);
    assert_eq!(
        scaled.stdout.lines().count(),
        1,
        "a scale that changes nothing is no event: {}",
        scaled.stdout
    );
    let bad = cli(&["scale", "count", "web=2", "--yes"]).expect_code(2);
    assert!(
        bad.stderr.contains("process group \"web\" does not exist")
            && bad.stderr.contains("this app's groups: app"),
        "{}",
        bad.stderr
    );

    cli(&["scale", "count", "-2", "--yes"]).expect_code(0);
    let machines = status(&d)["machines"].as_array().unwrap().clone();
    assert_eq!(machines.len(), 1);
    assert_eq!(machines[0]["id"], oldest, "the newest machines go first");

    cli(&["scale", "count", "2", "--yes"]).expect_code(0);
    deploy(&d, &app, &["--strategy", "bluegreen"]).expect_code(0);
    let machines = status(&d)["machines"].as_array().unwrap().clone();
    assert_eq!(machines.len(), 2, "a deploy keeps the scaled count");
    let show = cli(&["scale", "show", "--json"]).expect_code(0).json();
    assert_eq!(
        (show[0]["process_group"].as_str(), show[0]["count"].as_u64()),
        (Some("app"), Some(2))
    );
    // A machine destroyed by hand lowers the count, as on Fly: the next deploy replaces
    // the machines there are, as `scale show` counts them, and makes none back.
    let gone = machines[1]["id"].as_str().unwrap();
    cli(&["machines", "destroy", gone, "--force"]).expect_code(0);
    deploy(&d, &app, &[]).expect_code(0);
    let machines = status(&d)["machines"].as_array().unwrap().clone();
    assert_eq!(machines.len(), 1, "{machines:?}");
    assert_eq!(machines[0]["release_version"], 3, "{machines:?}");
    cli(&["scale", "count", "0", "--yes"]).expect_code(0);
    assert_eq!(status(&d)["machines"], serde_json::json!([]));
    // A deploy keeps it at zero, and says what runs it.
    let idle = deploy(&d, &app, &[]).expect_code(0);
    assert!(
        idle.stderr.contains(
            "group app is scaled to zero, so no machine runs it: the first request starts \
             one (auto_start_machines), or `lakefly scale count app=1` starts one"
        ),
        "{}",
        idle.stderr
    );
    assert_eq!(status(&d)["machines"], serde_json::json!([]));
}

#[test]
fn a_scale_while_a_release_rolls_out_is_refused_even_when_the_count_looks_met() {
    let d = TestDaemon::start();
    let (dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    // The next release's machine waits for a file before it serves, so its rollout is
    // under way, old machine and new side by side, for as long as the test needs.
    let gate = dir.path().join("go");
    deploy_gated(&d, &app, &gate);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while status(&d)["machines"].as_array().map_or(0, Vec::len) < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", status(&d));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let scale = |n: &str| {
        super::common::lakefly(
            Path::new("."),
            &[
                "--remote", &d.api, "-a", "hello", "scale", "count", n, "--yes",
            ],
        )
    };
    // Two machines are listed, but the app is scaled to one: not "already scaled".
    let refused = scale("2").expect_code(6);
    assert!(
        refused.stderr.contains("still rolling out"),
        "{}",
        refused.stderr
    );
    std::fs::write(&gate, "").unwrap();
    let live = serde_json::json!({ "version": 2, "status": "complete" });
    while status(&d)["release"] != live {
        assert!(std::time::Instant::now() < deadline, "{}", status(&d));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    scale("2").expect_code(0);
    assert_eq!(status(&d)["machines"].as_array().unwrap().len(), 2);
}

#[test]
fn the_multi_example_scales_each_group_to_exactly_what_is_asked() {
    let d = TestDaemon::start();
    deploy_example(&d, "multi", &[]).expect_code(0);
    super::common::lakefly(
        Path::new("."),
        &[
            "--remote", &d.api, "-a", "multi", "scale", "count", "web=1", "worker=2", "--yes",
        ],
    )
    .expect_code(0);
    let s = super::common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "multi", "--json"],
    )
    .expect_code(0)
    .json();
    let machines = s["machines"].as_array().unwrap();
    let count = |g: &str| machines.iter().filter(|m| m["process_group"] == g).count();
    assert_eq!((count("web"), count("worker")), (1, 2), "{machines:?}");
    assert!(
        machines.iter().all(|m| m["health"] == "passing"),
        "{machines:?}"
    );
    for bad in [
        &["scale", "count", "app=-1", "--yes"][..],
        &["scale", "count", "nogroup=2", "--yes"],
        &["machines", "stop", "unknown-id"],
        // With two groups and none called `app`, a size change says which it means.
        &["scale", "memory", "256"],
        &["scale", "vm", "shared-cpu-2x"],
    ] {
        let mut args = vec!["--remote", d.api.as_str(), "-a", "multi"];
        args.extend_from_slice(bad);
        let run = super::common::lakefly(Path::new("."), &args);
        assert_ne!(run.code, 0, "{bad:?} must fail");
        assert!(run.stderr.starts_with("error: "), "{bad:?}: {}", run.stderr);
    }
    let guessed = super::common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "-a", "multi", "scale", "memory", "256"],
    );
    assert!(
        guessed
            .stderr
            .contains("several process groups (web, worker)")
            && guessed.stderr.contains("-g GROUP"),
        "{}",
        guessed.stderr
    );
    let after = super::common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "multi", "--json"],
    )
    .expect_code(0)
    .json();
    assert_eq!(
        after["machines"].as_array().unwrap().len(),
        3,
        "bad input changed nothing"
    );
}

#[test]
fn destroying_an_app_stops_its_machines_first() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    let pid = status(&d)["machines"][0]["pid"].as_u64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    super::common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "apps", "destroy", "hello", "--yes"],
    )
    .expect_code(0);
    // The answer comes once the machines are stopped: nothing is left running untracked.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie_or_gone =
        stat.is_empty() || stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'));
    assert!(zombie_or_gone, "machine process {pid} still runs: {stat}");
    let gone = super::common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "hello"],
    );
    assert_eq!(gone.code, 5, "{}", gone.stderr);
}

#[test]
fn scaling_during_the_first_rollout_says_it_is_rolling_out_not_that_there_is_no_release() {
    let d = TestDaemon::start();
    let (dir, app) = hello_copy();
    let gate = dir.path().join("go");
    deploy_gated(&d, &app, &gate);
    let cli = |args: &[&str]| hello_cli(&d, args);
    for args in [
        &["scale", "count", "2", "--yes"][..],
        &["scale", "show"],
        &["scale", "memory", "256"],
    ] {
        let refused = cli(args).expect_code(6);
        assert!(
            refused
                .stderr
                .starts_with("error: release v1 of this app is still rolling out")
                && refused.stderr.contains("hint: wait for it to finish"),
            "{args:?}: {}",
            refused.stderr
        );
    }
    std::fs::write(&gate, "").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while status(&d)["release"]["status"] != "complete" {
        assert!(std::time::Instant::now() < deadline, "{}", status(&d));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cli(&["scale", "count", "2", "--yes"]).expect_code(0);
}

/// A machine's port stays its own while it runs, even before it binds it: with two ports,
/// a third machine is refused one (it was given a port another machine held, passed its
/// check on that machine's answers, and crashed), and the running ones keep theirs.
#[test]
fn a_machine_is_never_given_a_port_another_running_machine_holds() {
    let block = super::common::machine_ports();
    let first: u16 = block.split('-').next().unwrap().parse().unwrap();
    let two = format!("{first}-{}", first + 1);
    let temp = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_in(&temp.path().join("state"), &["--machine-ports", &two]);
    let (_dir, app) = hello_copy();
    // The app binds its port a moment after it starts, as most do after loading.
    super::common::files::edit_file(
        &app.join("fly.toml"),
        "app = \"python3 app.py\"",
        "app = \"sleep 0.3 && exec python3 app.py\"",
    );
    deploy(&d, &app, &[]).expect_code(0);
    let cli = |args: &[&str]| hello_cli(&d, args);
    // Two machines made at once: the second asks for a port while the first has not
    // bound its yet.
    let refused = cli(&["scale", "count", "3", "--yes"]);
    assert_ne!(refused.code, 0, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&format!(
            "no free port in the machine port range {two} (each is a running machine's, or in use); widen it with `lakeflyd --machine-ports`"
        )),
        "{}",
        refused.stderr
    );
    // Refused before it started: no machine ran on a port another had.
    let logs = cli(&["logs", "--no-tail", "-n", "1000"]).expect_code(0);
    assert!(
        !logs.stdout.contains("Address already in use"),
        "{}",
        logs.stdout
    );
    let machines = status(&d)["machines"].as_array().unwrap().clone();
    assert_eq!(
        machines.len(),
        1,
        "the new machines are removed: {machines:#?}"
    );
    cli(&["scale", "count", "2", "--yes"]).expect_code(0);
    let machines = status(&d)["machines"].as_array().unwrap().clone();
    let ports: std::collections::BTreeSet<u64> = (machines.iter())
        .map(|m| m["port"].as_u64().unwrap())
        .collect();
    assert_eq!(machines.len(), 2, "{machines:#?}");
    assert_eq!(ports.len(), 2, "{machines:#?}");
    assert!(
        machines
            .iter()
            .all(|m| m["state"] == "started" && m["restarts"] == 0),
        "{machines:#?}"
    );
}
