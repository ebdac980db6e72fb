//! `lakefly config ...`, `launch`, `completion` and the error conventions, driven through
//! the real binary: exact stderr lines and exit codes.

mod common;

use std::fs;
use std::path::Path;

use common::{lakefly, lakeflyd};

fn project(fly_toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("fly.toml"), fly_toml).unwrap();
    dir
}

const HELLO: &str = "# hello app\napp = \"hello\"\n\n[http_service]\n  internal_port = 8080  # where the app listens\n  processes = [\"app\"]\n";

#[test]
fn validate_a_good_file() {
    let dir = project(HELLO);
    // What runs: the Dockerfile beside it, as on Fly.
    fs::write(
        dir.path().join("Dockerfile"),
        "FROM python:3.11\nCMD [\"python3\", \"app.py\"]\n",
    )
    .unwrap();
    let run = lakefly(dir.path(), &["config", "validate"]).expect_code(0);
    assert_eq!(run.stdout, "fly.toml is valid\n");
    assert_eq!(run.stderr, "");
}

#[test]
fn a_config_flag_naming_a_directory_reads_its_fly_toml_as_flyctl_does() {
    let dir = project(&format!(
        "{HELLO}\n[processes]\n  app = \"python3 app.py\"\n"
    ));
    fs::create_dir(dir.path().join("empty")).unwrap();
    let run = lakefly(dir.path(), &["config", "validate", "-c", "."]).expect_code(0);
    assert_eq!(run.stdout, "./fly.toml is valid\n");
    let show = lakefly(dir.path(), &["config", "show", "--json", "-c", "."]).expect_code(0);
    assert_eq!(show.json()["app"], "hello");
    let none = lakefly(dir.path(), &["config", "validate", "-c", "empty"]).expect_code(5);
    assert!(
        none.stderr
            .starts_with("error: no config file at empty/fly.toml\n"),
        "{}",
        none.stderr
    );
}

#[test]
fn validate_warns_when_deploying_from_the_files_directory_would_run_nothing() {
    let dir = project(HELLO);
    let run = lakefly(dir.path(), &["config", "validate"]).expect_code(0);
    assert_eq!(run.stdout, "fly.toml is valid, with 1 warning\n");
    assert!(
        run.stderr.starts_with("warning: `lakefly deploy` from . would refuse this: nothing says what process group \"app\" runs: no [processes] entry, no experimental.cmd, no Dockerfile in ."),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: give it a command in [processes]"),
        "{}",
        run.stderr
    );
    // --strict: an error, as deploy makes it.
    lakefly(dir.path(), &["config", "validate", "--strict"]).expect_code(3);
    // A command of its own is enough.
    let dir = project(&format!(
        "{HELLO}\n[processes]\n  app = \"python3 app.py\"\n"
    ));
    let run = lakefly(dir.path(), &["config", "validate"]).expect_code(0);
    assert_eq!(run.stderr, "");
}

#[test]
fn validate_reports_every_error_with_file_line_and_column_and_exits_3() {
    let dir = project("app = \"Hello\"\n[deploy]\nstrategy = \"fast\"\n");
    let run = lakefly(dir.path(), &["config", "validate"]).expect_code(3);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "error: app name \"Hello\" may only hold lowercase letters, digits and dashes\n \
         --> fly.toml:1:7\n  |\n1 | app = \"Hello\"\n  |       ^^^^^^^\n  = hint: use 1 to 63 lowercase \
         letters, digits and dashes, starting and ending with a letter or digit\n\
         error: `deploy.strategy` \"fast\" is not one of rolling, immediate, canary, bluegreen\n \
         --> fly.toml:3:12\n  |\n3 | strategy = \"fast\"\n  |            ^^^^^^\n  = hint: use one of rolling, \
         immediate, canary, bluegreen\nhint: fix the 2 problems above, then run `lakefly config validate`\n"
    );
}

