//! Bodies streamed both ways: SSE event by event, a WebSocket echo, a 100 MB upload
//! without the daemon growing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::edge::{Setup, DEADLINE, HOST};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_response_arrives_event_by_event() {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);
    // Asked as a browser asks, taking compressed answers: an event stream is never one.
    let req = s
        .client
        .get(s.url("/sse"))
        .header("accept-encoding", "gzip, zstd");
    let mut resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-encoding"), None);
    // The app sends the second event a minute later: the first arrives on its own.
    let chunk = tokio::time::timeout(DEADLINE, resp.chunk())
        .await
        .expect("the first event arrives before the response ends")
        .unwrap()
        .unwrap();
    assert_eq!(&chunk[..], b"id: 1\ndata: first\n\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_echo_works_through_the_edge() {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);
    let mut stream = tokio::net::TcpStream::connect(s.d.edge_addr())
        .await
        .unwrap();
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "connection closed during the handshake: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    // One masked text frame, "hello".
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | 5];
    frame.extend_from_slice(&mask);
    frame.extend(b"hello".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).await.unwrap();
    let mut echo = [0u8; 7];
    tokio::time::timeout(DEADLINE, stream.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"\x81\x05hello");
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_upload_streams_through_without_growing_the_daemon() {
    use sha2::{Digest, Sha256};
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);
    // Warm up the edge's connection pool and allocations first.
    assert_eq!(s.get("/").await.status(), 200);
    let before = rss_kib(s.d.pid());

    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 100;
    let chunk: bytes::Bytes = (0..CHUNK)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let mut hasher = Sha256::new();
    for _ in 0..CHUNKS {
        hasher.update(&chunk);
    }
    let expected = format!("{:x}", hasher.finalize());
    let peak = Arc::new(AtomicUsize::new(0));
    let body = {
        let (chunk, peak, pid) = (chunk.clone(), peak.clone(), s.d.pid());
        futures_util::stream::iter((0..CHUNKS).map(move |i| {
            if i % 10 == 0 {
                peak.fetch_max(rss_kib(pid) as usize, Ordering::AcqRel);
            }
            Ok::<_, std::io::Error>(chunk.clone())
        }))
    };
    let resp = s
        .client
        .post(s.url("/upload"))
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["bytes"], (CHUNK * CHUNKS) as u64);
    assert_eq!(answer["sha256"], expected);
    let peak = (peak.load(Ordering::Acquire) as u64).max(rss_kib(s.d.pid()));
    let growth_mib = peak.saturating_sub(before) / 1024;
    assert!(
        growth_mib < 16,
        "daemon RSS grew by {growth_mib} MiB while 100 MiB streamed through"
    );
}
