//! The edge against a real daemon: host routing with forwarding headers and typed errors,
//! streaming both ways (SSE, a 100 MB upload), compressed answers, WebSocket, no failed request through a
//! rolling deploy or a scale-down, fixed service ports across a redeploy, auto-start from
//! zero, auto-stop, statics, concurrency limits and `/metrics`.
//!
//! One test binary, its tests split by theme.

#[path = "../common/mod.rs"]
mod common;

mod autostart;
mod compression;
mod no_downtime;
mod routing;
mod service_ports;
mod streaming;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::edge::DEADLINE;

/// Polls `check` until it holds, or fails at the deadline.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < until, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a hand-written HTTP request to a raw TCP port; the whole answer, or "" when the
/// edge closed the connection without one, within `limit`.
async fn raw_get(port: u16, limit: Duration) -> String {
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    raw.write_all(b"GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    match tokio::time::timeout(limit, raw.read_to_end(&mut answer)).await {
        Ok(Ok(_)) => String::from_utf8_lossy(&answer).into_owned(),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => String::new(),
        Ok(Err(e)) => panic!("reading the answer failed: {e}"),
        Err(_) => panic!("the connection was neither answered nor closed within {limit:?}"),
    }
}
