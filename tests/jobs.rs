//! The job scheduler against a real daemon: `[[jobs]]` from fly.toml run on their interval
//! (commands with the app's env, HTTP calls on a healthy machine), never overlap (a due run
//! is skipped and recorded), retry, time out, can be triggered, stopped, started and
//! cancelled mid-run, and answer the LSH endpoints (`/status`, `/jobs`, `POST /jobs`,
//! `/jobs/{id}/trigger`).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::api::Api;
use common::daemon::TestDaemon;
use reqwest::Method;
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(30);

const JOBS: &str = r#"
[[jobs]]
  name = "tick"
  command = "echo tick from $LAKEFLY_JOB_NAME of $LAKEFLY_APP_NAME"
  interval = "1s"

[[jobs]]
  name = "slow"
  command = "sleep 2.5; echo done"
  interval = "1s"

[[jobs]]
  name = "flaky"
  command = "echo trying; exit 3"
  retries = 2

[[jobs]]
  name = "stuck"
  command = "sleep 30"
  timeout = "1s"

[[jobs]]
  name = "maintenance"
  method = "POST"
  path = "/maintenance"
"#;

/// The jobs example with quick jobs instead of its own.
fn app_dir(temp: &Path) -> PathBuf {
    let dir = temp.join("jobs");
    std::fs::create_dir(&dir).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jobs");
    std::fs::copy(example.join("app.py"), dir.join("app.py")).unwrap();
    let config = std::fs::read_to_string(example.join("fly.toml")).unwrap();
    let head = &config[..config.find("# Every 10 minutes").unwrap()];
    std::fs::write(dir.join("fly.toml"), format!("{head}{JOBS}")).unwrap();
    dir
}

fn deploy(d: &TestDaemon, dir: &Path) {
    common::lakefly(
        dir,
        &[
            "--remote",
            &d.api,
            "deploy",
            "-c",
            dir.join("fly.toml").to_str().unwrap(),
        ],
    )
    .expect_code(0);
}

async fn jobs_by_name(api: &Api) -> serde_json::Map<String, Value> {
    let (status, list) = api.send(Method::GET, "/v1/apps/jobs/jobs", None).await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|j| (j["name"].as_str().unwrap().to_string(), j.clone()))
        .collect()
}

async fn runs(api: &Api, id: u64) -> Vec<Value> {
    let (status, runs) = api
        .send(Method::GET, &format!("/v1/jobs/{id}/runs?limit=100"), None)
        .await;
    assert_eq!(status, 200, "{runs}");
    runs.as_array().unwrap().clone()
}

