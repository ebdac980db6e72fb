//! The supervisor through the real daemon: crashes are restarted and recorded, stops reach
//! the whole process group within the kill timeout, and a `kill -9` of the daemon leaves no
//! orphan, no duplicate, and never signals a pid that now belongs to another program.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::api::Api;
use common::daemon::TestDaemon;
use common::process::{alive, wait_gone};
use common::sse::{Message, Sse};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

/// Reads events until one of `kind` about machine `id` arrives.
async fn wait_for(sse: &mut Sse, kind: &str, id: &str) -> Message {
    loop {
        let m = sse
            .next(WAIT)
            .await
            .unwrap_or_else(|| panic!("stream ended waiting for {kind}"));
        if m.event == kind && m.data["data"]["machine"] == id {
            return m;
        }
    }
}

/// Creates a `sleep` machine in `app`, SIGKILLs its process, and waits for the restart;
/// returns the machine id, the stream, and the exit event.
async fn crash_and_restart(
    d: &TestDaemon,
    api: &Api,
    app: &str,
) -> (String, Sse, Message, Message) {
    api.create_app(app).await;
    let mut sse = Sse::connect(&d.url(&format!("/v1/events?app={app}&kind=machine.")), None).await;
    let machine = api
        .create_machine(app, json!({ "command": "exec sleep 600" }))
        .await;
    let id = machine["id"].as_str().unwrap().to_string();
    let started = wait_for(&mut sse, "machine.started", &id).await;
    let pid = started.data["data"]["pid"].as_u64().unwrap();
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    let exited = wait_for(&mut sse, "machine.exited", &id).await;
    let restarted = wait_for(&mut sse, "machine.started", &id).await;
    assert_ne!(restarted.data["data"]["pid"].as_u64().unwrap(), pid);
    (id, sse, exited, restarted)
}

/// Waits until `file` holds one pid per line, `n` lines, and returns them.
fn wait_pids(file: &Path, n: usize) -> Vec<u64> {
    common::process::wait_pids(file, n, WAIT)
}

#[tokio::test]
async fn a_machine_killed_with_sigkill_is_restarted_and_its_exit_recorded() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    let (id, _sse, exited, restarted) = crash_and_restart(&d, &api, "crashy").await;
    assert_eq!(exited.data["data"]["signal"], "SIGKILL");
    assert_eq!(exited.data["data"]["restarting"], true);
    let new_pid = restarted.data["data"]["pid"].as_u64().unwrap();

    let shown = api.machine("crashy", &id).await;
    assert_eq!(shown["state"], "started");
    assert_eq!(shown["restarts"], 1);
    assert_eq!(shown["last_exit"]["signal"], "SIGKILL");
    assert_eq!(shown["pid"], new_pid);
}

#[tokio::test]
async fn exit_codes_follow_the_restart_policy() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("jobs").await;
    let mut sse = Sse::connect(&d.url("/v1/events?app=jobs&kind=machine."), None).await;
    // A clean exit under on-failure stays stopped.
    let clean = api
        .create_machine("jobs", json!({ "command": "exit 0" }))
        .await;
    let clean_id = clean["id"].as_str().unwrap();
    let exited = wait_for(&mut sse, "machine.exited", clean_id).await;
    assert_eq!(
        (
            exited.data["data"]["code"].as_i64(),
            exited.data["data"]["restarting"].as_bool()
        ),
        (Some(0), Some(false))
    );
    assert_eq!(api.machine("jobs", clean_id).await["state"], "stopped");
    // A machine that keeps failing gives up after max_retries and is marked failed.
    let failing = api
        .create_machine("jobs", json!({ "command": "exit 3", "max_retries": 2 }))
        .await;
    let failing_id = failing["id"].as_str().unwrap();
    let failed = wait_for(&mut sse, "machine.failed", failing_id).await;
    assert!(failed.data["data"]["reason"]
        .as_str()
        .unwrap()
        .contains("not restarting"));
    let shown = api.machine("jobs", failing_id).await;
    assert_eq!(
        (shown["state"].as_str(), shown["restarts"].as_u64()),
        (Some("failed"), Some(2))
    );
    assert_eq!(shown["last_exit"]["code"], 3);
}

