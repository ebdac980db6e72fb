//! `lakefly deploy` end to end against a real daemon: a release goes live; a broken one
//! fails with exit 7 and the previous release keeps running, untouched.

mod common;

use std::path::Path;

use common::daemon::TestDaemon;
use common::files::{
    app_with, get_text, hello_copy, names_in, python_server, wait_for_names, PYTHON_WEB,
};
use common::Run;
use serde_json::Value;

fn deploy(d: &TestDaemon, app: &Path, extra: &[&str]) -> Run {
    let config = app.join("fly.toml");
    let mut args = vec!["--remote", &d.api, "deploy", "-c", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    common::lakefly(Path::new("."), &args)
}

fn status(d: &TestDaemon) -> Value {
    common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "hello", "--json"],
    )
    .expect_code(0)
    .json()
}

#[test]
fn a_release_goes_live_and_an_unchanged_app_uploads_nothing() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    let run = deploy(&d, &app, &[]).expect_code(0);
    assert!(
        run.stderr.contains("==> created app hello"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("==> uploaded the bundle"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("machine") && run.stderr.contains("is healthy"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("==> release v1 is live"),
        "{}",
        run.stderr
    );
    // Last, where the edge serves it.
    let edge_port = d.edge_addr().rsplit(':').next().unwrap().to_string();
    assert!(
        run.stderr
            .trim_end()
            .ends_with(&format!("visit http://hello.localhost:{edge_port}/")),
        "{}",
        run.stderr
    );
    let s = status(&d);
    assert_eq!(
        (
            s["release"]["version"].as_u64(),
            s["release"]["status"].as_str()
        ),
        (Some(1), Some("complete"))
    );
    assert_eq!(s["machines"][0]["health"], "passing");
    assert_eq!(s["machines"][0]["release_version"], 1);
    // `status` says where it is served too, as `fly status` gives its hostname.
    let url = format!("http://hello.localhost:{edge_port}/");
    assert_eq!(s["urls"], serde_json::json!([url]));
    let text = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "hello"],
    )
    .expect_code(0);
    assert!(
        text.stdout.contains(&format!("URLs     {url}\n")),
        "{}",
        text.stdout
    );
    // `open` prints where a browser would go (one starts only on a terminal).
    let open = |args: &[&str]| {
        let mut all = vec!["--remote", d.api.as_str(), "-a", "hello", "open"];
        all.extend_from_slice(args);
        common::lakefly(Path::new("."), &all)
    };
    assert_eq!(open(&[]).expect_code(0).stdout, format!("{url}\n"));
    let health = open(&["/health", "--json"]).expect_code(0).json();
    assert_eq!(health["url"], format!("{url}health"));

    // A CI script's `flyctl deploy --remote-only -y` runs as it is.
    let again = deploy(
        &d,
        &app,
        &[
            "--strategy",
            "bluegreen",
            "--remote-only",
            "-y",
            "--ha=false",
        ],
    )
    .expect_code(0);
    assert!(
        again.stderr.contains("nothing to upload")
            && again.stderr.contains(
                "note: --remote-only changes nothing: lakefly builds on the daemon's host"
            ),
        "{}",
        again.stderr
    );
    // `--ha` (two machines a group) is not what lakefly does: refused with the way to get it.
    let ha = deploy(&d, &app, &["--ha"]).expect_code(2);
    assert!(
        ha.stderr.contains("run two with `lakefly scale count 2`"),
        "{}",
        ha.stderr
    );
    let s = status(&d);
    assert_eq!(s["release"]["version"], 2);
    let machines = s["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 1, "the old machine is gone: {machines:?}");
    assert_eq!(machines[0]["release_version"], 2);
}

#[test]
fn deploy_working_directory_runs_from_there_as_flyctl_does() {
    let d = TestDaemon::start();
    let (dir, _app) = hello_copy();
    let run = common::lakefly(dir.path(), &["--remote", &d.api, "deploy", "hello"]);
    assert!(
        run.expect_code(0).stderr.contains("release v1 is live"),
        "the fly.toml in hello/ is read and hello/ uploaded"
    );
    assert_eq!(status(&d)["machines"].as_array().unwrap().len(), 1);

    let missing = common::lakefly(dir.path(), &["--remote", &d.api, "deploy", "nope"]);
    let missing = missing.expect_code(2);
    assert!(
        missing
            .stderr
            .starts_with("error: WORKING_DIRECTORY nope: No such file or directory"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_crashing_release_fails_with_exit_7_and_the_previous_one_keeps_running() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    let before = status(&d)["machines"][0].clone();

    std::fs::write(
        app.join("app.py"),
        "import sys\nprint('boom: missing DATABASE_URL', flush=True)\nsys.exit(3)\n",
    )
    .unwrap();
    let run = deploy(&d, &app, &[]).expect_code(7);
    assert!(
        run.stderr.contains("appears to be crashing")
            && run.stderr.contains("hint: release v1 keeps running"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("boom: missing DATABASE_URL"),
        "the machine's last log lines: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("error: release v2 of hello failed"),
        "{}",
        run.stderr
    );

    let after = status(&d);
    assert_eq!(after["release"]["version"], 1, "v1 stays current");
    let machines = after["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 1, "{machines:?}");
    assert_eq!(machines[0]["id"], before["id"], "the old machine is back");
    assert_eq!(machines[0]["state"], "started");
    let releases = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "releases", "-a", "hello", "--json"],
    )
    .expect_code(0)
    .json();
    assert_eq!(releases[0]["status"], "failed");
    assert_eq!(releases[1]["status"], "complete");
    // What the table shows, and when each ended, for scripts too.
    assert_eq!(releases[1]["strategy"], "rolling");
    assert!(releases[1]["finished_at"].is_string(), "{releases}");
    assert_eq!(releases[1]["bundle"].as_str().map(str::len), Some(64));

    // Rolling back to the failed release would run it again: refused, nothing started.
    // (Named as `releases` shows it, v2.)
    let refused = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "rollback", "v2", "-a", "hello"],
    )
    .expect_code(6);
    assert!(
        refused
            .stderr
            .starts_with("error: release v2 is failed: a rollback to it would start")
            && refused
                .stderr
                .contains("hint: roll back to a release that ran"),
        "{}",
        refused.stderr
    );
    assert_eq!(status(&d)["machines"][0]["id"], before["id"]);
}

#[test]
fn a_failed_release_shows_the_log_lines_before_its_failure_not_the_shutdown_after() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    // A health check that fails, saying why in the log; then, when the rollout stops the
    // machine, more shutdown lines than the failure shows.
    std::fs::write(
        app.join("app.py"),
        r#"import os, signal, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

def stop(*_):
    for n in range(30):
        print(f"shutdown noise {n}", flush=True)
    time.sleep(0.5)
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        print("health: the database does not answer", flush=True)
        self.send_error(500)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#,
    )
    .unwrap();
    let config = std::fs::read_to_string(app.join("fly.toml"))
        .unwrap()
        .replace("interval = \"10s\"", "interval = \"500ms\"")
        .replace("timeout = \"2s\"", "timeout = \"400ms\"");
    std::fs::write(app.join("fly.toml"), config).unwrap();
    let run = deploy(&d, &app, &["--wait-timeout", "3s"]).expect_code(7);
    let logs = run.stderr.split("last log lines:").nth(1).unwrap_or("");
    assert!(
        logs.contains("health: the database does not answer") && !logs.contains("shutdown noise"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_failing_release_command_stops_the_release_before_any_machine_is_touched() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    let before = status(&d)["machines"][0].clone();
    let mut config = std::fs::read_to_string(app.join("fly.toml")).unwrap();
    config = config.replace(
        "strategy = \"rolling\"",
        "strategy = \"rolling\"\n  release_command = \"echo migrating; exit 4\"",
    );
    std::fs::write(app.join("fly.toml"), config).unwrap();
    let run = deploy(&d, &app, &[]).expect_code(7);
    assert!(
        run.stderr.contains("release_command exited 4")
            && run.stderr.contains("    last output: migrating\n"),
        "{}",
        run.stderr
    );
    let after = status(&d)["machines"][0].clone();
    assert_eq!(
        (after["id"].clone(), after["pid"].clone()),
        (before["id"].clone(), before["pid"].clone())
    );
    // Its whole output is in the app's log too, from `release_command:v2`.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let args = ["--remote", &d.api, "logs", "-a", "hello", "--no-tail"];
        let logs = common::lakefly(Path::new("."), &args).expect_code(0);
        if logs.stdout.contains(" release_command:v2 [-] migrating\n") {
            break;
        }
        assert!(std::time::Instant::now() < until, "{}", logs.stdout);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A fix goes out without the migration that fails (`fly deploy --skip-release-command`);
    // what that release runs has none, so `config show --release` says what ran.
    let run = deploy(
        &d,
        &app,
        &["--skip-release-command", "--max-unavailable", "1"],
    )
    .expect_code(0);
    assert!(
        run.stderr.contains(
            "note: not running release_command `echo migrating; exit 4` for this release"
        ) && !run.stderr.contains("release_command exited"),
        "{}",
        run.stderr
    );
    let args = [
        "--remote",
        &d.api,
        "config",
        "show",
        "--release",
        "-a",
        "hello",
        "--json",
    ];
    let ran = common::lakefly(Path::new("."), &args).expect_code(0).json();
    assert!(ran["deploy"]["release_command"].is_null(), "{ran}");
    assert_eq!(ran["deploy"]["max_unavailable"], 1.0, "{ran}");
    // A timeout given on the command line holds for that release.
    let config = std::fs::read_to_string(app.join("fly.toml")).unwrap();
    let config = config.replace("echo migrating; exit 4", "exec sleep 30");
    std::fs::write(app.join("fly.toml"), config).unwrap();
    let run = deploy(&d, &app, &["--release-command-timeout", "300ms"]).expect_code(7);
    assert!(run.stderr.contains("300ms"), "{}", run.stderr);
}

#[test]
fn an_invalid_config_stops_before_anything_is_sent() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    std::fs::write(
        app.join("fly.toml"),
        "app = \"hello\"\n[deploy]\nstrategy = \"sideways\"\n",
    )
    .unwrap();
    let run = deploy(&d, &app, &[]).expect_code(3);
    assert!(run.stderr.contains("fly.toml:3:12"), "{}", run.stderr);
    let apps = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "apps", "list", "--json"],
    )
    .expect_code(0)
    .json();
    assert_eq!(apps, serde_json::json!([]));
}

