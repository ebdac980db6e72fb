//! Answers compressed as Fly's proxy compresses them: zstd or gzip by the client's
//! `Accept-Encoding`, a streamed answer still part by part, clients that ask for nothing
//! left alone, and `http_options.compress = false` honoured (event streams, never
//! compressed, are `streaming.rs`'s).

use std::io::Write;

use super::common::edge::{Setup, DEADLINE, HOST};

/// What `/page` serves.
fn page() -> Vec<u8> {
    b"<p>hello, edge</p>\n".repeat(300)
}

/// GET `path` through the edge with `Accept-Encoding: accept` (none when empty).
async fn get(s: &Setup, path: &str, accept: &str) -> reqwest::Response {
    let mut req = s.client.get(s.url(path));
    if !accept.is_empty() {
        req = req.header("accept-encoding", accept);
    }
    req.send().await.unwrap()
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_is_compressed_as_the_client_asks_and_left_alone_for_others() {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);

    let resp = get(&s, "/page", "gzip, deflate, br").await;
    assert_eq!(header(&resp, "content-encoding"), Some("gzip"));
    assert_eq!(header(&resp, "vary"), Some("Accept-Encoding"));
    assert_eq!(header(&resp, "etag"), Some("W/\"page-1\""));
    assert_eq!(header(&resp, "content-length"), None);
    let body = resp.bytes().await.unwrap();
    assert!(body.len() < page().len() / 10, "{} bytes", body.len());
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut decoded).unwrap();
    assert_eq!(decoded, page());

    let resp = get(&s, "/page", "gzip, deflate, br, zstd").await;
    assert_eq!(header(&resp, "content-encoding"), Some("zstd"));
    let body = resp.bytes().await.unwrap();
    assert_eq!(zstd::decode_all(&body[..]).unwrap(), page());

    // Asked for nothing (the relay's path), or for what the edge does not make: as sent.
    for accept in ["", "br", "identity"] {
        let resp = get(&s, "/page", accept).await;
        assert_eq!(header(&resp, "content-encoding"), None, "{accept:?}");
        assert_eq!(header(&resp, "etag"), Some("\"page-1\""), "{accept:?}");
        assert_eq!(resp.bytes().await.unwrap(), page(), "{accept:?}");
    }

    // Short answers are sent as they are.
    let resp = get(&s, "/health", "gzip").await;
    assert_eq!(header(&resp, "content-encoding"), None);
    assert_eq!(resp.bytes().await.unwrap(), "ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_still_arrives_part_by_part() {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);

    // The app sends its second part a minute later: the first decodes on its own.
    let mut resp = get(&s, "/trickle", "gzip").await;
    assert_eq!(header(&resp, "content-encoding"), Some("gzip"));
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    let first = b"first part\n".repeat(100);
    while decoder.get_ref().len() < first.len() {
        let chunk = tokio::time::timeout(DEADLINE, resp.chunk())
            .await
            .expect("the first part arrives before the answer ends")
            .unwrap()
            .expect("the answer goes on");
        decoder.write_all(&chunk).unwrap();
        decoder.flush().unwrap();
    }
    assert_eq!(decoder.get_ref(), &first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_servers_answers_are_compressed_too() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);
    // HTTP/1.0 is the full server's (hyper's) to answer, not the relay's.
    let mut stream = tokio::net::TcpStream::connect(s.d.edge_addr())
        .await
        .unwrap();
    let request = format!("GET /page HTTP/1.0\r\nHost: {HOST}\r\nAccept-Encoding: gzip\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("the answer ends")
        .unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&answer[split + 4..]),
        &mut decoded,
    )
    .unwrap();
    assert_eq!(decoded, page());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compress_false_sends_answers_as_the_app_wrote_them() {
    let s = Setup::new("[http_service.http_options]\n  compress = false\n", &[]);
    s.deploy().await.expect_code(0);
    let resp = get(&s, "/page", "gzip, zstd").await;
    assert_eq!(header(&resp, "content-encoding"), None);
    assert_eq!(resp.bytes().await.unwrap(), page());
}
