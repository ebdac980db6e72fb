//! What a machine is given: a port from the machine port range, and mounts.

use std::time::{Duration, Instant};

use serde_json::json;

use super::common::api::Api;
use super::common::daemon::TestDaemon;
use super::common::sse::Sse;
use super::{wait_for, WAIT};

#[tokio::test]
async fn port_comes_from_the_machine_port_range_and_a_full_range_fails_the_machine_by_name() {
    // A range of one port: the first machine gets it and listens on it, so none is left
    // for the second.
    let temp = tempfile::tempdir().unwrap();
    let port = super::common::free_port();
    let range = format!("{port}-{port}");
    let d = TestDaemon::start_in(&temp.path().join("state"), &["--machine-ports", &range]);
    let api = Api::new(&d);
    api.create_app("ranged").await;
    let mut sse = Sse::connect(&d.url("/v1/events?since=0&app=ranged"), None).await;
    let listens = "exec python3 -c 'import os, socket, time\n\
                   s = socket.socket(); s.bind((\"127.0.0.1\", int(os.environ[\"PORT\"]))); s.listen()\n\
                   time.sleep(600)'";
    let first = api
        .create_machine(
            "ranged",
            json!({ "command": listens, "internal_port": 8080 }),
        )
        .await;
    let first = first["id"].as_str().unwrap();
    let started = wait_for(&mut sse, "machine.started", first).await;
    assert_eq!(started.data["data"]["port"].as_u64(), Some(u64::from(port)));
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the machine never listened on {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = api
        .create_machine(
            "ranged",
            json!({ "command": listens, "internal_port": 8080 }),
        )
        .await;
    let second = second["id"].as_str().unwrap();
    let failed = wait_for(&mut sse, "machine.failed", second).await;
    let reason = failed.data["data"]["reason"].as_str().unwrap();
    assert!(reason.contains(&range), "{reason}");
    assert!(reason.contains("--machine-ports"), "{reason}");
}

#[test]
fn a_bad_machine_port_range_is_refused_naming_the_flag() {
    let run =
        super::common::lakeflyd(&["--machine-ports", "32000-20000", "--state", "/nonexistent"]);
    let run = run.expect_code(2);
    assert!(run.stderr.contains("--machine-ports"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("FIRST must be at least 1 and at most LAST"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn mounts_keep_data_across_machines_and_reach_the_app_by_env_and_link() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("stateful").await;
    let mut sse = Sse::connect(&d.url("/v1/events?app=stateful&kind=machine."), None).await;
    let spec = json!({
        "command": "echo one >> \"$DATA_DIR/count\"; cat \"$DATA_DIR/count\" | wc -l > data/lines; ls \"$LAKEFLY_MOUNT_DATA\" > /dev/null",
        "env": { "DATA_DIR": "/data" },
        "mounts": [{ "source": "data", "destination": "/data" }],
    });
    for round in 1..=2 {
        let m = api.create_machine("stateful", spec.clone()).await;
        let id = m["id"].as_str().unwrap().to_string();
        let exited = wait_for(&mut sse, "machine.exited", &id).await;
        assert_eq!(
            exited.data["data"]["code"], 0,
            "round {round}: {}",
            exited.data
        );
        let volume = d.state.join("volumes/stateful/data");
        assert_eq!(
            std::fs::read_to_string(volume.join("count"))
                .unwrap()
                .lines()
                .count(),
            round
        );
        assert_eq!(
            std::fs::read_to_string(volume.join("lines"))
                .unwrap()
                .trim(),
            round.to_string()
        );
        let (status, _) = api
            .send(
                reqwest::Method::DELETE,
                &format!("/v1/apps/stateful/machines/{id}"),
                None,
            )
            .await;
        assert_eq!(status, 204);
    }
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/v1/apps/stateful/machines",
            Some(
                json!({ "command": "true", "mounts": [{ "source": "../x", "destination": "/x" }] }),
            ),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
}

/// The capability a unit grants lakeflyd to bind ports below 1024 stays lakeflyd's: its
/// machines do not inherit it (ambient capabilities pass across exec unless cleared).
#[tokio::test]
async fn a_machine_does_not_inherit_the_daemons_ambient_capabilities() {
    let temp = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_with_bind_capability(&temp.path().join("state"));
    let ambient = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("CapAmb:"))
            .map(|mask| mask.trim().to_string())
            .expect("a CapAmb line")
    };
    // CAP_NET_BIND_SERVICE is bit 10.
    assert_eq!(ambient(d.pid()), "0000000000000400", "the daemon holds it");
    let api = Api::new(&d);
    api.create_app("plain").await;
    let m = api
        .create_machine("plain", json!({ "command": "exec sleep 600" }))
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    let until = Instant::now() + WAIT;
    let pid = loop {
        if let Some(pid) = api.machine("plain", &id).await["pid"].as_u64() {
            break pid as u32;
        }
        assert!(Instant::now() < until, "machine {id} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ambient(pid), "0000000000000000", "machine {id} (pid {pid})");
}
