//! Deploy strategies and rollback: the order each replaces machines in.

use std::path::Path;

use super::common::daemon::TestDaemon;
use super::common::files::hello_copy;
use super::{deploy, status};

#[test]
fn rollback_goes_back_to_the_last_complete_release_as_a_new_release() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    std::fs::write(
        app.join("fly.toml"),
        std::fs::read_to_string(app.join("fly.toml"))
            .unwrap()
            .replace("GREETING = \"hello\"", "GREETING = \"v2\""),
    )
    .unwrap();
    deploy(&d, &app, &[]).expect_code(0);
    let run = super::common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "rollback", "-a", "hello"],
    )
    .expect_code(0);
    assert!(
        run.stderr.contains("==> release v3 is live"),
        "{}",
        run.stderr
    );
    let releases = super::common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "releases", "-a", "hello", "--json"],
    )
    .expect_code(0)
    .json();
    assert_eq!(releases[0]["description"], "rollback to v1");
    assert_eq!(releases[0]["status"], "complete");
    assert_eq!(status(&d)["release"]["version"], 3);
    let missing = super::common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "rollback", "9", "-a", "hello"],
    )
    .expect_code(5);
    assert!(
        missing
            .stderr
            .starts_with("error: release v9 does not exist"),
        "{}",
        missing.stderr
    );
}

#[test]
fn canary_and_immediate_replace_every_machine_and_a_second_deploy_at_once_is_refused() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    for (round, strategy) in [(2, "canary"), (3, "immediate")] {
        let run = deploy(&d, &app, &["--strategy", strategy]).expect_code(0);
        assert!(
            run.stderr
                .contains(&format!("==> release v{round} is live")),
            "{}",
            run.stderr
        );
        let s = status(&d);
        let machines = s["machines"].as_array().unwrap();
        assert_eq!(machines.len(), 1, "{strategy}: {machines:?}");
        assert_eq!(machines[0]["release_version"], round, "{strategy}");
    }
    // A release whose check cannot pass for a while keeps v4 running...
    super::common::files::edit_file(
        &app.join("fly.toml"),
        "grace_period = \"1s\"",
        "grace_period = \"3s\"",
    );
    deploy(&d, &app, &["--detach"]).expect_code(0);
    // ...so a second one is refused with the running version named.
    let run = deploy(&d, &app, &["--detach"]).expect_code(6);
    assert!(
        run.stderr
            .contains("error: release v4 of this app is still rolling out"),
        "{}",
        run.stderr
    );
}

/// Runs a deploy of `app` with `strategy` and returns its order of operations from the
/// events: C (a new machine created), H (a new machine healthy), S (an old one stopped),
/// D (an old one destroyed).
async fn order_of_operations(d: &TestDaemon, app: &Path, strategy: &'static str) -> String {
    let mut sse = super::common::sse::Sse::connect(&d.url("/v1/events?app=hello"), None).await;
    let (api, config) = (d.api.clone(), app.join("fly.toml"));
    let run = tokio::task::spawn_blocking(move || {
        super::common::lakefly(
            Path::new("."),
            &[
                "--remote",
                &api,
                "deploy",
                "-c",
                config.to_str().unwrap(),
                "--strategy",
                strategy,
            ],
        )
    });
    let mut new = std::collections::BTreeSet::new();
    let mut ops = String::new();
    loop {
        let m = sse
            .next(std::time::Duration::from_secs(30))
            .await
            .expect("events until the release ends");
        let data = &m.data["data"];
        let machine = data["machine"].as_str().unwrap_or_default().to_string();
        match m.event.as_str() {
            "machine.created" => {
                new.insert(machine);
                ops.push('C');
            }
            "machine.health" if data["health"] == "passing" && new.contains(&machine) => {
                ops.push('H')
            }
            "machine.stopped" if !new.contains(&machine) => ops.push('S'),
            "machine.destroyed" if !new.contains(&machine) => ops.push('D'),
            "deploy.complete" => break,
            "deploy.failed" => panic!("{strategy} failed: {}", m.data),
            _ => {}
        }
    }
    run.await.unwrap().expect_code(0);
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_strategy_replaces_machines_in_its_own_order() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    // max_unavailable = 2 makes rolling batches of two, so canary (one first) differs.
    super::common::files::edit_file(
        &app.join("fly.toml"),
        "strategy = \"rolling\"",
        "strategy = \"rolling\"\n  max_unavailable = 2",
    );
    let (api, config) = (d.api.clone(), app.join("fly.toml"));
    tokio::task::spawn_blocking(move || {
        super::common::lakefly(
            Path::new("."),
            &["--remote", &api, "deploy", "-c", config.to_str().unwrap()],
        )
        .expect_code(0)
    })
    .await
    .unwrap();
    // Three machines of v1: the deploy made one; two more with the same spec.
    let client = super::common::api::Api::new(&d);
    let (_, machines) = client
        .send(reqwest::Method::GET, "/v1/apps/hello/machines", None)
        .await;
    let spec = machines[0]["spec"].clone();
    for _ in 0..2 {
        client.create_machine("hello", spec.clone()).await;
    }
    assert_eq!(
        order_of_operations(&d, &app, "rolling").await,
        "CCHHSSCHSDDD"
    );
    assert_eq!(
        order_of_operations(&d, &app, "canary").await,
        "CHSCCHHSSDDD"
    );
    assert_eq!(
        order_of_operations(&d, &app, "bluegreen").await,
        "CCCHHHSSSDDD"
    );
    let immediate = order_of_operations(&d, &app, "immediate")
        .await
        .replace('H', "");
    assert_eq!(immediate, "CCCDDD", "immediate does not wait for health");
}