#[tokio::test]
async fn a_machine_that_ignores_sigterm_is_gone_within_kill_timeout_with_its_children() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("stubborn").await;
    let work = tempfile::tempdir().unwrap();
    let pids = work.path().join("pids");
    let script = format!(
        "trap '' TERM; sleep 600 & echo $! >> {p}; (trap '' TERM; sleep 600) & echo $! >> {p}; echo $$ >> {p}; while :; do sleep 1; done",
        p = pids.display()
    );
    let machine = api
        .create_machine(
            "stubborn",
            json!({ "command": script, "kill_signal": "SIGTERM", "kill_timeout": "1s" }),
        )
        .await;
    let id = machine["id"].as_str().unwrap();
    let all = wait_pids(&pids, 3);
    let start = Instant::now();
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &format!("/v1/apps/stubborn/machines/{id}/stop"),
            None,
        )
        .await;
    let took = start.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "stopped");
    assert!(
        took < Duration::from_secs(4),
        "stop took {took:?} with a 1s kill timeout"
    );
    for pid in all {
        wait_gone(pid, Duration::from_secs(2));
    }
}

#[tokio::test]
async fn an_app_under_a_shell_finishes_its_graceful_shutdown_after_the_shell_exits() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("graceful").await;
    let work = tempfile::tempdir().unwrap();
    let (ready, done) = (work.path().join("ready"), work.path().join("done"));
    // A list, so not exec'd: `sh -c` runs python as its child, and the shell exits at the
    // SIGTERM at once while python takes its time to finish.
    let app = format!(
        "import pathlib, signal, sys, time\n\
         def stop(*_):\n    time.sleep(0.5)\n    pathlib.Path({done:?}).write_text('finished')\n    sys.exit(0)\n\
         signal.signal(signal.SIGTERM, stop)\n\
         pathlib.Path({ready:?}).write_text('')\n\
         time.sleep(600)\n",
        done = done.display().to_string(),
        ready = ready.display().to_string(),
    );
    std::fs::write(work.path().join("app.py"), app).unwrap();
    let command = format!("cd {} && python3 app.py", work.path().display());
    let machine = api
        .create_machine(
            "graceful",
            json!({ "command": command, "kill_signal": "SIGTERM", "kill_timeout": "10s" }),
        )
        .await;
    let id = machine["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the app never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &format!("/v1/apps/graceful/machines/{id}/stop"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("stopped")),
        "{body}"
    );
    // The stop was answered once the app had finished, not cut off by a SIGKILL.
    assert_eq!(
        std::fs::read_to_string(&done).ok().as_deref(),
        Some("finished")
    );
}