#[test]
fn rollback_goes_back_to_the_last_complete_release_as_a_new_release() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    std::fs::write(
        app.join("fly.toml"),
        std::fs::read_to_string(app.join("fly.toml"))
            .unwrap()
            .replace("GREETING = \"hello\"", "GREETING = \"v2\""),
    )
    .unwrap();
    deploy(&d, &app, &[]).expect_code(0);
    let run = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "rollback", "-a", "hello"],
    )
    .expect_code(0);
    assert!(
        run.stderr.contains("==> release v3 is live"),
        "{}",
        run.stderr
    );
    let releases = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "releases", "-a", "hello", "--json"],
    )
    .expect_code(0)
    .json();
    assert_eq!(releases[0]["description"], "rollback to v1");
    assert_eq!(releases[0]["status"], "complete");
    assert_eq!(status(&d)["release"]["version"], 3);
    let missing = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "rollback", "9", "-a", "hello"],
    )
    .expect_code(5);
    assert!(
        missing
            .stderr
            .starts_with("error: release v9 does not exist"),
        "{}",
        missing.stderr
    );
}

#[test]
fn canary_and_immediate_replace_every_machine_and_a_second_deploy_at_once_is_refused() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    for (round, strategy) in [(2, "canary"), (3, "immediate")] {
        let run = deploy(&d, &app, &["--strategy", strategy]).expect_code(0);
        assert!(
            run.stderr
                .contains(&format!("==> release v{round} is live")),
            "{}",
            run.stderr
        );
        let s = status(&d);
        let machines = s["machines"].as_array().unwrap();
        assert_eq!(machines.len(), 1, "{strategy}: {machines:?}");
        assert_eq!(machines[0]["release_version"], round, "{strategy}");
    }
    // A release whose check cannot pass for a while keeps v4 running...
    common::files::edit_file(
        &app.join("fly.toml"),
        "grace_period = \"1s\"",
        "grace_period = \"3s\"",
    );
    deploy(&d, &app, &["--detach"]).expect_code(0);
    // ...so a second one is refused with the running version named.
    let run = deploy(&d, &app, &["--detach"]).expect_code(6);
    assert!(
        run.stderr
            .contains("error: release v4 of this app is still rolling out"),
        "{}",
        run.stderr
    );
}

#[test]
fn launch_writes_the_config_then_deploys_it() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    // Heroku's `release` line runs once per release, not as a process.
    let procfile = "web: python3 -m http.server $PORT --bind 127.0.0.1\nrelease: echo migrated\n";
    let app = app_with(dir.path(), "web", &[("Procfile", procfile)]);
    let run =
        common::lakefly(&app, &["--remote", &d.api, "launch", "--name", "launched"]).expect_code(0);
    assert!(
        run.stderr
            .starts_with("wrote fly.toml for app launched (from Procfile)\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("release_command: running `echo migrated`")
            // Its output is shown as it runs, as flyctl shows a release command's.
            && run.stderr.contains("    release_command: migrated\n")
            && run.stderr.contains("release v1 is live"),
        "{}",
        run.stderr
    );
    let status = common::lakefly(
        &app,
        &["--remote", &d.api, "status", "-a", "launched", "--json"],
    )
    .expect_code(0)
    .json();
    assert_eq!(status["machines"][0]["health"], "passing", "{status}");
    assert_eq!(status["machines"].as_array().unwrap().len(), 1, "{status}");
    assert!(app.join("fly.toml").is_file());
}

