//! `lakefly events`: follows live, reconnects with Last-Event-ID after a dropped stream or a
//! daemon restart, and shows every event once, in order.

mod common;

use std::path::Path;

use common::daemon::TestDaemon;
use common::follow::Follower;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn created(name: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["kind"] == "app.created" && e["app"] == name
}

async fn create_app(api: &str, name: &str) {
    let resp = common::http_client()
        .post(format!("{api}/v1/apps"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

fn assert_each_once_in_order(events: &[Value]) {
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids not strictly increasing: {ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_across_a_daemon_restart_with_no_gap_and_no_duplicate() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut d = TestDaemon::start_at(&addr, &state, &[]);
    let follower = Follower::start(&d.api, &["--all-apps", "--since", "0"]);
    create_app(&d.api, "before").await;
    let mut events = tokio::task::block_in_place(|| follower.until(created("before")));
    assert!(d.stop().success());
    let d = TestDaemon::start_at(&addr, &state, &[]);
    create_app(&d.api, "after").await;
    events.extend(tokio::task::block_in_place(|| {
        follower.until(created("after"))
    }));
    assert_each_once_in_order(&events);
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "daemon.started",
            "app.created",
            "daemon.stopping",
            "daemon.started",
            "app.created"
        ],
        "{events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_resumes_with_last_event_id() {
    let mock = MockServer::start().await;
    let sse = |events: &[(u64, &str)]| {
        let body: String = events
            .iter()
            .map(|(id, app)| {
                let data = json!({ "id": id, "time": "2026-11-24T00:00:00.000Z", "app": app, "kind": "app.created", "data": {} });
                format!("id: {id}\nevent: app.created\ndata: {data}\n\n")
            })
            .collect();
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/event-stream")
            .set_body_string(body)
    };
    // The first connection delivers two events and ends; the resume must ask for what
    // follows id 2, and gets a replay of 2 (which must not be shown twice) and then 3.
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .respond_with(sse(&[(1, "a"), (2, "b")]))
        .with_priority(5)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(header("last-event-id", "2"))
        .respond_with(sse(&[(2, "b"), (3, "c")]))
        .with_priority(1)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(header("last-event-id", "3"))
        .respond_with(sse(&[]))
        .with_priority(1)
        .mount(&mock)
        .await;
    let follower = Follower::start(&mock.uri(), &["--all-apps"]);
    let events = tokio::task::block_in_place(|| follower.until(|e| e["app"] == "c"));
    let apps: Vec<&str> = events.iter().map(|e| e["app"].as_str().unwrap()).collect();
    assert_eq!(apps, ["a", "b", "c"]);
    assert_each_once_in_order(&events);
}

#[test]
fn an_unreachable_daemon_is_exit_8() {
    let port = common::free_port();
    let run = common::lakefly(
        Path::new("."),
        &[
            "--remote",
            &format!("127.0.0.1:{port}"),
            "events",
            "--all-apps",
        ],
    )
    .expect_code(8);
    assert!(
        run.stderr
            .starts_with("error: cannot reach the lakefly daemon at"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_shows_the_last_events_of_the_app_first() {
    let d = TestDaemon::start();
    for name in ["one", "two", "three"] {
        create_app(&d.api, name).await;
    }
    let follower = Follower::start(&d.api, &["-a", "three", "--tail", "5"]);
    let events = tokio::task::block_in_place(|| follower.until(created("three")));
    assert_eq!(events.len(), 1, "only app three's events: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploys_events_print_live_and_resume_after_the_daemon_is_killed() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut d = TestDaemon::start_at(&addr, &state, &[]);
    // From the first event on: the follower is another process, and the deploy below may
    // create the app before it has connected (a fresh-clone run once missed app.created).
    let follower = Follower::start(&d.api, &["-a", "hello", "--since", "0"]);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello/fly.toml");
    let deploy = |api: String| {
        let config = config.clone();
        move || {
            common::lakefly(
                Path::new("."),
                &["--remote", &api, "deploy", "-c", config.to_str().unwrap()],
            )
            .expect_code(0)
        }
    };
    tokio::task::spawn_blocking(deploy(d.api.clone()))
        .await
        .unwrap();
    let complete =
        |v: u64| move |e: &Value| e["kind"] == "deploy.complete" && e["data"]["version"] == v;
    let mut events = tokio::task::block_in_place(|| follower.until(complete(1)));
    d.kill9();
    let d = TestDaemon::start_at(&addr, &state, &[]);
    tokio::task::spawn_blocking(deploy(d.api.clone()))
        .await
        .unwrap();
    events.extend(tokio::task::block_in_place(|| follower.until(complete(2))));
    assert_each_once_in_order(&events);
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in [
        "app.created",
        "deploy.started",
        "release.unpacked",
        "machine.created",
        "machine.health",
        "deploy.complete",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert_eq!(kinds.iter().filter(|k| **k == "deploy.complete").count(), 2);
}