/// One simple command replaces the shell that starts it: the machine's pid is the
/// program's; a list keeps its shell, and runs as written.
#[tokio::test]
async fn a_simple_command_is_the_machines_process_itself() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("direct").await;
    for (command, program) in [("sleep 600", "sleep"), ("true && sleep 600", "sh")] {
        let machine = api
            .create_machine("direct", json!({ "command": command }))
            .await;
        let id = machine["id"].as_str().unwrap();
        let deadline = Instant::now() + WAIT;
        let pid = loop {
            let m = api.machine("direct", id).await;
            if let Some(pid) = m["pid"].as_u64() {
                break pid;
            }
            assert!(Instant::now() < deadline, "{m}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(comm.trim(), program, "{command}");
    }
}

#[tokio::test]
async fn port_comes_from_the_machine_port_range_and_a_full_range_fails_the_machine_by_name() {
    // A range of one port: the first machine gets it and listens on it, so none is left
    // for the second.
    let temp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let range = format!("{port}-{port}");
    let d = TestDaemon::start_in(&temp.path().join("state"), &["--machine-ports", &range]);
    let api = Api::new(&d);
    api.create_app("ranged").await;
    let mut sse = Sse::connect(&d.url("/v1/events?since=0&app=ranged"), None).await;
    let listens = "exec python3 -c 'import os, socket, time\n\
                   s = socket.socket(); s.bind((\"127.0.0.1\", int(os.environ[\"PORT\"]))); s.listen()\n\
                   time.sleep(600)'";
    let first = api
        .create_machine(
            "ranged",
            json!({ "command": listens, "internal_port": 8080 }),
        )
        .await;
    let first = first["id"].as_str().unwrap();
    let started = wait_for(&mut sse, "machine.started", first).await;
    assert_eq!(started.data["data"]["port"].as_u64(), Some(u64::from(port)));
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the machine never listened on {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = api
        .create_machine(
            "ranged",
            json!({ "command": listens, "internal_port": 8080 }),
        )
        .await;
    let second = second["id"].as_str().unwrap();
    let failed = wait_for(&mut sse, "machine.failed", second).await;
    let reason = failed.data["data"]["reason"].as_str().unwrap();
    assert!(reason.contains(&range), "{reason}");
    assert!(reason.contains("--machine-ports"), "{reason}");
}

#[test]
fn a_bad_machine_port_range_is_refused_naming_the_flag() {
    let run = common::lakeflyd(&["--machine-ports", "32000-20000", "--state", "/nonexistent"]);
    let run = run.expect_code(2);
    assert!(run.stderr.contains("--machine-ports"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("FIRST must be at least 1 and at most LAST"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn start_stop_restart_and_destroy_through_the_api() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("web").await;
    let m = api
        .create_machine(
            "web",
            json!({ "command": "exec sleep 600", "internal_port": 8080, "kill_signal": "SIGTERM" }),
        )
        .await;
    let id = m["id"].as_str().unwrap();
    let base = format!("/v1/apps/web/machines/{id}");
    // Wait for the first start through the event log.
    let mut sse = Sse::connect(&d.url("/v1/events?since=0&app=web"), None).await;
    let started = wait_for(&mut sse, "machine.started", id).await;
    assert!(
        started.data["data"]["port"].as_u64().is_some(),
        "$PORT allocated"
    );

    let (_, stopped) = api
        .send(reqwest::Method::POST, &format!("{base}/stop"), None)
        .await;
    assert_eq!(stopped["state"], "stopped");
    assert!(stopped["pid"].is_null());
    let (_, again) = api
        .send(reqwest::Method::POST, &format!("{base}/start"), None)
        .await;
    assert_eq!(again["state"], "started");
    let first_pid = again["pid"].as_u64().unwrap();
    let (_, restarted) = api
        .send(reqwest::Method::POST, &format!("{base}/restart"), None)
        .await;
    assert_eq!(restarted["state"], "started");
    assert_ne!(restarted["pid"].as_u64().unwrap(), first_pid);
    wait_gone(first_pid, Duration::from_secs(2));

    // A machine that runs is stopped, then forgotten (Fly's `?force=true` is taken).
    let (status, _) = api
        .send(reqwest::Method::DELETE, &format!("{base}?force=true"), None)
        .await;
    assert_eq!(status, 204);
    wait_gone(restarted["pid"].as_u64().unwrap(), Duration::from_secs(2));
    let (status, body) = api.send(reqwest::Method::GET, &base, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("machine_not_found"))
    );
    let (_, list) = api
        .send(reqwest::Method::GET, "/v1/apps/web/machines", None)
        .await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn bad_requests_answer_4xx_json_and_change_nothing() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/v1/apps/ghost/machines",
            Some(json!({ "command": "true" })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("app_not_found"))
    );
    api.create_app("real").await;
    let raw = common::http_client()
        .post(d.url("/v1/apps/real/machines"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["code"], "bad_request");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body"),
        "{body}"
    );
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/v1/apps/real/machines",
            Some(json!({ "command": " " })),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
    let (status, _) = api
        .send(
            reqwest::Method::POST,
            "/v1/apps/real/machines/nope/explode",
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (_, list) = api
        .send(reqwest::Method::GET, "/v1/apps/real/machines", None)
        .await;
    assert_eq!(list, json!([]), "nothing was created");
}

#[tokio::test]
async fn after_kill_9_of_the_daemon_machines_run_again_once_and_leftovers_are_stopped() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let mut d = TestDaemon::start_in(&state, &[]);
    let api = Api::new(&d);
    api.create_app("survivor").await;
    let pids = temp.path().join("pids");
    let m = api
        .create_machine(
            "survivor",
            json!({ "command": format!("echo $$ >> {}; exec sleep 600", pids.display()), "kill_signal": "SIGTERM" }),
        )
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    let old = wait_pids(&pids, 1)[0];
    d.kill9();
    assert!(alive(old), "the machine outlives a crashed daemon");

    let d = TestDaemon::start_in(&state, &[]);
    let api = Api::new(&d);
    let new = wait_pids(&pids, 2)[1];
    assert_ne!(new, old);
    assert!(
        !alive(old),
        "the leftover was stopped before the fresh start"
    );
    let (_, list) = api
        .send(reqwest::Method::GET, "/v1/apps/survivor/machines", None)
        .await;
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "no duplicate machine");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["pid"], new);
}

#[tokio::test]
async fn a_recorded_pid_that_now_belongs_to_another_program_is_never_signalled() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let mut d = TestDaemon::start_in(&state, &[]);
    let api = Api::new(&d);
    api.create_app("reuse").await;
    let pids = temp.path().join("pids");
    let m = api
        .create_machine(
            "reuse",
            json!({ "command": format!("echo $$ >> {}; exec sleep 600", pids.display()) }),
        )
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    let old = wait_pids(&pids, 1)[0];
    d.kill9();
    // The machine dies while no daemon watches, and its pid goes to another program: the
    // state still names the pid, with the old process's start time.
    Command::new("kill")
        .args(["-KILL", &old.to_string()])
        .status()
        .unwrap();
    wait_gone(old, Duration::from_secs(5));
    let mut decoy = Command::new("sleep")
        .arg("600")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let decoy_pid = decoy.id();
    {
        let db = rusqlite::Connection::open(state.join("state.db")).unwrap();
        let changed = db
            .execute(
                "UPDATE machines SET pid = ?1 WHERE id = ?2",
                rusqlite::params![decoy_pid, id],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }
    let d = TestDaemon::start_in(&state, &[]);
    let fresh = wait_pids(&pids, 2)[1];
    assert!(alive(fresh));
    assert!(
        decoy.try_wait().unwrap().is_none(),
        "the other program was signalled"
    );
    let _ = decoy.kill();
    let _ = decoy.wait();
    drop(d);
}

#[tokio::test]
async fn sigterm_stops_machines_and_a_restart_brings_them_back() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let mut d = TestDaemon::start_in(&state, &[]);
    let api = Api::new(&d);
    api.create_app("cycle").await;
    let pids = temp.path().join("pids");
    api.create_machine("cycle", json!({ "command": format!("echo $$ >> {}; exec sleep 600", pids.display()), "kill_signal": "SIGTERM" }))
        .await;
    let first = wait_pids(&pids, 1)[0];
    assert!(d.stop().success());
    assert!(!alive(first), "clean shutdown stops machines");
    let _d = TestDaemon::start_in(&state, &[]);
    let second = wait_pids(&pids, 2)[1];
    assert!(alive(second));
}