#[test]
fn a_virtualenv_the_build_makes_is_the_python_of_the_release_command_and_machines() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let server = python_server(r#""%s|%s" % (sys.prefix, os.environ.get("VIRTUAL_ENV"))"#);
    // `--without-pip`: the same layout `launch` asks for, without a download.
    let toml = format!(
        r#"app = "venv"
[build]
  command = "python3 -m venv --without-pip .venv && seq 1 250"
[deploy]
  release_command = "sh -c 'test \"$(command -v python3)\" = \"$VIRTUAL_ENV/bin/python3\"'"
{PYTHON_WEB}"#
    );
    let app = app_with(
        dir.path(),
        "venv",
        &[("fly.toml", &toml), ("server.py", &server)],
    );
    let run = deploy(&d, &app, &[]).expect_code(0);
    // The build's output is shown as it runs, up to a bound.
    assert!(
        run.stderr.contains("    build: 1\n")
            && run.stderr.contains("    build: 200\n")
            && !run.stderr.contains("    build: 201\n")
            && run.stderr.contains("build: (more output not shown here"),
        "{}",
        run.stderr
    );
    let s = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "venv", "--json"],
    )
    .expect_code(0)
    .json();
    let port = s["machines"][0]["port"].as_u64().unwrap();
    let body = get_text(&format!("http://127.0.0.1:{port}/"));
    let (prefix, venv) = body.split_once('|').unwrap();
    assert!(prefix.ends_with("/releases/venv/1/.venv"), "{body}");
    assert_eq!(prefix, venv, "{body}");
}

#[test]
fn a_group_whose_machine_exits_for_good_fails_the_deploy_at_once() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    // A one-off step written as a process: it exits 0, and on-failure does not restart it.
    let config =
        "app = \"oneoff\"\n[processes]\n  app = \"echo done\"\n[deploy]\n  wait_timeout = \"5m\"\n";
    let app = app_with(dir.path(), "oneoff", &[("fly.toml", config)]);
    let run = deploy(&d, &app, &[]).expect_code(7);
    assert!(
        run.stderr.contains("exited with code 0 before it was healthy, and its restart policy does not start it again")
            && run.stderr.contains("[deploy] release_command")
            && run.stderr.contains("run its server in the foreground (no `&`, nohup"),
        "{}",
        run.stderr
    );
    // Said at once, not as "not healthy within 5m" once wait_timeout ran out.
    assert!(!run.stderr.contains("within 5m"), "{}", run.stderr);
    // What it printed just before it ended is among its last lines.
    let logs = run.stderr.split("last log lines:").nth(1).unwrap_or("");
    assert!(logs.contains("\n      done\n"), "{}", run.stderr);
}

#[test]
fn a_dockerfile_beside_fly_toml_runs_as_fly_builds_it_and_an_image_is_refused_before_upload() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let deploy = |config: &Path| {
        common::lakefly(
            Path::new("."),
            &["--remote", &d.api, "deploy", "-c", config.to_str().unwrap()],
        )
    };
    // Most real fly.toml files name no Dockerfile: flyctl builds the one beside them.
    let plain = app_with(
        dir.path(),
        "plain",
        &[
            (
                "fly.toml",
                "app = \"plain\"\n[build]\n  build-target = \"web\"\n  [build.args]\n    SITE = \"docs\"\n[http_service]\n  internal_port = 8080\n",
            ),
            // The stage build-target names runs, with [build.args] for its ARGs.
            (
                "Dockerfile",
                "FROM python:3.11-slim AS web\nARG SITE=none\nWORKDIR /srv/$SITE\nCMD python3 -m http.server $PORT --bind 127.0.0.1\nFROM web AS worker\nCMD python3 worker.py\n",
            ),
        ],
    );
    let run = deploy(&plain.join("fly.toml")).expect_code(0);
    assert!(
        run.stderr.contains("WORKDIR /srv/docs is ")
            && run.stderr.contains("runs `python3 -m http.server $PORT"),
        "{}",
        run.stderr
    );

    // A container image has nothing lakefly can run: said before the app is created or
    // anything uploaded, naming the file and what to do.
    let image_toml = "app = \"img\"\n[build]\n  image = \"flyio/hellofly:latest\"\n";
    let image = app_with(dir.path(), "img", &[("fly.toml", image_toml)]);
    let run = deploy(&image.join("fly.toml")).expect_code(3);
    assert!(
        run.stderr
            .contains("fly.toml: nothing says what process group \"app\" runs")
            && run
                .stderr
                .contains("[build] image \"flyio/hellofly:latest\" is a container image")
            && run
                .stderr
                .contains("hint: give it a command in [processes]"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("uploaded"), "{}", run.stderr);
    let apps = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "apps", "list", "--json"],
    )
    .expect_code(0)
    .json();
    assert!(
        !apps.to_string().contains("\"img\""),
        "no app was created: {apps}"
    );
    // An empty [processes] entry runs the Dockerfile's CMD, as flyctl runs the image's;
    // with no Dockerfile it is refused as running nothing (it ran `sh -c ""`, which exits).
    let empty_toml =
        "app = \"empty\"\n[processes]\n  app = \"\"\n[http_service]\n  internal_port = 8080\n";
    let empty = app_with(dir.path(), "empty", &[("fly.toml", empty_toml)]);
    let run = deploy(&empty.join("fly.toml")).expect_code(3);
    assert!(
        run.stderr
            .contains("its [processes] entry is empty, which runs a Dockerfile's CMD, and there is no Dockerfile"),
        "{}",
        run.stderr
    );
    let dockerfile = "FROM python:3.11-slim\nCMD python3 -m http.server $PORT --bind 127.0.0.1\n";
    std::fs::write(empty.join("Dockerfile"), dockerfile).unwrap();
    let run = deploy(&empty.join("fly.toml")).expect_code(0);
    assert!(
        run.stderr.contains("runs `python3 -m http.server $PORT"),
        "{}",
        run.stderr
    );

    // flyctl's `deploy --image`, likewise, names the flag and what to do instead.
    let config = image.join("fly.toml");
    let args = [
        "--remote",
        &d.api,
        "deploy",
        "-c",
        config.to_str().unwrap(),
        "-i",
        "flyio/hellofly:latest",
    ];
    let run = common::lakefly(Path::new("."), &args).expect_code(2);
    assert!(
        run.stderr
            .contains("for '--image <IMAGE>': lakefly runs no container images")
            && run.stderr.contains("deploy the app's directory instead"),
        "{}",
        run.stderr
    );

    // A Dockerfile the config names but the upload would not hold: missing, or outside
    // the app's directory (a monorepo's `../Dockerfile`). Also said before anything.
    for (name, says) in [
        (
            "Dockerfile.gateway",
            "[build] dockerfile \"Dockerfile.gateway\" is not in ",
        ),
        (
            "../Dockerfile",
            "[build] dockerfile \"../Dockerfile\" is not inside ",
        ),
    ] {
        let toml = format!("app = \"gw\"\n[build]\n  dockerfile = \"{name}\"\n");
        let gw = app_with(dir.path(), "gw", &[("fly.toml", &toml)]);
        std::fs::write(dir.path().join("Dockerfile"), "FROM x\nCMD true\n").unwrap();
        let run = deploy(&gw.join("fly.toml")).expect_code(3);
        assert!(
            run.stderr.contains(says)
                && run
                    .stderr
                    .contains("hint: [build] dockerfile is read from the directory holding"),
            "{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("uploaded the bundle"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_dockerfile_app_runs_without_a_container_engine() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("svc");
    std::fs::create_dir_all(app.join("src")).unwrap();
    std::fs::write(
        app.join("fly.toml"),
        "app = \"svc\"\n[build]\n  dockerfile = \"Dockerfile.lsh\"\n[http_service]\n  internal_port = 8080\n  [[http_service.checks]]\n    grace_period = \"0s\"\n    interval = \"200ms\"\n    path = \"/\"\n",
    )
    .unwrap();
    std::fs::write(
        app.join("Dockerfile.lsh"),
        // As flyctl's Django Dockerfile, requirements.txt goes to /tmp for a RUN step.
        "FROM python:3.11-slim\nWORKDIR /srv/app\nENV GREETING=\"from the image\" STATE_DIR=/srv/app/state\nCOPY requirements.txt /tmp/requirements.txt\nCOPY src/ ./\nRUN pip install nothing\nCMD [\"python3\", \"/srv/app/server.py\"]\n",
    )
    .unwrap();
    std::fs::write(app.join("requirements.txt"), "").unwrap();
    std::fs::write(
        app.join("src/server.py"),
        r#"import os
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("%s|%s|%s" % (os.environ["GREETING"], os.environ["STATE_DIR"], os.getcwd())).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#,
    )
    .unwrap();
    let config = app.join("fly.toml");
    let run = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "deploy", "-c", config.to_str().unwrap()],
    )
    .expect_code(0);
    assert!(
        run.stderr
            .contains("not applied on the host: line 6: RUN pip install nothing")
            && run.stderr.contains(
                "not applied on the host: line 4: COPY to /tmp/requirements.txt: outside WORKDIR /srv/app"
            ),
        "{}",
        run.stderr
    );
    // The way round a RUN is said once, not on each line skipped.
    assert_eq!(
        run.stderr
            .matches("put what they do in [build] command")
            .count(),
        1,
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("outside WORKDIR /srv/app (use"),
        "{}",
        run.stderr
    );
    // The command's path under WORKDIR is the tree's.
    assert!(run.stderr.contains("1-tree/server.py`"), "{}", run.stderr);
    let s = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "svc", "--json"],
    )
    .expect_code(0)
    .json();
    let port = s["machines"][0]["port"].as_u64().unwrap();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
    use std::io::{Read, Write};
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let parts: Vec<&str> = body.split('|').collect();
    assert_eq!(parts[0], "from the image");
    assert!(
        parts[1].ends_with("1-tree/state"),
        "STATE_DIR mapped onto the tree: {body}"
    );
    assert!(
        parts[2].ends_with("1-tree"),
        "the machine runs in the tree: {body}"
    );
}

