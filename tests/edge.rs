//! The edge against a real daemon: host routing with forwarding headers and typed errors,
//! streaming both ways (SSE, a 100 MB upload), WebSocket, no failed request through a
//! rolling deploy or a scale-down, fixed service ports across a redeploy, auto-start from
//! zero, auto-stop, statics, concurrency limits and `/metrics`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::daemon::TestDaemon;
use common::edge::{Setup, APP, DEADLINE, HOST};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends GETs through `url` from `workers` loops until `stop`, counting every answer and
/// remembering each failure.
fn request_loop(
    client: reqwest::Client,
    url: String,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<Vec<String>>) {
    let done = Arc::new(AtomicUsize::new(0));
    let counter = done.clone();
    let handle = tokio::spawn(async move {
        let loops = (0..workers).map(|_| {
            let (client, url, stop, counter) =
                (client.clone(), url.clone(), stop.clone(), counter.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Acquire) {
                    match client.get(&url).send().await {
                        Ok(resp) if resp.status() == 200 => {
                            if let Err(e) = resp.bytes().await {
                                failures.push(format!("body: {e}"));
                            }
                        }
                        Ok(resp) => {
                            let status = resp.status();
                            failures.push(format!(
                                "{status}: {}",
                                resp.text().await.unwrap_or_default()
                            ));
                        }
                        Err(e) => failures.push(format!("request: {e}")),
                    }
                    counter.fetch_add(1, Ordering::AcqRel);
                }
                failures
            })
        });
        let mut failures = Vec::new();
        for handle in futures_util::future::join_all(loops).await {
            failures.extend(handle.unwrap());
        }
        failures
    });
    (done, handle)
}

