//! No failed request through a rolling deploy, an app restart or a scale-down, and a fixed
//! service port answering across a redeploy.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::edge::{Setup, APP, DEADLINE, HOST};
use super::raw_get;

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

/// A group that binds a port of its own ([[metrics]] here) is replaced stop-first: between
/// the old machine's stop and the new one's health, requests wait for it instead of
/// getting a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_through_the_gap_of_a_group_replaced_stop_first() {
    let port = super::common::free_port();
    let s = Setup::new(
        &format!("[[metrics]]\n  port = {port}\n  path = \"/metrics\"\n  processes = [\"app\"]\n"),
        &[],
    );
    s.deploy().await.expect_code(0);
    let stop = Arc::new(AtomicBool::new(false));
    let (done, loops) = request_loop(s.client.clone(), s.url("/"), 4, stop.clone());
    wait_for_count(&done, 50).await;
    for _ in 0..2 {
        let run = s.deploy().await.expect_code(0);
        assert!(
            run.stderr
                .contains("each stops just before its replacement starts"),
            "{}",
            run.stderr
        );
    }
    let after = done.load(Ordering::Acquire);
    wait_for_count(&done, after + 50).await;
    stop.store(true, Ordering::Release);
    let failures = loops.await.unwrap();
    let total = done.load(Ordering::Acquire);
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_service_port_keeps_answering_across_a_redeploy() {
    let (http_port, tcp_port) = (super::common::free_port(), super::common::free_port());
    let s = Setup::new(
        &format!(
            "[[services]]\n  protocol = \"tcp\"\n  internal_port = 8080\n  processes = [\"app\"]\n\
             [[services.ports]]\n  port = {http_port}\n  handlers = [\"http\"]\n\
             [[services.ports]]\n  port = {tcp_port}\n"
        ),
        &[],
    );
    s.deploy().await.expect_code(0);
    let direct = super::common::http_builder().no_proxy().build().unwrap();
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