#[test]
fn env_and_build_arg_flags_hold_for_that_release_and_leave_the_file_alone() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    // The Dockerfile beside is the image even though [processes] gives the command (as
    // Fly builds it): its ENV reaches the machine.
    let toml = format!("app = \"flags\"\n[env]\n  NOTE = \"from-file\"\n{PYTHON_WEB}");
    let app = app_with(
        dir.path(),
        "flags",
        &[
            ("fly.toml", &toml),
            (
                "Dockerfile",
                "FROM python:3.11-slim\nARG FLAVOR=plain\nENV FLAVOR=$FLAVOR\nCOPY server.py ./\n",
            ),
            (
                "server.py",
                &python_server(r#"os.environ["NOTE"] + "|" + os.environ["FLAVOR"]"#),
            ),
        ],
    );
    let answer = || {
        let s = common::lakefly(
            Path::new("."),
            &["--remote", &d.api, "status", "-a", "flags", "--json"],
        )
        .expect_code(0)
        .json();
        let port = s["machines"][0]["port"].as_u64().unwrap();
        get_text(&format!("http://127.0.0.1:{port}/"))
    };
    // Memory and CPUs of the machine's spec.
    let size = || {
        let s = common::lakefly(
            Path::new("."),
            &["--remote", &d.api, "status", "-a", "flags", "--json"],
        )
        .expect_code(0)
        .json();
        let spec = &s["machines"][0]["spec"];
        (spec["memory_mb"].clone(), spec["cpus"].clone())
    };
    let memory = || size().0;
    deploy(
        &d,
        &app,
        &[
            "-e",
            "NOTE=from=flag",
            "--build-arg",
            "FLAVOR=spicy",
            "--vm-memory",
            "256",
        ],
    )
    .expect_code(0);
    assert_eq!(answer(), "from=flag|spicy");
    assert_eq!(memory(), 256);
    assert_eq!(std::fs::read_to_string(app.join("fly.toml")).unwrap(), toml);
    // The next deploy without them is the file's again; a size is kept, as `scale
    // memory`'s is, while fly.toml names none.
    deploy(&d, &app, &[]).expect_code(0);
    assert_eq!(answer(), "from-file|plain");
    assert_eq!(memory(), 256);
    // A flag changes what runs now, not what the file (which names no size) would give.
    deploy(&d, &app, &["--vm-cpus", "2"]).expect_code(0);
    assert_eq!(size(), (serde_json::json!(256), serde_json::json!(2)));
    let bad = deploy(&d, &app, &["--vm-size", "huge"]).expect_code(2);
    assert!(
        bad.stderr.contains("--vm-size <SIZE>") && bad.stderr.contains("known sizes: "),
        "{}",
        bad.stderr
    );
    // A bad one is refused before anything is sent, naming the flag.
    let bad = deploy(&d, &app, &["--env", "9LIVES=1"]).expect_code(2);
    assert!(
        bad.stderr.contains("--env <NAME=VALUE>")
            && bad.stderr.contains("\"9LIVES\" is not a variable name"),
        "{}",
        bad.stderr
    );
}

/// The Dockerfile `fly launch` writes for a Node app, as it writes it but for the last
/// line (`npm run start` there; Debian's nodejs, which CI installs, comes without npm).
const FLY_LAUNCH_NODE_DOCKERFILE: &str = r#"# syntax = docker/dockerfile:1

# Adjust NODE_VERSION as desired
ARG NODE_VERSION=20.10.0
FROM node:${NODE_VERSION}-slim as base

LABEL fly_launch_runtime="Node.js"

# Node.js app lives here
WORKDIR /app

# Set production environment
ENV NODE_ENV="production"
ENV PATH="/app/node_modules/.bin:$PATH"


# Throw-away build stage to reduce size of final image
FROM base as build

# Install packages needed to build node modules
RUN apt-get update -qq && \
    apt-get install --no-install-recommends -y build-essential node-gyp pkg-config python-is-python3

# Install node modules
COPY --link package*.json ./
RUN npm ci

# Copy application code
COPY --link . .


# Final stage for app image
FROM base

# Copy built application
COPY --from=build /app /app

# Start the server by default, this can be overwritten at runtime
EXPOSE 3000
CMD [ "node", "server.js" ]
"#;

