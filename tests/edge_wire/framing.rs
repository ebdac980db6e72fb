//! How requests and answers are framed: head limits, pipelining, chunked bodies, HEAD and
//! HTTP/1.0, answers an app got wrong, hosts named twice or not at all, a request framed
//! two ways, a chunked body with bare line feeds.

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::common::edge::HOST;
use super::{deployed, get, Wire};

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
    // Just over the limit, whole in one write: the relay and the full server hold it all
    // before they parse it, and refuse it by its length all the same.
    for version in ["1.1", "1.0"] {
        let resp = Wire::ask(&s, &with_fields(version, 33 << 10)).await;
        assert_eq!(resp.status, 431, "HTTP/{version}: {:?}", resp.headers);
    }
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
async fn a_chunked_body_whose_lines_do_not_end_in_crlf_is_refused() {
    let (_s, mut wire) = deployed().await;
    // Bare LFs: a lenient reader ends this body after "hello" and reads a second request
    // after it; a strict one reads something else. Passed on as it came, the two would
    // disagree, so it is refused before any of it reaches the app.
    let smuggled = get("/smuggled");
    wire.send(&format!(
        "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n{smuggled}"
    ))
    .await;
    let resp = wire.response(false).await;
    assert_eq!(resp.status, 400, "{resp:?}");
    assert!(
        String::from_utf8_lossy(&resp.body).contains("malformed chunked request body"),
        "{resp:?}"
    );
    assert!(wire.closed().await, "no answer to the smuggled request");
}
