//! Runs that are going: cancelled, stopped with their app, left by a crashed daemon, or
//! not recorded by a full store.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;

use super::common::api::Api;
use super::common::daemon::TestDaemon;
use super::{deploy, finished, runs, trigger_only_job, wait_runs, DEADLINE};

/// A run a crash of lakeflyd (`kill -9`) cut short does not go on unsupervised: the next
/// lakeflyd stops it before it runs anything, and the run is recorded failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_left_by_a_crashed_daemon_is_stopped_and_recorded_failed() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let mut d = TestDaemon::start_in(&state, &[]);
    let api = Api::new(&d);
    let dir = temp.path().join("crash");
    std::fs::create_dir(&dir).unwrap();
    let pid_file = temp.path().join("run.pid");
    let config = format!(
        r#"app = "crash"
[processes]
  app = "sleep 600"
[[jobs]]
  name = "nightly"
  command = "echo $$ > {pid}.tmp && mv {pid}.tmp {pid} && exec sleep 600"
"#,
        pid = pid_file.display()
    );
    std::fs::write(dir.join("fly.toml"), config).unwrap();
    tokio::task::block_in_place(|| deploy(&d, &dir));
    let id = trigger_only_job(&api, "crash").await;
    let run =
        tokio::task::block_in_place(|| super::common::process::wait_pid_file(&pid_file, DEADLINE));

    d.kill9();
    assert!(
        super::common::process::alive(run),
        "nothing can stop it while no daemon runs"
    );
    let d = TestDaemon::start_at(d.api.trim_start_matches("http://"), &state, &[]);
    tokio::task::block_in_place(|| super::common::process::wait_gone(run, DEADLINE));
    let api = Api::new(&d);
    let runs = runs(&api, id).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"], "failed", "{runs:#?}");
    assert_eq!(runs[0]["attempts"], 1, "it was in its first: {runs:#?}");
}

/// A run going on: app `name`'s one job (`job_lines` for `[[jobs]]`, after its command),
/// which says "told to stop" on its output and writes `stopped` to the returned file when
/// it gets SIGTERM, and otherwise runs until stopped. Deploys the app, triggers the job and
/// waits until it runs; gives the app's directory, the job's id, the run's pid and the file.
async fn a_run_going(
    temp: &Path,
    d: &TestDaemon,
    api: &Api,
    name: &str,
    job_lines: &str,
) -> (PathBuf, u64, u64, PathBuf) {
    let dir = temp.join(name);
    std::fs::create_dir(&dir).unwrap();
    let pid_file = temp.join("run.pid");
    let said = temp.join("said");
    let config = format!(
        r#"app = "{name}"
[processes]
  app = "sleep 600"
[[jobs]]
  command = "trap 'echo told to stop; echo stopped > {said}; exit 1' TERM; echo $$ > {pid}.tmp && mv {pid}.tmp {pid}; while :; do sleep 0.1; done"
{job_lines}
"#,
        pid = pid_file.display(),
        said = said.display(),
    );
    std::fs::write(dir.join("fly.toml"), config).unwrap();
    tokio::task::block_in_place(|| deploy(d, &dir));
    let id = trigger_only_job(api, name).await;
    let run =
        tokio::task::block_in_place(|| super::common::process::wait_pid_file(&pid_file, DEADLINE));
    (dir, id, run, said)
}

/// A job deleted while it runs (with its app here) takes its run with it: the command is
/// told to stop (SIGTERM) rather than left running with the app's secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_an_app_stops_its_job_runs_that_are_going() {
    let temp = tempfile::tempdir().unwrap();
    let d = TestDaemon::start();
    let api = Api::new(&d);
    let (_, _, run, said) = a_run_going(temp.path(), &d, &api, "gone", "  name = \"export\"").await;

    let (status, body) = api.send(Method::DELETE, "/v1/apps/gone", None).await;
    assert_eq!(status, 204, "{body}");
    tokio::task::block_in_place(|| super::common::process::wait_gone(run, DEADLINE));
    assert_eq!(std::fs::read_to_string(&said).unwrap(), "stopped\n");
}

/// `lakefly jobs cancel` stops the run that is going (SIGTERM first, so the command can
/// say so), records it `cancelled` without a retry, and leaves the job scheduled; with no
/// run going it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_is_going_can_be_cancelled_and_its_job_stays() {
    let temp = tempfile::tempdir().unwrap();
    let d = TestDaemon::start();
    let api = Api::new(&d);
    let job = "  name = \"backup\"\n  retries = 2";
    let (dir, id, run, _) = a_run_going(temp.path(), &d, &api, "long", job).await;
    let cli = |args: &[&str]| {
        let mut all = vec!["-a", "long"];
        all.extend_from_slice(args);
        tokio::task::block_in_place(|| d.cli(&dir, &all))
    };

    let cancelled = cli(&["jobs", "cancel", "backup"]).expect_code(0);
    assert!(
        cancelled.stderr.contains("cancelled the run of job"),
        "{}",
        cancelled.stderr
    );
    tokio::task::block_in_place(|| super::common::process::wait_gone(run, DEADLINE));
    let runs = wait_runs(&api, id, "the cancelled run", |r| {
        finished(r, "cancelled") == 1
    })
    .await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["attempts"], 1, "no retry after a cancel: {runs:#?}");
    let output = runs[0]["output"].as_str().unwrap();
    assert!(
        output.contains("told to stop") && output.contains("lakefly jobs cancel"),
        "{output}"
    );
    let (_, job) = api.send(Method::GET, &format!("/v1/jobs/{id}"), None).await;
    assert_eq!(job["status"], "idle", "{job}");

    let refused = cli(&["jobs", "cancel", "backup"]).expect_code(6);
    assert!(
        refused.stderr.contains("has no run going"),
        "{}",
        refused.stderr
    );
}

/// A run the store cannot record (a full disk; here another process holding SQLite's write
/// lock past the daemon's busy timeout) runs all the same, as cron's would: the job may be
/// the one that frees the space. It has no run id.
#[test]
fn a_run_the_store_cannot_record_runs_all_the_same() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let log = temp.path().join("daemon.log");
    let d = TestDaemon::start_logging_to(&state, &log);
    let dir = temp.path().join("sweeper");
    std::fs::create_dir(&dir).unwrap();
    let runs = temp.path().join("runs");
    let config = format!(
        r#"app = "sweeper"
[processes]
  app = "sleep 600"
[[jobs]]
  name = "sweep"
  command = "echo \"run=$LAKEFLY_JOB_RUN\" >> {}"
  interval = "1s"
"#,
        runs.display()
    );
    std::fs::write(dir.join("fly.toml"), config).unwrap();
    deploy(&d, &dir);
    let ran = || std::fs::read_to_string(&runs).unwrap_or_default();
    let until = Instant::now() + DEADLINE;
    while !ran().contains("run=1\n") {
        assert!(Instant::now() < until, "the job never ran: {}", ran());
        std::thread::sleep(Duration::from_millis(50));
    }
    let _lock = super::common::daemon::StoreLock::take(&state);
    super::common::daemon::wait_logged(&log, "could not record the start of a run");
    let until = Instant::now() + DEADLINE;
    while !ran().contains("run=\n") {
        assert!(Instant::now() < until, "no unrecorded run: {}", ran());
        std::thread::sleep(Duration::from_millis(50));
    }
}