#[test]
fn a_multi_stage_dockerfile_from_fly_launch_runs_from_the_stage_it_copies() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let app = app_with(
        dir.path(),
        "nodeapp",
        &[
            (
                "fly.toml",
                "app = \"nodeapp\"\nprimary_region = \"ams\"\n\n[build]\n\n[http_service]\n  internal_port = 3000\n  force_https = true\n  auto_stop_machines = true\n  auto_start_machines = true\n  min_machines_running = 0\n  processes = [\"app\"]\n",
            ),
            ("Dockerfile", FLY_LAUNCH_NODE_DOCKERFILE),
            // As fly launch writes it: the Dockerfile itself is listed.
            (
                ".dockerignore",
                "/.git\n/node_modules\n.dockerignore\n.env\nDockerfile\nfly.toml\n",
            ),
            ("package.json", "{\"name\": \"nodeapp\", \"scripts\": {\"start\": \"node server.js\"}}\n"),
            ("package-lock.json", "{\"name\": \"nodeapp\", \"lockfileVersion\": 3}\n"),
            (
                "server.js",
                "require('http').createServer((q, r) => r.end([process.env.NODE_ENV, process.env.PATH.split(':')[0], process.cwd()].join('|'))).listen(process.env.PORT, '127.0.0.1');\n",
            ),
        ],
    );
    let run = deploy(&d, &app, &[]).expect_code(0);
    // The stage it copies from was built from its own copies; its RUN steps are named.
    assert!(
        run.stderr.contains("WORKDIR /app is ")
            && run.stderr.contains("1-tree; runs `node server.js`")
            && run
                .stderr
                .contains("not applied on the host: line 26: RUN npm ci"),
        "{}",
        run.stderr
    );
    let status = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "nodeapp", "--json"],
    )
    .expect_code(0)
    .json();
    let port = status["machines"][0]["port"].as_u64().unwrap();
    let body = get_text(&format!("http://127.0.0.1:{port}/"));
    let parts: Vec<&str> = body.split('|').collect();
    assert_eq!(parts[0], "production", "{body}");
    assert!(
        parts[1].ends_with("1-tree/node_modules/.bin") && parts[2].ends_with("1-tree"),
        "PATH's /app entry and the working directory are the tree: {body}"
    );
}

#[test]
fn old_release_files_are_removed_and_a_destroyed_apps_files_go_with_it() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let mut d = TestDaemon::start_in(&state, &[]);
    let (_dir, app) = hello_copy();
    for n in 1..=4 {
        std::fs::write(app.join("release.txt"), n.to_string()).unwrap();
        deploy(&d, &app, &[]).expect_code(0);
    }
    // The current release's files and the one before stay; older ones go.
    let releases = state.join("releases/hello");
    wait_for_names(&releases, &["3", "4"]);
    // A rollback unpacks the old release's bundle again, which stays with its release.
    let bundles = state.join("bundles");
    let stored = |names: Vec<String>| names.iter().filter(|n| n.ends_with(".tar.zst")).count();
    assert_eq!(stored(names_in(&bundles)), 4);
    common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "-a", "hello", "rollback", "1", "--json"],
    )
    .expect_code(0);
    wait_for_names(&releases, &["4", "5"]);
    assert_eq!(
        std::fs::read_to_string(releases.join("5/release.txt")).unwrap(),
        "1"
    );

    // A destroyed app's files go with it; its bundles once no client has asked for them
    // for an hour (here: made older, then lakeflyd started again).
    common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "apps", "destroy", "hello", "--yes"],
    )
    .expect_code(0);
    assert!(!releases.exists(), "{:?}", names_in(&releases));
    assert_eq!(stored(names_in(&bundles)), 4, "within the grace time");
    d.stop();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for name in names_in(&bundles) {
        if name.ends_with(".tar.zst") {
            let file = std::fs::File::options()
                .append(true)
                .open(bundles.join(name))
                .unwrap();
            file.set_modified(two_hours_ago).unwrap();
        }
    }
    // What an older lakeflyd left of an app it destroyed goes too.
    std::fs::create_dir_all(state.join("releases/ghost/1")).unwrap();
    let _d = TestDaemon::start_in(&state, &[]);
    assert_eq!(stored(names_in(&bundles)), 0, "{:?}", names_in(&bundles));
    assert!(names_in(&state.join("releases")).is_empty());
}

/// Deploys the example `name` as it is in the repository.
fn deploy_example(d: &TestDaemon, name: &str, extra: &[&str]) -> Run {
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join("fly.toml");
    let mut args = vec![
        "--remote",
        d.api.as_str(),
        "deploy",
        "-c",
        config.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    common::lakefly(Path::new("."), &args)
}

#[test]
fn the_broken_example_fails_while_the_previous_release_answers_every_request() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let d = TestDaemon::start();
    deploy_example(&d, "hello", &[]).expect_code(0);
    // Then a change under the same app...
    let (_dir, changed) = hello_copy();
    common::files::edit_file(
        &changed.join("fly.toml"),
        "GREETING = \"hello\"",
        "GREETING = \"changed\"",
    );
    deploy(&d, &changed, &[]).expect_code(0);
    // ...then the broken example's content, with requests flowing to v2 all along.
    let port = status(&d)["machines"][0]["port"].as_u64().unwrap() as u16;
    // A request loop against the live machine for the whole failed deploy.
    let stop = Arc::new(AtomicBool::new(false));
    let looper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let answered =
                    std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
                        s.write_all(b"GET /health HTTP/1.0\r\n\r\n")?;
                        let mut r = String::new();
                        s.read_to_string(&mut r)?;
                        Ok(r.starts_with("HTTP/1.0 200"))
                    });
                if matches!(answered, Ok(true)) {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            (ok, failed)
        })
    };
    let run = deploy_example(&d, "broken", &[]).expect_code(7);
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = looper.join().unwrap();
    assert!(
        run.stderr.contains("was not healthy within 3s"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("404"),
        "the check's last output is shown: {}",
        run.stderr
    );
    assert_eq!(failed, 0, "{ok} requests answered, {failed} failed");
    assert!(ok > 10, "the loop ran ({ok} requests)");
    assert_eq!(status(&d)["release"]["version"], 2);
    let metrics = get_text(&d.url("/metrics"));
    assert!(
        metrics.contains("lakefly_deploys_total{outcome=\"complete\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lakefly_deploys_total{outcome=\"failed\"} 1"),
        "{metrics}"
    );
}

#[test]
fn an_unchanged_redeploy_uploads_zero_bytes() {
    let d = TestDaemon::start();
    let first = deploy_example(&d, "hello", &["--json"]).expect_code(0);
    let head: Value = serde_json::from_str(first.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(head["uploaded_bytes"], head["bundle_bytes"]);
    assert!(head["bundle_bytes"].as_u64().unwrap() > 0);
    let again = deploy_example(&d, "hello", &["--json"]).expect_code(0);
    let lines: Vec<Value> = again
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["uploaded_bytes"], 0);
    assert_eq!(lines[0]["bundle"], head["bundle"]);
    assert_eq!(
        lines.last().unwrap()["kind"],
        "deploy.complete",
        "NDJSON events follow: {lines:?}"
    );
}

