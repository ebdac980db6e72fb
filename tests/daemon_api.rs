//! lakeflyd end to end: the apps API, the event stream's replay/resume/filter rules, ids
//! across restarts and crashes, and clean shutdown.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::api::Api;
use common::daemon::TestDaemon;
use common::sse::{Message, Sse};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

async fn create_app(client: &reqwest::Client, d: &TestDaemon, name: &str) -> reqwest::Response {
    client
        .post(d.url("/v1/apps"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .expect("POST /v1/apps")
}

/// Reads messages until one satisfies `pred`, returning all read.
async fn read_until(sse: &mut Sse, pred: impl Fn(&Message) -> bool) -> Vec<Message> {
    let mut seen = Vec::new();
    loop {
        let m = sse.next(WAIT).await.expect("stream ended early");
        let done = pred(&m);
        seen.push(m);
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn health_answers_without_auth() {
    let d = TestDaemon::start();
    let body: serde_json::Value = common::http_client()
        .get(d.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
    assert!(body.get("problems").is_none(), "{body}");
}

#[tokio::test]
async fn apps_create_list_show_destroy_with_typed_errors() {
    let d = TestDaemon::start();
    let client = common::http_client();
    let created = create_app(&client, &d, "hello").await;
    assert_eq!(created.status(), 201);
    let app: serde_json::Value = created.json().await.unwrap();
    assert_eq!(app["name"], "hello");

    let dup = create_app(&client, &d, "hello").await;
    assert_eq!(dup.status(), 409);
    let err: serde_json::Value = dup.json().await.unwrap();
    assert_eq!(err["code"], "app_exists");
    assert_eq!(err["error"], "app \"hello\" already exists");

    let bad = create_app(&client, &d, "Bad_Name").await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<serde_json::Value>().await.unwrap()["code"],
        "invalid_app_name"
    );

    let (_, list) = Api::new(&d)
        .send(reqwest::Method::GET, "/v1/apps", None)
        .await;
    let list = list.as_array().unwrap().clone();
    assert_eq!(
        list.iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["hello"]
    );

    assert_eq!(
        client
            .get(d.url("/v1/apps/hello"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .delete(d.url("/v1/apps/hello"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let gone = client.get(d.url("/v1/apps/hello")).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(
        gone.json::<serde_json::Value>().await.unwrap()["code"],
        "app_not_found"
    );
    assert_eq!(
        client
            .delete(d.url("/v1/apps/hello"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn stream_replays_then_goes_live_and_resumes_after_last_event_id() {
    let d = TestDaemon::start();
    let client = common::http_client();
    create_app(&client, &d, "one").await;

    let mut sse = Sse::connect(&d.url("/v1/events?since=0"), None).await;
    let replayed = read_until(&mut sse, |m| m.event == "app.created").await;
    assert_eq!(replayed[0].event, "daemon.started");
    let one = replayed.last().unwrap().clone();
    assert_eq!(one.data["app"], "one");
    assert_eq!(one.data["id"].as_u64(), one.id, "data carries the same id");

    create_app(&client, &d, "two").await;
    let live = sse.next(WAIT).await.unwrap();
    assert_eq!(
        (live.event.as_str(), live.data["app"].as_str()),
        ("app.created", Some("two"))
    );
    assert!(live.id > one.id);

    // A reconnect with Last-Event-ID gets exactly what came after.
    drop(sse);
    create_app(&client, &d, "three").await;
    let mut resumed = Sse::connect(&d.url("/events"), one.id).await;
    let next = resumed.next(WAIT).await.unwrap();
    assert_eq!(next.id, live.id, "no duplicate, no gap");
    let after = resumed.next(WAIT).await.unwrap();
    assert_eq!(after.data["app"], "three");
}

#[tokio::test]
async fn without_a_start_the_stream_begins_now_and_tail_replays_the_last_k() {
    let d = TestDaemon::start();
    let client = common::http_client();
    for name in ["a", "b", "c"] {
        create_app(&client, &d, name).await;
    }
    let mut now = Sse::connect(&d.url("/v1/events"), None).await;
    let mut tail = Sse::connect(&d.url("/v1/events?tail=2"), None).await;
    let t1 = tail.next(WAIT).await.unwrap();
    let t2 = tail.next(WAIT).await.unwrap();
    assert_eq!(
        (t1.data["app"].as_str(), t2.data["app"].as_str()),
        (Some("b"), Some("c"))
    );
    create_app(&client, &d, "d").await;
    assert_eq!(now.next(WAIT).await.unwrap().data["app"], "d");
    assert_eq!(tail.next(WAIT).await.unwrap().data["app"], "d");
}

#[tokio::test]
async fn filters_by_app_and_kind_prefix() {
    let d = TestDaemon::start();
    let client = common::http_client();
    let mut by_app = Sse::connect(&d.url("/v1/events?since=0&app=b"), None).await;
    let mut by_kind = Sse::connect(&d.url("/v1/events?since=0&kind=app.d"), None).await;
    create_app(&client, &d, "a").await;
    create_app(&client, &d, "b").await;
    client.delete(d.url("/v1/apps/a")).send().await.unwrap();
    let m = by_app.next(WAIT).await.unwrap();
    assert_eq!(
        (m.event.as_str(), m.data["app"].as_str()),
        ("app.created", Some("b"))
    );
    let m = by_kind.next(WAIT).await.unwrap();
    assert_eq!(
        (m.event.as_str(), m.data["app"].as_str()),
        ("app.destroyed", Some("a"))
    );
}

#[tokio::test]
async fn resume_while_events_are_produced_at_full_speed_has_no_gap_and_no_duplicate() {
    let d = TestDaemon::start();
    let client = common::http_client();
    const N: usize = 300;
    // Producers report how many apps they have created, so subscribers can join at set
    // points of the run instead of after guessed sleeps.
    let (progress, mut created) = tokio::sync::watch::channel(0usize);
    let progress = std::sync::Arc::new(progress);
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let client = client.clone();
            let url = d.url("/v1/apps");
            let progress = progress.clone();
            tokio::spawn(async move {
                for i in (p..N).step_by(4) {
                    let resp = client
                        .post(&url)
                        .json(&json!({ "name": format!("app-{i}") }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), 201);
                    progress.send_modify(|n| *n += 1);
                }
            })
        })
        .collect();
    let mut subscribers = Vec::new();
    for join_at in [0, N / 3, 2 * N / 3] {
        created.wait_for(|n| *n >= join_at).await.unwrap();
        subscribers.push(Sse::connect(&d.url("/v1/events?since=0&kind=app."), None).await);
    }
    for p in producers {
        p.await.unwrap();
    }
    let expected: BTreeSet<String> = (0..N).map(|i| format!("app-{i}")).collect();
    for mut sse in subscribers {
        let mut names = BTreeSet::new();
        let mut last = 0;
        while names.len() < N {
            let m = sse.next(WAIT).await.expect("stream ended");
            let id = m.id.unwrap();
            assert!(id > last, "ids must strictly increase: {id} after {last}");
            last = id;
            assert!(
                names.insert(m.data["app"].as_str().unwrap().to_string()),
                "duplicate {m:?}"
            );
        }
        assert_eq!(names, expected);
    }
}

#[tokio::test]
async fn ids_keep_increasing_across_restart_and_kill_9() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let client = common::http_client();
    let mut last_id = 0;
    for round in 0..3 {
        let mut d = TestDaemon::start_in(&state, &[]);
        let mut sse = Sse::connect(&d.url("/v1/events?tail=1"), None).await;
        let started = sse.next(WAIT).await.unwrap();
        assert_eq!(started.event, "daemon.started");
        assert!(
            started.id.unwrap() > last_id,
            "round {round}: id {:?} after {last_id}",
            started.id
        );
        create_app(&client, &d, &format!("r{round}")).await;
        let created = sse.next(WAIT).await.unwrap();
        last_id = created.id.unwrap();
        if round == 1 {
            d.kill9();
        } else {
            assert!(d.stop().success(), "SIGTERM exits 0");
        }
    }
    // State written before the crash survived it.
    let d = TestDaemon::start_in(&state, &[]);
    let (_, apps) = Api::new(&d)
        .send(reqwest::Method::GET, "/v1/apps", None)
        .await;
    let apps = apps.as_array().unwrap().clone();
    assert_eq!(apps.len(), 3);
}

#[tokio::test]
async fn sighup_without_a_certificate_leaves_the_daemon_serving() {
    // The default action of SIGHUP is to exit: lakeflyd takes it over from the start.
    let mut d = TestDaemon::start();
    d.hangup();
    d.hangup();
    let (status, _) = Api::new(&d)
        .send(reqwest::Method::GET, "/v1/apps", None)
        .await;
    assert_eq!(status, 200);
    let exit = d.stop();
    assert!(
        exit.success(),
        "lakeflyd ended with {exit} after SIGHUP and SIGTERM"
    );
}

#[tokio::test]
async fn a_resume_from_before_the_retained_window_starts_with_a_gap() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let client = common::http_client();
    let mut d = TestDaemon::start_in(&state, &[]);
    for i in 0..5 {
        create_app(&client, &d, &format!("g{i}")).await;
    }
    assert!(d.stop().success());
    // 1 daemon.started + 5 app.created + 1 daemon.stopping = ids 1..=7; keep the newest 2.
    let d = TestDaemon::start_in(&state, &["--events-keep", "2"]);
    let mut sse = Sse::connect(&d.url("/v1/events?since=0"), None).await;
    let gap = sse.next(WAIT).await.unwrap();
    assert_eq!(gap.event, "gap");
    assert_eq!(gap.data["data"], json!({ "lost": 5, "first_available": 6 }));
    assert_eq!(gap.id, Some(5));
    let next = sse.next(WAIT).await.unwrap();
    assert_eq!(next.id, Some(6));
}

#[tokio::test]
async fn shutdown_ends_streams_and_exits_zero() {
    let mut d = TestDaemon::start();
    let mut sse = Sse::connect(&d.url("/v1/events"), None).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = d.stop();
        (status, d)
    });
    let stopping = sse
        .next(WAIT)
        .await
        .expect("daemon.stopping before the end");
    assert_eq!(stopping.event, "daemon.stopping");
    assert!(sse.next(WAIT).await.is_none(), "the stream ends");
    let (status, _d) = status.await.unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_bad_last_event_id_is_a_400() {
    let d = TestDaemon::start();
    let resp = common::http_client()
        .get(d.url("/v1/events"))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["code"],
        "bad_request"
    );
}

#[tokio::test]
async fn a_bad_query_string_path_or_body_size_is_a_json_error_naming_what_is_wrong() {
    let d = TestDaemon::start();
    let client = common::http_client();
    create_app(&client, &d, "q").await;
    for path in [
        "/v1/events?since=yesterday",
        "/events?tail=x",
        "/v1/apps/q/logs?limit=abc",
        "/v1/apps/q/releases?limit=-1",
    ] {
        let resp = client.get(d.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let body: serde_json::Value = resp.json().await.expect("a JSON answer");
        assert_eq!(body["code"], "bad_request", "{path}: {body}");
        let parameter = path.split(['?', '=']).nth(1).unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with("invalid query string") && error.contains(parameter),
            "{path}: {body}"
        );
    }
    // A body over the limit is a 413, said the same way.
    let name = "a".repeat(3 << 20);
    let resp = client
        .post(d.url("/v1/apps"))
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // The daemon stops reading there, so the connection must not go back to the pool.
    assert_eq!(resp.headers()["connection"], "close");
    let body: serde_json::Value = resp.json().await.expect("a JSON answer");
    assert_eq!(body["code"], "body_too_large", "{body}");
    // A path whose id is no number, the same way.
    for (method, path) in [
        (reqwest::Method::POST, "/jobs/abc/trigger"),
        (reqwest::Method::GET, "/v1/jobs/abc/runs"),
    ] {
        let resp = client.request(method, d.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let body: serde_json::Value = resp.json().await.expect("a JSON answer");
        assert_eq!(body["code"], "bad_request", "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("invalid path"),
            "{path}: {body}"
        );
    }
}

#[test]
fn a_second_daemon_on_the_same_state_is_refused() {
    let d = TestDaemon::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lakeflyd"))
        .args(["--api", "127.0.0.1:0", "--state"])
        .arg(&d.state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another lakeflyd is running with state directory"),
        "{stderr}"
    );
}

/// xorshift64*: reproducible cut points.
fn cut_points(seed: u64, count: usize, max: u64) -> Vec<u64> {
    let mut x = seed;
    (0..count)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            1 + x.wrapping_mul(0x2545_f491_4f6c_dd1d) % max
        })
        .collect()
}

#[tokio::test]
async fn resuming_at_random_cut_points_under_load_and_across_a_restart_delivers_each_event_once() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let client = common::http_client();
    let mut received: Vec<u64> = Vec::new();
    let mut last: u64 = 0;
    let mut created = 0usize;
    for (phase, seed) in [(0, 11u64), (1, 23)] {
        // Phase 1 runs on a restarted daemon over the same state.
        let mut d = TestDaemon::start_in(&state, &[]);
        let url = d.url("/v1/apps");
        let producer = {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    let resp = client
                        .post(&url)
                        .json(&json!({ "name": format!("p{phase}-{i}") }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), 201);
                }
            })
        };
        created += 200;
        // Read a random number of events, drop the connection, resume from the last id.
        for cut in cut_points(seed, 12, 40) {
            let mut sse = Sse::connect(&d.url("/v1/events?kind=app."), Some(last)).await;
            for _ in 0..cut {
                if received.len() == created {
                    break;
                }
                let Some(m) = sse.next(WAIT).await else { break };
                let id = m.id.unwrap();
                assert!(
                    id > last,
                    "event {id} after {last}: duplicate or out of order"
                );
                last = id;
                received.push(id);
            }
        }
        producer.await.unwrap();
        // Drain what is left of this phase.
        let mut sse = Sse::connect(&d.url("/v1/events?kind=app."), Some(last)).await;
        while received.len() < created {
            let m = sse.next(WAIT).await.expect("stream ended");
            let id = m.id.unwrap();
            assert!(id > last, "event {id} after {last}");
            last = id;
            received.push(id);
        }
        assert!(d.stop().success());
    }
    assert_eq!(received.len(), 400, "every app.created exactly once");
}

#[test]
fn an_api_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lakeflyd"))
        .args(["--api", &addr, "--state"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen for the API on {addr}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: another program listens there"),
        "{stderr}"
    );
}

/// A port below 1024 without the capability to bind it (util-linux `setpriv` takes it
/// from the daemon, root or not) says what grants it.
#[test]
fn an_edge_port_below_1024_without_the_capability_says_what_grants_it() {
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--bounding-set", "-net_bind_service"])
        .arg(env!("CARGO_BIN_EXE_lakeflyd"))
        .args(["--api", "127.0.0.1:0", "--edge", "127.0.0.1:81", "--state"])
        .arg(state.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot listen for the edge on 127.0.0.1:81: Permission denied")
            && stderr.contains("hint: ports below 1024 take CAP_NET_BIND_SERVICE"),
        "{stderr}"
    );
}

/// The names of a process's threads that start with `prefix`, sorted.
fn threads_named(pid: u32, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the daemon's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn edge_threads_sets_how_many_event_loops_serve_the_edge() {
    let temp = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_in(&temp.path().join("state"), &["--edge-threads", "3"]);
    // A thread names itself once it runs, which may be just after the daemon is ready.
    let expected = ["lakefly-edge-1", "lakefly-edge-2", "lakefly-edge-3"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut named = threads_named(d.pid(), "lakefly-edge-");
    while named != expected && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        named = threads_named(d.pid(), "lakefly-edge-");
    }
    assert_eq!(named, expected);
    // They serve: an unknown app gets the edge's own 404 (not a refused connection).
    let answer = common::http_client()
        .get(format!("{}/", d.edge))
        .header("host", "nobody.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);

    for bad in ["0", "257", "two"] {
        let run = common::lakeflyd_in(&temp.path().join("refused"), &["--edge-threads", bad])
            .expect_code(2);
        assert!(run.stderr.contains("--edge-threads"), "{}", run.stderr);
    }
}

/// A request the API does not have (a client newer than the daemon) is a JSON error that
/// names the daemon's version, not an empty 404.
#[tokio::test]
async fn an_unknown_request_is_a_json_error_naming_the_daemons_version() {
    let d = TestDaemon::start();
    let client = common::http_client();
    let version = env!("CARGO_PKG_VERSION");
    for (method, path, status) in [
        (reqwest::Method::GET, "/v1/apps/x/nope", 404),
        (reqwest::Method::DELETE, "/v1/apps", 405),
    ] {
        let resp = client
            .request(method.clone(), d.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{method} {path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "no_route");
        assert_eq!(
            body["error"],
            format!("lakeflyd {version} has no request {method} {path}")
        );
        assert!(body["hint"].as_str().unwrap().contains("same version"));
    }
}
