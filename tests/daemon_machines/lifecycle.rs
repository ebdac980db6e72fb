//! Machines driven through the API and the CLI: start, stop, restart, destroy, bad
//! requests, `status` and `watch`.

use std::time::Duration;

use serde_json::{json, Value};

use super::common::api::Api;
use super::common::daemon::TestDaemon;
use super::common::process::wait_gone;
use super::common::sse::Sse;
use super::wait_for;

#[tokio::test]
async fn start_stop_restart_and_destroy_through_the_api() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("web").await;
    let m = api
        .create_machine(
            "web",
            json!({ "command": "exec sleep 600", "internal_port": 8080, "kill_signal": "SIGTERM" }),
        )
        .await;
    let id = m["id"].as_str().unwrap();
    let base = format!("/v1/apps/web/machines/{id}");
    // Wait for the first start through the event log.
    let mut sse = Sse::connect(&d.url("/v1/events?since=0&app=web"), None).await;
    let started = wait_for(&mut sse, "machine.started", id).await;
    assert!(
        started.data["data"]["port"].as_u64().is_some(),
        "$PORT allocated"
    );

    let (_, stopped) = api
        .send(reqwest::Method::POST, &format!("{base}/stop"), None)
        .await;
    assert_eq!(stopped["state"], "stopped");
    assert!(stopped["pid"].is_null());
    let (_, again) = api
        .send(reqwest::Method::POST, &format!("{base}/start"), None)
        .await;
    assert_eq!(again["state"], "started");
    let first_pid = again["pid"].as_u64().unwrap();
    let (_, restarted) = api
        .send(reqwest::Method::POST, &format!("{base}/restart"), None)
        .await;
    assert_eq!(restarted["state"], "started");
    assert_ne!(restarted["pid"].as_u64().unwrap(), first_pid);
    wait_gone(first_pid, Duration::from_secs(2));

    // A machine that runs is stopped, then forgotten (Fly's `?force=true` is taken).
    let (status, _) = api
        .send(reqwest::Method::DELETE, &format!("{base}?force=true"), None)
        .await;
    assert_eq!(status, 204);
    wait_gone(restarted["pid"].as_u64().unwrap(), Duration::from_secs(2));
    let (status, body) = api.send(reqwest::Method::GET, &base, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("machine_not_found"))
    );
    let (_, list) = api
        .send(reqwest::Method::GET, "/v1/apps/web/machines", None)
        .await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn bad_requests_answer_4xx_json_and_change_nothing() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/v1/apps/ghost/machines",
            Some(json!({ "command": "true" })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("app_not_found"))
    );
    api.create_app("real").await;
    let raw = super::common::http_client()
        .post(d.url("/v1/apps/real/machines"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["code"], "bad_request");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body"),
        "{body}"
    );
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/v1/apps/real/machines",
            Some(json!({ "command": " " })),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
    let (status, _) = api
        .send(
            reqwest::Method::POST,
            "/v1/apps/real/machines/nope/explode",
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (_, list) = api
        .send(reqwest::Method::GET, "/v1/apps/real/machines", None)
        .await;
    assert_eq!(list, json!([]), "nothing was created");
}

#[tokio::test]
async fn status_shows_the_app_and_its_machines() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("shown").await;
    let mut sse = Sse::connect(&d.url("/v1/events?app=shown&kind=machine."), None).await;
    let m = api
        .create_machine(
            "shown",
            json!({ "command": "exec sleep 600", "process_group": "web" }),
        )
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    wait_for(&mut sse, "machine.started", &id).await;
    let (status, body) = api
        .send(reqwest::Method::GET, "/v1/apps/shown/status", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["app"], "shown");
    assert!(body["release"].is_null());
    let machine = &body["machines"][0];
    assert_eq!(
        (
            machine["id"].as_str(),
            machine["process_group"].as_str(),
            machine["state"].as_str()
        ),
        (Some(id.as_str()), Some("web"), Some("started"))
    );
    for field in ["health", "pid", "restarts"] {
        assert!(!machine[field].is_null(), "status lacks {field}: {machine}");
    }
}

#[test]
fn watch_prints_a_new_snapshot_when_a_machine_changes() {
    let d = TestDaemon::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&d);
    // `status --watch` is flyctl's spelling of the same.
    for (app, command) in [
        ("watched", &["watch"][..]),
        ("status", &["status", "--watch"][..]),
    ] {
        rt.block_on(api.create_app(app));
        let mut args = vec!["--remote", d.api.as_str(), "-a", app, "--json"];
        args.extend_from_slice(command);
        let watch = super::common::follow::Follower::lakefly(&args, &[]);
        let first = watch.until(|_| true);
        assert_eq!(first[0]["status"]["machines"], json!([]), "{first:?}");
        assert_eq!(first[0]["jobs"], json!([]));
        let machine = rt.block_on(api.create_machine(app, json!({ "command": "exec sleep 600" })));
        let id = machine["id"].as_str().unwrap().to_string();
        // Snapshots follow the machine until it runs.
        let seen = watch.until(|snapshot| {
            snapshot["status"]["machines"].as_array().is_some_and(|m| {
                m.len() == 1 && m[0]["id"] == id.as_str() && m[0]["state"] == "started"
            })
        });
        assert!(!seen.is_empty());
    }
}
