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

/// Runs `lakefly events --remote API ARGS... --json` to its end; the events it printed.
fn stored_events(api: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--remote", api, "events", "--json"];
    all.extend_from_slice(args);
    let run = common::lakefly(Path::new("."), &all).expect_code(0);
    run.stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tail_prints_the_stored_events_it_selects_and_exits() {
    let d = TestDaemon::start();
    for name in ["one", "two", "three"] {
        create_app(&d.api, name).await;
    }
    let events = stored_events(&d.api, &["--all-apps", "--no-tail"]);
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["app"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("daemon.started", "-"),
            ("app.created", "one"),
            ("app.created", "two"),
            ("app.created", "three")
        ]
    );
    assert_each_once_in_order(&events);

    let two = stored_events(&d.api, &["-a", "two", "--no-tail"]);
    assert_eq!(two.len(), 1, "{two:?}");
    assert!(created("two")(&two[0]));

    let one_id = events[1]["id"].as_u64().unwrap().to_string();
    let after_one = stored_events(&d.api, &["--all-apps", "--no-follow", "--since", &one_id]);
    assert_eq!(after_one, events[2..], "--since: the events after it");

    let last = stored_events(&d.api, &["--all-apps", "--no-tail", "-n", "1"]);
    assert_eq!(last, events[3..], "--tail 1: the newest");

    let apps = stored_events(&d.api, &["--all-apps", "--no-tail", "--kind", "app."]);
    assert_eq!(apps, events[1..], "--kind app.: no daemon event");

    // Without --json, one line an event, as the live stream prints them.
    let run = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "events", "-a", "three", "--no-tail"],
    )
    .expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert!(lines[0].contains("  three  app.created"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tail_reads_page_after_page_until_one_is_short() {
    let mock = MockServer::start().await;
    let page = |ids: std::ops::RangeInclusive<u64>| {
        let events: Vec<Value> = ids
            .map(|id| json!({ "id": id, "time": "2026-11-24T00:00:00.000Z", "app": "a", "kind": "app.created", "data": {} }))
            .collect();
        ResponseTemplate::new(200).set_body_json(events)
    };
    let full = lakefly::api::types::MAX_EVENTS_PAGE as u64;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(wiremock::matchers::query_param("follow", "false"))
        .and(wiremock::matchers::query_param("since", full.to_string()))
        .respond_with(page(full + 1..=full + 2))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(wiremock::matchers::query_param("follow", "false"))
        .and(wiremock::matchers::query_param_is_missing("since"))
        .respond_with(page(1..=full))
        .expect(1)
        .mount(&mock)
        .await;
    let events = stored_events(&mock.uri(), &["-a", "a", "--no-tail"]);
    assert_eq!(events.len() as u64, full + 2);
    assert_each_once_in_order(&events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tail_against_a_bad_answer_says_so_and_prints_nothing() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>not events</html>"))
        .mount(&mock)
        .await;
    let run = common::lakefly(
        Path::new("."),
        &["--remote", &mock.uri(), "events", "-a", "a", "--no-tail"],
    );
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("not the expected JSON"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_the_app_never_had_is_not_found_not_followed_in_silence() {
    let d = TestDaemon::start();
    create_app(&d.api, "a").await;
    for extra in [&[][..], &["--no-tail"][..]] {
        let mut args = vec![
            "--remote",
            &d.api,
            "events",
            "-a",
            "a",
            "--machine",
            "f00",
            "--json",
        ];
        args.extend(extra);
        let run = tokio::task::block_in_place(|| common::lakefly(Path::new("."), &args));
        assert_eq!(run.code, 5, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("\"code\":\"machine_not_found\""),
            "{}",
            run.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stream_is_the_daemons_error_with_its_exit_code() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(wiremock::matchers::query_param("app", "locked"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "this daemon needs an API token",
            "code": "unauthorized",
            "hint": "log in with `lakefly auth login`"
        })))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(wiremock::matchers::query_param("app", "proxied"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"))
        .mount(&mock)
        .await;
    let follow = |app: &str| {
        common::lakefly(
            Path::new("."),
            &["--remote", &mock.uri(), "events", "-a", app],
        )
    };
    let locked = tokio::task::block_in_place(|| follow("locked"));
    assert_eq!(locked.code, 4, "{}", locked.stderr);
    assert!(
        locked
            .stderr
            .starts_with("error: this daemon needs an API token")
            && locked.stderr.contains("lakefly auth login"),
        "{}",
        locked.stderr
    );
    let proxied = tokio::task::block_in_place(|| follow("proxied"));
    assert_eq!(proxied.code, 1, "{}", proxied.stderr);
    assert!(
        proxied
            .stderr
            .contains("(HTTP 502): <html>Bad Gateway</html>"),
        "{}",
        proxied.stderr
    );
}
