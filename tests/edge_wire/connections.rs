//! Kept-alive connections on both sides: an app that hangs them up, the edge's own error
//! pages keeping them, which port they go back to, the hand-over to the full server, idle
//! timeouts, HTTP/2 without TLS.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::edge::{h2_answer, Setup, DEADLINE, HOST};
use super::{deployed, get, Wire};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_hangs_up_kept_alive_connections_loses_no_request() {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);
    // Each request is answered and then the app closes the connection without a
    // `Connection: close`, so the edge keeps a connection that is closing. It must not
    // fail the next request on it: a closed one is not used, and a request that meets
    // one closing under it is sent again on a new connection (a GET may be).
    for i in 0..50 {
        let resp = s.get(&format!("/close?i={i}")).await;
        assert_eq!(
            resp.status(),
            200,
            "request {i}: {}",
            resp.text().await.unwrap()
        );
    }
    // A POST must not be sent twice, so it is never risked on a connection that may be
    // closing: after a GET has left the edge a connection the app keeps, it takes that.
    assert_eq!(s.get("/").await.status(), 200);
    let resp = s
        .client
        .post(s.url("/close"))
        .body("once")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["bytes"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edges_own_errors_are_pages_for_browsers_and_keep_the_connection() {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);
    s.cli(&[
        "scale",
        "count",
        "0",
        "--yes",
        "-a",
        super::common::edge::APP,
    ])
    .await
    .expect_code(0);
    let mut wire = Wire::connect(&s).await;
    wire.send(&format!(
        "GET / HTTP/1.1\r\nHost: {HOST}\r\nAccept: text/html,*/*\r\n\r\n"
    ))
    .await;
    let page = wire.response(false).await;
    assert_eq!(page.status, 503);
    assert_eq!(page.header("retry-after"), Some("1"));
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(String::from_utf8(page.body)
        .unwrap()
        .starts_with("<!doctype html>"));
    // A whole request was read, so the connection goes on; a program gets JSON.
    wire.send(&format!(
        "POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 2\r\n\r\nhi"
    ))
    .await;
    let json = wire.response(false).await;
    assert_eq!(json.status, 503);
    assert_eq!(json.json()["code"], "no_healthy_machine");

    // An upload the edge will not read: the answer still reaches the client (its unread
    // bytes must not reset the connection first), and the connection ends.
    let mut upload = Wire::connect(&s).await;
    upload
        .send(&format!(
            "POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\n\r\n",
            64 << 20
        ))
        .await;
    // The client goes on sending while it waits, as an uploading client does.
    let (mut reader, mut writer) = upload.stream.into_split();
    let sending = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..128 {
            if writer.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(DEADLINE, reader.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("the answer arrives before any reset");
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&chunk[..n]);
    }
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    sending.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_connections_go_back_to_the_port_they_came_from() {
    // One machine serving two internal ports, each behind a `[[services]]` HTTP port:
    // 8080 ($PORT) and another, as an admin service has. Connections the edge keeps for
    // one must never carry a request for the other.
    let (extra, web, admin) = (
        super::common::free_port(),
        super::common::free_port(),
        super::common::free_port(),
    );
    let s = Setup::new(
        &format!(
            r#"
[env]
  EXTRA_PORT = "{extra}"

[[services]]
  internal_port = 8080
  protocol = "tcp"
  processes = ["app"]
  [[services.ports]]
    port = {web}
    handlers = ["http"]

[[services]]
  internal_port = {extra}
  protocol = "tcp"
  processes = ["app"]
  [[services.ports]]
    port = {admin}
    handlers = ["http"]
"#
        ),
        &[],
    );
    s.deploy().await.expect_code(0);
    let get = |port: u16| {
        let client = s.client.clone();
        async move {
            let url = format!("http://127.0.0.1:{port}/");
            let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            body["port"].as_u64().unwrap()
        }
    };
    for _ in 0..4 {
        assert_ne!(
            get(web).await,
            u64::from(extra),
            "a request for 8080 reached {extra}"
        );
        assert_eq!(
            get(admin).await,
            u64::from(extra),
            "a request for {extra} went elsewhere"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_handed_to_the_full_server_midway_loses_no_byte() {
    let (_s, mut wire) = deployed().await;
    // In one write: a request the relay serves, one it leaves to hyper (an unknown app),
    // and one more, which hyper must find in the bytes the relay had already read.
    wire.send(&format!(
        "{}GET / HTTP/1.1\r\nHost: nope.localhost\r\n\r\n{}",
        get("/relayed"),
        get("/after")
    ))
    .await;
    assert_eq!(wire.response(false).await.json()["path"], "/relayed");
    let unknown = wire.response(false).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["code"], "unknown_app");
    assert_eq!(wire.response(false).await.json()["path"], "/after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let s = Setup::new("", &["--edge-idle-timeout", "1s"]);
    s.deploy().await.expect_code(0);
    // The relay's connection, and one handed to the full server (HTTP/1.0 keep-alive).
    let requests = [
        get("/relayed"),
        format!("GET /handed HTTP/1.0\r\nHost: {HOST}\r\nConnection: keep-alive\r\n\r\n"),
    ];
    for request in requests {
        let mut wire = Wire::connect(&s).await;
        wire.send(&request).await;
        let resp = wire.response(false).await;
        assert_eq!(resp.status, 200, "{request}");
        assert_ne!(resp.header("connection"), Some("close"), "{request}");
        assert!(
            wire.closed().await,
            "{request}: closed once idle for a second"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_http_options_idle_timeout_replaces_the_edges_own() {
    let (hyper_port, default_port) = (super::common::free_port(), super::common::free_port());
    // A second on the host route (the relay) and on a port whose answers get a header
    // (so hyper serves it); the other port, with no idle_timeout of its own, keeps the
    // daemon's minute.
    let s = Setup::new(
        &format!(
            "[http_service.http_options]\n  idle_timeout = 1\n\
             [[services]]\n  internal_port = 8080\n  processes = [\"app\"]\n\
             [[services.ports]]\n  port = {hyper_port}\n  handlers = [\"http\"]\n\
             [services.ports.http_options]\n  idle_timeout = 1\n\
             [services.ports.http_options.response.headers]\n  X-Served-By = \"hyper\"\n\
             [[services.ports]]\n  port = {default_port}\n  handlers = [\"http\"]\n"
        ),
        &["--edge-idle-timeout", "60s"],
    );
    s.deploy().await.expect_code(0);
    let mut kept = Wire::connect_to(&format!("127.0.0.1:{default_port}")).await;
    kept.send(&get("/before")).await;
    assert_eq!(kept.response(false).await.status, 200);
    // The relay's connection, one it hands to the full server (HTTP/1.0 keep-alive) and
    // one the full server has from the start.
    let handed = format!("GET /first HTTP/1.0\r\nHost: {HOST}\r\nConnection: keep-alive\r\n\r\n");
    for (addr, request, served_by) in [
        (s.d.edge_addr().to_string(), get("/first"), None),
        (s.d.edge_addr().to_string(), handed, None),
        (
            format!("127.0.0.1:{hyper_port}"),
            get("/first"),
            Some("hyper"),
        ),
    ] {
        let mut wire = Wire::connect_to(&addr).await;
        wire.send(&request).await;
        let resp = wire.response(false).await;
        assert_eq!(resp.status, 200, "{addr}");
        assert_eq!(resp.header("x-served-by"), served_by, "{addr}");
        assert_ne!(resp.header("connection"), Some("close"), "{addr}");
        assert!(wire.closed().await, "{addr}: closed once idle for a second");
    }
    // Idle for longer than the app's second by now, and still open.
    kept.send(&get("/after")).await;
    let resp = kept.response(false).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["path"], "/after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_connection_that_opens_with_http2s_preface_is_served_over_http2() {
    // h2c with prior knowledge, as a gRPC client without TLS connects.
    let (_s, wire) = deployed().await;
    let io = hyper_util::rt::TokioIo::new(wire.stream);
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .expect("an HTTP/2 handshake");
    tokio::spawn(conn);
    for path in ["/over-h2c", "/again"] {
        let request = hyper::Request::get(format!("http://{HOST}{path}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = h2_answer(&mut sender, request).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["path"], path, "{json}");
    }
}
