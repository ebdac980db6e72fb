//! Secrets: write-only, sealed at rest, delivered only into machines' environment, and a
//! change rolls the machines unless staged.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::api::Api;
use common::daemon::TestDaemon;
use reqwest::Method;
use serde_json::{json, Value};

const VALUE: &str = "postgres://lakefly:s3cr3t-v4lue@db/app";

fn deploy_hello(d: &TestDaemon) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello/fly.toml");
    common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "deploy", "-c", config.to_str().unwrap()],
    )
    .expect_code(0);
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => todo.push(entry.path()),
                Ok(t) if t.is_file() => files.push(entry.path()),
                _ => {}
            }
        }
    }
    files
}

/// Waits until release `version` is complete.
async fn wait_release(api: &Api, version: u64) {
    let start = Instant::now();
    loop {
        let (_, status) = api.send(Method::GET, "/v1/apps/hello/status", None).await;
        if status["release"]["version"] == version && status["release"]["status"] == "complete" {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "release v{version} did not complete: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reported(api: &Api, name: &str) -> Value {
    let (_, status) = api.send(Method::GET, "/v1/apps/hello/status", None).await;
    let port = status["machines"][0]["port"].as_u64().unwrap();
    common::http_client()
        .get(format!("http://127.0.0.1:{port}/secrets/{name}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_the_app_and_nothing_else() {
    let temp = tempfile::tempdir().unwrap();
    let log = temp.path().join("lakeflyd.log");
    let mut d = TestDaemon::start_logging_to(&temp.path().join("state"), &log);
    let api = Api::new(&d);
    tokio::task::block_in_place(|| deploy_hello(&d));

    let (status, body) = api
        .send(
            Method::POST,
            "/v1/apps/hello/secrets",
            Some(json!({ "set": { "DATABASE_URL": VALUE } })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], json!(["DATABASE_URL"]));
    let release = body["release"].as_u64().expect("a change starts a release");
    wait_release(&api, release).await;
    assert_eq!(
        reported(&api, "DATABASE_URL").await,
        json!({ "set": true, "length": VALUE.len() })
    );

    // Listed by name, digest and status; never the value.
    let (_, list) = api.send(Method::GET, "/v1/apps/hello/secrets", None).await;
    assert_eq!(list[0]["name"], "DATABASE_URL");
    assert_eq!(list[0]["status"], "deployed");
    assert!(!list.to_string().contains("s3cr3t"), "{list}");
    // Not in any event, machine record, or the state database's bytes.
    let (_, machines) = api.send(Method::GET, "/v1/apps/hello/machines", None).await;
    assert!(!machines.to_string().contains("s3cr3t"), "{machines}");
    let mut events = common::sse::Sse::connect(&d.url("/v1/events?since=0&app=hello"), None).await;
    let mut seen = String::new();
    while let Ok(Some(m)) = tokio::time::timeout(
        Duration::from_millis(500),
        events.next(Duration::from_secs(5)),
    )
    .await
    {
        seen.push_str(&m.data.to_string());
    }
    assert!(
        seen.contains("secrets.updated") && !seen.contains("s3cr3t"),
        "events mention the change, not the value"
    );
    // No file under the state dir (database, WAL, bundles, machine dirs, logs) holds it.
    let files = files_under(&d.state);
    assert!(
        files.iter().any(|f| f.ends_with("state.db")),
        "the walk sees the database: {files:?}"
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(6).any(|w| w == b"s3cr3t"),
            "{} holds the value in the clear",
            file.display()
        );
    }

    // The same value again changes nothing and starts no release.
    let (_, again) = api
        .send(
            Method::POST,
            "/v1/apps/hello/secrets",
            Some(json!({ "set": { "DATABASE_URL": VALUE } })),
        )
        .await;
    assert_eq!(
        (again["changed"].clone(), again["release"].clone()),
        (json!([]), Value::Null)
    );
    assert_eq!(again["unchanged"], json!(["DATABASE_URL"]));

    // Nor is it anywhere in the daemon's own log, at debug level, through a clean stop.
    d.stop();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("lakeflyd started"),
        "the log was captured: {logged}"
    );
    assert!(
        !logged.contains("s3cr3t"),
        "the daemon's log holds the value"
    );
    // The change itself is in it, by name: every event is a line of the log.
    assert!(
        logged.lines().any(|l| l.contains("lakefly::events")
            && l.contains("secrets.updated")
            && l.contains("DATABASE_URL")),
        "{logged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_master_key_keeps_every_secret() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let mut d = TestDaemon::start_in(&state, &[]);
    let api = Api::new(&d);
    tokio::task::block_in_place(|| deploy_hello(&d));
    let (_, body) = api
        .send(
            Method::POST,
            "/v1/apps/hello/secrets",
            Some(json!({ "set": { "DATABASE_URL": VALUE } })),
        )
        .await;
    wait_release(&api, body["release"].as_u64().unwrap()).await;
    let state_arg = state.to_str().unwrap();

    // Not while the daemon runs: it holds the state.
    let busy = common::lakeflyd(&["secrets", "rotate-key", "--state", state_arg]);
    assert_eq!(busy.code, 6, "{}", busy.stderr);
    assert!(
        busy.stderr.contains("another lakeflyd is running"),
        "{}",
        busy.stderr
    );

    d.stop();
    let old_key = std::fs::read(state.join("master.key")).unwrap();
    let run = common::lakeflyd(&["secrets", "rotate-key", "--state", state_arg]).expect_code(0);
    assert_eq!(run.json(), json!({ "rotated": 1 }));
    assert_ne!(std::fs::read(state.join("master.key")).unwrap(), old_key);

    // The daemon starts with the new key, and the machine gets the same value.
    let d = TestDaemon::start_in(&state, &[]);
    let api = Api::new(&d);
    let start = Instant::now();
    loop {
        let (_, status) = api.send(Method::GET, "/v1/apps/hello/status", None).await;
        if status["machines"][0]["health"] == "passing" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        reported(&api, "DATABASE_URL").await,
        json!({ "set": true, "length": VALUE.len() })
    );

    // The old key no longer opens anything: the daemon refuses it, naming the file.
    drop(d);
    std::fs::write(state.join("master.key"), &old_key).unwrap();
    let refused = common::lakeflyd(&[
        "--api",
        "127.0.0.1:0",
        "--edge",
        "127.0.0.1:0",
        "--state",
        state_arg,
    ]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("does not open the secrets"),
        "{}",
        refused.stderr
    );
}

#[tokio::test]
async fn a_machine_printing_a_secret_is_logged_with_the_value_hidden() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    let (status, _) = api
        .send(Method::POST, "/v1/apps", Some(json!({ "name": "chatty" })))
        .await;
    assert_eq!(status, 201);
    let (status, body) = api
        .send(
            Method::POST,
            "/v1/apps/chatty/secrets",
            Some(json!({ "set": { "DATABASE_URL": VALUE } })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // As apps do at startup, and a line without it to show the rest is kept.
    let command = "echo \"connecting to $DATABASE_URL\"; echo plain line; exec sleep 600";
    let (status, body) = api
        .send(
            Method::POST,
            "/v1/apps/chatty/machines",
            Some(json!({ "command": command })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let lines = loop {
        let (_, logs) = api.send(Method::GET, "/v1/apps/chatty/logs", None).await;
        let lines: Vec<String> = logs
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["line"].as_str().map(str::to_string))
            .collect();
        if lines.iter().any(|l| l == "plain line") {
            break lines;
        }
        assert!(Instant::now() < deadline, "no output logged: {logs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        lines.contains(&"connecting to [redacted]".to_string()),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("s3cr3t")), "{lines:?}");
}

#[test]
fn the_cli_refuses_a_name_no_secret_can_have_before_it_asks_for_a_value() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: a name checked only by the daemon would exit 8.
    let remote = [
        "--remote",
        "http://127.0.0.1:9",
        "-a",
        "hello",
        "secrets",
        "set",
    ];
    for bad in ["BAD KEY", "PORT=1", "FLY_REGION=-", "1ABC=x"] {
        // After a good name whose value would be asked for: still refused first.
        let args: Vec<&str> = remote.iter().copied().chain(["GOOD", bad]).collect();
        let run = common::lakefly(dir.path(), &args).expect_code(2);
        let name = bad.split('=').next().unwrap();
        assert!(run.stderr.contains(name), "{bad}: {}", run.stderr);
        assert!(
            !run.stderr.contains("terminal"),
            "not prompted: {}",
            run.stderr
        );
        assert!(run.stderr.contains("DATABASE_URL"), "{}", run.stderr);
    }
    // Two values from one stdin are refused; a value that merely ends in `=-` is a value
    // (that set goes on to the daemon, which is not there: exit 8).
    let args: Vec<&str> = remote.iter().copied().chain(["A=-", "C=-"]).collect();
    let run = common::lakefly_stdin(dir.path(), &args, b"value\n").expect_code(2);
    assert!(
        run.stderr
            .starts_with("error: only one NAME=- can read stdin"),
        "{}",
        run.stderr
    );
    let args: Vec<&str> = remote.iter().copied().chain(["A=-", "B=x=-"]).collect();
    common::lakefly_stdin(dir.path(), &args, b"value\n").expect_code(8);
    // A name given twice: one value would replace the other unseen (and neither is shown).
    let args: Vec<&str> = remote
        .iter()
        .copied()
        .chain(["A=s3cr3t-1", "B", "A=s3cr3t-2"])
        .collect();
    let run = common::lakefly(dir.path(), &args).expect_code(2);
    assert!(
        run.stderr.starts_with("error: A is given twice")
            && !run.stderr.contains("s3cr3t")
            && !run.stderr.contains("terminal"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_change_during_a_rollout_is_refused_whole_and_offers_to_stage_it() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    // A machine that never listens: its release rolls out until wait_timeout.
    std::fs::write(
        dir.path().join("fly.toml"),
        "app = \"slow\"\n[deploy]\n  wait_timeout = \"2m\"\n[processes]\n  app = \"exec sleep 600\"\n[http_service]\n  internal_port = 8080\n",
    )
    .unwrap();
    let lakefly = |args: &[&str]| {
        let mut all = vec!["--remote", d.api.as_str(), "-a", "slow"];
        all.extend(args);
        common::lakefly(dir.path(), &all)
    };
    lakefly(&["deploy", "--detach"]).expect_code(0);
    let refused = lakefly(&["secrets", "set", "TOKEN=one"]).expect_code(6);
    assert!(
        refused.stderr.contains("still rolling out") && refused.stderr.contains("add --stage"),
        "{}",
        refused.stderr
    );
    let listed = lakefly(&["secrets", "list", "--json"]).expect_code(0);
    assert_eq!(listed.json(), json!([]), "nothing was set");
    lakefly(&["secrets", "set", "TOKEN=one", "--stage"]).expect_code(0);
    let listed = lakefly(&["secrets", "list", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(listed[0]["status"], "staged", "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_secrets_release_leaves_the_serving_release_its_own_secrets() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    let dir = tempfile::tempdir().unwrap();
    // An app that will not start with DB_URL=bad, and answers with the DB_URL it has.
    std::fs::write(
        dir.path().join("app.py"),
        r#"import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
if os.environ.get("DB_URL") == "bad":
    sys.exit("cannot connect")
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ.get("DB_URL", "-").encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("fly.toml"),
        "app = \"pinned\"\n[deploy]\n  wait_timeout = \"10s\"\n[processes]\n  app = \"python3 app.py\"\n[http_service]\n  internal_port = 8080\n  [[http_service.checks]]\n    grace_period = \"0s\"\n    interval = \"200ms\"\n    path = \"/\"\n",
    )
    .unwrap();
    let lakefly = |args: &[&str]| {
        let mut all = vec!["--remote", d.api.as_str(), "-a", "pinned"];
        all.extend(args);
        tokio::task::block_in_place(|| common::lakefly(dir.path(), &all))
    };
    lakefly(&["deploy"]).expect_code(0);
    lakefly(&["secrets", "set", "DB_URL=good"]).expect_code(0);
    let failed = lakefly(&["secrets", "set", "DB_URL=bad"]).expect_code(7);
    assert!(
        failed.stderr.contains("DB_URL stays set for the next release; release v2 goes on with the secrets it was made with"),
        "{}",
        failed.stderr
    );
    // The machine still serving release 2 crashes: it starts again with release 2's
    // value, not with the one its failed successor left set.
    let (_, status) = api.send(Method::GET, "/v1/apps/pinned/status", None).await;
    assert_eq!(status["release"]["version"], 2, "{status}");
    let crashed = status["machines"][0]["pid"].as_u64().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", &crashed.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = Instant::now();
    let port = loop {
        let (_, status) = api.send(Method::GET, "/v1/apps/pinned/status", None).await;
        let machine = &status["machines"][0];
        if machine["pid"].as_u64().is_some_and(|pid| pid != crashed)
            && machine["health"] == "passing"
        {
            break machine["port"].as_u64().unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the machine did not come back: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let body = common::http_client()
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "good");
    // The value stays set for the next release, as on Fly.
    let listed = lakefly(&["secrets", "list", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(listed[0]["status"], "deployed", "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_secrets_wait_for_deploy_and_names_are_checked() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    tokio::task::block_in_place(|| deploy_hello(&d));
    for bad in ["PORT", "LAKEFLY_APP_NAME", "FLY_REGION", "1ABC", "A-B"] {
        let (status, body) = api
            .send(
                Method::POST,
                "/v1/apps/hello/secrets",
                Some(json!({ "set": { bad: "x" } })),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {body}"
        );
    }
    let (_, staged) = api
        .send(
            Method::POST,
            "/v1/apps/hello/secrets",
            Some(json!({ "set": { "TOKEN": "abc" }, "stage": true })),
        )
        .await;
    assert_eq!(
        (staged["changed"].clone(), staged["release"].clone()),
        (json!(["TOKEN"]), Value::Null)
    );
    let (_, list) = api.send(Method::GET, "/v1/apps/hello/secrets", None).await;
    assert_eq!(list[0]["status"], "staged");
    assert_eq!(
        reported(&api, "TOKEN").await["set"],
        false,
        "staged values do not reach machines"
    );
    let (_, deployed) = api
        .send(Method::POST, "/v1/apps/hello/secrets/deploy", None)
        .await;
    let release = deployed["release"].as_u64().unwrap();
    wait_release(&api, release).await;
    assert_eq!(
        reported(&api, "TOKEN").await,
        json!({ "set": true, "length": 3 })
    );
    // Unsetting a name that is not set is not an error.
    let (status, body) = api
        .send(
            Method::POST,
            "/v1/apps/hello/secrets",
            Some(json!({ "unset": ["NOPE"] })),
        )
        .await;
    assert_eq!((status, body["unchanged"].clone()), (200, json!(["NOPE"])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secrets_commands_set_from_stdin_list_import_and_unset() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let d = TestDaemon::start();
    let api = Api::new(&d);
    tokio::task::block_in_place(|| deploy_hello(&d));
    let lakefly = |args: &[&str], stdin: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lakefly"))
            .args(["--remote", &d.api, "-a", "hello"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // From stdin: one trailing newline stripped; the release is followed to the end.
    let (code, _, stderr) = tokio::task::block_in_place(|| {
        lakefly(
            &["secrets", "set", "API_TOKEN=-"],
            format!("{VALUE}\n").as_bytes(),
        )
    });
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("changed: API_TOKEN") && stderr.contains("is live"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
    assert_eq!(
        reported(&api, "API_TOKEN").await,
        json!({ "set": true, "length": VALUE.len() })
    );

    let (code, stdout, _) = tokio::task::block_in_place(|| lakefly(&["secrets", "list"], b""));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("API_TOKEN") && stdout.contains("deployed") && !stdout.contains("s3cr3t"),
        "{stdout}"
    );

    // A bare name needs a terminal.
    let (code, _, stderr) =
        tokio::task::block_in_place(|| lakefly(&["secrets", "set", "OTHER"], b""));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("OTHER has no value, and stdin is not a terminal"),
        "{stderr}"
    );

    // .env import, staged, then deployed.
    // A quoted value may span lines (a PEM key) and be followed by a comment.
    let env = b"# app secrets\nexport ONE=1\nTWO=\"two words\" # shown in the docs\nPEM=\"-----BEGIN-----\nabc\n-----END-----\"\n";
    let (code, _, stderr) =
        tokio::task::block_in_place(|| lakefly(&["secrets", "import", "--stage"], env));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(
            "staged: `lakefly secrets deploy -a hello` (or the next deploy) applies them"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = tokio::task::block_in_place(|| lakefly(&["secrets", "deploy"], b""));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        reported(&api, "TWO").await,
        json!({ "set": true, "length": 9 })
    );
    assert_eq!(
        reported(&api, "PEM").await,
        json!({ "set": true, "length": "-----BEGIN-----\nabc\n-----END-----".len() })
    );
    let (code, _, stderr) =
        tokio::task::block_in_place(|| lakefly(&["secrets", "import"], b"GOOD=1\nbad line\n"));
    assert_eq!(code, 2);
    assert!(stderr.contains("stdin: line 2"), "{stderr}");

    let (code, _, stderr) =
        tokio::task::block_in_place(|| lakefly(&["secrets", "unset", "ONE", "NEVER_SET"], b""));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(reported(&api, "ONE").await["set"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_secrets_go_out_with_the_next_deploy_and_its_release_command_has_them() {
    let d = TestDaemon::start();
    let api = Api::new(&d);
    // A copy of hello whose release command (a migration, say) needs DATABASE_URL.
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello");
    std::fs::copy(example.join("app.py"), dir.path().join("app.py")).unwrap();
    let toml = std::fs::read_to_string(example.join("fly.toml"))
        .unwrap()
        .replace(
            "strategy = \"rolling\"",
            "strategy = \"rolling\"\n  release_command = \"sh -c 'test -n \\\"$DATABASE_URL\\\"'\"",
        );
    assert!(toml.contains("release_command"), "{toml}");
    std::fs::write(dir.path().join("fly.toml"), toml).unwrap();
    let lakefly =
        |args: &[&str]| common::lakefly(dir.path(), &[&["--remote", &d.api][..], args].concat());
    tokio::task::block_in_place(|| {
        lakefly(&["apps", "create", "hello"]).expect_code(0);
        // Staged before the app's first release, as a new app's database URL is.
        lakefly(&[
            "secrets",
            "set",
            "--stage",
            &format!("DATABASE_URL={VALUE}"),
        ])
        .expect_code(0);
        let run = lakefly(&["deploy"]).expect_code(0);
        assert!(
            run.stderr
                .contains("secrets: staged secrets applied: DATABASE_URL"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("s3cr3t"), "{}", run.stderr);
    });
    assert_eq!(
        reported(&api, "DATABASE_URL").await,
        json!({ "set": true, "length": VALUE.len() })
    );
    let (_, list) = api.send(Method::GET, "/v1/apps/hello/secrets", None).await;
    assert_eq!(list[0]["status"], "deployed", "{list}");

    // A command given the secrets that prints one: what the daemon keeps of its output (a
    // failed release's last lines, a job run's history) shows `[redacted]` instead.
    let toml = std::fs::read_to_string(dir.path().join("fly.toml")).unwrap();
    let printing = toml.replace(
        "test -n \\\"$DATABASE_URL\\\"",
        "echo connecting to $DATABASE_URL; exit 1",
    );
    assert_ne!(printing, toml);
    std::fs::write(dir.path().join("fly.toml"), printing).unwrap();
    let failed = tokio::task::block_in_place(|| lakefly(&["deploy"]).expect_code(7));
    assert!(
        failed.stderr.contains("connecting to [redacted]") && !failed.stderr.contains("s3cr3t"),
        "{}",
        failed.stderr
    );
    let (_, job) = api
        .send(
            Method::POST,
            "/v1/apps/hello/jobs",
            Some(json!({ "name": "leak", "command": "echo using $DATABASE_URL" })),
        )
        .await;
    let id = job["id"].as_u64().unwrap();
    api.send(Method::POST, &format!("/v1/jobs/{id}/trigger"), None)
        .await;
    let start = Instant::now();
    let output = loop {
        let (_, runs) = api
            .send(Method::GET, &format!("/v1/jobs/{id}/runs"), None)
            .await;
        if runs[0]["status"] == "succeeded" {
            break runs[0]["output"].clone();
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{runs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(output, "using [redacted]");
    let mut events = common::sse::Sse::connect(&d.url("/v1/events?since=0&app=hello"), None).await;
    while let Ok(Some(m)) = tokio::time::timeout(
        Duration::from_millis(500),
        events.next(Duration::from_secs(5)),
    )
    .await
    {
        assert!(!m.data.to_string().contains("s3cr3t"), "{}", m.data);
    }
}

/// `config env` shows the current release's `[env]` by value and secrets by name only.
#[test]
fn config_env_shows_env_values_and_secret_names_never_their_values() {
    let d = TestDaemon::start();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello/fly.toml");
    let cli = |args: &[&str], stdin: &[u8]| {
        let mut all = vec!["--remote", d.api.as_str(), "-a", "hello"];
        all.extend_from_slice(args);
        common::lakefly_stdin(Path::new("."), &all, stdin)
    };
    // No release yet: nothing to show.
    cli(&["config", "env"], b"").expect_code(5);
    cli(
        &["deploy", "-c", config.to_str().unwrap(), "-e", "EXTRA=1"],
        b"",
    )
    .expect_code(0);
    cli(
        &["secrets", "set", "DATABASE_URL=-", "--stage"],
        VALUE.as_bytes(),
    )
    .expect_code(0);
    let shown = cli(&["config", "env", "--json"], b"").expect_code(0);
    let json = shown.json();
    assert_eq!(json["release"], 1);
    assert_eq!(json["env"], json!({ "EXTRA": "1", "GREETING": "hello" }));
    assert_eq!(json["secrets"][0]["name"], "DATABASE_URL");
    let text = cli(&["config", "env"], b"").expect_code(0).stdout;
    assert!(
        text.contains("GREETING  hello") && text.contains("DATABASE_URL"),
        "{text}"
    );
    for out in [&shown.stdout, &text] {
        assert!(!out.contains(VALUE), "{out}");
    }
}
