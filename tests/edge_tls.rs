//! TLS on the edge: ports with `handlers = ["tls", "http"]` and `["tls"]` served with the
//! certificate lakeflyd was given, what a deploy says without one, and a certificate
//! that cannot be used.

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use sha2::{Digest, Sha256};

use common::edge::{Setup, DEADLINE, HOST};
use common::sse::Sse;
use common::tls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;

/// `[[services]]` on the app's port 8080: `https` with TLS and HTTP, `tls` with TLS only.
fn services(https: u16, tls: u16) -> String {
    format!(
        r#"
[[services]]
  internal_port = 8080
  protocol = "tcp"
  processes = ["app"]
  [[services.ports]]
    port = {https}
    handlers = ["tls", "http"]
  [[services.ports]]
    port = {tls}
    handlers = ["tls"]
"#
    )
}

/// Sends `request` over TLS to the edge's `port` (verified against the test CA as
/// `HOST`) and reads the whole answer.
async fn over_tls(port: u16, request: &str) -> String {
    let (answer, _) = over_tls_seeing(port, request).await;
    answer
}

/// [`over_tls`], also returning the certificate the edge presented. Every test CA is
/// trusted.
async fn over_tls_seeing(port: u16, request: &str) -> (String, CertificateDer<'static>) {
    tls::exchange(port, HOST, request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_ports_serve_https_and_tcp_in_tls() {
    let (https, tls) = (common::free_port(), common::free_port());
    let flags = tls::edge_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = Setup::new(&services(https, tls), &flags);
    s.deploy().await.expect_code(0);
    let request = format!("GET /secure HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");

    let answer = over_tls(https, &request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"path\": \"/secure\""), "{answer}");
    assert!(
        answer.contains("\"x-forwarded-proto\": \"https\""),
        "{answer}"
    );

    // The `tls` handler alone hands the plaintext to the app as it came.
    let answer = over_tls(tls, &request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"path\": \"/secure\""), "{answer}");
    assert!(!answer.contains("x-forwarded-proto"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_a_tls_port_is_reported_and_left_out() {
    let (https, tls) = (common::free_port(), common::free_port());
    let s = Setup::new(&services(https, tls), &[]);
    let run = s.deploy().await.expect_code(0);
    for port in [https, tls] {
        assert!(
            run.stderr.contains(&format!(
                "port {port}: its handlers include \"tls\" and lakeflyd has no certificate"
            )),
            "{}",
            run.stderr
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} is not bound"
        );
    }
    assert!(run.stderr.contains("--edge-tls-cert"), "{}", run.stderr);
}

#[test]
fn a_certificate_that_cannot_be_used_stops_lakeflyd_naming_the_file() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let start = |cert: &str, key: &str| {
        common::lakeflyd_in(&state, &["--edge-tls-cert", cert, "--edge-tls-key", key])
    };
    // lakeflyd refuses to start (a usage error) and says `why`.
    let refused = |cert: &str, key: &str, why: &str| {
        let run = start(cert, key).expect_code(2);
        assert!(run.stderr.contains(why), "{why:?} in:\n{}", run.stderr);
    };
    let missing = temp.path().join("missing.pem");
    refused(
        missing.to_str().unwrap(),
        &tls::fixture("key.pem"),
        &format!(
            "cannot read the edge's TLS certificate {}",
            missing.display()
        ),
    );
    // The key where the certificate goes: no certificate in it.
    refused(
        &tls::fixture("key.pem"),
        &tls::fixture("key.pem"),
        "holds no certificate",
    );
    // A key that is not the certificate's.
    refused(
        &tls::fixture("ca.pem"),
        &tls::fixture("key.pem"),
        "cannot serve the certificate",
    );
    // One without the other is a usage error.
    let run = common::lakeflyd(&["--edge-tls-cert", &tls::fixture("cert.pem")]).expect_code(2);
    assert!(run.stderr.contains("--edge-tls-key"), "{}", run.stderr);
}

/// The head of the edge's answer to `request` sent in plain HTTP to `addr`.
async fn plain_head(addr: &str, request: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(DEADLINE, tcp.read(&mut chunk))
            .await
            .expect("the answer arrives in time")
            .unwrap();
        assert!(
            n > 0,
            "closed before a head: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Sets `force_https = true` in the test app's `[http_service]`.
fn set_force_https(s: &Setup) {
    let toml = s.app.join("fly.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let text = text.replacen(
        "[http_service]\n",
        "[http_service]\n  force_https = true\n",
        1,
    );
    std::fs::write(&toml, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_https_redirects_plain_http_to_the_apps_https_port() {
    let (https, tls) = (common::free_port(), common::free_port());
    let flags = tls::edge_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = Setup::new(&services(https, tls), &flags);
    set_force_https(&s);
    s.deploy().await.expect_code(0);
    let edge = s.d.edge_addr();

    let get = format!("GET /x?y=1 HTTP/1.1\r\nHost: {HOST}:4281\r\n\r\n");
    let head = plain_head(edge, &get).await;
    assert!(head.starts_with("HTTP/1.1 301 "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("location: https://{HOST}:{https}/x?y=1\r\n")),
        "{head}"
    );
    // A method with a body keeps it through the redirect (308).
    let post = format!("POST /form HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 2\r\n\r\nhi");
    let head = plain_head(edge, &post).await;
    assert!(head.starts_with("HTTP/1.1 308 "), "{head}");
    // Over HTTPS the request is served.
    let request = format!("GET /x HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    let answer = over_tls(https, &request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_https_without_an_https_port_is_reported_and_http_served() {
    let s = Setup::new("", &[]);
    set_force_https(&s);
    let run = s.deploy().await.expect_code(0);
    assert!(
        run.stderr
            .contains("force_https is not applied: no port of this app serves HTTPS; start lakeflyd with --edge-https"),
        "{}",
        run.stderr
    );
    let get = format!("GET /x HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    let head = plain_head(s.d.edge_addr(), &get).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_serves_a_renewed_certificate_and_keeps_the_old_one_when_the_new_is_unusable() {
    // The edge reads copies, which the test then replaces as a renewal would.
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    std::fs::copy(tls::fixture("cert.pem"), &cert).unwrap();
    std::fs::copy(tls::fixture("key.pem"), &key).unwrap();
    let https = common::free_port();
    let flags = [
        "--edge-tls-cert",
        cert.to_str().unwrap(),
        "--edge-tls-key",
        key.to_str().unwrap(),
    ];
    let mut s = Setup::new(&services(https, common::free_port()), &flags);
    s.deploy().await.expect_code(0);
    let request = format!("GET /renewed HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    let leaf = |name: &str| CertificateDer::from_pem_file(tls::fixture(name)).unwrap();
    let (answer, served) = over_tls_seeing(https, &request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(served, leaf("cert.pem"));

    let mut events = Sse::connect(&s.d.url("/v1/events?since=0&kind=tls."), None).await;
    std::fs::copy(tls::fixture("cert2.pem"), &cert).unwrap();
    std::fs::copy(tls::fixture("key2.pem"), &key).unwrap();
    s.d.hangup();
    let reloaded = events
        .next(DEADLINE)
        .await
        .expect("an event for the reload");
    assert_eq!(reloaded.event, "tls.reloaded", "{:?}", reloaded.data);
    assert_eq!(reloaded.data["data"]["cert"], cert.to_str().unwrap());
    let (answer, served) = over_tls_seeing(https, &request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        served,
        leaf("cert2.pem"),
        "the renewed certificate is served"
    );

    // A key that does not match the certificate: said, and the last good pair stays.
    std::fs::copy(tls::fixture("key.pem"), &key).unwrap();
    s.d.hangup();
    let failed = events
        .next(DEADLINE)
        .await
        .expect("an event for the reload");
    assert_eq!(failed.event, "tls.reload_failed", "{:?}", failed.data);
    let error = failed.data["data"]["error"].as_str().unwrap();
    assert!(error.contains(key.to_str().unwrap()), "{error}");
    let (answer, served) = over_tls_seeing(https, &request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(served, leaf("cert2.pem"), "the last good certificate stays");
    assert!(s.d.is_running(), "SIGHUP does not stop lakeflyd");
}

/// A request body sent in `chunks` pieces of `size` bytes, its length not told in
/// advance (so the machine gets it chunked).
fn streamed_body(chunks: usize, size: usize) -> BoxBody<Bytes, Infallible> {
    let pieces = (0..chunks).map(move |i| {
        let byte = u8::try_from(i % 251).expect("below 251");
        Ok::<_, Infallible>(Frame::data(Bytes::from(vec![byte; size])))
    });
    StreamBody::new(futures_util::stream::iter(pieces)).boxed()
}

/// The JSON an answer of the test app carries.
async fn json_of(resp: hyper::Response<hyper::body::Incoming>) -> serde_json::Value {
    let body = tokio::time::timeout(DEADLINE, resp.into_body().collect())
        .await
        .expect("the answer arrives in time")
        .expect("the answer reads to its end")
        .to_bytes();
    serde_json::from_slice(&body).expect("a JSON answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_port_speaks_http2_to_clients_that_offer_it() {
    let https = common::free_port();
    let flags = tls::edge_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = Setup::new(&services(https, common::free_port()), &flags);
    s.deploy().await.expect_code(0);

    let (mut sender, _conn) = tls::h2(https, HOST, &[b"h2", b"http/1.1"]).await;
    let request = |method: &str, path: &str, body: BoxBody<Bytes, Infallible>| {
        hyper::Request::builder()
            .method(method)
            .uri(format!("https://{HOST}:{https}{path}"))
            .body(body)
            .expect("a request")
    };
    let empty = || Empty::<Bytes>::new().boxed();

    // An event stream stays open on one stream while others are answered beside it.
    let mut events = sender
        .send_request(request("GET", "/sse", empty()))
        .await
        .expect("the event stream's head");
    assert_eq!(events.version(), hyper::Version::HTTP_2);
    let first = tokio::time::timeout(DEADLINE, events.body_mut().frame())
        .await
        .expect("the first event arrives on its own")
        .expect("a frame")
        .expect("no error");
    assert_eq!(
        first.into_data().expect("data"),
        Bytes::from_static(b"id: 1\ndata: first\n\n")
    );

    let resp = sender
        .send_request(request("GET", "/secure?x=1", empty()))
        .await
        .expect("an answer beside the open stream");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    // The machine answered the edge over HTTP/1.1.
    assert_eq!(resp.headers()["via"], "1.1 lakefly");
    let seen = json_of(resp).await;
    assert_eq!(seen["path"], "/secure?x=1");
    // The machine gets HTTP/1.1 with the host the client named in the URI.
    let headers = &seen["headers"];
    assert_eq!(headers["host"], format!("{HOST}:{https}"), "{seen}");
    assert_eq!(headers["x-forwarded-host"], format!("{HOST}:{https}"));
    assert_eq!(headers["x-forwarded-proto"], "https");
    assert_eq!(headers["x-forwarded-ssl"], "on");
    assert_eq!(headers["fly-forwarded-port"], https.to_string().as_str());
    assert_eq!(headers["via"], "2 lakefly");
    assert_eq!(headers["x-real-ip"], "127.0.0.1");

    // A body whose length is not told streams through whole.
    let resp = sender
        .send_request(request("POST", "/upload", streamed_body(64, 16 * 1024)))
        .await
        .expect("an answer to the upload");
    assert_eq!(resp.status(), 200);
    let mut digest = Sha256::new();
    for i in 0..64u8 {
        digest.update(vec![i; 16 * 1024]);
    }
    let seen = json_of(resp).await;
    assert_eq!(seen["bytes"], 64 * 16 * 1024);
    assert_eq!(seen["sha256"], format!("{:x}", digest.finalize()));

    // Answers an app framed wrongly reach an HTTP/2 client as streams it can read: a
    // 204 claiming a length (which HTTP/2 takes for a broken stream), and a body framed
    // by length and by chunks.
    let resp = sender
        .send_request(request("GET", "/no-content", empty()))
        .await
        .expect("an answer");
    assert_eq!(resp.status(), 204);
    assert!(!resp.headers().contains_key("content-length"), "{resp:?}");
    let body = tokio::time::timeout(DEADLINE, resp.into_body().collect())
        .await
        .expect("in time")
        .expect("a stream that ends cleanly");
    assert!(body.to_bytes().is_empty());
    let resp = sender
        .send_request(request("GET", "/two-framings", empty()))
        .await
        .expect("an answer");
    let body = tokio::time::timeout(DEADLINE, resp.into_body().collect())
        .await
        .expect("in time")
        .expect("a stream that ends cleanly");
    assert_eq!(body.to_bytes(), Bytes::from_static(b"abc"));
    // A chunked body broken in what came with its head: a 502 saying so, not a 200
    // whose stream breaks off.
    let resp = sender
        .send_request(request("GET", "/broken-chunks", empty()))
        .await
        .expect("an answer");
    assert_eq!(resp.status(), 502);
    assert_eq!(json_of(resp).await["code"], "upstream_failed");

    // A client that offers only HTTP/1.1 is served HTTP/1.1 on the same port.
    let answer = over_tls(
        https,
        &format!("GET /old HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_goes_away_once_idle_and_not_while_a_stream_is_open() {
    let https = common::free_port();
    let mut flags = tls::edge_flags().to_vec();
    flags.extend(["--edge-idle-timeout".to_string(), "1s".to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = Setup::new(&services(https, common::free_port()), &flags);
    s.deploy().await.expect_code(0);
    let connect = || tls::h2(https, HOST, &[b"h2"]);
    let get = |path: &str| {
        hyper::Request::builder()
            .uri(format!("https://{HOST}:{https}{path}"))
            .body(Empty::<Bytes>::new())
            .expect("a request")
    };

    // An open event stream keeps the connection through several idle timeouts.
    let (mut sender, mut conn) = connect().await;
    let mut events = sender.send_request(get("/sse")).await.expect("a head");
    assert_eq!(events.status(), 200);
    let first = tokio::time::timeout(DEADLINE, events.body_mut().frame()).await;
    assert!(first.is_ok(), "the first event arrives");
    let held = tokio::time::timeout(std::time::Duration::from_secs(3), &mut conn).await;
    assert!(held.is_err(), "the connection stays while a stream is open");
    let resp = sender.send_request(get("/more")).await.expect("an answer");
    assert_eq!(resp.status(), 200);
    drop((events, resp));

    // With nothing open for a second, the edge says GOAWAY and the connection ends.
    let (mut sender, conn) = connect().await;
    let resp = sender.send_request(get("/once")).await.expect("an answer");
    assert_eq!(resp.status(), 200);
    json_of(resp).await;
    let ended = tokio::time::timeout(DEADLINE, conn)
        .await
        .expect("the idle connection ends in time");
    assert!(matches!(ended, Ok(Ok(()))), "a clean close: {ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_https_serves_every_app_by_host_name_and_force_https_redirects_there() {
    let https = common::free_port();
    let mut flags = tls::edge_flags().to_vec();
    flags.extend(["--edge-https".to_string(), format!("127.0.0.1:{https}")]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = Setup::new("", &flags);
    set_force_https(&s);
    let run = s.deploy().await.expect_code(0);
    assert!(
        !run.stderr.contains("force_https is not applied"),
        "{}",
        run.stderr
    );

    // Plain HTTP is sent to the edge's HTTPS address.
    let get = format!("GET /x?y=1 HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    let head = plain_head(s.d.edge_addr(), &get).await;
    assert!(head.starts_with("HTTP/1.1 301 "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("location: https://{HOST}:{https}/x?y=1\r\n")),
        "{head}"
    );

    // HTTP/1.1 in TLS, routed by host name; an unknown name is the edge's 404.
    let request =
        |host: &str| format!("GET /secure HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let answer = over_tls(https, &request(HOST)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\"x-forwarded-proto\": \"https\""),
        "{answer}"
    );
    let answer = over_tls(https, &request("nope.localhost")).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

    // HTTP/2 too, the host taken from the request's authority.
    let (mut sender, _conn) = tls::h2(https, HOST, &[b"h2", b"http/1.1"]).await;
    let request = hyper::Request::builder()
        .uri(format!("https://{HOST}:{https}/over-h2"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(request).await.expect("an answer");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    assert_eq!(json_of(resp).await["path"], "/over-h2");
}

#[test]
fn edge_https_without_a_certificate_is_a_usage_error() {
    let temp = tempfile::tempdir().unwrap();
    let run = common::lakeflyd_in(&temp.path().join("state"), &["--edge-https", "127.0.0.1:0"])
        .expect_code(2);
    assert!(run.stderr.contains("--edge-tls-cert"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_https_holds_the_idle_timeout_of_the_app_the_client_named() {
    let https = common::free_port();
    let mut flags = tls::edge_flags().to_vec();
    flags.extend(["--edge-https".to_string(), format!("127.0.0.1:{https}")]);
    flags.extend(["--edge-idle-timeout".to_string(), "60s".to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = Setup::new("[http_service.http_options]\n  idle_timeout = 1\n", &flags);
    s.deploy().await.expect_code(0);
    let get = |path: &str| {
        hyper::Request::builder()
            .uri(format!("https://{HOST}:{https}{path}"))
            .body(Empty::<Bytes>::new())
            .expect("a request")
    };

    // Named for the app in the handshake: its second holds, over HTTP/1.1 and HTTP/2.
    let mut stream = tls::connect(https, HOST, &[b"http/1.1"]).await;
    let request = format!("GET /kept HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("the idle connection is closed in time");
    // Closed cleanly: TLS's close_notify came first (a bare EOF is UnexpectedEof).
    assert!(closed.is_ok(), "{closed:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    let (mut sender, conn) = tls::h2(https, HOST, &[b"h2"]).await;
    let resp = sender.send_request(get("/once")).await.expect("an answer");
    assert_eq!(resp.status(), 200);
    json_of(resp).await;
    let ended = tokio::time::timeout(DEADLINE, conn)
        .await
        .expect("the idle HTTP/2 connection ends in time");
    assert!(matches!(ended, Ok(Ok(()))), "a clean close: {ended:?}");

    // Named for no app (the certificate covers `localhost` too): the edge's minute holds, and
    // requests on it are still routed by their own host name.
    let (mut sender, mut conn) = tls::h2(https, "localhost", &[b"h2"]).await;
    let held = tokio::time::timeout(std::time::Duration::from_secs(3), &mut conn).await;
    assert!(held.is_err(), "the connection outlives the app's second");
    let resp = sender
        .send_request(get("/routed"))
        .await
        .expect("an answer");
    assert_eq!(resp.status(), 200);
    assert_eq!(json_of(resp).await["path"], "/routed");
}
