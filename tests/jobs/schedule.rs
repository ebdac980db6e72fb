//! Jobs from `[[jobs]]` on their schedule: intervals, no overlap, retries, timeouts, HTTP
//! calls that wake a stopped machine, volumes, and schedules refused by flag.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use super::common::api::Api;
use super::common::daemon::TestDaemon;
use super::{app_dir, deploy, finished, jobs_by_name, trigger_only_job, wait_runs, DEADLINE};

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
    // `/metrics` says when each job last succeeded, and whether its last run failed.
    let metrics = super::common::http_client()
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"lakefly_job_last_run_failed{app="jobs",job_name="flaky"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"lakefly_job_last_run_failed{app="jobs",job_name="tick"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"lakefly_job_last_success_timestamp_seconds{app="jobs",job_name="tick"} "#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"timestamp_seconds{app="jobs",job_name="flaky"}"#),
        "{metrics}"
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

    // Every run is an event, and so is each retry, with the attempt that failed.
    let mut sse =
        super::common::sse::Sse::connect(&d.url("/v1/events?since=0&kind=job."), None).await;
    let mut kinds = std::collections::BTreeSet::new();
    let mut retries = Vec::new();
    while kinds.len() < 4 || retries.len() < 2 {
        let m = sse.next(DEADLINE).await.expect("job events");
        if m.event == "job.run.retrying" {
            retries.push(m.data["data"].clone());
        }
        kinds.insert(m.event);
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "job.created",
            "job.run.finished",
            "job.run.retrying",
            "job.run.started"
        ]
    );
    for (retry, attempt) in retries.iter().zip([2, 3]) {
        assert_eq!(retry["name"], "flaky", "{retry}");
        assert_eq!(retry["attempt"], attempt, "{retry}");
        assert_eq!(retry["attempts"], 3, "{retry}");
        assert_eq!(retry["status"], "failed", "{retry}");
        assert_eq!(retry["exit_code"], 3, "{retry}");
    }

    // A job fly.toml defines goes with a deploy, not by itself.
    let refused = tokio::task::block_in_place(|| {
        super::common::lakefly(
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
        super::common::lakefly(&dir, &set).expect_code(0);
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
        let run =
            tokio::task::block_in_place(|| super::common::lakefly(&dir, &args).expect_code(0));
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

#[test]
fn a_bad_schedule_or_interval_is_a_usage_error_naming_its_flag() {
    // Refused before any daemon is asked: none listens at this address.
    let temp = tempfile::tempdir().unwrap();
    let create = |flag: &str, value: &str| {
        super::common::lakefly_env(
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