/// Runs a deploy of `app` with `strategy` and returns its order of operations from the
/// events: C (a new machine created), H (a new machine healthy), S (an old one stopped),
/// D (an old one destroyed).
async fn order_of_operations(d: &TestDaemon, app: &Path, strategy: &'static str) -> String {
    let mut sse = common::sse::Sse::connect(&d.url("/v1/events?app=hello"), None).await;
    let (api, config) = (d.api.clone(), app.join("fly.toml"));
    let run = tokio::task::spawn_blocking(move || {
        common::lakefly(
            Path::new("."),
            &[
                "--remote",
                &api,
                "deploy",
                "-c",
                config.to_str().unwrap(),
                "--strategy",
                strategy,
            ],
        )
    });
    let mut new = std::collections::BTreeSet::new();
    let mut ops = String::new();
    loop {
        let m = sse
            .next(std::time::Duration::from_secs(30))
            .await
            .expect("events until the release ends");
        let data = &m.data["data"];
        let machine = data["machine"].as_str().unwrap_or_default().to_string();
        match m.event.as_str() {
            "machine.created" => {
                new.insert(machine);
                ops.push('C');
            }
            "machine.health" if data["health"] == "passing" && new.contains(&machine) => {
                ops.push('H')
            }
            "machine.stopped" if !new.contains(&machine) => ops.push('S'),
            "machine.destroyed" if !new.contains(&machine) => ops.push('D'),
            "deploy.complete" => break,
            "deploy.failed" => panic!("{strategy} failed: {}", m.data),
            _ => {}
        }
    }
    run.await.unwrap().expect_code(0);
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_strategy_replaces_machines_in_its_own_order() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    // max_unavailable = 2 makes rolling batches of two, so canary (one first) differs.
    common::files::edit_file(
        &app.join("fly.toml"),
        "strategy = \"rolling\"",
        "strategy = \"rolling\"\n  max_unavailable = 2",
    );
    let (api, config) = (d.api.clone(), app.join("fly.toml"));
    tokio::task::spawn_blocking(move || {
        common::lakefly(
            Path::new("."),
            &["--remote", &api, "deploy", "-c", config.to_str().unwrap()],
        )
        .expect_code(0)
    })
    .await
    .unwrap();
    // Three machines of v1: the deploy made one; two more with the same spec.
    let client = common::api::Api::new(&d);
    let (_, machines) = client
        .send(reqwest::Method::GET, "/v1/apps/hello/machines", None)
        .await;
    let spec = machines[0]["spec"].clone();
    for _ in 0..2 {
        client.create_machine("hello", spec.clone()).await;
    }
    assert_eq!(
        order_of_operations(&d, &app, "rolling").await,
        "CCHHSSCHSDDD"
    );
    assert_eq!(
        order_of_operations(&d, &app, "canary").await,
        "CHSCCHHSSDDD"
    );
    assert_eq!(
        order_of_operations(&d, &app, "bluegreen").await,
        "CCCHHHSSSDDD"
    );
    let immediate = order_of_operations(&d, &app, "immediate")
        .await
        .replace('H', "");
    assert_eq!(immediate, "CCCDDD", "immediate does not wait for health");
}

