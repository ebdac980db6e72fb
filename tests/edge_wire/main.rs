//! HTTP/1.1 on the wire through the edge, written and read byte by byte where a client
//! library would smooth things over: pipelined requests, chunked bodies both ways, HEAD,
//! HTTP/1.0, a request framed two ways (the smuggling shape), requests naming their host
//! twice, answers an app got wrong, and an app that hangs up kept-alive connections
//! behind the edge's back.
//!
//! One test binary, its tests split by theme.

#[path = "../common/mod.rs"]
mod common;

mod connections;
mod framing;
mod uploads;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::edge::{Setup, DEADLINE, HOST};

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
