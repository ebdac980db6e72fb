//! The LSH job-daemon endpoints: `/status`, `/jobs`, `POST /jobs`, `/jobs/{id}/trigger`.

use reqwest::Method;
use serde_json::json;

use super::common::api::Api;
use super::common::daemon::TestDaemon;
use super::{app_dir, deploy, finished, wait_runs};

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
        super::common::lakefly(&dir, &all)
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