/// Waits until `done` reaches `n`, or fails at the deadline.
async fn wait_for_count(done: &AtomicUsize, n: usize) {
    let until = Instant::now() + DEADLINE;
    while done.load(Ordering::Acquire) < n {
        assert!(
            Instant::now() < until,
            "only {} requests in {DEADLINE:?}",
            done.load(Ordering::Acquire)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_route_by_host_with_forwarding_headers_and_typed_errors() {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);

    let resp = s.get("/echo?x=1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["via"], "1.1 lakefly");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "/echo?x=1");
    let headers = &body["headers"];
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-real-ip"], "127.0.0.1");
    assert_eq!(headers["fly-client-ip"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-ssl"], "off");
    assert_eq!(
        headers["x-forwarded-host"],
        format!("{HOST}:{}", s.edge_port())
    );
    let port = s.edge_port().to_string();
    assert_eq!(headers["fly-forwarded-port"], port.as_str());
    assert_eq!(headers["x-forwarded-port"], port.as_str());
    assert_eq!(headers["via"], "1.1 lakefly");

    // An unknown app: 404, JSON for programs, a page for browsers.
    let other = common::http_client();
    let resp = other
        .get(format!("http://{}/", s.d.edge_addr()))
        .header("Host", "nope.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "unknown_app");
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");
    let resp = other
        .get(format!("http://{}/", s.d.edge_addr()))
        .header("Host", "nope.localhost")
        .header("Accept", "text/html,*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().starts_with("<!doctype html>"));

    // A machine that hangs up without answering: tried again, then 502.
    let resp = s.get("/drop").await;
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "upstream_failed");
    assert!(
        body["error"].as_str().unwrap().contains("machine"),
        "{body}"
    );
    // The machine still serves everything else.
    assert_eq!(s.get("/").await.status(), 200);

    // No healthy machine: 503 with Retry-After.
    s.cli(&["scale", "count", "0", "--yes", "-a", APP])
        .await
        .expect_code(0);
    let resp = s.get("/").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "no_healthy_machine");

    // What the edge answered is in /metrics.
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(r#"lakefly_edge_requests_total{app="edgy",status="200"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"lakefly_edge_requests_total{app="edgy",status="503"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("lakefly_edge_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("lakefly_edge_connections"), "{metrics}");
    // Names no app has are counted together, not each as a series of its own.
    assert!(
        metrics.contains(r#"lakefly_edge_requests_total{app="",status="404"} 2"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"app="nope""#), "{metrics}");

    // A destroyed app's series go with it.
    s.cli(&["apps", "destroy", APP, "--yes"])
        .await
        .expect_code(0);
    let metrics = s.metrics().await;
    assert!(!metrics.contains(&format!(r#"app="{APP}""#)), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pristine_apps_responses_get_no_header_from_the_edge() {
    let s = Setup::new(
        "[http_service.http_options.response]\n  pristine = true\n",
        &[],
    );
    s.deploy().await.expect_code(0);
    let resp = s.get("/echo").await;
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("via"), "{:?}", resp.headers());
    // What the machine is told is the same as for any app.
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["via"], "1.1 lakefly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_response_arrives_event_by_event() {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);
    let mut resp = s.get("/sse").await;
    assert_eq!(resp.status(), 200);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_through_a_rolling_deploy_an_app_restart_or_a_scale_down() {
    let s = Setup::new("[deploy]\n  strategy = \"rolling\"\n", &[]);
    s.deploy().await.expect_code(0);
    s.cli(&["scale", "count", "2", "--yes", "-a", APP])
        .await
        .expect_code(0);
    let stop = Arc::new(AtomicBool::new(false));
    // Quick requests, and slow ones that a stop without draining would cut mid-body.
    let (done, loops) = request_loop(s.client.clone(), s.url("/"), 4, stop.clone());
    let (slow_done, slow_loops) = request_loop(s.client.clone(), s.url("/slow"), 4, stop.clone());
    wait_for_count(&done, 50).await;
    s.deploy().await.expect_code(0);
    // `apps restart`: the same machines, new processes, one at a time.
    let before = s.status().await;
    let restarted = s
        .cli(&["apps", "restart", APP, "--json"])
        .await
        .expect_code(0);
    let ids_pids = |machines: &Value| -> Vec<(String, u64)> {
        let mut found: Vec<(String, u64)> = (machines.as_array().unwrap().iter())
            .map(|m| {
                (
                    m["id"].as_str().unwrap().to_string(),
                    m["pid"].as_u64().unwrap(),
                )
            })
            .collect();
        found.sort();
        found
    };
    let (before, after) = (ids_pids(&before["machines"]), ids_pids(&restarted.json()));
    assert_eq!(before.len(), 2, "{before:?}");
    for ((id_before, pid_before), (id_after, pid_after)) in before.iter().zip(&after) {
        assert_eq!(id_before, id_after);
        assert_ne!(
            pid_before, pid_after,
            "machine {id_after} was not restarted"
        );
    }
    let after_deploy = done.load(Ordering::Acquire);
    s.cli(&["scale", "count", "1", "--yes", "-a", APP])
        .await
        .expect_code(0);
    wait_for_count(&done, after_deploy.max(500) + 50).await;
    stop.store(true, Ordering::Release);
    let mut failures = loops.await.unwrap();
    failures.extend(slow_loops.await.unwrap());
    let total = done.load(Ordering::Acquire) + slow_done.load(Ordering::Acquire);
    assert!(total >= 500, "only {total} requests");
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let status = s.status().await;
    let machines = status["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 1, "{machines:?}");
    assert_eq!(machines[0]["release_version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_service_port_keeps_answering_across_a_redeploy() {
    let (http_port, tcp_port) = (common::free_port(), common::free_port());
    let s = Setup::new(
        &format!(
            "[[services]]\n  protocol = \"tcp\"\n  internal_port = 8080\n  processes = [\"app\"]\n\
             [[services.ports]]\n  port = {http_port}\n  handlers = [\"http\"]\n\
             [[services.ports]]\n  port = {tcp_port}\n"
        ),
        &[],
    );
    s.deploy().await.expect_code(0);
    let direct = common::http_builder().no_proxy().build().unwrap();
    let url = format!("http://127.0.0.1:{http_port}/fixed");
    let resp = direct.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // The port names the app, yet HTTP/1.1 must name a host (RFC 9112 3.2).
    let mut hostless = tokio::net::TcpStream::connect(("127.0.0.1", http_port))
        .await
        .unwrap();
    hostless
        .write_all(b"GET /fixed HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut refused = Vec::new();
    tokio::time::timeout(DEADLINE, hostless.read_to_end(&mut refused))
        .await
        .expect("answered in time")
        .unwrap();
    let refused = String::from_utf8_lossy(&refused);
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    // The raw TCP port carries any bytes: here, an HTTP request written by hand.
    let answer = raw_get(tcp_port, DEADLINE).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"path\": \"/raw\""), "{answer}");
    // `status` lists the host route, then both ports by what they speak.
    let urls = s.status().await["urls"].clone();
    let mut by_port = [
        (http_port, format!("http://{HOST}:{http_port}/")),
        (tcp_port, format!("tcp://{HOST}:{tcp_port}")),
    ];
    by_port.sort();
    let host_route = format!("http://{HOST}:{}/", s.edge_port());
    let expected: Vec<&String> = std::iter::once(&host_route)
        .chain(by_port.iter().map(|(_, url)| url))
        .collect();
    assert_eq!(urls, serde_json::json!(expected));

    let stop = Arc::new(AtomicBool::new(false));
    let (done, loops) = request_loop(direct, url, 2, stop.clone());
    wait_for_count(&done, 20).await;
    s.deploy().await.expect_code(0);
    let after = done.load(Ordering::Acquire);
    wait_for_count(&done, after + 20).await;
    stop.store(true, Ordering::Release);
    let failures = loops.await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_tcp_port_with_no_machine_closes_at_once_or_auto_starts_one() {
    let tcp_port = common::free_port();
    let service = |auto_start: bool| {
        format!(
            "[[services]]\n  protocol = \"tcp\"\n  internal_port = 8080\n  processes = [\"app\"]\n  \
             auto_start_machines = {auto_start}\n[[services.ports]]\n  port = {tcp_port}\n"
        )
    };
    let s = Setup::new(&service(false), &[]);
    s.deploy().await.expect_code(0);
    assert!(raw_get(tcp_port, DEADLINE)
        .await
        .starts_with("HTTP/1.1 200"));
    s.cli(&["scale", "count", "0", "--yes", "-a", APP])
        .await
        .expect_code(0);
    // No machine could become healthy: closed at once, well before the 10 s a
    // connection waits for a machine that is starting.
    assert_eq!(raw_get(tcp_port, Duration::from_secs(5)).await, "");

    let config = s.app.join("fly.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&service(false), &service(true));
    std::fs::write(&config, text).unwrap();
    s.deploy().await.expect_code(0);
    assert!(s.status().await["machines"].as_array().unwrap().is_empty());
    let answer = raw_get(tcp_port, DEADLINE).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"path\": \"/raw\""), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_proto_port_tells_the_app_who_connected() {
    let (echo, v1, v2) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let s = Setup::new(
        &format!(
            r#"
[env]
  ECHO_PORT = "{echo}"

[[services]]
  internal_port = {echo}
  protocol = "tcp"
  processes = ["app"]
  [[services.ports]]
    port = {v1}
    handlers = ["proxy_proto"]
  [[services.ports]]
    port = {v2}
    handlers = ["proxy_proto"]
    proxy_proto_options = {{ version = "v2" }}
"#
        ),
        &[],
    );
    s.deploy().await.expect_code(0);
    // What comes back on a connection to `port` after "hello\n": the app echoes what it
    // read, header included; `header_len` gives the header's length from the client's
    // port and the edge's.
    let echoed = |port: u16, header_len: fn(u16, u16) -> usize| async move {
        let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let client = raw.local_addr().unwrap().port();
        raw.write_all(b"hello\n").await.unwrap();
        let mut got = vec![0u8; header_len(client, port) + 6];
        tokio::time::timeout(DEADLINE, raw.read_exact(&mut got))
            .await
            .expect("the echo arrives in time")
            .unwrap();
        (client, got)
    };
    // "PROXY TCP4 127.0.0.1 127.0.0.1 <client> <port>\r\n"
    let v1_len = |client: u16, port: u16| 34 + client.to_string().len() + port.to_string().len();
    let (client, got) = echoed(v1, v1_len).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with(&format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {client} {v1}\r\nhello"
        )),
        "{text:?}"
    );

    let (client, got) = echoed(v2, |_, _| 28).await;
    assert_eq!(&got[..12], b"\r\n\r\n\0\r\nQUIT\n");
    assert_eq!(&got[12..16], &[0x21, 0x11, 0x00, 0x0c]);
    assert_eq!(&got[16..24], &[127, 0, 0, 1, 127, 0, 0, 1]);
    assert_eq!(&got[24..26], &client.to_be_bytes());
    assert_eq!(&got[26..28], &v2.to_be_bytes());
    assert_eq!(&got[28..], b"hello\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_port_in_use_fails_the_deploy_naming_it_and_the_app() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let s = Setup::new(
        &format!(
            "[[services]]\n  protocol = \"tcp\"\n  internal_port = 8080\n\
             [[services.ports]]\n  port = {port}\n  handlers = [\"http\"]\n"
        ),
        &[],
    );
    let run = s.deploy().await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("port {port} of app {APP}")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("in use"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_an_app_scaled_to_zero_with_auto_start_is_served() {
    let s = Setup::new("", &[]);
    let config = s.app.join("fly.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "  processes = [\"app\"]\n",
        "  processes = [\"app\"]\n  auto_start_machines = true\n",
    );
    std::fs::write(&config, text).unwrap();
    s.deploy().await.expect_code(0);
    s.cli(&["scale", "count", "0", "--yes", "-a", APP])
        .await
        .expect_code(0);
    assert!(s.status().await["machines"].as_array().unwrap().is_empty());
    let resp = s.get("/woken").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "/woken");

    // The machine made for that request is the app's now: a deploy replaces it with one
    // of the new release, which serves at once, instead of stopping it and leaving none.
    s.deploy().await.expect_code(0);
    let machines = s.status().await["machines"].as_array().unwrap().clone();
    assert_eq!(machines.len(), 1, "{machines:?}");
    assert_eq!(
        (
            machines[0]["state"].as_str(),
            machines[0]["release_version"].as_u64()
        ),
        (Some("started"), Some(2)),
        "{machines:?}"
    );
    let show = s.cli(&["scale", "show", "--json", "-a", APP]).await;
    assert_eq!(show.expect_code(0).json()[0]["count"], 1);
}

/// `text` (the hello config) with its HTTP service stopping idle machines, down to none,
/// and starting one for a request.
fn auto_stopping(text: &str) -> String {
    text.replace(
        "  processes = [\"app\"]\n",
        "  processes = [\"app\"]\n  auto_stop_machines = \"stop\"\n  auto_start_machines = true\n  min_machines_running = 0\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_machines_auto_stop_and_the_next_request_starts_one_again() {
    let s = Setup::new("", &["--auto-stop-after", "1s"]);
    let config = s.app.join("fly.toml");
    let text = auto_stopping(&std::fs::read_to_string(&config).unwrap());
    std::fs::write(&config, text).unwrap();
    s.deploy().await.expect_code(0);
    eventually("the idle machine stops", || async {
        s.status().await["machines"][0]["state"] == "stopped"
    })
    .await;
    let resp = s.get("/again").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(s.status().await["machines"][0]["state"], "started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_while_the_only_machine_auto_stops_starts_it_again_rather_than_a_new_one() {
    let s = Setup::new("", &["--auto-stop-after", "1s"]);
    let config = s.app.join("fly.toml");
    // It ignores its kill signal, so its stop takes the whole kill_timeout.
    let text = auto_stopping(&std::fs::read_to_string(&config).unwrap()).replace(
        "  app = \"python3 app.py\"\n",
        "  app = \"sh -c 'trap \\\"\\\" TERM; exec python3 app.py'\"\n",
    );
    std::fs::write(&config, text).unwrap();
    s.deploy().await.expect_code(0);
    eventually("the idle machine is stopping", || async {
        s.status().await["machines"][0]["state"] == "stopping"
    })
    .await;
    let resp = s.get("/again").await;
    assert_eq!(resp.status(), 200);
    let machines = s.status().await["machines"].clone();
    assert_eq!(machines.as_array().unwrap().len(), 1, "{machines}");
    assert_eq!(machines[0]["state"], "started", "{machines}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statics_are_served_from_the_release_and_other_paths_reach_the_app() {
    let s = Setup::new(
        "[[statics]]\n  guest_path = \"/app/public\"\n  url_prefix = \"/static/\"\n",
        &[],
    );
    std::fs::create_dir(s.app.join("public")).unwrap();
    std::fs::write(s.app.join("public/site.css"), "body { color: teal }\n").unwrap();
    s.deploy().await.expect_code(0);
    let resp = s.get("/static/site.css").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(resp.text().await.unwrap(), "body { color: teal }\n");
    let resp = s.get("/static/missing.css").await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["path"], "/static/missing.css",
        "falls through to the app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_hard_limit_of_every_machine_a_request_gets_503() {
    let s = Setup::new("", &[]);
    let config = s.app.join("fly.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "  processes = [\"app\"]\n",
        "  processes = [\"app\"]\n  [http_service.concurrency]\n    type = \"requests\"\n    soft_limit = 1\n    hard_limit = 1\n",
    );
    std::fs::write(&config, text).unwrap();
    s.deploy().await.expect_code(0);
    // One request holds the only machine's only slot.
    let held = {
        let (client, url) = (s.client.clone(), s.url("/hold"));
        tokio::spawn(async move { client.get(url).send().await })
    };
    // Until the held request has its slot, others are served; then they are refused.
    let mut resp = s.get("/").await;
    let until = Instant::now() + DEADLINE;
    while resp.status() == 200 && Instant::now() < until {
        resp = s.get("/").await;
    }
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "over_capacity");
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_that_refuses_connections_is_skipped_for_another() {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);
    // A second machine of the same group that passes its check on another port but never
    // listens on $PORT: every request the edge sends it fails to connect.
    let health_port = common::free_port();
    let broken = format!("exec python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"127.0.0.1\", {health_port})); s.listen(8); time.sleep(3600)'");
    let id = s.add_machine_checked_on(&broken, health_port).await;
    // Requests rotate over both machines; none fails.
    let mut machines = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let resp = s.get("/").await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        machines.insert(body["machine"].as_str().unwrap().to_string());
    }
    assert_eq!(
        machines.len(),
        1,
        "only the good machine answered: {machines:?}"
    );
    assert!(!machines.contains(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_taken_while_the_daemon_was_down_does_not_take_the_app_offline() {
    let port = common::free_port();
    let mut s = Setup::new(
        &format!(
            "[[services]]\n  protocol = \"tcp\"\n  internal_port = 8080\n\
             [[services.ports]]\n  port = {port}\n  handlers = [\"http\"]\n"
        ),
        &[],
    );
    s.deploy().await.expect_code(0);
    let state = s.d.state.clone();
    s.d.stop();
    // Something else takes the port before the daemon comes back.
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    s.d = TestDaemon::start_in(&state, &[]);
    let http = common::http_client();
    eventually("the app answers on its host route again", || async {
        http.get(format!("http://{}/", s.d.edge_addr()))
            .header("Host", HOST)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    // Only what is served is advertised: the host route, not the taken port.
    let url = format!("http://{HOST}:{}/", s.edge_port());
    assert_eq!(s.status().await["urls"], serde_json::json!([url]));
}