#[test]
fn an_app_on_a_fixed_port_fails_with_the_port_it_listens_on_and_the_fix() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    let fixed = common::free_port();
    common::files::edit_file(
        &app.join("app.py"),
        "port = int(os.environ.get(\"PORT\", \"8080\"))",
        &format!("port = {fixed}  # ignores $PORT"),
    );
    common::files::edit_file(
        &app.join("fly.toml"),
        "strategy = \"rolling\"",
        "strategy = \"rolling\"\n  wait_timeout = \"6s\"",
    );
    let run = deploy(&d, &app, &[]).expect_code(7);
    // Said while it waits, not only once wait_timeout ends the release.
    assert!(
        run.stderr.contains(&format!(
            "is not healthy yet; it listens on port {fixed}, not on $PORT ("
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("it listens on port {fixed}, not on $PORT (")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "make the app listen on the port in $PORT (lakefly maps internal_port 8080 onto it)"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn an_app_on_its_internal_port_instead_of_port_fails_at_once_with_the_fix() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    // As a Dockerfile's CMD that binds its EXPOSEd port, or a hard-coded `:8080`: the
    // port fly.toml's internal_port names, which lakefly maps onto $PORT.
    let internal = common::free_port();
    common::files::edit_file(
        &app.join("app.py"),
        "port = int(os.environ.get(\"PORT\", \"8080\"))",
        &format!("port = {internal}  # its internal_port, whatever $PORT says"),
    );
    common::files::edit_file(
        &app.join("fly.toml"),
        "internal_port = 8080",
        &format!("internal_port = {internal}"),
    );
    // wait_timeout is long: the release fails because the machine cannot become healthy,
    // not because the time ran out.
    let run = deploy(&d, &app, &["--wait-timeout", "2m"]).expect_code(7);
    assert!(
        run.stderr.contains(&format!(
            "cannot become healthy; it listens on port {internal}, not on $PORT ("
        )) && run.stderr.contains(&format!(
            "e.g. `--bind :${{PORT:-{internal}}}` keeps {internal} outside lakefly"
        )) && !run.stderr.contains("not healthy within"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_app_that_never_listens_is_said_to_listen_nowhere_when_its_time_runs_out() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    std::fs::write(
        app.join("app.py"),
        "import time\nprint('connecting to the database...', flush=True)\ntime.sleep(600)\n",
    )
    .unwrap();
    let run = deploy(&d, &app, &["--wait-timeout", "3s"]).expect_code(7);
    assert!(
        run.stderr.contains(
            "was not healthy within 3s; it listens on no TCP port, and lakefly waited for one on $PORT ("
        ) && run.stderr.contains("connecting to the database..."),
        "{}",
        run.stderr
    );
}

#[test]
fn an_app_on_the_ipv6_loopback_only_fails_with_where_it_listens_and_the_fix() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipping: this host has no IPv6 loopback");
        return;
    }
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    // As Node's `listen(port, "localhost")` does where localhost is ::1 first.
    common::files::edit_file(&app.join("app.py"), "    ThreadingHTTPServer((\"127.0.0.1\", port), Handler).serve_forever()",
            "    import socket\n    ThreadingHTTPServer.address_family = socket.AF_INET6\n    ThreadingHTTPServer((\"::1\", port), Handler).serve_forever()",
        );
    let run = deploy(&d, &app, &["--wait-timeout", "6s"]).expect_code(7);
    assert!(
        run.stderr
            .contains("is not healthy yet; it listens on [::1]:")
            && run.stderr.contains(
                "only, which lakefly's checks and edge do not reach (they connect to 127.0.0.1:"
            )
            && run
                .stderr
                .contains("make the app listen on 0.0.0.0, 127.0.0.1 or [::]"),
        "{}",
        run.stderr
    );
}

#[test]
fn ctrl_c_stops_following_but_not_the_release() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    // A health check that takes a while, so the release is still rolling out when interrupted.
    common::files::edit_file(
        &app.join("fly.toml"),
        "grace_period = \"1s\"",
        "grace_period = \"2s\"",
    );
    let config = app.join("fly.toml");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_lakefly"))
        .args(["--remote", &d.api, "deploy", "-c", config.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the release has started (its first machine exists), then interrupt.
    let start = std::time::Instant::now();
    let started = |d: &TestDaemon| {
        let run = common::lakefly(
            Path::new("."),
            &["--remote", &d.api, "status", "-a", "hello", "--json"],
        );
        run.code == 0
            && run.json()["machines"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
    };
    while !started(&d) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "the release did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("stopped following release v1 of hello; it goes on"),
        "{stderr}"
    );
    assert!(
        stderr.contains("follow it again with `lakefly events -a hello`, or stop it: `lakefly releases cancel -a hello`"),
        "{stderr}"
    );
    // The release finishes without the client.
    let start = std::time::Instant::now();
    while status(&d)["release"]["status"] != "complete" {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "the release did not finish on its own"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// An app that also binds a fixed metrics port: the second machine of its group cannot.
const METERED_APP: &str = r#"
import os
from http.server import HTTPServer
from ok import Ok, serve
try:
    metrics = HTTPServer(("127.0.0.1", int(os.environ["METRICS_PORT"])), Ok)
except OSError:
    if os.environ.get("TOLERANT") != "1":
        raise
serve()
"#;

#[test]
fn more_machines_than_a_port_of_their_own_allows_are_explained() {
    let d = TestDaemon::start();
    let temp = tempfile::tempdir().unwrap();
    let metrics = common::free_port();
    let config = |tolerant: bool| {
        format!(
            "app = \"metered\"\n[env]\n  METRICS_PORT = \"{metrics}\"\n  TOLERANT = \"{}\"\n\
             [processes]\n  app = \"python3 app.py\"\n[http_service]\n  internal_port = 8080\n\
             [metrics]\n  port = {metrics}\n  path = \"/metrics\"\n",
            u8::from(tolerant)
        )
    };
    let app = app_with(
        temp.path(),
        "metered",
        &[
            ("fly.toml", &config(false)),
            ("app.py", METERED_APP),
            common::files::OK_PY,
        ],
    );
    deploy(&d, &app, &[]).expect_code(0);
    let note = format!("each machine of group app binds port {metrics} (metrics[0]) itself");
    let scale =
        |n: &str| common::lakefly(&app, &["--remote", &d.api, "scale", "count", n, "--yes"]);
    let failed = scale("2").expect_code(1);
    assert!(failed.stderr.contains(&note), "{}", failed.stderr);
    // An app that lives with it scales, and each deploy of two machines says why one of
    // them has no metrics.
    std::fs::write(app.join("fly.toml"), config(true)).unwrap();
    deploy(&d, &app, &[]).expect_code(0);
    scale("2").expect_code(0);
    std::fs::write(app.join("app.py"), format!("{METERED_APP}\n# v3\n")).unwrap();
    let redeployed = deploy(&d, &app, &[]).expect_code(0);
    assert!(redeployed.stderr.contains(&note), "{}", redeployed.stderr);
}

#[test]
fn scale_up_waits_for_health_scale_down_removes_the_newest_and_deploys_keep_the_count() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    let cli = |args: &[&str]| {
        let mut full = vec!["--remote", d.api.as_str()];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-a", "hello"]);
        common::lakefly(Path::new("."), &full)
    };
    let unconfirmed = cli(&["scale", "count", "3"]).expect_code(2);
    assert!(
        unconfirmed.stderr.contains("scale hello: app: 1 -> 3"),
        "the plan is printed: {}",
        unconfirmed.stderr
    );
    assert!(
        unconfirmed.stderr.contains("hint: pass --yes"),
        "{}",
        unconfirmed.stderr
    );
    let up = cli(&["scale", "count", "3", "--yes"]).expect_code(0);
    assert!(
        up.stderr.contains("==> app: 1 -> 3 machines"),
        "{}",
        up.stderr
    );
    // Each new machine is shown as it is created and as it passes its checks.
    assert_eq!(
        (
            up.stderr.matches("    created machine ").count(),
            up.stderr.matches(" is healthy\n").count()
        ),
        (2, 2),
        "{}",
        up.stderr
    );
    let s = status(&d);
    let machines = s["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 3);
    assert!(
        machines.iter().all(|m| m["health"] == "passing"),
        "scaling up waits for health: {machines:?}"
    );
    let oldest = machines[0]["id"].clone();

    let same = cli(&["scale", "count", "app=3", "--yes"]).expect_code(0);
    assert!(same.stderr.contains("already scaled"), "{}", same.stderr);
    let scaled = cli(&["events", "--no-tail", "--kind", "scale.", "--json"]).expect_code(0);
    assert_eq!(
        scaled.stdout.lines().count(),
        1,
        "a scale that changes nothing is no event: {}",
        scaled.stdout
    );
    let bad = cli(&["scale", "count", "web=2", "--yes"]).expect_code(2);
    assert!(
        bad.stderr.contains("process group \"web\" does not exist")
            && bad.stderr.contains("this app's groups: app"),
        "{}",
        bad.stderr
    );

    cli(&["scale", "count", "-2", "--yes"]).expect_code(0);
    let machines = status(&d)["machines"].as_array().unwrap().clone();
    assert_eq!(machines.len(), 1);
    assert_eq!(machines[0]["id"], oldest, "the newest machines go first");

    cli(&["scale", "count", "2", "--yes"]).expect_code(0);
    deploy(&d, &app, &["--strategy", "bluegreen"]).expect_code(0);
    let machines = status(&d)["machines"].as_array().unwrap().clone();
    assert_eq!(machines.len(), 2, "a deploy keeps the scaled count");
    let show = cli(&["scale", "show", "--json"]).expect_code(0).json();
    assert_eq!(
        (show[0]["process_group"].as_str(), show[0]["count"].as_u64()),
        (Some("app"), Some(2))
    );
    // A machine destroyed by hand lowers the count, as on Fly: the next deploy replaces
    // the machines there are, as `scale show` counts them, and makes none back.
    let gone = machines[1]["id"].as_str().unwrap();
    cli(&["machines", "destroy", gone, "--force"]).expect_code(0);
    deploy(&d, &app, &[]).expect_code(0);
    let machines = status(&d)["machines"].as_array().unwrap().clone();
    assert_eq!(machines.len(), 1, "{machines:?}");
    assert_eq!(machines[0]["release_version"], 3, "{machines:?}");
    cli(&["scale", "count", "0", "--yes"]).expect_code(0);
    assert_eq!(status(&d)["machines"], serde_json::json!([]));
    // A deploy keeps it at zero, and says what runs it.
    let idle = deploy(&d, &app, &[]).expect_code(0);
    assert!(
        idle.stderr.contains(
            "group app is scaled to zero, so no machine runs it: the first request starts \
             one (auto_start_machines), or `lakefly scale count app=1` starts one"
        ),
        "{}",
        idle.stderr
    );
    assert_eq!(status(&d)["machines"], serde_json::json!([]));
}

#[test]
fn a_scale_while_a_release_rolls_out_is_refused_even_when_the_count_looks_met() {
    let d = TestDaemon::start();
    let (dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    // The next release's machine waits for a file before it serves, so its rollout is
    // under way, old machine and new side by side, for as long as the test needs.
    let gate = dir.path().join("go");
    deploy_gated(&d, &app, &gate);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while status(&d)["machines"].as_array().map_or(0, Vec::len) < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", status(&d));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let scale = |n: &str| {
        common::lakefly(
            Path::new("."),
            &[
                "--remote", &d.api, "-a", "hello", "scale", "count", n, "--yes",
            ],
        )
    };
    // Two machines are listed, but the app is scaled to one: not "already scaled".
    let refused = scale("2").expect_code(6);
    assert!(
        refused.stderr.contains("still rolling out"),
        "{}",
        refused.stderr
    );
    std::fs::write(&gate, "").unwrap();
    let live = serde_json::json!({ "version": 2, "status": "complete" });
    while status(&d)["release"] != live {
        assert!(std::time::Instant::now() < deadline, "{}", status(&d));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    scale("2").expect_code(0);
    assert_eq!(status(&d)["machines"].as_array().unwrap().len(), 2);
}

#[test]
fn the_multi_example_scales_each_group_to_exactly_what_is_asked() {
    let d = TestDaemon::start();
    deploy_example(&d, "multi", &[]).expect_code(0);
    common::lakefly(
        Path::new("."),
        &[
            "--remote", &d.api, "-a", "multi", "scale", "count", "web=1", "worker=2", "--yes",
        ],
    )
    .expect_code(0);
    let s = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "multi", "--json"],
    )
    .expect_code(0)
    .json();
    let machines = s["machines"].as_array().unwrap();
    let count = |g: &str| machines.iter().filter(|m| m["process_group"] == g).count();
    assert_eq!((count("web"), count("worker")), (1, 2), "{machines:?}");
    assert!(
        machines.iter().all(|m| m["health"] == "passing"),
        "{machines:?}"
    );
    for bad in [
        &["scale", "count", "app=-1", "--yes"][..],
        &["scale", "count", "nogroup=2", "--yes"],
        &["machines", "stop", "unknown-id"],
        // With two groups and none called `app`, a size change says which it means.
        &["scale", "memory", "256"],
        &["scale", "vm", "shared-cpu-2x"],
    ] {
        let mut args = vec!["--remote", d.api.as_str(), "-a", "multi"];
        args.extend_from_slice(bad);
        let run = common::lakefly(Path::new("."), &args);
        assert_ne!(run.code, 0, "{bad:?} must fail");
        assert!(run.stderr.starts_with("error: "), "{bad:?}: {}", run.stderr);
    }
    let guessed = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "-a", "multi", "scale", "memory", "256"],
    );
    assert!(
        guessed
            .stderr
            .contains("several process groups (web, worker)")
            && guessed.stderr.contains("-g GROUP"),
        "{}",
        guessed.stderr
    );
    let after = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "multi", "--json"],
    )
    .expect_code(0)
    .json();
    assert_eq!(
        after["machines"].as_array().unwrap().len(),
        3,
        "bad input changed nothing"
    );
}