/// Waits until the runs of `id` satisfy `check`, or fails at the deadline.
async fn wait_runs(api: &Api, id: u64, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let until = Instant::now() + DEADLINE;
    loop {
        let list = runs(api, id).await;
        if check(&list) {
            return list;
        }
        assert!(Instant::now() < until, "{what}: runs so far {list:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Triggers `app`'s one job; its id.
async fn trigger_only_job(api: &Api, app: &str) -> u64 {
    let (status, jobs) = api
        .send(Method::GET, &format!("/v1/apps/{app}/jobs"), None)
        .await;
    assert_eq!(status, 200, "{jobs}");
    let id = jobs[0]["id"].as_u64().unwrap();
    let (status, body) = api
        .send(Method::POST, &format!("/v1/jobs/{id}/trigger"), None)
        .await;
    assert!(status < 300, "{body}");
    id
}

fn finished(runs: &[Value], status: &str) -> usize {
    runs.iter().filter(|r| r["status"] == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_jobs_run_on_schedule_without_overlap_with_retries_and_timeouts() {
    let temp = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_in(&temp.path().join("state"), &[]);
    let api = Api::new(&d);
    let dir = app_dir(temp.path());
    tokio::task::block_in_place(|| deploy(&d, &dir));
    let jobs = jobs_by_name(&api).await;
    assert_eq!(jobs.len(), 5, "{jobs:?}");
    let id = |name: &str| jobs[name]["id"].as_u64().unwrap();
    assert_eq!(jobs["tick"]["source"], "config");
    assert!(
        jobs["tick"]["next_run"].is_string(),
        "an interval job is scheduled"
    );
    assert!(
        jobs["flaky"]["next_run"].is_null(),
        "a job without timing runs when triggered"
    );

    // An interval job runs again and again, with the app's env.
    let ticks = wait_runs(&api, id("tick"), "two tick runs", |r| {
        finished(r, "succeeded") >= 2
    })
    .await;
    let done = ticks.iter().find(|r| r["status"] == "succeeded").unwrap();
    assert_eq!(done["output"], "tick from tick of jobs");
    assert_eq!(done["exit_code"], 0);
    assert_eq!(done["trigger"], "schedule");

    // A run due while the previous one goes on is skipped, and says so.
    wait_runs(&api, id("slow"), "a skipped slow run", |r| {
        finished(r, "skipped") >= 1 && finished(r, "succeeded") >= 1
    })
    .await;
    let (_, slow) = api
        .send(Method::GET, &format!("/v1/jobs/{}", id("slow")), None)
        .await;
    assert!(
        ["idle", "running"].contains(&slow["status"].as_str().unwrap()),
        "{slow}"
    );

    // Triggered: a failing command is retried, then recorded with its exit code.
    let (status, _) = api
        .send(
            Method::POST,
            &format!("/v1/jobs/{}/trigger", id("flaky")),
            None,
        )
        .await;
    assert_eq!(status, 202);
    let flaky = wait_runs(&api, id("flaky"), "the flaky run", |r| {
        finished(r, "failed") == 1
    })
    .await;
    assert_eq!(flaky[0]["attempts"], 3);
    assert_eq!(flaky[0]["exit_code"], 3);
    assert_eq!(flaky[0]["trigger"], "manual");
    assert!(
        flaky[0]["output"].as_str().unwrap().contains("trying"),
        "{flaky:?}"
    );

    // A run past its timeout is stopped, with its whole process group.
    api.send(
        Method::POST,
        &format!("/v1/jobs/{}/trigger", id("stuck")),
        None,
    )
    .await;
    let stuck = wait_runs(&api, id("stuck"), "the stuck run", |r| {
        finished(r, "timed_out") == 1
    })
    .await;
    assert!(
        stuck[0]["output"]
            .as_str()
            .unwrap()
            .contains("did not finish within 1s"),
        "{stuck:?}"
    );

    // An HTTP job calls a healthy machine of the app.
    api.send(
        Method::POST,
        &format!("/v1/jobs/{}/trigger", id("maintenance")),
        None,
    )
    .await;
    let calls = wait_runs(&api, id("maintenance"), "the maintenance call", |r| {
        finished(r, "succeeded") == 1
    })
    .await;
    assert_eq!(calls[0]["http_status"], 200);
    assert!(
        calls[0]["output"]
            .as_str()
            .unwrap()
            .contains("\"compacted\": true"),
        "{calls:?}"
    );

    // Stopped, a job is no longer scheduled; started, it is again.
    let (status, stopped) = api
        .send(Method::POST, &format!("/v1/jobs/{}/stop", id("tick")), None)
        .await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    assert!(stopped["next_run"].is_null(), "{stopped}");
    let (_, started) = api
        .send(
            Method::POST,
            &format!("/v1/jobs/{}/start", id("tick")),
            None,
        )
        .await;
    assert!(started["next_run"].is_string(), "{started}");

    // Every run is an event.
    let mut sse = common::sse::Sse::connect(&d.url("/v1/events?since=0&kind=job."), None).await;
    let mut kinds = std::collections::BTreeSet::new();
    while kinds.len() < 3 {
        let m = sse.next(DEADLINE).await.expect("job events");
        kinds.insert(m.event.clone());
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["job.created", "job.run.finished", "job.run.started"]
    );

    // A job fly.toml defines goes with a deploy, not by itself.
    let refused = tokio::task::block_in_place(|| {
        common::lakefly(
            &dir,
            &["--remote", d.api.as_str(), "jobs", "delete", "tick"],
        )
    });
    assert_eq!(refused.code, 6, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("comes from fly.toml [[jobs]]; remove it there and deploy"),
        "{}",
        refused.stderr
    );

    // A release without a job removes it.
    let config = std::fs::read_to_string(dir.join("fly.toml")).unwrap();
    let without = &config[..config.find("[[jobs]]\n  name = \"slow\"").unwrap()];
    std::fs::write(dir.join("fly.toml"), without).unwrap();
    tokio::task::block_in_place(|| deploy(&d, &dir));
    let jobs = jobs_by_name(&api).await;
    assert_eq!(jobs.keys().collect::<Vec<_>>(), ["tick"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lsh_endpoints_create_trigger_and_list_jobs() {
    let temp = tempfile::tempdir().unwrap();
    let mut d = TestDaemon::start_in(&temp.path().join("state"), &[]);
    let api = Api::new(&d);
    let dir = app_dir(temp.path());
    std::fs::write(
        dir.join("fly.toml"),
        std::fs::read_to_string(dir.join("fly.toml"))
            .unwrap()
            .split("\n[[jobs]]")
            .next()
            .unwrap(),
    )
    .unwrap();
    tokio::task::block_in_place(|| deploy(&d, &dir));

    let (status, job) = api
        .send(
            Method::POST,
            "/jobs",
            Some(
                json!({ "app": "jobs", "name": "hello", "command": "echo hello $LAKEFLY_JOB_RUN" }),
            ),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["source"], "api");
    assert_eq!(job["status"], "idle");
    let id = job["id"].as_u64().unwrap();

    let (status, again) = api
        .send(
            Method::POST,
            "/jobs",
            Some(json!({ "app": "jobs", "name": "hello", "command": "true" })),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["code"], "job_exists");
    let (status, bad) = api
        .send(
            Method::POST,
            "/jobs",
            Some(json!({ "app": "jobs", "name": "x", "command": "true", "schedule": "every day" })),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("not a cron expression"),
        "{bad}"
    );

    let (status, _) = api
        .send(Method::POST, &format!("/jobs/{id}/trigger"), None)
        .await;
    assert_eq!(status, 202);
    let done = wait_runs(&api, id, "the triggered run", |r| {
        finished(r, "succeeded") == 1
    })
    .await;
    assert_eq!(done[0]["output"], format!("hello {}", done[0]["id"]));

    let (_, idle) = api.send(Method::GET, "/jobs?status=idle", None).await;
    assert_eq!(idle.as_array().unwrap().len(), 1, "{idle}");
    let (_, running) = api.send(Method::GET, "/jobs?status=running", None).await;
    assert_eq!(running, json!([]));
    let (_, status) = api.send(Method::GET, "/status", None).await;
    assert_eq!(
        (status["apps"].clone(), status["jobs"].clone()),
        (json!(1), json!(1)),
        "{status}"
    );

    let (code, missing) = api.send(Method::POST, "/jobs/999/trigger", None).await;
    assert_eq!(code, 404, "{missing}");
    assert_eq!(missing["code"], "job_not_found");
    let (code, _) = api
        .send(Method::DELETE, &format!("/v1/jobs/{id}"), None)
        .await;
    assert_eq!(code, 204);

    // The same through the CLI.
    let cli = |args: &[&str]| {
        let mut all = vec!["--remote", d.api.as_str(), "-a", "jobs"];
        all.extend_from_slice(args);
        common::lakefly(&dir, &all)
    };
    let created = tokio::task::block_in_place(|| {
        cli(&[
            "jobs",
            "create",
            "ping",
            "--path",
            "/maintenance",
            "--method",
            "POST",
            "--interval",
            "1h",
            "--json",
        ])
    })
    .expect_code(0)
    .json();
    let ping = created["id"].as_u64().unwrap();
    let list = tokio::task::block_in_place(|| cli(&["jobs", "list"])).expect_code(0);
    assert!(
        list.stdout.contains("POST /maintenance") && list.stdout.contains("every 1h"),
        "{}",
        list.stdout
    );
    let trigger =
        tokio::task::block_in_place(|| cli(&["jobs", "trigger", &ping.to_string()])).expect_code(0);
    assert!(
        trigger
            .stderr
            .contains(&format!("triggered job {ping} (ping)")),
        "{}",
        trigger.stderr
    );
    wait_runs(&api, ping, "the CLI-triggered call", |r| {
        finished(r, "succeeded") == 1
    })
    .await;
    // A job is also named by its name in the app (ids differ from daemon to daemon).
    let runs = tokio::task::block_in_place(|| cli(&["jobs", "runs", "ping"])).expect_code(0);
    assert!(
        runs.stdout.contains("manual") && runs.stdout.contains("HTTP 200"),
        "{}",
        runs.stdout
    );
    let unknown = tokio::task::block_in_place(|| cli(&["jobs", "trigger", "pong", "--json"]));
    assert_eq!(unknown.code, 5, "{}", unknown.stderr);
    assert!(
        unknown
            .stderr
            .contains("jobs has no job named \\\"pong\\\"")
            && unknown.stderr.contains("job_not_found")
            && unknown.stderr.contains("lakefly jobs list -a jobs"),
        "{}",
        unknown.stderr
    );
    // A job made through the CLI is removed through it, by name too.
    let deleted = tokio::task::block_in_place(|| cli(&["jobs", "delete", "ping", "--json"]))
        .expect_code(0)
        .json();
    assert_eq!(deleted, json!({ "deleted": ping }));
    let (code, gone) = api
        .send(Method::GET, &format!("/v1/jobs/{ping}"), None)
        .await;
    assert_eq!(code, 404, "{gone}");
    // A nightly schedule at 03:00 in Berlin is due at 01:00 or 02:00 UTC, by the season.
    let nightly = tokio::task::block_in_place(|| {
        cli(&[
            "jobs",
            "create",
            "nightly",
            "--command",
            "true",
            "--schedule",
            "0 3 * * *",
            "--time-zone",
            "Europe/Berlin",
            "--json",
        ])
    })
    .expect_code(0)
    .json();
    let due = nightly["next_run"].as_str().unwrap();
    assert!(
        due.contains("T01:00:00") || due.contains("T02:00:00"),
        "{nightly}"
    );
    let list = tokio::task::block_in_place(|| cli(&["jobs", "list"])).expect_code(0);
    assert!(
        list.stdout.contains("0 3 * * * (Europe/Berlin)"),
        "{}",
        list.stdout
    );
    // Refused with what is wrong, each a usage error: a schedule that is no cron
    // expression by the CLI, a zone the daemon's host does not know and a group the
    // release does not have by the daemon.
    for (when, code, says) in [
        (&["--schedule", "soon"][..], 2, "not a cron expression"),
        (
            &["--schedule", "0 3 * * *", "--time-zone", "Berlin"][..],
            2,
            "\"Berlin\" is not a zone this host knows",
        ),
        (
            &["-g", "wroker"][..],
            2,
            "process group \"wroker\" does not exist; the release has app",
        ),
    ] {
        let mut args = vec!["jobs", "create", "x", "--command", "true"];
        args.extend_from_slice(when);
        let bad = tokio::task::block_in_place(|| cli(&args));
        assert_eq!(bad.code, code, "{}", bad.stderr);
        assert!(bad.stderr.contains(says), "{}", bad.stderr);
    }

    // A run that is going when the daemon stops does not outlive it.
    let marker = format!("lakefly-job-marker-{}", std::process::id());
    let (_, long) = api
        .send(
            Method::POST,
            "/v1/apps/jobs/jobs",
            Some(json!({ "name": "long", "command": format!("while true; do sleep 1; done # {marker}") })),
        )
        .await;
    let long = long["id"].as_u64().unwrap();
    api.send(Method::POST, &format!("/v1/jobs/{long}/trigger"), None)
        .await;
    wait_runs(&api, long, "the long run", |r| finished(r, "running") == 1).await;
    let alive = || {
        std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(alive(), "the run's process is there while it runs");
    d.stop();
    assert!(!alive(), "the run's process outlived the daemon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_job_wakes_a_stopped_machine_of_an_app_that_auto_starts() {
    let temp = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_in(&temp.path().join("state"), &[]);
    let api = Api::new(&d);
    let dir = app_dir(temp.path());
    let config = std::fs::read_to_string(dir.join("fly.toml"))
        .unwrap()
        .replace(
            "processes = [\"app\"]",
            "processes = [\"app\"]\n  auto_start_machines = true",
        );
    assert!(config.contains("auto_start_machines = true"));
    std::fs::write(dir.join("fly.toml"), config).unwrap();
    tokio::task::block_in_place(|| deploy(&d, &dir));
    // Stopped, as auto_stop_machines leaves an idle app.
    let (_, machines) = api.send(Method::GET, "/v1/apps/jobs/machines", None).await;
    let machine = machines[0]["id"].as_str().unwrap().to_string();
    let (status, stopped) = api
        .send(
            Method::POST,
            &format!("/v1/apps/jobs/machines/{machine}/stop"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{stopped}");

    let maintenance = jobs_by_name(&api).await["maintenance"]["id"]
        .as_u64()
        .unwrap();
    api.send(
        Method::POST,
        &format!("/v1/jobs/{maintenance}/trigger"),
        None,
    )
    .await;
    let calls = wait_runs(&api, maintenance, "the call to a stopped app", |r| {
        finished(r, "succeeded") + finished(r, "failed") == 1
    })
    .await;
    assert_eq!(calls[0]["status"], "succeeded", "{calls:#?}");
    assert_eq!(calls[0]["http_status"], 200, "{calls:#?}");
    let (_, machine) = api
        .send(
            Method::GET,
            &format!("/v1/apps/jobs/machines/{machine}"),
            None,
        )
        .await;
    assert_eq!(machine["state"], "started", "{machine}");
}

/// A command job sees the app's volumes as its machines do: `DATA_DIR = "/data/db"` under
/// a `[mounts]` at `/data` is the volume's directory, so a nightly dump lands in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_job_sees_the_apps_volumes() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let d = TestDaemon::start_in(&state, &[]);
    let api = Api::new(&d);
    let dir = temp.path().join("vol");
    std::fs::create_dir(&dir).unwrap();
    let config = r#"app = "vol"
[env]
  DATA_DIR = "/data/db"
[processes]
  app = "sleep 600"
[mounts]
  source = "data"
  destination = "/data"
[[jobs]]
  name = "dump"
  command = "mkdir -p \"$DATA_DIR\" && echo nightly > \"$DATA_DIR/dump\" && echo \"dumped for $TOKEN\" && echo 'took 1s' >&2"
"#;
    std::fs::write(dir.join("fly.toml"), config).unwrap();
    tokio::task::block_in_place(|| {
        deploy(&d, &dir);
        let set = [
            "--remote",
            &d.api,
            "secrets",
            "set",
            "-a",
            "vol",
            "TOKEN=tok-3f9a2c71",
        ];
        common::lakefly(&dir, &set).expect_code(0);
    });
    let id = trigger_only_job(&api, "vol").await;
    let runs = wait_runs(&api, id, "the dump ran", |runs| {
        runs.iter().any(|r| r["status"] != "running")
    })
    .await;
    assert_eq!(runs[0]["status"], "succeeded", "{runs:#?}");
    let dump = state.join("volumes/vol/data/db/dump");
    assert_eq!(std::fs::read_to_string(&dump).unwrap(), "nightly\n");

    // Its output is in the app's log, from `job:NAME#RUN`, by stream, the secret hidden;
    // `--job NAME` and `--machine job:NAME#RUN` pick those lines out.
    let source = format!("job:dump#{}", runs[0]["id"]);
    let logs = |filter: &[&str]| {
        let mut args = vec![
            "--remote",
            &d.api,
            "logs",
            "-a",
            "vol",
            "--no-tail",
            "--json",
        ];
        args.extend_from_slice(filter);
        let run = tokio::task::block_in_place(|| common::lakefly(&dir, &args).expect_code(0));
        let lines: Vec<Value> = (run.stdout.lines())
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect();
        lines
    };
    let until = Instant::now() + DEADLINE;
    let lines: Vec<Value> = loop {
        let lines = logs(&["--job", "dump"]);
        if lines.len() == 2 {
            break lines;
        }
        assert!(
            Instant::now() < until,
            "the run's lines in the log: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        lines.iter().all(|l| l["machine"] == source.as_str()),
        "{lines:#?}"
    );
    assert_eq!(logs(&["--machine", &source]), lines);
    assert!(
        logs(&["--job", "du"]).is_empty(),
        "a job's name is matched whole"
    );
    let by_stream = |stream: &str| {
        let line = lines.iter().find(|l| l["stream"] == stream).unwrap();
        line["line"].as_str().unwrap().to_string()
    };
    assert_eq!(by_stream("stdout"), "dumped for [redacted]");
    assert_eq!(by_stream("stderr"), "took 1s");
}

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
    let run = tokio::task::block_in_place(|| common::process::wait_pid_file(&pid_file, DEADLINE));

    d.kill9();
    assert!(
        common::process::alive(run),
        "nothing can stop it while no daemon runs"
    );
    let d = TestDaemon::start_at(d.api.trim_start_matches("http://"), &state, &[]);
    tokio::task::block_in_place(|| common::process::wait_gone(run, DEADLINE));
    let api = Api::new(&d);
    let runs = runs(&api, id).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"], "failed", "{runs:#?}");
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
    let run = tokio::task::block_in_place(|| common::process::wait_pid_file(&pid_file, DEADLINE));
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
    tokio::task::block_in_place(|| common::process::wait_gone(run, DEADLINE));
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
    tokio::task::block_in_place(|| common::process::wait_gone(run, DEADLINE));
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
    let _lock = common::daemon::StoreLock::take(&state);
    common::daemon::wait_logged(&log, "could not record the start of a run");
    let until = Instant::now() + DEADLINE;
    while !ran().contains("run=\n") {
        assert!(Instant::now() < until, "no unrecorded run: {}", ran());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_bad_schedule_or_interval_is_a_usage_error_naming_its_flag() {
    // Refused before any daemon is asked: none listens at this address.
    let temp = tempfile::tempdir().unwrap();
    let create = |flag: &str, value: &str| {
        common::lakefly_env(
            temp.path(),
            &[
                "jobs",
                "create",
                "j",
                "-a",
                "a",
                "--command",
                "true",
                flag,
                value,
            ],
            &[("LAKEFLY_REMOTE", "http://127.0.0.1:9")],
        )
        .expect_code(2)
        .stderr
    };
    let cron = create("--schedule", "61 * * * *");
    assert!(
        cron.contains("for '--schedule <SCHEDULE>': \"61 * * * *\" is not a cron expression")
            && cron.contains("use 5 fields"),
        "{cron}"
    );
    let interval = create("--interval", "0s");
    assert!(
        interval.contains("for '--interval <INTERVAL>': a job's interval is at least 1s"),
        "{interval}"
    );
}
