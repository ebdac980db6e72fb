//! Named remotes: `lakefly remote add|use|list|remove`, and commands reaching the daemon
//! a name stands for, by default or with `--remote NAME` or `LAKEFLY_REMOTE`.

mod common;

use std::path::Path;

use common::daemon::TestDaemon;
use serde_json::Value;

/// `lakefly ARGS` with its remotes file under `config`.
fn lakefly(config: &Path, args: &[&str]) -> common::Run {
    lakefly_with(config, args, &[])
}

fn lakefly_with(config: &Path, args: &[&str], env: &[(&str, &str)]) -> common::Run {
    let config = config.to_str().unwrap();
    let mut all = vec![("XDG_CONFIG_HOME", config)];
    all.extend_from_slice(env);
    common::lakefly_env(Path::new("."), args, &all)
}

fn app_names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_named_remote_is_used_by_name_by_default_and_through_the_environment() {
    let config = tempfile::tempdir().unwrap();
    let d = TestDaemon::start();
    let list = lakefly(config.path(), &["remote", "list", "--json"]).expect_code(0);
    let list = list.json();
    assert_eq!(list[0]["name"], "local");
    assert_eq!(list[0]["current"], true);

    lakefly(config.path(), &["remote", "add", "box", &d.api]).expect_code(0);
    lakefly(
        config.path(),
        &["--remote", "box", "apps", "create", "by-name"],
    )
    .expect_code(0);
    lakefly(config.path(), &["remote", "use", "box"]).expect_code(0);
    lakefly(config.path(), &["apps", "create", "by-default"]).expect_code(0);
    lakefly_with(
        config.path(),
        &["apps", "create", "by-env"],
        &[("LAKEFLY_REMOTE", "box")],
    )
    .expect_code(0);
    let apps = lakefly(config.path(), &["apps", "list", "--json"]).expect_code(0);
    assert_eq!(app_names(&apps.json()), ["by-default", "by-env", "by-name"]);
    // A usage error shows the command as typed, not the address from the environment.
    let usage = lakefly_with(
        config.path(),
        &["scale", "count"],
        &[("LAKEFLY_REMOTE", "box")],
    )
    .expect_code(2);
    assert!(
        usage
            .stderr
            .contains("Usage: lakefly scale count <N|GROUP=N>..."),
        "{}",
        usage.stderr
    );

    let run = lakefly(config.path(), &["remote", "list"]).expect_code(0);
    let marked: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('*'))
        .collect();
    assert_eq!(marked.len(), 1, "{}", run.stdout);
    assert!(
        marked[0].contains("box") && marked[0].contains(&d.api),
        "{}",
        run.stdout
    );
    let file = std::fs::read_to_string(config.path().join("lakefly/config.toml")).unwrap();
    assert!(file.contains(&format!("url = \"{}\"", d.api)), "{file}");

    // Forgetting the default goes back to the local daemon.
    lakefly(config.path(), &["remote", "remove", "box"]).expect_code(0);
    let list = lakefly(config.path(), &["remote", "list", "--json"]).expect_code(0);
    let list = list.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["current"], true);
}

#[test]
fn unknown_names_bad_urls_and_a_broken_file_are_errors_that_say_what_to_do() {
    let config = tempfile::tempdir().unwrap();
    let run = lakefly(config.path(), &["--remote", "nosuch", "apps", "list"]).expect_code(5);
    assert!(
        run.stderr
            .contains("no remote named `nosuch` (known: local)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("lakefly remote add NAME URL"),
        "{}",
        run.stderr
    );

    // A daemon address that cannot be one is a usage error before any request, from the
    // flag or the environment alike.
    for bad in ["nonsense::", "ftp://lake.example.com", "http://"] {
        let run = lakefly_with(config.path(), &["apps", "list"], &[("LAKEFLY_REMOTE", bad)])
            .expect_code(2);
        assert!(
            run.stderr
                .starts_with(&format!("error: `{bad}` is not a daemon URL"))
                && run
                    .stderr
                    .contains("hint: a daemon is an http:// or https:// URL, or HOST:PORT"),
            "{bad}: {}",
            run.stderr
        );
    }
    lakefly(config.path(), &["--remote", "[::1", "apps", "list"]).expect_code(2);
    // A password in the address is refused without being repeated, however it is given.
    for with_password in ["http://me:hunter2@127.0.0.1:9", "me:hunter2@127.0.0.1:9"] {
        let run = lakefly(config.path(), &["--remote", with_password, "apps", "list"]);
        let run = run.expect_code(2);
        assert!(
            run.stderr.starts_with(
                "error: a daemon URL holds no user name or password: write http://127.0.0.1:9"
            ) && !run.stderr.contains("hunter2"),
            "{}",
            run.stderr
        );
    }

    let run = lakefly(
        config.path(),
        &["remote", "add", "prod", "lake.example.com"],
    )
    .expect_code(2);
    assert!(run.stderr.contains("https://HOST:PORT"), "{}", run.stderr);
    let run = lakefly(config.path(), &["remote", "add", "local", "http://x:1"]).expect_code(2);
    assert!(
        run.stderr.contains("`local` is the local daemon"),
        "{}",
        run.stderr
    );
    lakefly(
        config.path(),
        &["remote", "add", "prod", "https://lake.example.com:4280"],
    )
    .expect_code(0);
    let run = lakefly(
        config.path(),
        &["remote", "add", "prod", "https://other:4280"],
    )
    .expect_code(6);
    assert!(
        run.stderr.contains("lakefly remote remove prod"),
        "{}",
        run.stderr
    );

    let file = config.path().join("lakefly/config.toml");
    std::fs::write(
        &file,
        "current = \"prod\"\n[remotes.prod]\nurl = [\"no\"]\n",
    )
    .unwrap();
    let run = lakefly(config.path(), &["remote", "list"]).expect_code(3);
    assert!(
        run.stderr.contains(&format!("{}:2:1", file.display())),
        "{}",
        run.stderr
    );
}
