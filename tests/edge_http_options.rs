//! fly.toml's `http_options` through the edge: `h2_backend` speaks HTTP/2 without TLS to
//! the app (a Node.js `http2` server, as gRPC apps are), for HTTP/1.1 clients and for
//! HTTP/2 clients whose trailers (gRPC's status) come through, and `response.headers`
//! sets and removes headers on the app's answers.

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::daemon::TestDaemon;
use common::{edge, tls};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

/// How long anything a test waits for may take.
const DEADLINE: Duration = Duration::from_secs(30);
/// The app's host name on the edge (one the test certificate names).
const HOST: &str = "edgy.localhost";

/// An h2c server (HTTP/2 by prior knowledge, as gRPC servers are): it answers with what
/// it saw as JSON, then trailers.
const SERVER: &str = r#"
const http2 = require("http2");
const server = http2.createServer();
server.on("stream", (stream, headers) => {
  let bytes = 0;
  stream.on("data", (chunk) => { bytes += chunk.length; });
  stream.on("end", () => {
    stream.respond(
      { ":status": 200, "content-type": "application/json", "server": "node-h2", "x-app": "yes" },
      { waitForTrailers: true },
    );
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(JSON.stringify({
      method: headers[":method"],
      path: headers[":path"],
      authority: headers[":authority"] || null,
      host: headers["host"] || null,
      te: headers["te"] || null,
      proto: headers["x-forwarded-proto"] || null,
      bytes,
    }));
  });
});
server.listen(Number(process.env.PORT), "127.0.0.1");
"#;

/// The `http_options` both the host route and the HTTPS port get.
const OPTIONS: &str = r#"
    h2_backend = true
    [OPTIONS.response.headers]
      X-Frame-Options = "DENY"
      Server = false
"#;

/// Deploys the app with `https` as its HTTPS port; returns the daemon.
fn deployed(dir: &Path, https: u16) -> TestDaemon {
    let flags = tls::edge_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let d = TestDaemon::start_in(&dir.join("state"), &flags);
    let app = dir.join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("server.js"), SERVER).unwrap();
    let options = |table: &str| OPTIONS.replace("OPTIONS", table);
    let config = format!(
        r#"app = "edgy"
[processes]
  app = "node server.js"
[http_service]
  internal_port = 8080
  [http_service.http_options]{}
[[services]]
  internal_port = 8080
  protocol = "tcp"
  [[services.ports]]
    port = {https}
    handlers = ["tls", "http"]
    [services.ports.http_options]{}
"#,
        options("http_service.http_options"),
        options("services.ports.http_options"),
    );
    std::fs::write(app.join("fly.toml"), config).unwrap();
    let config = app.join("fly.toml");
    let run = common::lakefly(
        &app,
        &["--remote", &d.api, "deploy", "-c", config.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_backend_is_spoken_to_in_http2_and_answers_get_their_headers() {
    if !common::have_tool("node") {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let https = common::free_port();
    let d = deployed(temp.path(), https);

    // An HTTP/1.1 client on the host route.
    let edge: std::net::SocketAddr = d.edge_addr().parse().unwrap();
    let client = common::http_builder()
        .resolve(HOST, edge)
        .no_proxy()
        .build()
        .unwrap();
    let resp = tokio::time::timeout(
        DEADLINE,
        client
            .post(format!("http://{HOST}:{}/pkg.Svc/Call", edge.port()))
            .body(vec![7u8; 1000])
            .send(),
    )
    .await
    .expect("an answer in time")
    .expect("an answer");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert_eq!(resp.headers()["x-app"], "yes");
    assert!(
        !resp.headers().contains_key("server"),
        "removed: {:?}",
        resp.headers()
    );
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/pkg.Svc/Call");
    assert_eq!(seen["authority"], format!("{HOST}:{}", edge.port()));
    assert_eq!(
        seen["host"],
        Value::Null,
        "HTTP/2 names the host in :authority"
    );
    assert_eq!(seen["proto"], "http");
    assert_eq!(seen["bytes"], 1000);

    // An HTTP/2 client over TLS, as a gRPC client: its trailers come back.
    let (mut sender, _conn) = tls::h2(https, HOST, &[b"h2"]).await;
    let request = hyper::Request::builder()
        .method("POST")
        .uri(format!("https://{HOST}:{https}/pkg.Svc/Stream"))
        .header("te", "trailers")
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x05hello")))
        .unwrap();
    let resp = edge::h2_answer(&mut sender, request).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    let collected = tokio::time::timeout(DEADLINE, resp.into_body().collect())
        .await
        .expect("the body in time")
        .expect("the body");
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    let seen: Value = serde_json::from_slice(&collected.to_bytes()).unwrap();
    assert_eq!(seen["te"], "trailers");
    assert_eq!(seen["proto"], "https");
    assert_eq!(seen["bytes"], 10);
}

#[test]
fn bad_response_headers_are_config_errors_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fly.toml");
    std::fs::write(
        &config,
        "app = \"x\"\n[http_service]\n  internal_port = 8080\n  [http_service.http_options.response.headers]\n    \"Bad Name\" = \"v\"\n    X-Ok = \"line\\nbreak\"\n",
    )
    .unwrap();
    let run = common::lakefly(
        dir.path(),
        &["config", "validate", "-c", config.to_str().unwrap()],
    )
    .expect_code(3);
    assert!(
        run.stderr.contains("\"Bad Name\" is not a header name"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(":5:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("is not a header value"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(":6:"), "{}", run.stderr);
}
