//! Request bodies an app refuses, ignores or answers early, with and without
//! `Expect: 100-continue`; clients that stop sending or stop reading.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::edge::{Setup, DEADLINE, HOST};
use super::{deployed, get, Wire};

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
