//! Releases that fail: exit 7, the failure's cause and log lines, and the previous release
//! serving throughout.

use std::path::Path;

use serde_json::Value;

use super::common::daemon::TestDaemon;
use super::common::files::{app_with, get_text, hello_copy};
use super::{deploy, deploy_example, status};

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
        run.stderr
            .contains("times before it was healthy (last time it exited with code 3)"),
        "how the last crash ended: {}",
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
    let releases = super::common::lakefly(
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
    let refused = super::common::lakefly(
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
        let logs = super::common::lakefly(Path::new("."), &args).expect_code(0);
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
    let ran = super::common::lakefly(Path::new("."), &args)
        .expect_code(0)
        .json();
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
    let apps = super::common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "apps", "list", "--json"],
    )
    .expect_code(0)
    .json();
    assert_eq!(apps, serde_json::json!([]));
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
fn the_broken_example_fails_while_the_previous_release_answers_every_request() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let d = TestDaemon::start();
    deploy_example(&d, "hello", &[]).expect_code(0);
    // Then a change under the same app...
    let (_dir, changed) = hello_copy();
    super::common::files::edit_file(
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

#[test]
fn a_worker_that_dies_seconds_after_it_starts_fails_the_deploy_and_the_old_one_runs_on() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    super::common::files::edit_file(
        &app.join("fly.toml"),
        "  app = \"python3 app.py\"\n",
        "  app = \"python3 app.py\"\n  worker = \"sleep 600\"\n",
    );
    deploy(&d, &app, &[]).expect_code(0);
    let before: Vec<Value> = status(&d)["machines"].as_array().unwrap().clone();
    // No check and no port: the only sign of a broken worker is that it does not stay up,
    // here for three seconds, the time a connection to a missing database takes to fail.
    super::common::files::edit_file(
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
        super::common::machine_ids(after["machines"].as_array().unwrap()),
        super::common::machine_ids(&before),
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

/// A machine whose check fails only within its grace period (longer than `wait_timeout`)
/// fails the deploy with what the check saw, as one failing after it does.
#[test]
fn a_check_failing_within_its_grace_period_is_shown_when_the_wait_runs_out() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let server = "import os\nfrom http.server import BaseHTTPRequestHandler, HTTPServer\n\
        class H(BaseHTTPRequestHandler):\n    def do_GET(self):\n        \
        self.send_response(503)\n        self.end_headers()\n        \
        self.wfile.write(b'warming up')\n    def log_message(self, *a): pass\n\
        HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n";
    let app = app_with(
        dir.path(),
        "warming",
        &[
            (
                "fly.toml",
                "app = \"warming\"\n[deploy]\n  wait_timeout = \"3s\"\n[processes]\n  app = \"python3 server.py\"\n\
                 [http_service]\n  internal_port = 8080\n  processes = [\"app\"]\n\
                 [[http_service.checks]]\n  grace_period = \"1h\"\n  interval = \"1h\"\n  path = \"/health\"\n",
            ),
            ("server.py", server),
        ],
    );
    let run = deploy(&d, &app, &[]).expect_code(7);
    assert!(
        run.stderr.contains("was not healthy within 3s")
            && run.stderr.contains("/health: warming up"),
        "{}",
        run.stderr
    );
}