/// Answers every connection on `$FIXED` with `$VERSION`; exits when the port is taken.
const FIXED_PORT_APP: &str = r#"
import os, socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["FIXED"])))
s.listen()
while True:
    c, _ = s.accept()
    c.sendall(os.environ["VERSION"].encode())
    c.close()
"#;

/// Waits until a connection to `port` reads `version`.
fn wait_served(port: u16, version: &str) {
    use std::io::Read;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            last.clear();
            if stream.read_to_string(&mut last).is_ok() && last == version {
                return;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("port {port} never served {version} (last: {last:?})");
}

/// A group whose process binds a port of its own ([[metrics]] here, as an exporter does)
/// cannot run its new machine beside the old one, which holds the port: every strategy
/// stops the old machine just before its replacement starts (rolling and blue-green
/// failed every redeploy, the new machine crashing on the taken port), and a release
/// that fails starts the old one again.
#[test]
fn a_group_binding_its_own_port_is_replaced_stop_first_and_restored_when_the_release_fails() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path();
    let fixed = super::common::free_port();
    std::fs::write(app.join("exporter.py"), FIXED_PORT_APP).unwrap();
    let config = |version: &str, exporter: &str| {
        let text = format!(
            r#"app = "hello"
[env]
  FIXED = "{fixed}"
  VERSION = "{version}"
[processes]
  exporter = "{exporter}"
[[metrics]]
  port = {fixed}
  path = "/metrics"
"#
        );
        std::fs::write(app.join("fly.toml"), text).unwrap();
    };
    config("v1", "python3 exporter.py");
    deploy(&d, app, &[]).expect_code(0);
    wait_served(fixed, "v1");
    for (version, strategy) in [("v2", "rolling"), ("v3", "bluegreen"), ("v4", "canary")] {
        config(version, "python3 exporter.py");
        let run = deploy(&d, app, &["--strategy", strategy]).expect_code(0);
        assert!(
            run.stderr.contains(&format!(
                "group exporter binds port {fixed} (metrics[0]) itself, which its old machines hold: each stops just before its replacement starts"
            )),
            "{strategy}: {}",
            run.stderr
        );
        wait_served(fixed, version);
    }
    // A release whose machine fails: the old one runs again, on its port.
    config("v5", "sh -c 'exit 3'");
    let run = deploy(&d, app, &[]).expect_code(7);
    assert!(
        run.stderr
            .contains("restored the previous release (1 machine started again)"),
        "{}",
        run.stderr
    );
    wait_served(fixed, "v4");
    let machines = status(&d)["machines"].as_array().unwrap().clone();
    assert_eq!(machines.len(), 1, "{machines:#?}");
    assert_eq!(machines[0]["state"], "started", "{machines:#?}");
    assert_eq!(machines[0]["release_version"], 4, "{machines:#?}");
    // Immediate: the old machine goes first, so the new one finds its port free.
    config("v6", "python3 exporter.py");
    deploy(&d, app, &["--strategy", "immediate"]).expect_code(0);
    wait_served(fixed, "v6");
    let machines = status(&d)["machines"].as_array().unwrap().clone();
    assert_eq!(machines.len(), 1, "{machines:#?}");
    assert_eq!(machines[0]["restarts"], 0, "{machines:#?}");
}
