//! lakeflyd under systemd's `Type=notify` and `WatchdogSec=`: it says READY=1 (with a
//! status) once it serves, RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 at
//! shutdown, and WATCHDOG=1 at half the interval `WATCHDOG_USEC` gives, to the datagram
//! socket `NOTIFY_SOCKET` names; and its machines see none of these variables.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::api::Api;
use common::daemon::TestDaemon;
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);

/// The notification socket, as systemd's: what lakeflyd sends, message by message.
struct Notifications(UnixDatagram);

impl Notifications {
    /// Reads messages until one has `line`, failing the test at the deadline; returns the
    /// messages read, that one last.
    fn until(&self, line: &str) -> Vec<String> {
        let until = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {line:?} among {seen:#?}");
            self.0.set_read_timeout(Some(left)).unwrap();
            let Ok(n) = self.0.recv(&mut buf) else {
                panic!("no {line:?} among {seen:#?}");
            };
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let found = message.lines().any(|l| l == line);
            seen.push(message);
            if found {
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lakeflyd_tells_systemd_it_is_ready_reloading_stopping_and_alive() {
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("notify.sock");
    let notifications = Notifications(UnixDatagram::bind(&path).unwrap());
    let socket = path.to_str().unwrap();
    let mut d = TestDaemon::start_with_env(
        &temp.path().join("state"),
        &[("NOTIFY_SOCKET", socket), ("WATCHDOG_USEC", "400000")],
    );
    let ready = notifications.until("READY=1");
    let status = ready.last().unwrap();
    assert!(
        status.contains(&format!("STATUS=serving: API {}", d.url(""))),
        "{status}"
    );

    // Pinged at half of 400 ms, again and again, also once the edge threads, whose beats
    // the pings wait on, have run longer than the 3 s of silence that would count as stuck.
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(4) {
        notifications.until("WATCHDOG=1");
    }

    let reload = {
        d.hangup();
        notifications.until("READY=1")
    };
    assert!(
        reload.iter().any(|m| m.lines().any(|l| l == "RELOADING=1")
            && m.lines().any(|l| l.starts_with("MONOTONIC_USEC="))),
        "{reload:#?}"
    );

    // A machine's environment is its own: nothing of systemd's reaches it.
    let api = Api::new(&d);
    api.create_app("plain").await;
    let env_file = temp.path().join("env");
    api.create_machine(
        "plain",
        json!({ "command": format!("env > {f}.tmp && mv {f}.tmp {f}; exec sleep 600", f = env_file.display()) }),
    )
    .await;
    let until = Instant::now() + DEADLINE;
    let env = loop {
        let env = std::fs::read_to_string(&env_file).unwrap_or_default();
        if env.contains("LAKEFLY_MACHINE_ID=") {
            break env;
        }
        assert!(Instant::now() < until, "the machine never wrote its env");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC"] {
        assert!(!env.contains(var), "{var} reached the machine:\n{env}");
    }

    assert!(d.stop().success());
    notifications.until("STOPPING=1");
}

/// Starting stops what a crashed run left, each within its `kill_timeout`: that time is
/// asked of systemd (EXTEND_TIMEOUT_USEC) before READY=1, so a long kill timeout does not
/// make systemd kill a lakeflyd that is still starting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_stops_leftovers_asks_systemd_for_the_time() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let mut first = TestDaemon::start_in(&state, &[]);
    let api = Api::new(&first);
    api.create_app("left").await;
    let started = temp.path().join("started");
    api.create_machine(
        "left",
        json!({ "command": format!("touch {}; exec sleep 600", started.display()), "kill_timeout": "40s" }),
    )
    .await;
    let until = Instant::now() + DEADLINE;
    while !started.exists() {
        assert!(Instant::now() < until, "the machine never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill9();

    let path = temp.path().join("notify.sock");
    let notifications = Notifications(UnixDatagram::bind(&path).unwrap());
    let _second = TestDaemon::start_with_env(&state, &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let messages = notifications.until("READY=1");
    let extended: u64 = messages
        .iter()
        .flat_map(|m| m.lines())
        .find_map(|l| l.strip_prefix("EXTEND_TIMEOUT_USEC=")?.parse().ok())
        .unwrap_or_else(|| panic!("no EXTEND_TIMEOUT_USEC before READY=1: {messages:#?}"));
    assert!(extended >= 40_000_000, "{extended} µs");
}
