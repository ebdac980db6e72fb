//! Crashes restarted by policy, each exit recorded, and the counts in `/metrics`.

use serde_json::json;

use super::common::api::Api;
use super::common::daemon::TestDaemon;
use super::common::sse::Sse;
use super::{crash_and_restart, wait_for};

#[tokio::test]
async fn a_machine_killed_with_sigkill_is_restarted_and_its_exit_recorded() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    let (id, _sse, exited, restarted) = crash_and_restart(&d, &api, "crashy").await;
    assert_eq!(exited.data["data"]["signal"], "SIGKILL");
    assert_eq!(exited.data["data"]["restarting"], true);
    let new_pid = restarted.data["data"]["pid"].as_u64().unwrap();

    let shown = api.machine("crashy", &id).await;
    assert_eq!(shown["state"], "started");
    assert_eq!(shown["restarts"], 1);
    assert_eq!(shown["last_exit"]["signal"], "SIGKILL");
    assert_eq!(shown["pid"], new_pid);
}

#[tokio::test]
async fn exit_codes_follow_the_restart_policy() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("jobs").await;
    let mut sse = Sse::connect(&d.url("/v1/events?app=jobs&kind=machine."), None).await;
    // A clean exit under on-failure stays stopped.
    let clean = api
        .create_machine("jobs", json!({ "command": "exit 0" }))
        .await;
    let clean_id = clean["id"].as_str().unwrap();
    let exited = wait_for(&mut sse, "machine.exited", clean_id).await;
    assert_eq!(
        (
            exited.data["data"]["code"].as_i64(),
            exited.data["data"]["restarting"].as_bool()
        ),
        (Some(0), Some(false))
    );
    assert_eq!(api.machine("jobs", clean_id).await["state"], "stopped");
    // A machine that keeps failing gives up after max_retries and is marked failed.
    let failing = api
        .create_machine("jobs", json!({ "command": "exit 3", "max_retries": 2 }))
        .await;
    let failing_id = failing["id"].as_str().unwrap();
    let failed = wait_for(&mut sse, "machine.failed", failing_id).await;
    assert!(failed.data["data"]["reason"]
        .as_str()
        .unwrap()
        .contains("not restarting"));
    let shown = api.machine("jobs", failing_id).await;
    assert_eq!(
        (shown["state"].as_str(), shown["restarts"].as_u64()),
        (Some("failed"), Some(2))
    );
    assert_eq!(shown["last_exit"]["code"], 3);
}

#[tokio::test]
async fn a_machine_that_gave_up_gets_all_its_retries_back_when_started_again() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("flaky").await;
    let dir = tempfile::tempdir().unwrap();
    // Fails as many times as `left` says, then runs.
    let left = dir.path().join("left");
    std::fs::write(&left, "2").unwrap();
    let command = format!(
        "n=$(cat {0}); if [ \"$n\" -gt 0 ]; then echo $((n-1)) > {0}; exit 3; fi; exec sleep 600",
        left.display()
    );
    let mut sse = Sse::connect(&d.url("/v1/events?app=flaky&kind=machine."), None).await;
    let machine = api
        .create_machine("flaky", json!({ "command": command, "max_retries": 1 }))
        .await;
    let id = machine["id"].as_str().unwrap();
    wait_for(&mut sse, "machine.failed", id).await;

    // One more failure to come: within its one retry, had the start not begun the count
    // again it would give up at once.
    std::fs::write(&left, "1").unwrap();
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &format!("/v1/apps/flaky/machines/{id}/start"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let exited = wait_for(&mut sse, "machine.exited", id).await;
    assert_eq!(exited.data["data"]["restarting"], true, "{:?}", exited.data);
    wait_for(&mut sse, "machine.started", id).await;
    assert_eq!(api.machine("flaky", id).await["state"], "started");
}

#[tokio::test]
async fn metrics_count_machines_restarts_events_and_subscribers() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    // The stream stays open: it is the one subscriber the metrics must count.
    let (_id, _sse, _, _) = crash_and_restart(&d, &api, "measured").await;

    let resp = super::common::http_client()
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = resp.text().await.unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    assert_eq!(value("lakefly_machine_restarts_total"), 1.0);
    assert!(value("lakefly_events_total") >= 5.0, "{text}");
    assert_eq!(value("lakefly_event_subscribers"), 1.0);
    let started_machines: f64 = text
        .lines()
        .filter(|l| l.starts_with("lakefly_machines{") && l.contains("state=\"started\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(started_machines, 1.0, "{text}");
    assert!(text.ends_with("# EOF\n"));
}
