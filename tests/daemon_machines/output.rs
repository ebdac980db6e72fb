//! Machine output stored line by line, whatever the machine writes.

use std::time::{Duration, Instant};

use serde_json::json;

use super::common::api::Api;
use super::common::daemon::TestDaemon;
use super::common::sse::Sse;
use super::{wait_for, WAIT};

#[tokio::test]
async fn machine_output_is_stored_line_by_line_with_machine_and_stream() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("talky").await;
    let mut sse = Sse::connect(&d.url("/v1/events?app=talky&kind=machine."), None).await;
    let m = api
        .create_machine("talky", json!({ "command": "echo out-1; echo err-1 >&2; echo out-2; exit 0", "process_group": "worker" }))
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    wait_for(&mut sse, "machine.exited", &id).await;
    // The writer batches; wait for the three lines with a deadline.
    let start = Instant::now();
    let lines = loop {
        let (status, lines) = api
            .send(
                reqwest::Method::GET,
                "/v1/apps/talky/logs?process=worker",
                None,
            )
            .await;
        assert_eq!(status, 200);
        if lines.as_array().unwrap().len() >= 3 || start.elapsed() > WAIT {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let lines = lines.as_array().unwrap();
    let out: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["stream"] == "stdout")
        .map(|l| (l["line"].as_str().unwrap(), l["machine"].as_str().unwrap()))
        .collect();
    assert_eq!(out, [("out-1", id.as_str()), ("out-2", id.as_str())]);
    let err: Vec<&str> = lines
        .iter()
        .filter(|l| l["stream"] == "stderr")
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert_eq!(err, ["err-1"]);
    assert!(lines.iter().all(|l| l["process_group"] == "worker"));
    let (_, limited) = api
        .send(reqwest::Method::GET, "/v1/apps/talky/logs?limit=1", None)
        .await;
    assert_eq!(limited.as_array().unwrap().len(), 1);
    let (status, body) = api
        .send(reqwest::Method::GET, "/v1/apps/ghost/logs", None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("app_not_found"))
    );
}

#[tokio::test]
async fn output_that_is_not_utf8_or_never_ends_its_line_is_logged_and_the_machine_runs_on() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("latin").await;
    let mut sse = Sse::connect(&d.url("/v1/events?app=latin&kind=machine."), None).await;
    // A Latin-1 `é`, then a line of over 100 KB (more than a pipe holds), then one more.
    // The reader used to stop at the `é`: the next write killed the shell (SIGPIPE).
    let command = "printf 'caf\\351\\n'; seq 1 20000 | tr '\\n' ' '; echo; echo last";
    let m = api
        .create_machine(
            "latin",
            json!({ "command": command, "process_group": "worker" }),
        )
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    let exited = wait_for(&mut sse, "machine.exited", &id).await;
    assert_eq!(
        exited.data["data"]["code"].as_i64(),
        Some(0),
        "{:?}",
        exited.data
    );
    let start = Instant::now();
    let lines = loop {
        let (_, lines) = api
            .send(reqwest::Method::GET, "/v1/apps/latin/logs?limit=100", None)
            .await;
        let lines: Vec<String> = lines
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["line"].as_str().unwrap().to_string())
            .collect();
        if lines.last().map(String::as_str) == Some("last") {
            break lines;
        }
        assert!(start.elapsed() < WAIT, "no `last` line in {lines:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(lines[0], "caf\u{fffd}");
    let long = &lines[1..lines.len() - 1];
    assert!(long.len() > 1 && long.iter().all(|piece| piece.len() <= 16 * 1024));
    let numbers: Vec<String> = (1..=20000).map(|n| n.to_string()).collect();
    assert_eq!(long.concat(), format!("{} ", numbers.join(" ")));
}
