//! `lakeflyd --live-restore`: a machine outlives a stop of lakeflyd, goes on serving and
//! writing meanwhile, and the next run on the same state directory takes it back (the
//! same process, its output kept, its end seen and restarted), after a crash of lakeflyd
//! too; a run without the flag stops what an earlier run left, as before.

mod common;

use std::path::Path;
use std::time::Duration;

use common::api::Api;
use common::daemon::TestDaemon;
use common::process::{alive, wait_gone};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);

/// Answers its pid, and `/say/WORD` by printing `said WORD` (so the test can tell what
/// it wrote while no lakeflyd ran).
const APP: &str = r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/say/"):
            word = self.path[len("/say/"):]
            print(f"said {word}", flush=True)
            body = f"said {word}"
        else:
            body = str(os.getpid())
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// SIGKILLs the process groups it holds when the test ends, passed or not: under live
/// restore a daemon that stops leaves its machines running. Each is killed only if its
/// leader is the process it was when it was added: a pid gone since may have been given
/// to another group leader (this test's own runner, say).
struct KillOnDrop(Vec<(u64, Option<String>)>);

impl KillOnDrop {
    fn add(&mut self, pid: u64) {
        self.0.push((pid, started(pid)));
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, which tells it from a later
/// one given the same pid.
fn started(pid: u64) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(19).map(str::to_string)
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for (pid, start) in &self.0 {
            if *pid <= 1 || start.is_none() || started(*pid) != *start {
                continue;
            }
            // `kill -KILL -PGID` would not do: procps reads `-PGID` as an option and kills
            // every process it may (`kill(-1)`).
            let group = nix::unistd::Pid::from_raw(*pid as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// The app's one machine: its id, pid and port.
async fn the_machine(d: &TestDaemon) -> (String, u64, u16) {
    let (status, machines) = Api::new(d)
        .send(reqwest::Method::GET, "/v1/apps/lr/machines", None)
        .await;
    assert_eq!(status, 200, "{machines}");
    let m = &machines[0];
    (
        m["id"].as_str().unwrap().to_string(),
        m["pid"].as_u64().unwrap_or_default(),
        m["port"].as_u64().unwrap_or_default() as u16,
    )
}

/// Waits until the machine runs a process other than `old`, started; its pid.
async fn wait_new_pid(d: &TestDaemon, old: u64) -> u64 {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (id, pid, _) = the_machine(d).await;
        let state = Api::new(d).machine("lr", &id).await["state"].clone();
        if pid != 0 && pid != old && state == "started" {
            return pid;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "machine {id} still runs pid {old} ({state})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET path` on the machine's own port (no lakeflyd in between), once it listens: one
/// just restarted may not yet.
async fn direct(port: u16, path: &str) -> String {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        match common::http_client()
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
        {
            Ok(answer) => return answer.text().await.unwrap(),
            Err(e) if e.is_connect() && tokio::time::Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the machine does not answer on {port}: {e}"),
        }
    }
}

/// Waits until the app's log holds `text`.
fn wait_logged(d: &TestDaemon, dir: &Path, text: &str) -> String {
    let start = std::time::Instant::now();
    loop {
        let log = d
            .cli(dir, &["logs", "-a", "lr", "--no-tail", "-n", "500"])
            .expect_code(0)
            .stdout;
        if log.contains(text) {
            return log;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{text:?} not in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_outlives_lakeflyd_and_the_next_run_takes_it_back() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let dir = temp.path().join("app");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("app.py"), APP).unwrap();
    std::fs::write(
        dir.join("fly.toml"),
        "app = \"lr\"\n[processes]\n  app = \"python3 app.py\"\n[http_service]\n  internal_port = 8080\n",
    )
    .unwrap();
    let mut d = TestDaemon::start_in(&state, &["--live-restore"]);
    tokio::task::block_in_place(|| d.cli(&dir, &["deploy"]).expect_code(0));
    let (id, pid, port) = the_machine(&d).await;
    let mut cleanup = KillOnDrop(Vec::new());
    cleanup.add(pid);

    // lakeflyd stops; the machine runs on, serves, and writes with no one reading.
    tokio::task::block_in_place(|| d.stop());
    assert!(alive(pid), "the machine outlives lakeflyd");
    assert_eq!(direct(port, "/say/meanwhile").await, "said meanwhile");

    // The next run takes back the same process: through the edge at once, its output
    // from the gap in the log.
    let mut d = TestDaemon::start_in(&state, &["--live-restore"]);
    assert_eq!(the_machine(&d).await, (id.clone(), pid, port));
    assert_eq!(Api::new(&d).machine("lr", &id).await["state"], "started");
    let edge = common::http_builder()
        .resolve("lr.localhost", d.edge_addr().parse().unwrap())
        .build()
        .unwrap();
    let port_of_edge = d.edge_addr().rsplit(':').next().unwrap().to_string();
    let answer = edge
        .get(format!("http://lr.localhost:{port_of_edge}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), pid.to_string());
    tokio::task::block_in_place(|| wait_logged(&d, &dir, "said meanwhile"));

    // Its end is seen though it is not this daemon's child, and it is started again.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let restarted = wait_new_pid(&d, pid).await;
    cleanup.add(restarted);
    let log = tokio::task::block_in_place(|| {
        wait_logged(
            &d,
            &dir,
            "started by an earlier lakeflyd, so its exit status is not known",
        )
    });
    assert!(log.contains("said meanwhile"), "{log}");

    // A crash of lakeflyd (no stop at all) leaves it running too, and it is taken back.
    tokio::task::block_in_place(|| d.kill9());
    assert!(
        alive(restarted),
        "a crashed lakeflyd takes no machine down with it"
    );
    let mut d = TestDaemon::start_in(&state, &["--live-restore"]);
    assert_eq!(the_machine(&d).await.1, restarted);
    assert_eq!(
        direct(the_machine(&d).await.2, "/say/after-the-crash").await,
        "said after-the-crash"
    );
    tokio::task::block_in_place(|| wait_logged(&d, &dir, "said after-the-crash"));

    // A machine taken back is stopped and started like any other.
    let api = Api::new(&d);
    for action in ["stop", "start"] {
        let path = format!("/v1/apps/lr/machines/{id}/{action}");
        let (status, body) = api.send(reqwest::Method::POST, &path, None).await;
        assert_eq!(status, 200, "{action}: {body}");
    }
    assert!(!alive(restarted), "stopped though another run started it");
    let again = wait_new_pid(&d, restarted).await;
    cleanup.add(again);

    // A run without --live-restore stops what the last one left, and starts it afresh.
    tokio::task::block_in_place(|| d.stop());
    assert!(alive(again), "left running by a stop under --live-restore");
    let d = TestDaemon::start_in(&state, &[]);
    tokio::task::block_in_place(|| wait_gone(again, DEADLINE));
    let fresh = wait_new_pid(&d, again).await;
    cleanup.add(fresh);
    assert!(
        !state.join("run/output").exists(),
        "the FIFOs of the live-restore run are removed"
    );
    let machine: Value = Api::new(&d).machine("lr", &id).await;
    assert_eq!(machine["state"], "started", "{machine}");
    // This daemon stops it when it stops (its Drop), as without the flag it always has.
    drop(d);
    assert!(!alive(fresh), "stopped with the daemon that started it");
}
