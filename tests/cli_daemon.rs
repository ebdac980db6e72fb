//! The client commands against a real daemon, and against a mock one for faults the daemon
//! does not produce (5xx, bodies that are not the API's, slow answers).

mod common;

use std::path::Path;
use std::time::Duration;

use common::api::Api;
use common::daemon::TestDaemon;
use common::lakefly;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn cli(remote: &str, args: &[&str]) -> common::Run {
    let mut full = vec!["--remote", remote];
    full.extend_from_slice(args);
    lakefly(Path::new("."), &full)
}

#[test]
fn apps_create_list_and_destroy() {
    let d = TestDaemon::start();
    let run = cli(&d.api, &["apps", "create", "hello"]).expect_code(0);
    assert_eq!(run.stderr, "created app hello\n");
    let list = cli(&d.api, &["apps", "list"]).expect_code(0);
    assert!(
        list.stdout.starts_with(
            "NAME   RELEASE  MACHINES        CREATED\nhello  -        0 of 0 started  "
        ),
        "{}",
        list.stdout
    );
    let json = cli(&d.api, &["apps", "list", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(json[0]["name"], "hello");

    // flyctl's `apps create --name` too.
    let flagged = cli(&d.api, &["apps", "create", "--name", "named", "--json"]).expect_code(0);
    assert_eq!(flagged.json()["name"], "named");
    // `--generate-name` makes one up; `--save` writes it into the config file: set in the
    // one there is (its comments kept), or a file with only that.
    let dir = tempfile::tempdir().unwrap();
    let in_dir = |args: &[&str]| {
        let mut full = vec!["--remote", d.api.as_str()];
        full.extend_from_slice(args);
        lakefly(dir.path(), &full)
    };
    let made = in_dir(&["apps", "create", "--generate-name", "--save", "--json"]);
    let generated = made.expect_code(0).json()["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(generated.split('-').count(), 3, "{generated}");
    let saved = std::fs::read_to_string(dir.path().join("fly.toml")).unwrap();
    assert_eq!(saved, format!("app = \"{generated}\"\n"));
    std::fs::write(
        dir.path().join("fly.toml"),
        "# mine\napp = \"old\" # its name\n",
    )
    .unwrap();
    let saved = in_dir(&["apps", "create", "renamed", "--save", "--network", "x"]);
    assert_eq!(
        saved.expect_code(0).stderr,
        "    note: --network changes nothing: machines are processes on the daemon's host, with no private network\ncreated app renamed\nwrote app = \"renamed\" to fly.toml\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("fly.toml")).unwrap(),
        "# mine\napp = \"renamed\" # its name\n"
    );
    // A file it could not edit is said before the app is made.
    std::fs::write(dir.path().join("fly.toml"), "app = \"broken\n").unwrap();
    in_dir(&["apps", "create", "unmade", "--save"]).expect_code(3);
    let nowhere = in_dir(&["-c", "nodir/fly.toml", "apps", "create", "unmade", "--save"]);
    assert!(
        nowhere.expect_code(1).stderr.contains("nodir"),
        "the directory it would write into is named"
    );
    let apps = cli(&d.api, &["apps", "list", "--json"])
        .expect_code(0)
        .json();
    assert!(!apps.to_string().contains("unmade"), "{apps}");
    // A name the daemon refuses is a usage error, as the client's own refusals are.
    let bad = cli(&d.api, &["apps", "create", "Bad_Name"]).expect_code(2);
    assert!(
        bad.stderr
            .starts_with("error: app name \"Bad_Name\" may only hold lowercase letters"),
        "{}",
        bad.stderr
    );
    let dup = cli(&d.api, &["apps", "create", "hello"]).expect_code(6);
    assert_eq!(dup.stderr, "error: app \"hello\" already exists\nhint: pick another name, or deploy to the existing app\n");
    // flyctl's -j is --json.
    for json in ["--json", "-j"] {
        let dup_json = cli(&d.api, &["apps", "create", "hello", json]).expect_code(6);
        let err: Value = serde_json::from_str(dup_json.stderr.trim()).unwrap();
        assert_eq!(err["code"], "app_exists");
    }

    let unconfirmed = cli(&d.api, &["apps", "destroy", "hello"]).expect_code(2);
    assert!(
        unconfirmed
            .stderr
            .contains("needs confirmation, and stdin is not a terminal"),
        "{}",
        unconfirmed.stderr
    );
    assert!(
        unconfirmed.stderr.contains("hint: pass --yes"),
        "{}",
        unconfirmed.stderr
    );
    // flyctl's -y is --yes.
    cli(&d.api, &["apps", "destroy", "hello", "-y"]).expect_code(0);
    let gone = cli(&d.api, &["apps", "destroy", "hello", "--yes"]).expect_code(5);
    assert!(
        gone.stderr
            .starts_with("error: app \"hello\" does not exist"),
        "{}",
        gone.stderr
    );
}

#[tokio::test]
async fn status_and_machines_commands() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("web").await;
    let m = api.create_machine("web", json!({ "command": "exec sleep 600", "process_group": "app", "kill_signal": "SIGTERM" })).await;
    let id = m["id"].as_str().unwrap().to_string();
    let other = api
        .create_machine(
            "web",
            json!({ "command": "exec sleep 600", "process_group": "app" }),
        )
        .await;
    let other = other["id"].as_str().unwrap().to_string();
    let api = d.api.clone();
    let (status, stopped, listed) = tokio::task::spawn_blocking(move || {
        // Apps are listed with their machines counted.
        let apps = cli(&api, &["apps", "list", "--json"]).expect_code(0).json();
        assert_eq!(apps[0]["machines"]["total"], 2, "{apps}");
        assert!(apps[0]["machines"]["started"].as_u64().is_some(), "{apps}");
        let table = cli(&api, &["apps", "list"]).expect_code(0).stdout;
        assert!(table.starts_with("NAME  RELEASE  MACHINES"), "{table}");
        assert!(table.contains(" of 2 started"), "{table}");
        // A running machine is stopped and destroyed; flyctl's --force is taken.
        cli(&api, &["machines", "rm", "--force", &other, "-a", "web"]).expect_code(0);
        // Machines made through the API serve no web address to open.
        let unserved = cli(&api, &["open", "-a", "web"]).expect_code(5);
        assert!(
            unserved
                .stderr
                .starts_with("error: app web has no web address")
                && unserved.stderr.contains("hint: give it an [http_service]"),
            "{}",
            unserved.stderr
        );
        let status = cli(&api, &["status", "-a", "web", "--json"])
            .expect_code(0)
            .json();
        assert_eq!(status["machines"].as_array().unwrap().len(), 1, "{status}");
        let stopped = cli(&api, &["machines", "stop", &id, "-a", "web", "--json"])
            .expect_code(0)
            .json();
        let listed = cli(&api, &["machines", "list", "-a", "web"])
            .expect_code(0)
            .stdout;
        (status, stopped, listed)
    })
    .await
    .unwrap();
    assert_eq!(status["app"], "web");
    assert!(status["release"].is_null());
    for field in ["id", "process_group", "state", "health", "restarts"] {
        assert!(
            !status["machines"][0][field].is_null(),
            "status.machines[0] lacks {field}"
        );
    }
    assert_eq!(stopped["state"], "stopped");
    assert!(listed.starts_with("ID  "), "{listed}");
    assert!(listed.contains(" stopped "), "{listed}");
    // A stopped one needs no --force.
    cli(
        &d.api,
        &[
            "machines",
            "destroy",
            m["id"].as_str().unwrap(),
            "-a",
            "web",
        ],
    )
    .expect_code(0);
    let missing = cli(&d.api, &["machines", "start", "nope", "-a", "web"]).expect_code(5);
    assert!(
        missing
            .stderr
            .starts_with("error: machine \"nope\" does not exist in app \"web\""),
        "{}",
        missing.stderr
    );
}

#[tokio::test]
async fn machine_commands_take_several_ids_and_list_q_prints_the_ids_alone() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("web").await;
    let spec = json!({ "command": "exec sleep 600", "process_group": "app" });
    let mut ids = Vec::new();
    for _ in 0..2 {
        let m = api.create_machine("web", spec.clone()).await;
        ids.push(m["id"].as_str().unwrap().to_string());
    }
    let api = d.api.clone();
    tokio::task::spawn_blocking(move || {
        let listed = cli(&api, &["machines", "list", "-q", "-a", "web"]).expect_code(0);
        let mut listed: Vec<&str> = listed.stdout.lines().collect();
        listed.sort_unstable();
        let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
        expected.sort_unstable();
        assert_eq!(listed, expected);

        // As `fly machine stop ID ID`: each in turn, one JSON line each.
        let mut args = vec!["machines", "stop", "-a", "web", "--json"];
        args.extend(ids.iter().map(String::as_str));
        let stopped = cli(&api, &args).expect_code(0).stdout;
        let stopped: Vec<Value> = stopped
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(stopped.len(), 2, "{stopped:?}");
        for (machine, id) in stopped.iter().zip(&ids) {
            assert_eq!(
                (&machine["id"], &machine["state"]),
                (&json!(id), &json!("stopped"))
            );
        }
        let mut args = vec!["machines", "start", "-a", "web"];
        args.extend(ids.iter().map(String::as_str));
        let started = cli(&api, &args).expect_code(0).stderr;
        for id in &ids {
            assert!(
                started.contains(&format!("machine {id} is started")),
                "{started}"
            );
        }

        // As flyctl's: with no app named (and no fly.toml here), a machine's id says whose
        // it is; an id no app has is said so.
        let shown = cli(&api, &["machines", "status", &ids[0], "--json"]).expect_code(0);
        assert_eq!(shown.json()["machine"]["app"], "web", "{}", shown.stdout);
        let unknown = cli(&api, &["machines", "stop", "nope", &ids[0]]).expect_code(5);
        assert!(
            unknown.stderr.contains("no app has a machine \"nope\""),
            "{}",
            unknown.stderr
        );
        let none = cli(&api, &["machines", "list"]).expect_code(2);
        assert!(none.stderr.contains("no app name"), "{}", none.stderr);

        // One unknown stops the run where it is: those before it are destroyed.
        let mut args = vec!["machines", "destroy", "-a", "web", &ids[0], "nope", &ids[1]];
        cli(&api, &args).expect_code(5);
        let left = cli(&api, &["machines", "list", "-q", "-a", "web"]).expect_code(0);
        assert_eq!(left.stdout, format!("{}\n", ids[1]));
        args.retain(|a| *a != "nope" && *a != ids[0].as_str());
        cli(&api, &args).expect_code(0);
        let left = cli(&api, &["machines", "list", "-q", "-a", "web"]).expect_code(0);
        assert_eq!(left.stdout, "");
        let table = cli(&api, &["machines", "list", "-a", "web"]).expect_code(0);
        assert_eq!(table.stdout, "No machines.\n", "not a table with no rows");
        // A destroyed machine is no app's.
        let gone = cli(&api, &["machines", "status", &ids[0]]).expect_code(5);
        assert!(
            gone.stderr.contains("no app has a machine"),
            "{}",
            gone.stderr
        );
    })
    .await
    .unwrap();
}

#[test]
fn a_remote_that_is_the_edge_or_plain_http_is_told_apart_from_a_daemon_that_is_down() {
    let d = TestDaemon::start();
    let edge = format!("http://{}", d.edge_addr());
    let run = cli(&edge, &["status", "-a", "web"]).expect_code(8);
    assert_eq!(
        run.stderr,
        format!(
            "error: {edge} is lakeflyd's edge, where apps are served, not its API\n\
             hint: point --remote (or LAKEFLY_REMOTE) at the API's address, lakeflyd --api: 127.0.0.1:4280 unless set\n"
        )
    );
    let https = d.api.replacen("http://", "https://", 1);
    let run = cli(&https, &["status", "-a", "web"]).expect_code(8);
    assert!(
        run.stderr.contains(&format!(
            "hint: it answers without TLS there: use {} (the API is HTTPS only",
            d.api
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn no_app_name_is_a_usage_error() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let run = lakefly(dir.path(), &["--remote", &d.api, "status"]).expect_code(2);
    assert!(
        run.stderr.starts_with("error: no app name"),
        "{}",
        run.stderr
    );

    // A fly.toml without `app` is named, with the fix.
    std::fs::write(
        dir.path().join("fly.toml"),
        "[processes]\napp = \"sleep 60\"\n",
    )
    .unwrap();
    for command in ["status", "deploy"] {
        let run = lakefly(dir.path(), &["--remote", &d.api, command]).expect_code(2);
        assert_eq!(
            run.stderr,
            "error: no app name: fly.toml sets no `app`, and no -a APP was given\n\
             hint: name it with `lakefly config set app=NAME`, or pass -a APP\n",
            "{command}"
        );
    }
}

#[test]
fn an_unreachable_daemon_is_exit_8_with_a_hint() {
    // A port that was free a moment ago: nothing listens there.
    let port = common::free_port();
    let remote = format!("http://127.0.0.1:{port}");
    let run = cli(&remote, &["apps", "list"]).expect_code(8);
    assert!(
        run.stderr.starts_with(&format!(
            "error: cannot reach the lakefly daemon at {remote}"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: start it with `lakeflyd`"),
        "{}",
        run.stderr
    );
    let json = cli(&remote, &["apps", "list", "--json"]).expect_code(8);
    let err: Value = serde_json::from_str(json.stderr.trim()).unwrap();
    assert_eq!(err["code"], "daemon_unreachable");
}

#[tokio::test]
async fn server_errors_and_foreign_bodies_are_reported_not_misread() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/apps"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({ "error": "disk full", "code": "internal", "hint": "free some space" }),
        ))
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/apps"))
        .respond_with(
            ResponseTemplate::new(502).set_body_string("<html><body>Bad Gateway</body></html>"),
        )
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/apps/x/status"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string("{\"app\": \"x\", \"machines\": [tru"),
        )
        .mount(&mock)
        .await;
    let uri = mock.uri();
    let (internal, gateway, truncated) = tokio::task::spawn_blocking(move || {
        (
            cli(&uri, &["apps", "list"]),
            cli(&uri, &["apps", "create", "x"]),
            cli(&uri, &["status", "-a", "x"]),
        )
    })
    .await
    .unwrap();
    let internal = internal.expect_code(1);
    assert_eq!(internal.stderr, "error: disk full\nhint: free some space\n");
    let gateway = gateway.expect_code(1);
    assert!(
        gateway.stderr.starts_with(&format!(
            "error: unexpected answer from {}/v1/apps (HTTP 502): <html><body>Bad Gateway</body></html>",
            mock.uri()
        )),
        "{}",
        gateway.stderr
    );
    let truncated = truncated.expect_code(1);
    assert!(
        truncated
            .stderr
            .contains("(HTTP 200): the body is not the expected JSON"),
        "{}",
        truncated.stderr
    );
}

/// An older daemon answers a request it lacks with an empty 404 (as wiremock does for any
/// request it was not told about): the client says the daemon may be older than it.
#[tokio::test]
async fn a_request_an_older_daemon_lacks_says_so() {
    let mock = MockServer::start().await;
    let uri = mock.uri();
    let run = tokio::task::spawn_blocking(move || cli(&uri, &["volumes", "list", "-a", "x"]))
        .await
        .unwrap()
        .expect_code(1);
    assert!(
        run.stderr.contains("does not know this request (HTTP 404)")
            && run.stderr.contains("may be older than this lakefly")
            && run.stderr.contains("hint: upgrade lakeflyd"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_slow_daemon_times_out_with_its_own_error() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(5))
                .set_body_json(json!({ "status": "ok", "version": "x" })),
        )
        .mount(&mock)
        .await;
    let client =
        lakefly::api::client::Client::with_timeout(&mock.uri(), Duration::from_millis(200))
            .unwrap();
    let err = client.health().await.unwrap_err();
    assert!(
        matches!(err, lakefly::api::client::ClientError::Timeout { .. }),
        "{err}"
    );
    let as_cli = lakefly::Error::from(err);
    assert_eq!(
        (as_cli.exit_code(), as_cli.code().as_ref()),
        (8, "daemon_timeout")
    );
}

/// A request answered once a machine has stopped waits as long as the app's kill_timeout
/// lets it finish, not the usual request timeout (30 s; 1 s here): a worker given two
/// minutes to finish its job is not reported as an unresponsive daemon.
#[tokio::test]
async fn a_stop_that_waits_for_kill_timeout_outlasts_the_usual_timeout() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("slow").await;
    let spec = json!({
        "command": "trap '' INT TERM; while :; do sleep 0.1; done",
        "process_group": "app",
        "kill_timeout": "3s",
    });
    let id = api.create_machine("slow", spec).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let client =
        lakefly::api::client::Client::with_timeout(&d.api, Duration::from_secs(1)).unwrap();
    let stopped = client.machine_action("slow", &id, "stop").await.unwrap();
    assert_eq!(stopped.state, lakefly::api::types::MachineState::Stopped);
    // Other requests keep the usual timeout.
    assert!(client.status("slow").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_workers_print_reaches_the_logs_while_it_runs() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("bot").await;
    // A bot as run under nohup: prints, then works for a long while without exiting.
    let script = "python3 -c 'import time; print(\"polling for updates\"); time.sleep(600)'";
    api.create_machine(
        "bot",
        json!({ "command": script, "process_group": "worker" }),
    )
    .await;
    let remote = d.api.clone();
    let logged = tokio::task::spawn_blocking(move || {
        let start = std::time::Instant::now();
        loop {
            let run = cli(&remote, &["logs", "-a", "bot", "--no-tail"]).expect_code(0);
            if !run.stdout.is_empty() || start.elapsed() > Duration::from_secs(15) {
                return run.stdout;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    assert!(
        logged.ends_with(" [worker] polling for updates\n"),
        "{logged:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_show_recent_lines_with_machine_and_group_and_follow_new_ones() {
    use std::io::{BufRead, BufReader};
    let d = TestDaemon::start();
    let api = Api::new(&d);
    api.create_app("talk").await;
    let work = tempfile::tempdir().unwrap();
    let go = work.path().join("go");
    // Prints two lines, then a third once the test creates a file.
    let script = format!("echo first; echo second; while [ ! -e {go} ]; do sleep 0.05; done; echo third; exec sleep 600", go = go.display());
    let m = api
        .create_machine(
            "talk",
            json!({ "command": script, "process_group": "worker" }),
        )
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    // The writer batches lines: wait until both are readable.
    let remote = d.api.clone();
    let recent = tokio::task::spawn_blocking(move || {
        let start = std::time::Instant::now();
        loop {
            let run = cli(&remote, &["logs", "-a", "talk", "--no-tail"]).expect_code(0);
            if run.stdout.lines().count() >= 2 || start.elapsed() > Duration::from_secs(15) {
                return run.stdout;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    let lines: Vec<&str> = recent.lines().collect();
    assert_eq!(lines.len(), 2, "{recent}");
    assert!(
        lines[0].ends_with(&format!(" {id} [worker] first")),
        "{}",
        lines[0]
    );
    assert!(lines[1].ends_with(" second"));
    // flyctl's spellings: -m, -i and --instance name the machine.
    for by_machine in [["-m", &id], ["-i", &id], ["--instance", &id]] {
        let mut args = vec!["logs", "-a", "talk", "--no-tail"];
        args.extend(by_machine);
        assert_eq!(cli(&d.api, &args).expect_code(0).stdout, recent, "{args:?}");
    }
    // An id the app never had is not an empty log, it is a mistake to say.
    let typo = cli(
        &d.api,
        &["logs", "-a", "talk", "--no-tail", "-m", "f00", "--json"],
    );
    assert_eq!(typo.code, 5, "{}", typo.stderr);
    assert!(typo.stderr.contains("machine_not_found"), "{}", typo.stderr);
    let last_one = cli(
        &d.api,
        &["logs", "-a", "talk", "--no-tail", "-n", "1", "--json"],
    )
    .expect_code(0);
    let entry: Value = serde_json::from_str(last_one.stdout.trim()).unwrap();
    assert_eq!(
        (entry["line"].as_str(), entry["stream"].as_str()),
        (Some("second"), Some("stdout"))
    );
    // flyctl's names for the same, for a script written for `fly logs --json`.
    assert_eq!(entry["message"], "second", "{entry}");
    assert_eq!(entry["timestamp"], entry["time"], "{entry}");
    assert_eq!(entry["instance"], entry["machine"], "{entry}");

    let mut follower = std::process::Command::new(env!("CARGO_BIN_EXE_lakefly"))
        .args(["--remote", &d.api, "logs", "-a", "talk", "-n", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(15)).unwrap();
    assert!(first.ends_with(" second"), "{first}");
    std::fs::write(&go, "").unwrap();
    let next = rx.recv_timeout(Duration::from_secs(15)).unwrap();
    assert!(next.ends_with(" third"), "{next}");
    let _ = follower.kill();
    let _ = follower.wait();
    // A destroyed machine's lines stay readable by its id.
    let machine = format!("/v1/apps/talk/machines/{id}?force=true");
    let (status, _) = api.send(reqwest::Method::DELETE, &machine, None).await;
    assert_eq!(status, 204);
    let kept = cli(&d.api, &["logs", "-a", "talk", "--no-tail", "-m", &id]).expect_code(0);
    assert_eq!(kept.stdout.lines().count(), 3, "{}", kept.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_no_tail_prints_exactly_the_last_lines_of_a_large_log() {
    let temp = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_in(
        &temp.path().join("state"),
        &["--log-lines-per-app", "200000"],
    );
    let api = Api::new(&d);
    api.create_app("chatty").await;
    let mut sse =
        common::sse::Sse::connect(&d.url("/v1/events?app=chatty&kind=machine.exited"), None).await;
    api.create_machine("chatty", json!({ "command": "seq 1 100000" }))
        .await;
    sse.next(Duration::from_secs(30))
        .await
        .expect("the machine exits");
    // Every line is stored (a full queue slows the app instead of dropping lines).
    let start = std::time::Instant::now();
    loop {
        let (_, last) = api
            .send(reqwest::Method::GET, "/v1/apps/chatty/logs?limit=1", None)
            .await;
        if last[0]["line"] == "100000" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the last line was not stored: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api_url = d.api.clone();
    let run = tokio::task::spawn_blocking(move || {
        cli(&api_url, &["logs", "-a", "chatty", "--no-tail", "-n", "50"]).expect_code(0)
    })
    .await
    .unwrap();
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    let expected: Vec<String> = (99_951..=100_000).map(|n| n.to_string()).collect();
    assert_eq!(lines, expected);
}

#[tokio::test]
async fn an_exec_answer_that_breaks_off_or_is_garbled_is_an_error_not_a_success() {
    let mock = MockServer::start().await;
    let answers = [
        // Output, then the connection ends without the command's end.
        ("cut", "{\"stdout\":\"partial\\n\"}\n"),
        // A line that is no event.
        ("garbled", "{\"stdout\":\"ok\\n\"}\n<html>\n"),
        // The command could not be run after all.
        (
            "failed",
            "{\"error\":\"machine m: No such file or directory\"}\n",
        ),
    ];
    for (id, body) in answers {
        Mock::given(method("POST"))
            .and(path(format!("/v1/apps/x/machines/{id}/exec")))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "application/x-ndjson")
                    .set_body_string(body),
            )
            .mount(&mock)
            .await;
    }
    let uri = mock.uri();
    let runs = tokio::task::spawn_blocking(move || {
        ["cut", "garbled", "failed"]
            .map(|id| cli(&uri, &["machines", "exec", "-a", "x", id, "true"]))
    })
    .await
    .unwrap();
    let [cut, garbled, failed] = runs;
    let cut = cut.expect_code(1);
    assert_eq!(cut.stdout, "partial\n", "the output that came is shown");
    assert!(
        cut.stderr
            .contains("the answer ended before the command did"),
        "{}",
        cut.stderr
    );
    let garbled = garbled.expect_code(1);
    assert_eq!(garbled.stdout, "ok\n");
    assert!(garbled.stderr.contains("<html>"), "{}", garbled.stderr);
    let failed = failed.expect_code(1);
    assert!(
        failed.stderr.contains("No such file or directory"),
        "{}",
        failed.stderr
    );
}

/// `daemon status` with a remote says how that daemon is (not whether a local one runs):
/// its version, edge and what it holds; a degraded one says what needs doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_status_of_a_remote_is_that_daemons_health() {
    let d = TestDaemon::start();
    let api = d.api.clone();
    let (json, text) = tokio::task::spawn_blocking(move || {
        cli(&api, &["apps", "create", "held"]).expect_code(0);
        let json = cli(&api, &["daemon", "status", "--json"])
            .expect_code(0)
            .json();
        let text = cli(&api, &["daemon", "status"]).expect_code(0).stdout;
        (json, text)
    })
    .await
    .unwrap();
    assert_eq!(json["running"], true, "{json}");
    assert_eq!(json["status"], "ok", "{json}");
    assert_eq!(json["api"], d.api.as_str());
    assert_eq!(json["edge"], d.edge_addr().to_string());
    assert_eq!((&json["apps"], &json["machines"]), (&json!(1), &json!(0)));
    assert!(
        text.starts_with(&format!(
            "running: lakeflyd {} at {} (ok)\n",
            env!("CARGO_PKG_VERSION"),
            d.api
        )),
        "{text}"
    );
    assert!(
        text.contains("1 apps, 0 machines, 0 jobs (0 running)"),
        "{text}"
    );

    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "degraded",
            "problems": ["the disk of /var/lib/lakefly is full"],
            "version": "0.1.0",
        })))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/status"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "ok", "version": "0.1.0", "apps": 2, "machines": 3, "jobs": 0, "jobs_running": 0,
        })))
        .mount(&mock)
        .await;
    let uri = mock.uri();
    let degraded = tokio::task::spawn_blocking(move || cli(&uri, &["daemon", "status"]))
        .await
        .unwrap()
        .expect_code(0);
    assert!(
        degraded
            .stdout
            .contains("(degraded)\n  problem: the disk of /var/lib/lakefly is full\n"),
        "{}",
        degraded.stdout
    );
}
