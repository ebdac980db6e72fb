//! API tokens: with `--token-file`, every request but `/health` needs one of its tokens
//! (`Authorization: Bearer` or `X-API-Key`); the client sends `LAKEFLY_API_TOKEN`, also on
//! the event stream; an API beyond loopback without tokens is refused at start.

mod common;

use std::path::Path;

use common::daemon::TestDaemon;

const PRIMARY: &str = "primary-token-7f3a9c1e5b";
const SECONDARY: &str = "secondary-token-2d8e4f6a0c";

fn daemon_with_tokens() -> (tempfile::TempDir, TestDaemon) {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("tokens");
    std::fs::write(
        &file,
        format!("# primary, then secondary\n{PRIMARY}\n{SECONDARY}\n"),
    )
    .unwrap();
    let d = TestDaemon::start_in(
        &temp.path().join("state"),
        &["--token-file", file.to_str().unwrap()],
    );
    (temp, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_but_health_needs_an_accepted_token() {
    let (_temp, d) = daemon_with_tokens();
    let http = common::http_client();
    let health = http.get(d.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let bare = http.get(d.url("/v1/apps")).send().await.unwrap();
    assert_eq!(bare.status(), 401);
    let body: serde_json::Value = bare.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
    assert!(
        body["hint"].as_str().unwrap().contains("LAKEFLY_API_TOKEN"),
        "{body}"
    );

    let wrong = http
        .get(d.url("/v1/apps"))
        .bearer_auth("not-the-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let metrics = http.get(d.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 401);

    let primary = http
        .get(d.url("/v1/apps"))
        .bearer_auth(PRIMARY)
        .send()
        .await
        .unwrap();
    assert_eq!(primary.status(), 200);
    // The secondary token works too, as an LSH client sends it, on the event stream.
    let events = http
        .get(d.url("/events?tail=1"))
        .header("X-API-Key", SECONDARY)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert!(events.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
}

fn lakefly(d: &TestDaemon, token: Option<&str>, args: &[&str]) -> common::Run {
    let mut all = vec!["--remote", d.api.as_str()];
    all.extend_from_slice(args);
    let env: Vec<(&str, &str)> = token
        .map(|t| ("LAKEFLY_API_TOKEN", t))
        .into_iter()
        .collect();
    common::lakefly_env(Path::new("."), &all, &env)
}

#[test]
fn the_client_sends_lakefly_api_token_on_requests_and_the_event_stream() {
    let (_temp, d) = daemon_with_tokens();
    let refused = lakefly(&d, None, &["apps", "list"]);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("needs an API token"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("LAKEFLY_API_TOKEN"),
        "{}",
        refused.stderr
    );

    // A deploy uploads, starts the release and follows its events: all with the token.
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello/fly.toml");
    let run = lakefly(
        &d,
        Some(PRIMARY),
        &["deploy", "-c", config.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("release v1 is live"), "{}", run.stderr);
    assert!(!run.stderr.contains(PRIMARY), "the token is never printed");
    let list = lakefly(&d, Some(SECONDARY), &["apps", "list", "--json"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
}

#[test]
fn an_api_beyond_loopback_without_tokens_is_refused_at_start() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let run = common::lakeflyd(&[
        "--api",
        "0.0.0.0:0",
        "--edge",
        "127.0.0.1:0",
        "--state",
        state.to_str().unwrap(),
    ])
    .expect_code(2);
    assert!(
        run.stderr
            .contains("refusing to serve the API on 0.0.0.0:0 without a token"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--token-file"), "{}", run.stderr);

    let empty = temp.path().join("tokens");
    std::fs::write(&empty, "# nothing yet\n").unwrap();
    let run = common::lakeflyd(&[
        "--api",
        "127.0.0.1:0",
        "--edge",
        "127.0.0.1:0",
        "--state",
        state.to_str().unwrap(),
        "--token-file",
        empty.to_str().unwrap(),
    ])
    .expect_code(2);
    assert!(run.stderr.contains("lists no token"), "{}", run.stderr);
}

/// `lakefly ARGS` with its remotes and credentials under `config`, the keyring off (this
/// machine has none to test with), and `stdin` piped in.
fn lakefly_in(config: &Path, args: &[&str], stdin: &str) -> common::Run {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lakefly"))
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .env("LAKEFLY_KEYRING", "off")
        .env("NO_COLOR", "1")
        .env_remove("LAKEFLY_REMOTE")
        .env_remove("LAKEFLY_API_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    common::Run::from(child.wait_with_output().unwrap())
}

#[test]
fn auth_login_keeps_a_checked_token_per_remote_and_logout_forgets_it() {
    let (_temp, d) = daemon_with_tokens();
    let config = tempfile::tempdir().unwrap();
    let at = |args: &[&str], stdin: &str| lakefly_in(config.path(), args, stdin);
    at(&["remote", "add", "prod", &d.api], "").expect_code(0);
    at(&["--remote", "prod", "apps", "list"], "").expect_code(4);

    // A token the daemon refuses is not kept.
    let run = at(
        &["--remote", "prod", "auth", "login", "--token-stdin"],
        "wrong-token\n",
    );
    run.expect_code(4);
    let file = config.path().join("lakefly/credentials.toml");
    assert!(!file.exists(), "nothing stored for a refused token");

    let run = at(
        &["--remote", "prod", "auth", "login", "--token-stdin"],
        &format!("{PRIMARY}\n"),
    );
    let run = run.expect_code(0);
    assert!(run.stderr.contains("logged in to prod"), "{}", run.stderr);
    assert!(
        run.stderr.contains("credentials.toml (mode 0600"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(PRIMARY) && !run.stdout.contains(PRIMARY));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the credentials file is the user's alone");

    // Commands for that remote present it; `auth token` prints it for scripts.
    at(&["--remote", "prod", "apps", "create", "logged-in"], "").expect_code(0);
    let run = at(&["--remote", "prod", "auth", "token"], "").expect_code(0);
    assert_eq!(run.stdout.trim(), PRIMARY);

    let run = at(&["--remote", "prod", "auth", "logout"], "").expect_code(0);
    assert!(run.stderr.contains("logged out of prod"), "{}", run.stderr);
    assert!(!std::fs::read_to_string(&file).unwrap().contains(PRIMARY));
    let run = at(&["--remote", "prod", "apps", "list"], "").expect_code(4);
    assert!(
        run.stderr
            .contains("`lakefly auth login` with the same --remote"),
        "{}",
        run.stderr
    );
    let run = at(&["--remote", "prod", "auth", "token"], "").expect_code(2);
    assert!(run.stderr.contains("auth login"), "{}", run.stderr);

    // A remote removed takes its token along: a remote added later under the name, which
    // may be another daemon, is not sent it.
    at(
        &["--remote", "prod", "auth", "login", "--token-stdin"],
        &format!("{PRIMARY}\n"),
    )
    .expect_code(0);
    let run = at(&["remote", "remove", "prod"], "").expect_code(0);
    assert!(run.stderr.contains("token is forgotten"), "{}", run.stderr);
    assert!(!std::fs::read_to_string(&file).unwrap().contains(PRIMARY));
    at(&["remote", "add", "prod", "http://127.0.0.1:9"], "").expect_code(0);
    at(&["--remote", "prod", "auth", "token"], "").expect_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_listed_origins_only_and_preflights_need_no_token() {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("tokens");
    std::fs::write(&file, format!("{PRIMARY}\n")).unwrap();
    let d = TestDaemon::start_in(
        &temp.path().join("state"),
        &[
            "--token-file",
            file.to_str().unwrap(),
            "--cors-origin",
            "https://dash.example.com",
        ],
    );
    let http = common::http_client();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, d.url("/v1/apps"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    let allowed = preflight("https://dash.example.com").await.unwrap();
    assert_eq!(allowed.status(), 200);
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://dash.example.com"
    );
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization"),
        "{headers:?}"
    );
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // The real request still needs its token, and carries the header when it has one.
    let get = http
        .get(d.url("/v1/apps"))
        .header("Origin", "https://dash.example.com")
        .bearer_auth(PRIMARY)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(
        get.headers()["access-control-allow-origin"],
        "https://dash.example.com"
    );
    let bare = http
        .get(d.url("/v1/apps"))
        .header("Origin", "https://dash.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 401);

    // Without --cors-origin, no CORS header at all.
    let plain = TestDaemon::start();
    let get = http
        .get(plain.url("/v1/apps"))
        .header("Origin", "https://dash.example.com")
        .send()
        .await
        .unwrap();
    assert!(get.headers().get("access-control-allow-origin").is_none());

    let run = common::lakeflyd(&["--cors-origin", "dash.example.com"]).expect_code(2);
    assert!(run.stderr.contains("--cors-origin"), "{}", run.stderr);
    assert!(
        run.stderr.contains("scheme://host[:port]"),
        "{}",
        run.stderr
    );
}
