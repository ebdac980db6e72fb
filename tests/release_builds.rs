//! A release runs from the files an earlier release built when its inputs are the same
//! (bundle, `[build]`, `[env]`): a secrets change, an unchanged deploy and a rollback to a
//! release still on disk do not run `[build] command` again; `--rebuild` and a changed
//! input do. The reused files stay on disk while a release runs from them.

mod common;

use std::path::Path;

use common::daemon::TestDaemon;
use common::files::{app_with, get_text, python_server, wait_for_names, PYTHON_WEB};
use common::Run;
use serde_json::Value;

/// Answers `<token>|<cwd>|<FOO>`: the token the build wrote, where the machine runs, a
/// secret.
fn server() -> String {
    python_server(
        r#"open("token").read().strip() + "|" + os.getcwd() + "|" + os.environ.get("FOO", "")"#,
    )
}

/// The build writes a token no two builds share.
fn config(greeting: &str) -> String {
    format!(
        r#"app = "built"
[build]
  command = "echo building; od -An -N8 -tx8 /dev/urandom | tr -d ' ' > token"
[env]
  GREETING = "{greeting}"
{PYTHON_WEB}"#
    )
}

fn lakefly(d: &TestDaemon, args: &[&str]) -> Run {
    d.cli(Path::new("."), args)
}

fn deploy(d: &TestDaemon, app: &Path, extra: &[&str]) -> Run {
    let config = app.join("fly.toml");
    let mut args = vec!["deploy", "-c", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    lakefly(d, &args).expect_code(0)
}

/// What the app's machine answers: (token, working directory, FOO).
fn answer(d: &TestDaemon) -> (String, String, String) {
    let status = lakefly(d, &["status", "-a", "built", "--json"])
        .expect_code(0)
        .json();
    let port = status["machines"][0]["port"].as_u64().unwrap();
    let body = get_text(&format!("http://127.0.0.1:{port}/"));
    let mut parts = body.splitn(3, '|').map(str::to_string);
    let mut next = || parts.next().unwrap_or_default();
    (next(), next(), next())
}

fn newest_release(d: &TestDaemon) -> Value {
    lakefly(d, &["releases", "-a", "built", "--json"])
        .expect_code(0)
        .json()[0]
        .clone()
}

/// Says it reused the files of `version` and did not build.
#[track_caller]
fn assert_reused(run: &Run, version: u64) {
    assert!(
        run.stderr
            .contains(&format!("unpack: reusing the files built for v{version}"))
            && !run.stderr.contains("build: building"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_release_with_the_inputs_of_a_built_one_runs_from_its_files() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let d = TestDaemon::start_in(&state, &[]);
    let releases = state.join("releases/built");
    let app = app_with(
        root.path(),
        "built",
        &[("fly.toml", &config("a")), ("server.py", &server())],
    );

    let run = deploy(&d, &app, &[]);
    assert!(run.stderr.contains("build: building"), "{}", run.stderr);
    let (v1_token, v1_dir, _) = answer(&d);
    assert!(v1_dir.ends_with("/releases/built/1"), "{v1_dir}");

    // A secrets change: a new release, the same files, the new value.
    let run = lakefly(&d, &["secrets", "set", "FOO=bar", "-a", "built"]).expect_code(0);
    assert_reused(&run, 1);
    assert_eq!(answer(&d), (v1_token.clone(), v1_dir.clone(), "bar".into()));
    assert_eq!(newest_release(&d)["files_of"], 1);

    // An unchanged deploy too; v1 to v3 run from v1's directory, which stays when the
    // files of releases no longer in use are removed (and so the machine still answers).
    let run = deploy(&d, &app, &[]);
    assert_reused(&run, 1);
    wait_for_names(&releases, &["1"]);
    assert_eq!(answer(&d).0, v1_token);
    // flyctl's `--image` is taken, and said to change nothing.
    let table = lakefly(&d, &["releases", "-a", "built", "--image"]).expect_code(0);
    assert!(
        table.stderr.contains("note: --image changes nothing"),
        "{}",
        table.stderr
    );
    let files = |version: &str| {
        let row = table.stdout.lines().find(|l| l.starts_with(version));
        row.and_then(|l| l.split_whitespace().rev().nth(1).map(str::to_string))
    };
    assert_eq!(files("v3 ").as_deref(), Some("v1's"), "{}", table.stdout);
    assert_eq!(files("v1 ").as_deref(), Some("own"), "{}", table.stdout);

    // `--rebuild` builds again; so does a changed input.
    let run = deploy(&d, &app, &["--rebuild"]);
    assert!(run.stderr.contains("build: building"), "{}", run.stderr);
    let (v4_token, v4_dir, _) = answer(&d);
    assert_ne!(v4_token, v1_token);
    assert!(v4_dir.ends_with("/releases/built/4"), "{v4_dir}");
    assert_eq!(newest_release(&d).get("files_of"), None);
    std::fs::write(app.join("fly.toml"), config("b")).unwrap();
    let run = deploy(&d, &app, &[]);
    assert!(run.stderr.contains("build: building"), "{}", run.stderr);
    assert_ne!(answer(&d).0, v4_token);
    wait_for_names(&releases, &["4", "5"]);

    // A rollback to the release before runs from its files, as they were built.
    let run = lakefly(&d, &["rollback", "-a", "built"]).expect_code(0);
    assert_reused(&run, 4);
    assert_eq!(answer(&d).0, v4_token);
    // Another build, then a rollback to one whose files are gone (v5's: neither current
    // nor the one before): its bundle is unpacked and built again.
    std::fs::write(app.join("fly.toml"), config("c")).unwrap();
    deploy(&d, &app, &[]);
    wait_for_names(&releases, &["4", "7"]);
    let run = lakefly(&d, &["rollback", "5", "-a", "built"]).expect_code(0);
    assert!(run.stderr.contains("build: building"), "{}", run.stderr);
    let (token, dir, foo) = answer(&d);
    assert!(dir.ends_with("/releases/built/8"), "{dir}");
    assert!(![v1_token, v4_token].contains(&token), "{token}");
    assert_eq!(foo, "bar");
}
