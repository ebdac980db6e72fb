//! HTTP/1.1 on the wire through the edge, written and read byte by byte where a client
//! library would smooth things over: pipelined requests, chunked bodies both ways, HEAD,
//! HTTP/1.0, a request framed two ways (the smuggling shape), requests naming their host
//! twice, answers an app got wrong, and an app that hangs up kept-alive connections
//! behind the edge's back.

mod common;

use common::edge::{Setup, DEADLINE, HOST};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response as it arrived.
#[derive(Debug)]
struct Response {
    status: u16,
    /// Header names lowercased, in order.
    headers: Vec<(String, String)>,
    /// The body, de-chunked when it came chunked.
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A raw connection to the edge.
struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    async fn connect(s: &Setup) -> Self {
        Wire::connect_to(s.d.edge_addr()).await
    }

    async fn connect_to(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        Wire {
            stream,
            buf: Vec::new(),
        }
    }

    /// The answer to `raw`, sent on a connection of its own.
    async fn ask(s: &Setup, raw: &str) -> Response {
        let mut wire = Wire::connect(s).await;
        wire.send(raw).await;
        wire.response(false).await
    }

    async fn send(&mut self, raw: &str) {
        self.stream.write_all(raw.as_bytes()).await.unwrap();
    }

    /// Reads until `done` says how much of the buffer it needs; `None` if the connection
    /// closed first.
    async fn read_until(&mut self, done: impl Fn(&[u8]) -> Option<usize>) -> Option<Vec<u8>> {
        loop {
            if let Some(n) = done(&self.buf) {
                return Some(self.buf.drain(..n).collect());
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = tokio::time::timeout(DEADLINE, self.stream.read(&mut chunk))
                .await
                .expect("the edge answers in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next response; `head_request` when it answers a HEAD (no body follows).
    async fn response(&mut self, head_request: bool) -> Response {
        let head = self
            .read_until(|b| b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4))
            .await
            .expect("a response head");
        let head = String::from_utf8(head).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if head_request {
            return resp;
        }
        if resp.header("transfer-encoding") == Some("chunked") {
            loop {
                let line = self
                    .read_until(|b| b.windows(2).position(|w| w == b"\r\n").map(|i| i + 2))
                    .await
                    .expect("a chunk size");
                let size =
                    usize::from_str_radix(std::str::from_utf8(&line).unwrap().trim(), 16).unwrap();
                let chunk = self
                    .read_until(|b| (b.len() >= size + 2).then_some(size + 2))
                    .await
                    .expect("a chunk");
                if size == 0 {
                    break;
                }
                resp.body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().unwrap();
            resp.body = self
                .read_until(|b| (b.len() >= len).then_some(len))
                .await
                .expect("the body");
        } else {
            resp.body = self.read_until(|_| None).await.unwrap_or_default();
            resp.body.append(&mut self.buf);
        }
        resp
    }

    /// Whether the edge closed the connection (with nothing more to read).
    async fn closed(&mut self) -> bool {
        self.read_until(|_| None).await.is_none() && self.buf.is_empty()
    }
}

/// The test app deployed, and a raw connection to the edge (hold the `Setup`: dropping
/// it stops the daemon).
async fn deployed() -> (Setup, Wire) {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);
    let wire = Wire::connect(&s).await;
    (s, wire)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_over_64_kib_is_refused_however_it_arrives() {
    let (s, _wire) = deployed().await;
    // Two fields of `bytes` each: the app (Python's, whose limit is a 64 KiB line) takes
    // them, so a refusal is the edge's.
    let with_fields = |version: &str, bytes: usize| {
        let value = "a".repeat(bytes);
        format!(
            "GET /big-head HTTP/{version}\r\nHost: {HOST}\r\nX-A: {value}\r\nX-B: {value}\r\n\r\n"
        )
    };
    let resp = Wire::ask(&s, &with_fields("1.1", 30 << 10)).await;
    assert_eq!(resp.status, 200);
    let seen = resp.json();
    assert_eq!(
        seen["headers"]["x-b"].as_str().map(str::len),
        Some(30 << 10)
    );
    // In one write (the relay reads it whole), by the full server, and a piece at a time
    // (the relay hands it over once it holds the limit): the same answer.
    let too_big = with_fields("1.1", 50 << 10);
    let resp = Wire::ask(&s, &too_big).await;
    assert_eq!(resp.status, 431, "{resp:?}");
    let resp = Wire::ask(&s, &with_fields("1.0", 50 << 10)).await;
    assert_eq!(resp.status, 431, "{resp:?}");
    let mut trickled = Wire::connect(&s).await;
    for piece in too_big.as_bytes().chunks(8 << 10) {
        trickled.stream.write_all(piece).await.unwrap();
        trickled.stream.flush().await.unwrap();
    }
    let resp = trickled.response(false).await;
    assert_eq!(resp.status, 431, "{resp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (_s, mut wire) = deployed().await;
    // Both in one write: the second waits in the edge's buffer while the first is served.
    wire.send(&format!("{}{}", get("/first"), get("/second?x=1")))
        .await;
    assert_eq!(wire.response(false).await.json()["path"], "/first");
    assert_eq!(wire.response(false).await.json()["path"], "/second?x=1");
    // The connection is still good for more.
    wire.send(&get("/third")).await;
    let third = wire.response(false).await;
    assert_eq!(third.status, 200);
    assert_eq!(third.json()["path"], "/third");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_pass_through_in_both_directions() {
    let (_s, mut wire) = deployed().await;
    let parts = ["hello ", "chunked ", "world"];
    let mut raw =
        format!("POST /upload HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n");
    for part in parts {
        raw.push_str(&format!("{:x};note=1\r\n{part}\r\n", part.len()));
    }
    raw.push_str("0\r\nx-trailer: yes\r\n\r\n");
    // Sent in pieces that split sizes and data, as a slow client would.
    for piece in raw.as_bytes().chunks(7) {
        wire.stream.write_all(piece).await.unwrap();
    }
    let upload = wire.response(false).await;
    assert_eq!(upload.status, 200);
    let whole = parts.concat();
    assert_eq!(upload.json()["bytes"], whole.len());
    assert_eq!(
        upload.json()["sha256"],
        format!("{:x}", Sha256::digest(whole.as_bytes()))
    );

    // A chunked answer reaches the client chunked, whole, on the same connection.
    wire.send(&get("/chunked")).await;
    let download = wire.response(false).await;
    assert_eq!(download.status, 200);
    assert_eq!(download.header("transfer-encoding"), Some("chunked"));
    assert_eq!(download.header("content-length"), None);
    assert_eq!(String::from_utf8(download.body).unwrap(), "one two three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_http_1_0_requests_are_answered() {
    let (s, mut wire) = deployed().await;
    wire.send(&format!("HEAD / HTTP/1.1\r\nHost: {HOST}\r\n\r\n"))
        .await;
    let head = wire.response(true).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("12"));
    // No body followed the head: the next answer on the connection is the next request's.
    wire.send(&get("/after-head")).await;
    assert_eq!(wire.response(false).await.json()["path"], "/after-head");

    let mut old = Wire::connect(&s).await;
    old.send(&format!("GET /old HTTP/1.0\r\nHost: {HOST}\r\n\r\n"))
        .await;
    let resp = old.response(false).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["path"], "/old");
    assert!(
        old.closed().await,
        "an HTTP/1.0 exchange without keep-alive ends the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machines_broken_answers_reach_the_client_mended_or_as_502() {
    let (s, mut wire) = deployed().await;
    // A 204 that claims a body: the client is not told of one, so the next answer on
    // the connection is read as the next answer.
    wire.send(&get("/no-content")).await;
    let none = wire.response(true).await;
    assert_eq!(none.status, 204);
    assert_eq!(none.header("x-app"), Some("yes"));
    assert_eq!(none.header("content-length"), None, "{none:?}");
    assert_eq!(none.header("transfer-encoding"), None, "{none:?}");
    wire.send(&get("/after-no-content")).await;
    assert_eq!(
        wire.response(false).await.json()["path"],
        "/after-no-content"
    );

    // An answer framed by length and by chunks: the client gets the chunked body whole,
    // never the wrong length, from the relay (HTTP/1.1) and from hyper (HTTP/1.0).
    wire.send(&get("/two-framings")).await;
    let relayed = wire.response(false).await;
    assert_eq!(relayed.header("content-length"), None, "{relayed:?}");
    assert_eq!(relayed.body, b"abc");
    let full_server = Wire::ask(
        &s,
        &format!("GET /two-framings HTTP/1.0\r\nHost: {HOST}\r\n\r\n"),
    )
    .await;
    assert_ne!(
        full_server.header("content-length"),
        Some("5"),
        "{full_server:?}"
    );
    assert_eq!(full_server.body, b"abc");

    // A chunked body broken before any byte of the answer went out: the client gets a
    // 502 that says why, not a connection closed on it without a word.
    let resp = Wire::ask(&s, &get("/broken-chunks")).await;
    assert_eq!(resp.status, 502, "{resp:?}");
    let json = resp.json();
    assert_eq!(json["code"], "upstream_failed");
    let error = json["error"].as_str().unwrap();
    assert!(error.contains("malformed chunked body"), "{error}");
    // The same from the full server (HTTP/1.0 here, HTTP/2 clients alike): the break
    // came with the head, so the client is told, not cut off after a 200.
    let resp = Wire::ask(
        &s,
        &format!("GET /broken-chunks HTTP/1.0\r\nHost: {HOST}\r\n\r\n"),
    )
    .await;
    assert_eq!(resp.status, 502, "{resp:?}");
    let json = resp.json();
    assert_eq!(json["code"], "upstream_failed");
    let error = json["error"].as_str().unwrap();
    assert!(error.contains("chunk"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_naming_no_host_or_two_or_asking_for_a_tunnel_is_refused() {
    let (s, mut wire) = deployed().await;
    let resp = Wire::ask(&s, "GET /none HTTP/1.1\r\n\r\n").await;
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_eq!(resp.json()["code"], "bad_request");

    wire.send(&format!(
        "GET /two HTTP/1.1\r\nHost: {HOST}\r\nHost: other.localhost\r\n\r\n"
    ))
    .await;
    let resp = wire.response(false).await;
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_eq!(resp.json()["code"], "bad_request");

    let resp = Wire::ask(
        &s,
        &format!("CONNECT {HOST}:80 HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
    )
    .await;
    assert_eq!(resp.status, 501, "{resp:?}");

    // An absolute-form target names the host, whatever `Host` says (RFC 9112 3.2.2),
    // and the app is told the host it was routed by.
    let resp = Wire::ask(
        &s,
        &format!("GET http://{HOST}/absolute HTTP/1.1\r\nHost: other.localhost\r\n\r\n"),
    )
    .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let json = resp.json();
    assert_eq!(json["path"], "/absolute");
    assert_eq!(json["headers"]["host"], HOST);
    assert_eq!(json["headers"]["x-forwarded-host"], HOST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_framed_two_ways_is_answered_once_and_its_connection_closed() {
    let (_s, mut wire) = deployed().await;
    // By Content-Length the body is the chunked terminator plus a second request; by
    // Transfer-Encoding it ends after the terminator. Whichever a server believes, a
    // proxy that reads it the other way would pass the smuggled request on.
    let smuggled = get("/smuggled");
    let body = format!("0\r\n\r\n{smuggled}");
    wire.send(&format!(
        "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let resp = wire.response(false).await;
    assert!(
        resp.status == 200 || resp.status == 400,
        "answered as one request or refused: {resp:?}"
    );
    if resp.status == 200 {
        assert_eq!(resp.json()["bytes"], 0, "the chunked framing won");
    }
    assert!(wire.closed().await, "no answer to the smuggled request");
}

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
async fn an_app_refusing_an_upload_is_heard_while_the_client_still_sends() {
    refused_upload("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_refusing_an_upload_sent_after_100_continue_is_heard() {
    // curl's way with a large upload: the full server, not the relay, serves it.
    refused_upload("Expect: 100-continue\r\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_after_100_continue_that_is_read_keeps_its_connection() {
    let (_s, mut wire) = deployed().await;
    wire.send(&format!(
        "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    ))
    .await;
    let interim = wire
        .read_until(|b| b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4))
        .await
        .expect("an interim answer");
    assert!(interim.starts_with(b"HTTP/1.1 100 "));
    wire.send("hello").await;
    let upload = wire.response(false).await;
    assert_eq!(upload.status, 200);
    assert_eq!(upload.json()["bytes"], 5);
    assert_eq!(upload.header("connection"), None, "{:?}", upload.headers);
    wire.send(&get("/after")).await;
    assert_eq!(wire.response(false).await.json()["path"], "/after");
}

/// Uploads to an app that refuses the upload unread, with `extra` header lines, and
/// checks the app's answer arrives while the body is still being sent.
async fn refused_upload(extra: &str) {
    let (_s, wire) = deployed().await;
    let answer = upload_unread(wire, "/refuse", extra, "upload refused").await;
    // After a `100 Continue` when the client asked for one (the edge lets the body come).
    let last = answer
        .strip_prefix("HTTP/1.1 100 Continue\r\n\r\n")
        .unwrap_or(&answer);
    assert!(last.starts_with("HTTP/1.1 413 "), "{answer}");
    // The rest of the body is never read: the connection cannot carry another request.
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_neither_reads_nor_answers_an_upload_is_given_up_on() {
    let (_s, wire) = impatient().await;
    let answer = upload_unread(wire, "/ignore", "", "no progress").await;
    assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
    assert!(answer.contains("sending the request body"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_neither_reads_nor_answers_an_upload_after_100_continue_is_given_up_on() {
    // The full server's way: the machine stalling is its fault (502), not the client's
    // (408), though both run into the same limit.
    let (_s, wire) = impatient().await;
    let answer = upload_unread(wire, "/ignore", "Expect: 100-continue\r\n", "no progress").await;
    let last = answer
        .strip_prefix("HTTP/1.1 100 Continue\r\n\r\n")
        .unwrap_or(&answer);
    assert!(last.starts_with("HTTP/1.1 502 "), "{answer}");
    assert!(last.contains("upstream_failed"), "{answer}");
    assert!(last.contains("no progress for 1s"), "{answer}");
}

/// POSTs a body far larger than the socket buffers on both hops hold to `path`, with
/// `extra` header lines, and reads what comes back while it is still being sent, until
/// the answer contains `until`: an edge that only listened for the answer after the
/// whole body would wait for ever.
async fn upload_unread(wire: Wire, path: &str, extra: &str, until: &str) -> String {
    const UPLOAD: usize = 64 * 1024 * 1024;
    let (mut from_edge, mut to_edge) = wire.stream.into_split();
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {UPLOAD}\r\n{extra}\r\n");
    let sender = tokio::spawn(async move {
        to_edge.write_all(head.as_bytes()).await?;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..UPLOAD / chunk.len() {
            to_edge.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut got = Vec::new();
    let answer = loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if text.contains(until) {
            break text;
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(DEADLINE, from_edge.read(&mut chunk))
            .await
            .expect("an answer arrives while the body is still being sent")
            .expect("the answer is read before the connection closes");
        assert!(n > 0, "the edge closed without {until:?}: {text:?}");
        got.extend_from_slice(&chunk[..n]);
    };
    sender.abort();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_answering_as_it_reads_gets_the_rest_of_the_body() {
    let (_s, mut wire) = deployed().await;
    wire.send(&format!(
        "POST /duplex HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ))
    .await;
    // The answer starts before any of the body was sent ...
    let head = wire
        .read_until(|b| b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4))
        .await
        .expect("the answer's head");
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 "), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // ... and each piece of the body still reaches the app, which echoes it at once.
    for word in ["one", "two", "three", ""] {
        wire.send(&format!("{:x}\r\n{word}\r\n", word.len())).await;
        let echoed = format!("{:x}\r\n{word}\r\n", word.len());
        let got = wire
            .read_until(|b| (b.len() >= echoed.len()).then_some(echoed.len()))
            .await
            .expect("the echo of a chunk");
        assert_eq!(String::from_utf8(got).unwrap(), echoed);
    }
    assert!(wire.closed().await, "the connection ends with the exchange");
}

/// A daemon that gives up on a stalled transfer after a second, the test app deployed,
/// and a raw connection to the edge.
async fn impatient() -> (Setup, Wire) {
    let s = Setup::new("", &["--edge-stall-timeout", "1s"]);
    s.deploy().await.expect_code(0);
    let wire = Wire::connect(&s).await;
    (s, wire)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_its_body_gets_408_and_is_disconnected() {
    stalled_upload("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_its_body_after_100_continue_gets_408() {
    stalled_upload("Expect: 100-continue\r\n").await;
}

/// Sends a tenth of a body, with `extra` header lines, and no more.
async fn stalled_upload(extra: &str) {
    let (_s, mut wire) = impatient().await;
    wire.send(&format!(
        "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100\r\n{extra}\r\nten bytes!"
    ))
    .await;
    // The other 90 bytes never come: the edge tells the client, and lets go of it and
    // of the machine.
    let all = wire.read_until(|_| None).await;
    assert!(all.is_none(), "the connection is closed");
    let answer = String::from_utf8_lossy(&wire.buf).into_owned();
    let last = answer
        .strip_prefix("HTTP/1.1 100 Continue\r\n\r\n")
        .unwrap_or(&answer);
    assert!(last.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(last.contains("request_timeout"), "{answer}");
    assert!(last.contains("connection: close\r\n"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_its_answer_is_disconnected() {
    let (s, mut wire) = impatient().await;
    wire.send(&get("/big")).await;
    // The edge is serving it: the answer's head is here.
    let head = wire
        .read_until(|b| b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4))
        .await
        .expect("the answer's head");
    assert!(head.starts_with(b"HTTP/1.1 200 "));
    // The answer is far larger than the socket buffers, and nobody reads on: the edge's
    // writes stall, and it closes the connection.
    let open = |metrics: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("lakefly_edge_connections "))
            .map(|n| n.trim().to_string())
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let metrics = s.metrics().await;
        if open(&metrics).as_deref() == Some("0") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection stays open: {:?}",
            open(&metrics)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // What was sent before is there to read, then the end: never the whole answer.
    let mut body = 0;
    loop {
        let mut chunk = vec![0u8; 1 << 16];
        match wire.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body += n,
        }
    }
    assert!(body + wire.buf.len() < 64 << 20, "the whole answer arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edges_own_errors_are_pages_for_browsers_and_keep_the_connection() {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);
    s.cli(&["scale", "count", "0", "--yes", "-a", common::edge::APP])
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
        common::free_port(),
        common::free_port(),
        common::free_port(),
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
    let (hyper_port, default_port) = (common::free_port(), common::free_port());
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