#[test]
fn validate_invalid_toml_exits_3_with_line_and_column() {
    let dir = project("app = \"a\"\n[env]\nA = \"1\"\nA = \"2\"\n");
    let run = lakefly(dir.path(), &["config", "validate"]).expect_code(3);
    assert!(
        run.stderr
            .starts_with("error: invalid TOML: key `A` of [env] is defined twice, first on line 3"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--> fly.toml:4:1"), "{}", run.stderr);
}

#[test]
fn validate_json_prints_the_report_on_stdout_and_the_error_on_stderr() {
    let dir = project("app = \"a\"\n[[vm]]\nmemory = \"much\"\n");
    let run = lakefly(dir.path(), &["config", "validate", "--json"]).expect_code(3);
    let report = run.json();
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"], 1);
    assert_eq!(report["diagnostics"][0]["line"], 3);
    assert_eq!(report["diagnostics"][0]["column"], 10);
    assert_eq!(report["diagnostics"][0]["key"], "vm[0].memory");
    let err: serde_json::Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(err["code"], "config_invalid");
    assert_eq!(
        err["error"],
        "fly.toml:3:10: `vm[0].memory` is not a valid size: expected a number in \"much\""
    );
    assert!(err["hint"].is_string());
}

#[test]
fn warnings_pass_and_strict_turns_them_and_extensions_into_errors() {
    let dir = project("app = \"a\"\nfavourite_colour = \"blue\"\n[build]\ncommand = \"make\"\n");
    fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCMD [\"./a\"]\n",
    )
    .unwrap();
    let run = lakefly(dir.path(), &["config", "validate"]).expect_code(0);
    assert_eq!(run.stdout, "fly.toml is valid, with 1 warning\n");
    assert!(
        run.stderr
            .starts_with("warning: unknown key `favourite_colour`\n --> fly.toml:2:1\n"),
        "{}",
        run.stderr
    );
    let strict = lakefly(dir.path(), &["config", "validate", "--strict", "--json"]).expect_code(3);
    let messages: Vec<String> = strict.json()["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        messages,
        [
            "unknown key `favourite_colour`",
            "[build] command is a lakefly extension that Fly.io does not read"
        ]
    );
}

#[test]
fn a_list_flyctl_reads_only_as_a_list_written_as_one_table_fails_strict_alone() {
    // lakefly reads `[restart]` and `[http_service.checks]` as lists of one; flyctl refuses
    // them ("cannot decode TOML table into a slice"), but takes `[mounts]` so.
    let dir = project(
        "app = \"a\"\n[processes]\n  app = \"x\"\n[http_service]\n  internal_port = 8080\n  \
         checks = { path = \"/\" }\n[restart]\n  policy = \"always\"\n[mounts]\n  \
         source = \"data\"\n  destination = \"/data\"\n",
    );
    lakefly(dir.path(), &["config", "validate"]).expect_code(0);
    let strict = lakefly(dir.path(), &["config", "validate", "--strict", "--json"]).expect_code(3);
    let found: Vec<(String, String)> = strict.json()["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let (message, hint) = (d["message"].as_str(), d["hint"].as_str());
            (message.unwrap().to_string(), hint.unwrap().to_string())
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "`http_service.checks` is a single table; flyctl reads it only as a list of tables"
                    .to_string(),
                "put the table in a list, `[{ ... }]`, if this file must also deploy to Fly.io"
                    .to_string()
            ),
            (
                "`restart` is a single table; flyctl reads it only as a list of tables".to_string(),
                "write its header as [[restart]] if this file must also deploy to Fly.io"
                    .to_string()
            ),
        ]
    );
}

#[test]
fn missing_config_is_not_found_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let run = lakefly(dir.path(), &["config", "validate"]).expect_code(5);
    assert_eq!(
        run.stderr,
        "error: no config file at fly.toml\nhint: run `lakefly launch` to write one, or point at it with -c PATH\n"
    );
}

#[test]
fn show_prints_the_normalized_model_and_a_overrides_the_app() {
    let dir = project("app = \"a\"\nkill_timeout = 5\n[[services]]\ninternal_port = \"8080\"\nconcurrency = \"20,25\"\n");
    let run = lakefly(dir.path(), &["config", "show", "-a", "other"]).expect_code(0);
    let cfg = run.json();
    assert_eq!(cfg["app"], "other");
    assert_eq!(cfg["kill_timeout"], "5s");
    assert_eq!(cfg["services"][0]["internal_port"], 8080);
    assert_eq!(cfg["services"][0]["processes"], serde_json::json!(["app"]));
    assert_eq!(
        cfg["services"][0]["concurrency"],
        serde_json::json!({"type": "requests", "soft_limit": 20, "hard_limit": 25})
    );
    // The JSON is what the daemon reads back.
    let back: lakefly::config::AppConfig = serde_json::from_value(cfg).unwrap();
    assert_eq!(back.services[0].internal_port, Some(8080));
}

#[test]
fn show_refuses_an_invalid_config() {
    let dir = project("app = 1\n");
    lakefly(dir.path(), &["config", "show"]).expect_code(3);
}

