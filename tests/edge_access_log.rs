//! `lakeflyd --edge-access-log`: a JSON line per HTTP request the edge answers, from the
//! relay and from the full server alike, and a new file after SIGHUP (logrotate).

mod common;

use std::path::Path;
use std::time::Duration;

use common::edge::{raw_exchange, Setup, APP, DEADLINE, HOST};
use serde_json::Value;

/// The lines of the access log once there are at least `n` (within the deadline).
async fn lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} lines in {}, found:\n{text}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_request_is_a_line_and_sighup_starts_a_new_file() {
    let logs = tempfile::tempdir().unwrap();
    let path = logs.path().join("access.log");
    let s = Setup::new("", &["--edge-access-log", path.to_str().unwrap()]);
    s.deploy().await.expect_code(0);
    let edge = s.d.edge_addr().to_string();

    // The relay's path, the full server's (HTTP/1.0), and an unknown app.
    assert_eq!(s.get("/first?x=1").await.status(), 200);
    let answer = raw_exchange(&edge, &format!("GET /old HTTP/1.0\r\nHost: {HOST}\r\n\r\n")).await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let answer = raw_exchange(
        &edge,
        "GET /x HTTP/1.1\r\nHost: unknown.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

    let written = lines(&path, 3).await;
    assert_eq!(written.len(), 3, "{written:?}");
    // A line is written once its request is done, which on two connections need not be in
    // the order the client read the answers: each is found by its target.
    let line = |target: &str| {
        written
            .iter()
            .find(|line| line["target"] == target)
            .unwrap_or_else(|| panic!("no line for {target} in {written:?}"))
    };
    let host = format!("{HOST}:{}", s.edge_port());
    let first = line("/first?x=1");
    for (field, value) in [
        ("app", APP),
        ("client", "127.0.0.1"),
        ("scheme", "http"),
        ("method", "GET"),
        ("host", host.as_str()),
    ] {
        assert_eq!(first[field], value, "{field} in {first}");
    }
    assert_eq!(first["status"], 200);
    assert!(first["ms"].as_f64().is_some_and(|ms| ms > 0.0), "{first}");
    assert!(
        first["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{first}"
    );
    let old = line("/old");
    assert_eq!(
        (&old["status"], &old["app"]),
        (&Value::from(200), &Value::from(APP))
    );
    let unknown = line("/x");
    assert_eq!(
        (&unknown["host"], &unknown["status"], &unknown["app"]),
        (
            &Value::from("unknown.example"),
            &Value::from(404),
            &Value::from("")
        )
    );

    // logrotate moves the file, then sends SIGHUP: lines go to a new file at the path.
    let rotated = logs.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    s.d.hangup();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while std::fs::read_to_string(&path)
        .unwrap_or_default()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new file after SIGHUP"
        );
        assert_eq!(s.get("/after").await.status(), 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = lines(&path, 1).await;
    assert_eq!(after[0]["target"], "/after", "{after:?}");
    let rotated = lines(&rotated, 3).await;
    assert!(
        rotated.iter().any(|line| line["target"] == "/first?x=1"),
        "{rotated:?}"
    );
}
