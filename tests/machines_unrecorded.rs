//! Machines while the store takes no write (a full disk; here another process holding
//! SQLite's write lock past the daemon's busy timeout, which fails writes the same way): a
//! crash is restarted all the same, as systemd restarts a service on a full disk; a stop
//! or a destroy is carried out, shown as it is, and recorded once writes go through, so
//! the next lakeflyd does not undo it.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::api::Api;
use common::daemon::{wait_logged, StoreLock, TestDaemon};
use common::process::alive;
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

/// A daemon logging to a file, with app `app` and one machine of `spec`.
struct Setup {
    temp: tempfile::TempDir,
    d: TestDaemon,
    api: Api,
    id: String,
}

impl Setup {
    /// `spec` is made given the temp dir, where the machine may leave files.
    async fn new(app: &str, spec: impl FnOnce(&Path) -> Value) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let d = TestDaemon::start_logging_to(
            &temp.path().join("state"),
            &temp.path().join("daemon.log"),
        );
        let api = Api::new(&d);
        api.create_app(app).await;
        let m = api.create_machine(app, spec(temp.path())).await;
        let id = m["id"].as_str().unwrap().to_string();
        Setup { temp, d, api, id }
    }

    fn state(&self) -> PathBuf {
        self.temp.path().join("state")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.temp.path().join(name)
    }

    fn wait_logged(&self, text: &str) {
        wait_logged(&self.path("daemon.log"), text);
    }

    /// Waits until the store has the machine's desired state `want`: what the next daemon
    /// reads.
    async fn wait_stored_desired(&self, want: &str) {
        let db = rusqlite::Connection::open(self.state().join("state.db")).unwrap();
        let desired = || -> String {
            db.query_row(
                "SELECT desired FROM machines WHERE id = ?1",
                [&self.id],
                |r| r.get(0),
            )
            .unwrap()
        };
        let start = Instant::now();
        while desired() != want {
            assert!(start.elapsed() < WAIT, "{want} was never recorded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops this daemon and starts the next on the same state.
    fn restart_daemon(mut self) -> (tempfile::TempDir, TestDaemon, String) {
        assert!(self.d.stop().success());
        let d = TestDaemon::start_in(&self.state(), &[]);
        (self.temp, d, self.id)
    }
}

fn wait_pids(file: &Path, n: usize) -> Vec<u64> {
    common::process::wait_pids(file, n, WAIT)
}

#[tokio::test]
async fn a_crash_the_store_cannot_record_is_restarted_all_the_same() {
    let s = Setup::new("unrecorded", |dir| {
        // The first run crashes when told to; the ones after it keep running.
        let command = format!(
            "echo $$ >> {pids}; [ $(wc -l < {pids}) -gt 1 ] && exec sleep 600; \
             while [ ! -e {go} ]; do sleep 0.05; done; exit 1",
            pids = dir.join("pids").display(),
            go = dir.join("go").display()
        );
        json!({ "command": command, "restart": "always" })
    })
    .await;
    let pids = s.path("pids");
    wait_pids(&pids, 1);
    let lock = StoreLock::take(&s.state());
    std::fs::write(s.path("go"), "").unwrap();
    let second = wait_pids(&pids, 2)[1];
    // Its start could not be recorded either; it runs on.
    s.wait_logged("could not record the machine's start");
    assert!(alive(second), "the unrecorded restart was stopped");
    drop(lock);
    // Once writes go through, its start is recorded while it runs.
    let start = Instant::now();
    while s.api.machine("unrecorded", &s.id).await["pid"] != json!(second) {
        assert!(
            start.elapsed() < WAIT,
            "the store never recorded pid {second}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(alive(second));
}

#[tokio::test]
async fn a_stop_the_store_could_not_take_holds_across_a_restart_once_it_can() {
    let s = Setup::new("kept", |dir| {
        json!({ "command": format!("echo $$ >> {}; exec sleep 600", dir.join("pids").display()) })
    })
    .await;
    let first = wait_pids(&s.path("pids"), 1)[0];
    let lock = StoreLock::take(&s.state());
    let stop = format!("/v1/apps/kept/machines/{}/stop", s.id);
    let (status, stopped) = s.api.send(Method::POST, &stop, None).await;
    assert_eq!(status, 200);
    assert!(!alive(first), "the stop was not carried out");
    // Said as it is, not as the store last had it.
    assert_eq!(stopped["state"], "stopped", "{stopped:#}");
    assert_eq!(stopped["pid"], Value::Null, "{stopped:#}");
    assert_eq!(s.api.machine("kept", &s.id).await["state"], "stopped");
    s.wait_logged("could not record desired state");
    drop(lock);
    s.wait_stored_desired("stopped").await;

    let (_temp, d, id) = s.restart_daemon();
    let machine = Api::new(&d).machine("kept", &id).await;
    assert_eq!(machine["state"], "stopped", "{machine:#}");
}

#[tokio::test]
async fn a_destroy_the_store_could_not_take_holds_across_a_restart_once_it_can() {
    let s = Setup::new("gone", |_| json!({ "command": "exec sleep 600" })).await;
    let machine = format!("/v1/apps/gone/machines/{}", s.id);
    let lock = StoreLock::take(&s.state());
    let (status, _) = s.api.send(Method::DELETE, &machine, None).await;
    assert_eq!(status, 204);
    let (status, _) = s.api.send(Method::GET, &machine, None).await;
    assert_eq!(status, 404, "a destroyed machine is still shown");
    s.wait_logged("could not record the destroy");
    drop(lock);
    s.wait_stored_desired("destroyed").await;

    let (_temp, d, _) = s.restart_daemon();
    let (status, _) = Api::new(&d).send(Method::GET, &machine, None).await;
    assert_eq!(status, 404, "the next lakeflyd brought it back");
}
