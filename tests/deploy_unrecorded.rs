//! A release whose end the store cannot take (a full disk; here another process holding
//! SQLite's write lock past the daemon's busy timeout) is recorded once it can: until
//! then the app counts a release as rolling out and refuses every deploy, so giving up
//! would lock it until lakeflyd restarts. What a failed build wrote goes first, since
//! on a full disk that may be the space the record needs.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::{wait_logged, StoreLock, TestDaemon, DEADLINE};

#[test]
fn a_release_end_the_store_cannot_take_is_recorded_once_it_can() {
    let temp = tempfile::tempdir().unwrap();
    let (state, log) = (temp.path().join("state"), temp.path().join("daemon.log"));
    let d = TestDaemon::start_logging_to(&state, &log);
    let app = temp.path().join("app");
    std::fs::create_dir(&app).unwrap();
    let go = temp.path().join("go");
    let config = format!(
        r#"app = "locked"
[processes]
  app = "sleep 600"
[deploy]
  release_command = "while [ ! -e {go} ]; do sleep 0.05; done; exit 1"
"#,
        go = go.display()
    );
    std::fs::write(app.join("fly.toml"), config).unwrap();
    let cli = |args: &[&str]| {
        let mut all = vec!["--remote", &d.api];
        all.extend_from_slice(args);
        common::lakefly(Path::new("."), &all)
    };
    let config = app.join("fly.toml");
    let config = config.to_str().unwrap();
    cli(&["deploy", "-c", config, "--detach"]).expect_code(0);

    // The release command fails while nothing can be written.
    let lock = StoreLock::take(&state);
    std::fs::write(&go, "").unwrap();
    wait_logged(&log, "could not record the end of a release");
    drop(lock);

    let until = Instant::now() + DEADLINE;
    loop {
        let releases = cli(&["releases", "-a", "locked", "--json"])
            .expect_code(0)
            .json();
        if releases[0]["status"] == "failed" {
            break;
        }
        assert!(Instant::now() < until, "v1 never ended: {releases:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The app takes a deploy again.
    cli(&["deploy", "-c", config, "--detach"]).expect_code(0);
}

/// What a failed build wrote goes at once, not only after the release's end is recorded:
/// on a full disk the record may wait for that very space.
#[test]
fn a_failed_builds_tree_goes_before_its_end_is_recorded() {
    let temp = tempfile::tempdir().unwrap();
    let (state, log) = (temp.path().join("state"), temp.path().join("daemon.log"));
    let d = TestDaemon::start_logging_to(&state, &log);
    let app = temp.path().join("app");
    std::fs::create_dir(&app).unwrap();
    let go = temp.path().join("go");
    let config = format!(
        r#"app = "filled"
[build]
  command = "while [ ! -e {go} ]; do sleep 0.05; done; head -c 100000 /dev/zero > junk; exit 1"
[processes]
  app = "sleep 600"
"#,
        go = go.display()
    );
    std::fs::write(app.join("fly.toml"), config).unwrap();
    let config = app.join("fly.toml");
    common::lakefly(
        Path::new("."),
        &[
            "--remote",
            &d.api,
            "deploy",
            "-c",
            config.to_str().unwrap(),
            "--detach",
        ],
    )
    .expect_code(0);
    let tree = state.join("releases/filled/1");
    let lock = StoreLock::take(&state);
    std::fs::write(&go, "").unwrap();
    wait_logged(&log, "could not record the end of a release");
    assert!(
        !tree.exists(),
        "the failed build's tree waits for the record"
    );
    drop(lock);
}