#[test]
fn get_prints_values_as_written() {
    let dir = project(HELLO);
    assert_eq!(
        lakefly(dir.path(), &["config", "get", "app"])
            .expect_code(0)
            .stdout,
        "hello\n"
    );
    assert_eq!(
        lakefly(dir.path(), &["config", "get", "http_service.internal_port"])
            .expect_code(0)
            .stdout,
        "8080\n"
    );
    assert_eq!(
        lakefly(dir.path(), &["config", "get", "http_service.processes"])
            .expect_code(0)
            .stdout,
        "[\"app\"]\n"
    );
    let json = lakefly(dir.path(), &["config", "get", "http_service", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(
        json,
        serde_json::json!({"internal_port": 8080, "processes": ["app"]})
    );
    // A table as the file holds it, its checks included.
    let checked = format!("{HELLO}\n  [[http_service.checks]]\n    path = \"/health\"\n");
    let dir = project(&checked);
    assert_eq!(
        lakefly(dir.path(), &["config", "get", "http_service"])
            .expect_code(0)
            .stdout,
        "[http_service]\n  internal_port = 8080  # where the app listens\n  processes = [\"app\"]\n\n  [[http_service.checks]]\n    path = \"/health\"\n"
    );
}

#[test]
fn get_of_a_missing_key_is_exit_5_and_a_bad_key_exit_2() {
    let dir = project(HELLO);
    let run = lakefly(dir.path(), &["config", "get", "deploy.strategy"]).expect_code(5);
    assert_eq!(
        run.stderr,
        "error: deploy.strategy is not set in fly.toml\nhint: `lakefly config show` prints every key that is set\n"
    );
    let run = lakefly(dir.path(), &["config", "get", "env..x"]).expect_code(2);
    assert!(
        run.stderr
            .starts_with("error: invalid key \"env..x\": empty key"),
        "{}",
        run.stderr
    );
}

#[test]
fn set_changes_only_the_value_and_keeps_the_trailing_comment() {
    let dir = project(HELLO);
    let run = lakefly(
        dir.path(),
        &[
            "config",
            "set",
            "http_service.internal_port=9090",
            "kill_signal=SIGTERM",
        ],
    )
    .expect_code(0);
    assert_eq!(
        run.stderr,
        "changed http_service.internal_port = 9090\nadded kill_signal = SIGTERM\nwrote fly.toml\n"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("fly.toml")).unwrap(),
        "# hello app\napp = \"hello\"\nkill_signal = \"SIGTERM\"\n\n[http_service]\n  internal_port = 9090  # where the app listens\n  processes = [\"app\"]\n"
    );
}

#[test]
fn set_then_unset_of_a_new_key_is_byte_identical() {
    let dir = project(HELLO);
    lakefly(
        dir.path(),
        &[
            "config",
            "set",
            "deploy.release_command=./migrate",
            "env.MODE=prod",
        ],
    )
    .expect_code(0);
    let edited = fs::read_to_string(dir.path().join("fly.toml")).unwrap();
    assert!(
        edited.contains("deploy.release_command = \"./migrate\""),
        "{edited}"
    );
    lakefly(
        dir.path(),
        &["config", "unset", "deploy.release_command", "env.MODE"],
    )
    .expect_code(0);
    assert_eq!(
        fs::read_to_string(dir.path().join("fly.toml")).unwrap(),
        HELLO
    );
}

#[test]
fn set_string_flag_and_toml_values() {
    let dir = project("app = \"a\"\n");
    lakefly(
        dir.path(),
        &["config", "set", "--string", "env.VERSION=1.10"],
    )
    .expect_code(0);
    lakefly(
        dir.path(),
        &[
            "config",
            "set",
            "swap_size_mb=512",
            "http_service.internal_port=8_080",
        ],
    )
    .expect_code(0);
    let text = fs::read_to_string(dir.path().join("fly.toml")).unwrap();
    assert!(text.contains("env.VERSION = \"1.10\""), "{text}");
    assert!(text.contains("swap_size_mb = 512"), "{text}");
    assert!(
        text.contains("http_service.internal_port = 8_080"),
        "{text}"
    );
}

#[test]
fn set_that_would_break_the_config_is_refused_and_the_file_untouched() {
    let dir = project(HELLO);
    let run = lakefly(
        dir.path(),
        &["config", "set", "http_service.internal_port=99999"],
    )
    .expect_code(3);
    assert!(
        run.stderr
            .starts_with("error: port 99999 is out of range\n"),
        "{}",
        run.stderr
    );
    // The place shown is in the text the edit would have written; the file keeps its own.
    assert!(
        run.stderr.contains(
            "hint: fly.toml is unchanged: the edit would make it invalid (the line above is what it would have written); give a valid value"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("fly.toml")).unwrap(),
        HELLO
    );
    // No temporary file is left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn set_without_equals_is_a_usage_error() {
    let dir = project(HELLO);
    let run = lakefly(dir.path(), &["config", "set", "app"]).expect_code(2);
    assert!(
        run.stderr.starts_with("error: \"app\" is not KEY=VALUE\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn set_keeps_the_file_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = project(HELLO);
    let path = dir.path().join("fly.toml");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    lakefly(dir.path(), &["config", "set", "app=renamed"]).expect_code(0);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn unset_of_a_key_that_is_not_set_changes_nothing() {
    let dir = project(HELLO);
    let run = lakefly(dir.path(), &["config", "unset", "deploy.strategy"]).expect_code(0);
    assert_eq!(run.stderr, "deploy.strategy was not set\n");
    let json = lakefly(
        dir.path(),
        &["config", "unset", "deploy.strategy", "--json"],
    )
    .expect_code(0)
    .json();
    assert_eq!(json["written"], false);
    assert_eq!(json["changes"][0]["outcome"], "not set");
}

#[test]
fn edits_through_a_list_need_an_index() {
    let dir = project("[[services]]\ninternal_port = 1\n[[services]]\ninternal_port = 2\n");
    let run = lakefly(dir.path(), &["config", "set", "services.internal_port=3"]).expect_code(6);
    assert!(
        run.stderr
            .contains("`services` holds 2 tables; say which, e.g. `services[0].internal_port`"),
        "{}",
        run.stderr
    );
    lakefly(
        dir.path(),
        &["config", "set", "services[1].internal_port=3"],
    )
    .expect_code(0);
    assert_eq!(
        lakefly(dir.path(), &["config", "get", "services.1.internal_port"]).stdout,
        "3\n"
    );
}

#[test]
fn launch_writes_a_valid_config_without_asking_when_stdin_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("My_Service");
    fs::create_dir(&app).unwrap();
    fs::write(
        app.join("Procfile"),
        "web: python3 app.py\nworker: python3 worker.py\n",
    )
    .unwrap();
    fs::write(app.join("requirements.txt"), "flask\n").unwrap();
    let run = lakefly(&app, &["launch", "--no-deploy", "--no-create"]).expect_code(0);
    assert_eq!(
        run.stderr,
        "wrote fly.toml for app my-service (from Procfile, requirements.txt)\nadded /.venv/, __pycache__/ to .lakeflyignore: uploads leave them out (the build makes them on the host)\nnext: review it, then `lakefly config validate` and `lakefly deploy`\n"
    );
    let validated = lakefly(&app, &["config", "validate", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(validated["warnings"], 0);
    let cfg = lakefly(&app, &["config", "show"]).expect_code(0).json();
    assert_eq!(cfg["processes"]["web"], "python3 app.py");
    assert_eq!(cfg["http_service"]["processes"], serde_json::json!(["web"]));
    assert_eq!(
        cfg["build"]["command"],
        "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"
    );
}

#[test]
fn launch_runs_a_node_app_in_production_with_its_build_dependencies_installed() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("web");
    fs::create_dir(&app).unwrap();
    fs::write(
        app.join("package.json"),
        r#"{"scripts": {"start": "node server.js", "build": "vite build"}}"#,
    )
    .unwrap();
    lakefly(&app, &["launch", "--no-deploy", "--no-create"]).expect_code(0);
    let cfg = lakefly(&app, &["config", "show"]).expect_code(0).json();
    assert_eq!(cfg["env"]["NODE_ENV"], "production");
    assert_eq!(
        cfg["build"]["command"],
        "npm install --include=dev && npm run build"
    );
    assert_eq!(cfg["processes"]["app"], "npm start");
}

#[test]
fn launch_refuses_to_overwrite_without_force() {
    let dir = project(HELLO);
    let run = lakefly(
        dir.path(),
        &["launch", "--name", "x", "--no-deploy", "--no-create"],
    )
    .expect_code(6);
    assert_eq!(
        run.stderr,
        "error: fly.toml already exists\nhint: pass --force to overwrite it\n"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("fly.toml")).unwrap(),
        HELLO
    );
    lakefly(
        dir.path(),
        &[
            "launch",
            "--name",
            "x",
            "--force",
            "--no-deploy",
            "--no-create",
        ],
    )
    .expect_code(0);
    assert!(fs::read_to_string(dir.path().join("fly.toml"))
        .unwrap()
        .contains("app = \"x\""));
}

#[test]
fn launch_rejects_a_bad_name() {
    let dir = tempfile::tempdir().unwrap();
    let run = lakefly(dir.path(), &["launch", "--name", "Bad Name"]).expect_code(2);
    assert!(
        run.stderr
            .starts_with("error: app name \"Bad Name\" may only hold"),
        "{}",
        run.stderr
    );
    assert!(!dir.path().join("fly.toml").exists());
}

#[test]
fn completion_scripts_for_every_shell() {
    for (shell, marker) in [
        ("bash", "_lakefly()"),
        ("zsh", "#compdef lakefly"),
        ("fish", "complete -c lakefly"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let run = lakefly(Path::new("."), &["completion", shell]).expect_code(0);
        assert!(
            run.stdout.contains(marker),
            "{shell}: {}",
            &run.stdout[..run.stdout.len().min(200)]
        );
        assert!(
            run.stdout.contains("validate"),
            "{shell} completes subcommands"
        );
    }
}

#[test]
fn every_command_help_shows_an_example() {
    let commands: &[&[&str]] = &[
        &[],
        &["launch"],
        &["config"],
        &["config", "validate"],
        &["config", "show"],
        &["config", "get"],
        &["config", "set"],
        &["config", "unset"],
        &["deploy"],
        &["releases"],
        &["rollback"],
        &["status"],
        &["apps"],
        &["machines"],
        &["scale"],
        &["secrets"],
        &["events"],
        &["logs"],
        &["daemon"],
        &["daemon", "run"],
        &["completion"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let run = lakefly(Path::new("."), &args).expect_code(0);
        assert!(
            run.stdout.contains("Examples:"),
            "{args:?} --help has no example:\n{}",
            run.stdout
        );
    }
    assert!(lakeflyd(&["--help"])
        .expect_code(0)
        .stdout
        .contains("Examples:"));
}

#[test]
fn usage_errors_exit_2_and_are_json_under_json() {
    let run = lakefly(Path::new("."), &["config", "frobnicate"]).expect_code(2);
    assert!(
        run.stderr.contains("unrecognized subcommand 'frobnicate'"),
        "{}",
        run.stderr
    );
    let run = lakefly(Path::new("."), &["config", "frobnicate", "--json"]).expect_code(2);
    let err: serde_json::Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(err["code"], "usage");
    assert!(
        err["error"].as_str().unwrap().contains("frobnicate"),
        "{err}"
    );
    // flyctl's command lakefly has not is a usage error saying what to use instead,
    // rather than clap's nearest name ("a similar subcommand exists: 'apps'").
    let run = lakefly(Path::new("."), &["ips", "list"]).expect_code(2);
    assert!(
        run.stderr
            .contains("lakefly has no `ips` command (it is flyctl's)")
            && run.stderr.contains("`lakefly status` shows its URL")
            && !run.stderr.contains("similar"),
        "{}",
        run.stderr
    );
    let run = lakefly(Path::new("."), &["--json", "postgres", "attach"]).expect_code(2);
    let err: serde_json::Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(err["code"], "usage", "{err}");
    assert!(err["hint"].as_str().unwrap().contains("[mounts]"), "{err}");
    // A deploy no machine could pass is refused before anything is read or sent.
    let run = lakefly(Path::new("."), &["deploy", "--wait-timeout", "0s"]).expect_code(2);
    assert!(
        run.stderr
            .contains("invalid value '0s' for '--wait-timeout <DURATION>': must be above zero"),
        "{}",
        run.stderr
    );
}

#[test]
fn lakeflyd_parses_its_flags() {
    let run = lakeflyd(&["--api", "not-an-address"]).expect_code(2);
    assert!(
        run.stderr
            .contains("invalid value 'not-an-address' for '--api <ADDR>'"),
        "{}",
        run.stderr
    );
    let help = lakeflyd(&["--help"]).expect_code(0).stdout;
    for flag in [
        "--api",
        "--edge",
        "--state",
        "--domain",
        "--token-file",
        "--log-format",
    ] {
        assert!(help.contains(flag), "lakeflyd --help lacks {flag}");
    }
}
