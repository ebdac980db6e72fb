//! Routing by host with forwarding headers and typed errors, pristine answers, statics,
//! concurrency limits, and a machine refusing connections skipped.

use std::time::Instant;

use serde_json::Value;

use super::common::edge::{Setup, APP, DEADLINE, HOST};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_route_by_host_with_forwarding_headers_and_typed_errors() {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);

    let resp = s.get("/echo?x=1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["via"], "1.1 lakefly");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "/echo?x=1");
    let headers = &body["headers"];
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-real-ip"], "127.0.0.1");
    assert_eq!(headers["fly-client-ip"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-ssl"], "off");
    assert_eq!(
        headers["x-forwarded-host"],
        format!("{HOST}:{}", s.edge_port())
    );
    let port = s.edge_port().to_string();
    assert_eq!(headers["fly-forwarded-port"], port.as_str());
    assert_eq!(headers["x-forwarded-port"], port.as_str());
    assert_eq!(headers["via"], "1.1 lakefly");
    assert_eq!(
        headers["forwarded"],
        format!("for=127.0.0.1;proto=http;host=\"{HOST}:{port}\"")
    );
    // A client's own `Forwarded` (read first by Spring and Rack 3) is replaced, as its
    // X-Forwarded-Proto and Fly-Client-IP are.
    let spoofed = super::common::http_client()
        .get(format!("http://{}/echo", s.d.edge_addr()))
        .header("Host", HOST)
        .header("Forwarded", "for=6.6.6.6;proto=https")
        .send()
        .await
        .unwrap();
    let body: Value = spoofed.json().await.unwrap();
    assert_eq!(
        body["headers"]["forwarded"],
        format!("for=127.0.0.1;proto=http;host=\"{HOST}\""),
        "{body}"
    );

    // An unknown app: 404, JSON for programs, a page for browsers.
    let other = super::common::http_client();
    let resp = other
        .get(format!("http://{}/", s.d.edge_addr()))
        .header("Host", "nope.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "unknown_app");
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");
    let resp = other
        .get(format!("http://{}/", s.d.edge_addr()))
        .header("Host", "nope.localhost")
        .header("Accept", "text/html,*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().starts_with("<!doctype html>"));

    // A machine that hangs up without answering: tried again, then 502.
    let resp = s.get("/drop").await;
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "upstream_failed");
    assert!(
        body["error"].as_str().unwrap().contains("machine"),
        "{body}"
    );
    // The machine still serves everything else.
    assert_eq!(s.get("/").await.status(), 200);

    // No healthy machine: 503 with Retry-After.
    s.cli(&["scale", "count", "0", "--yes", "-a", APP])
        .await
        .expect_code(0);
    let resp = s.get("/").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "no_healthy_machine");

    // What the edge answered is in /metrics.
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(r#"lakefly_edge_requests_total{app="edgy",status="200"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"lakefly_edge_requests_total{app="edgy",status="503"} 1"#),
        "{metrics}"
    );
    // A status between two others on one connection is counted in its own series.
    assert!(
        metrics.contains(r#"lakefly_edge_requests_total{app="edgy",status="502"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("lakefly_edge_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("lakefly_edge_connections"), "{metrics}");
    // Names no app has are counted together, not each as a series of its own.
    assert!(
        metrics.contains(r#"lakefly_edge_requests_total{app="",status="404"} 2"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"app="nope""#), "{metrics}");

    // A destroyed app's series go with it.
    s.cli(&["apps", "destroy", APP, "--yes"])
        .await
        .expect_code(0);
    let metrics = s.metrics().await;
    assert!(!metrics.contains(&format!(r#"app="{APP}""#)), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pristine_apps_responses_get_no_header_from_the_edge() {
    let s = Setup::new(
        "[http_service.http_options.response]\n  pristine = true\n",
        &[],
    );
    s.deploy().await.expect_code(0);
    let resp = s.get("/echo").await;
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("via"), "{:?}", resp.headers());
    // What the machine is told is the same as for any app.
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["via"], "1.1 lakefly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statics_are_served_from_the_release_and_other_paths_reach_the_app() {
    let s = Setup::new(
        "[[statics]]\n  guest_path = \"/app/public\"\n  url_prefix = \"/static/\"\n",
        &[],
    );
    std::fs::create_dir(s.app.join("public")).unwrap();
    std::fs::write(s.app.join("public/site.css"), "body { color: teal }\n").unwrap();
    s.deploy().await.expect_code(0);
    let resp = s.get("/static/site.css").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(resp.text().await.unwrap(), "body { color: teal }\n");
    let resp = s.get("/static/missing.css").await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["path"], "/static/missing.css",
        "falls through to the app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_hard_limit_of_every_machine_a_request_gets_503() {
    let s = Setup::new("", &[]);
    let config = s.app.join("fly.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "  processes = [\"app\"]\n",
        "  processes = [\"app\"]\n  [http_service.concurrency]\n    type = \"requests\"\n    soft_limit = 1\n    hard_limit = 1\n",
    );
    std::fs::write(&config, text).unwrap();
    s.deploy().await.expect_code(0);
    // One request holds the only machine's only slot.
    let held = {
        let (client, url) = (s.client.clone(), s.url("/hold"));
        tokio::spawn(async move { client.get(url).send().await })
    };
    // Until the held request has its slot, others are served; then they are refused.
    let mut resp = s.get("/").await;
    let until = Instant::now() + DEADLINE;
    while resp.status() == 200 && Instant::now() < until {
        resp = s.get("/").await;
    }
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "over_capacity");
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_that_refuses_connections_is_skipped_for_another() {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);
    // A second machine of the same group that passes its check on another port but never
    // listens on $PORT: every request the edge sends it fails to connect.
    let health_port = super::common::free_port();
    let broken = format!("exec python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"127.0.0.1\", {health_port})); s.listen(8); time.sleep(3600)'");
    let id = s.add_machine_checked_on(&broken, health_port).await;
    // Requests rotate over both machines; none fails.
    let mut machines = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let resp = s.get("/").await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        machines.insert(body["machine"].as_str().unwrap().to_string());
    }
    assert_eq!(
        machines.len(),
        1,
        "only the good machine answered: {machines:?}"
    );
    assert!(!machines.contains(&id));
}
