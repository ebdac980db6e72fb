//! Releases that go live: what is uploaded, where the deploy runs from, what a release
//! leaves behind, following and leaving a deploy, `launch` then deploy, builds.

use std::path::Path;

use serde_json::Value;

use super::common::daemon::TestDaemon;
use super::common::files::{
    app_with, get_text, hello_copy, names_in, python_server, wait_for_names, PYTHON_WEB,
};
use super::{deploy, deploy_example, status};

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
    let text = super::common::lakefly(
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
        super::common::lakefly(Path::new("."), &all)
    };
    assert_eq!(open(&[]).expect_code(0).stdout, format!("{url}\n"));
    let health = open(&["/health", "--json"]).expect_code(0).json();
    assert_eq!(health["url"], format!("{url}health"));
    // flyctl's `apps open` and `apps releases` are the same commands.
    let apps_open = super::common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "-a", "hello", "apps", "open", "/health"],
    );
    assert_eq!(apps_open.expect_code(0).stdout, format!("{url}health\n"));
    let apps_releases = super::common::lakefly(
        Path::new("."),
        &[
            "--remote", &d.api, "-a", "hello", "apps", "releases", "--json",
        ],
    );
    assert_eq!(apps_releases.expect_code(0).json()[0]["version"], 1);

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
            "--depot=false",
            "--dns-checks=false",
            "--primary-region",
            "ams",
            "--build-only=false",
            "--now",
            "--force-machines",
            "--wireguard=false",
            "--label",
            "team=web",
            "--deploy-retries",
            "2",
            "--max-concurrent",
            "3",
        ],
    )
    .expect_code(0);
    assert!(
        again.stderr.contains("nothing to upload"),
        "{}",
        again.stderr
    );
    for note in [
        "note: --remote-only changes nothing: lakefly builds on the daemon's host",
        "note: --depot changes nothing: lakefly builds on the daemon's host",
        "note: --dns-checks changes nothing",
        "note: --primary-region changes nothing: one host is one region",
        "note: --wireguard changes nothing: lakefly builds on the daemon's host",
        "note: --label changes nothing: lakefly builds no image to label",
        "note: --deploy-retries changes nothing: a failed release is not tried again",
        "note: --max-concurrent changes nothing: a rolling release replaces --max-unavailable",
    ] {
        assert!(again.stderr.contains(note), "{note}: {}", again.stderr);
    }
    // Those that would change the deploy are refused, naming the flag, before anything.
    for (flag, why) in [
        (
            "--regions=ams",
            "one lakeflyd host is every region there is",
        ),
        ("--process-groups=web", "a release runs every process group"),
        ("--update-only", "a release runs every process group"),
        ("--build-only", "lakefly builds no image"),
        ("--signal=SIGTERM", "set it in fly.toml"),
        ("--build-secret=TOKEN=x", "no Dockerfile `RUN` step"),
        (
            "--file-literal=/etc/a=b",
            "lakefly writes no files into machines",
        ),
        ("--only-machines=abc", "a release replaces every machine"),
    ] {
        let refused = deploy(&d, &app, &[flag]).expect_code(2);
        let name = flag.split('=').next().unwrap_or(flag);
        assert!(
            refused.stderr.contains(&format!("for '{name} ")) && refused.stderr.contains(why),
            "{flag}: {}",
            refused.stderr
        );
    }
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
    let run = super::common::lakefly(dir.path(), &["--remote", &d.api, "deploy", "hello"]);
    assert!(
        run.expect_code(0).stderr.contains("release v1 is live"),
        "the fly.toml in hello/ is read and hello/ uploaded"
    );
    assert_eq!(status(&d)["machines"].as_array().unwrap().len(), 1);

    let missing = super::common::lakefly(dir.path(), &["--remote", &d.api, "deploy", "nope"]);
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
    super::common::lakefly(
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
    super::common::lakefly(
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

#[test]
fn ctrl_c_stops_following_but_not_the_release() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    // A health check that takes a while, so the release is still rolling out when interrupted.
    super::common::files::edit_file(
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
        let run = super::common::lakefly(
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

#[test]
fn launch_writes_the_config_then_deploys_it() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    // Heroku's `release` line runs once per release, not as a process.
    let procfile = "web: python3 -m http.server $PORT --bind 127.0.0.1\nrelease: echo migrated\n";
    let app = app_with(dir.path(), "web", &[("Procfile", procfile)]);
    let run = super::common::lakefly(&app, &["--remote", &d.api, "launch", "--name", "launched"])
        .expect_code(0);
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
    let status = super::common::lakefly(
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
    let s = super::common::lakefly(
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
fn ignorefile_names_the_docker_ignore_file_of_one_deploy_as_flyctls_does() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let d = TestDaemon::start_in(&state, &[]);
    let (dir, app) = hello_copy();
    std::fs::write(app.join(".env"), "TOKEN=hunter2\n").unwrap();
    // Outside the app directory: the flag's file is read wherever it is.
    let ignore = dir.path().join("deploy.ignore");
    std::fs::write(&ignore, ".env\n").unwrap();

    // Named on purpose, a file that is not there is an error, before anything is sent.
    let missing = deploy(&d, &app, &["--ignorefile", "nope.ignore"]).expect_code(2);
    assert!(
        missing.stderr.contains("error: --ignorefile nope.ignore: "),
        "{}",
        missing.stderr
    );
    assert!(!state.join("releases/hello").exists());

    deploy(&d, &app, &["--ignorefile", ignore.to_str().unwrap()]).expect_code(0);
    let files = state.join("releases/hello/1");
    assert!(files.join("app.py").is_file());
    assert!(!files.join(".env").exists(), "deploy.ignore left .env out");
}