#[test]
fn destroying_an_app_stops_its_machines_first() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    deploy(&d, &app, &[]).expect_code(0);
    let pid = status(&d)["machines"][0]["pid"].as_u64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "apps", "destroy", "hello", "--yes"],
    )
    .expect_code(0);
    // The answer comes once the machines are stopped: nothing is left running untracked.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie_or_gone =
        stat.is_empty() || stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'));
    assert!(zombie_or_gone, "machine process {pid} still runs: {stat}");
    let gone = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "hello"],
    );
    assert_eq!(gone.code, 5, "{}", gone.stderr);
}

/// A first release that fails leaves nothing running, and says so rather than speak of a
/// previous release.
#[test]
fn a_first_release_that_fails_says_nothing_runs() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    std::fs::write(app.join("app.py"), "import sys\nsys.exit(3)\n").unwrap();
    let run = deploy(&d, &app, &[]).expect_code(7);
    assert!(
        run.stderr
            .contains("rollout: removed the new machines; no machine had been stopped")
            && run
                .stderr
                .contains("hint: no release of hello has run yet, so nothing runs")
            && !run.stderr.contains("previous release"),
        "{}",
        run.stderr
    );
}

/// Deploys `app` detached, its machines waiting for the file `gate` before they serve: the
/// release rolls out until the test writes it.
fn deploy_gated(d: &TestDaemon, app: &Path, gate: &Path) {
    common::files::edit_file(
        &app.join("fly.toml"),
        "app = \"python3 app.py\"",
        "app = \"while [ ! -e \\\"$GATE\\\" ]; do sleep 0.05; done; exec python3 app.py\"",
    );
    let gate_env = format!("GATE={}", gate.display());
    deploy(d, app, &["--detach", "-e", &gate_env]).expect_code(0);
}

#[test]
fn scaling_during_the_first_rollout_says_it_is_rolling_out_not_that_there_is_no_release() {
    let d = TestDaemon::start();
    let (dir, app) = hello_copy();
    let gate = dir.path().join("go");
    deploy_gated(&d, &app, &gate);
    let cli = |args: &[&str]| {
        let mut all = vec!["--remote", &d.api, "-a", "hello"];
        all.extend_from_slice(args);
        common::lakefly(Path::new("."), &all)
    };
    for args in [
        &["scale", "count", "2", "--yes"][..],
        &["scale", "show"],
        &["scale", "memory", "256"],
    ] {
        let refused = cli(args).expect_code(6);
        assert!(
            refused
                .stderr
                .starts_with("error: release v1 of this app is still rolling out")
                && refused.stderr.contains("hint: wait for it to finish"),
            "{args:?}: {}",
            refused.stderr
        );
    }
    std::fs::write(&gate, "").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while status(&d)["release"]["status"] != "complete" {
        assert!(std::time::Instant::now() < deadline, "{}", status(&d));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cli(&["scale", "count", "2", "--yes"]).expect_code(0);
}

#[test]
fn a_worker_that_dies_seconds_after_it_starts_fails_the_deploy_and_the_old_one_runs_on() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    common::files::edit_file(
        &app.join("fly.toml"),
        "  app = \"python3 app.py\"\n",
        "  app = \"python3 app.py\"\n  worker = \"sleep 600\"\n",
    );
    deploy(&d, &app, &[]).expect_code(0);
    let before: Vec<Value> = status(&d)["machines"].as_array().unwrap().clone();
    // No check and no port: the only sign of a broken worker is that it does not stay up,
    // here for three seconds, the time a connection to a missing database takes to fail.
    common::files::edit_file(
        &app.join("fly.toml"),
        "worker = \"sleep 600\"",
        "worker = \"sh -c 'sleep 3; exit 1'\"",
    );
    let run = deploy(&d, &app, &[]).expect_code(7);
    assert!(
        run.stderr.contains("appears to be crashing")
            && run.stderr.contains("hint: release v1 keeps running"),
        "{}",
        run.stderr
    );
    let after = status(&d);
    assert_eq!(after["release"]["version"], 1);
    assert_eq!(
        common::machine_ids(after["machines"].as_array().unwrap()),
        common::machine_ids(&before),
        "{after}"
    );
    assert!(
        after["machines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "started"),
        "{after}"
    );
}

#[test]
fn a_group_left_out_of_the_config_goes_only_once_the_release_runs() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    let original = std::fs::read_to_string(app.join("fly.toml")).unwrap();
    let with_worker = original.replace(
        "  app = \"python3 app.py\"\n",
        "  app = \"python3 app.py\"\n  worker = \"sleep 600\"\n",
    );
    std::fs::write(app.join("fly.toml"), &with_worker).unwrap();
    deploy(&d, &app, &[]).expect_code(0);
    let worker = |s: &Value| {
        s["machines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["process_group"] == "worker")
            .cloned()
    };
    let before = worker(&status(&d)).expect("a worker machine");

    // The worker group is dropped by a release that fails: the worker runs on.
    std::fs::write(app.join("fly.toml"), &original).unwrap();
    let app_py = std::fs::read_to_string(app.join("app.py")).unwrap();
    std::fs::write(app.join("app.py"), "import sys\nsys.exit(3)\n").unwrap();
    deploy(&d, &app, &[]).expect_code(7);
    let kept = worker(&status(&d)).expect("the worker is still there");
    assert_eq!(
        (&kept["id"], &kept["state"]),
        (&before["id"], &Value::from("started"))
    );

    // Dropped by a release that runs, it goes, and the deploy says so.
    std::fs::write(app.join("app.py"), app_py).unwrap();
    let run = deploy(&d, &app, &[]).expect_code(0);
    assert!(
        run.stderr.contains(&format!(
            "destroyed machine {}: its group worker is no longer in the config",
            before["id"].as_str().unwrap()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(worker(&status(&d)), None);
}