#[tokio::test]
async fn metrics_count_machines_restarts_events_and_subscribers() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    // The stream stays open: it is the one subscriber the metrics must count.
    let (_id, _sse, _, _) = crash_and_restart(&d, &api, "measured").await;

    let resp = reqwest::get(d.url("/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = resp.text().await.unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    assert_eq!(value("lakefly_machine_restarts_total"), 1.0);
    assert!(value("lakefly_events_total") >= 5.0, "{text}");
    assert_eq!(value("lakefly_event_subscribers"), 1.0);
    let started_machines: f64 = text
        .lines()
        .filter(|l| l.starts_with("lakefly_machines{") && l.contains("state=\"started\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(started_machines, 1.0, "{text}");
    assert!(text.ends_with("# EOF\n"));
}

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

#[tokio::test]
async fn status_shows_the_app_and_its_machines() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("shown").await;
    let mut sse = Sse::connect(&d.url("/v1/events?app=shown&kind=machine."), None).await;
    let m = api
        .create_machine(
            "shown",
            json!({ "command": "exec sleep 600", "process_group": "web" }),
        )
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    wait_for(&mut sse, "machine.started", &id).await;
    let (status, body) = api
        .send(reqwest::Method::GET, "/v1/apps/shown/status", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["app"], "shown");
    assert!(body["release"].is_null());
    let machine = &body["machines"][0];
    assert_eq!(
        (
            machine["id"].as_str(),
            machine["process_group"].as_str(),
            machine["state"].as_str()
        ),
        (Some(id.as_str()), Some("web"), Some("started"))
    );
    for field in ["health", "pid", "restarts"] {
        assert!(!machine[field].is_null(), "status lacks {field}: {machine}");
    }
}

#[tokio::test]
async fn mounts_keep_data_across_machines_and_reach_the_app_by_env_and_link() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("stateful").await;
    let mut sse = Sse::connect(&d.url("/v1/events?app=stateful&kind=machine."), None).await;
    let spec = json!({
        "command": "echo one >> \"$DATA_DIR/count\"; cat \"$DATA_DIR/count\" | wc -l > data/lines; ls \"$LAKEFLY_MOUNT_DATA\" > /dev/null",
        "env": { "DATA_DIR": "/data" },
        "mounts": [{ "source": "data", "destination": "/data" }],
    });
    for round in 1..=2 {
        let m = api.create_machine("stateful", spec.clone()).await;
        let id = m["id"].as_str().unwrap().to_string();
        let exited = wait_for(&mut sse, "machine.exited", &id).await;
        assert_eq!(
            exited.data["data"]["code"], 0,
            "round {round}: {}",
            exited.data
        );
        let volume = d.state.join("volumes/stateful/data");
        assert_eq!(
            std::fs::read_to_string(volume.join("count"))
                .unwrap()
                .lines()
                .count(),
            round
        );
        assert_eq!(
            std::fs::read_to_string(volume.join("lines"))
                .unwrap()
                .trim(),
            round.to_string()
        );
        let (status, _) = api
            .send(
                reqwest::Method::DELETE,
                &format!("/v1/apps/stateful/machines/{id}"),
                None,
            )
            .await;
        assert_eq!(status, 204);
    }
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/v1/apps/stateful/machines",
            Some(
                json!({ "command": "true", "mounts": [{ "source": "../x", "destination": "/x" }] }),
            ),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
}

#[test]
fn watch_prints_a_new_snapshot_when_a_machine_changes() {
    let d = TestDaemon::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&d);
    // `status --watch` is flyctl's spelling of the same.
    for (app, command) in [
        ("watched", &["watch"][..]),
        ("status", &["status", "--watch"][..]),
    ] {
        rt.block_on(api.create_app(app));
        let mut args = vec!["--remote", d.api.as_str(), "-a", app, "--json"];
        args.extend_from_slice(command);
        let watch = common::follow::Follower::lakefly(&args, &[]);
        let first = watch.until(|_| true);
        assert_eq!(first[0]["status"]["machines"], json!([]), "{first:?}");
        assert_eq!(first[0]["jobs"], json!([]));
        let machine = rt.block_on(api.create_machine(app, json!({ "command": "exec sleep 600" })));
        let id = machine["id"].as_str().unwrap().to_string();
        // Snapshots follow the machine until it runs.
        let seen = watch.until(|snapshot| {
            snapshot["status"]["machines"].as_array().is_some_and(|m| {
                m.len() == 1 && m[0]["id"] == id.as_str() && m[0]["state"] == "started"
            })
        });
        assert!(!seen.is_empty());
    }
}
