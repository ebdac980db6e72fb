//! A release whose end the store cannot take (a full disk; here another process holding
//! SQLite's write lock past the daemon's busy timeout) is recorded once it can: until
//! then the app counts a release as rolling out and refuses every deploy, so giving up
//! would lock it until lakeflyd restarts. What a failed build wrote goes first, since
//! on a full disk that may be the space the record needs. And a start that cannot record
//! the failure of a rollout a crash cut short still starts.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::{wait_logged, StoreLock, TestDaemon, DEADLINE};
use common::Run;

/// A daemon logging to a file, and an app whose fly.toml `config` makes (given the path
/// of the file that tells its command to go on).
struct Setup {
    temp: tempfile::TempDir,
    d: TestDaemon,
    config: PathBuf,
    go: PathBuf,
}

impl Setup {
    fn new(config: impl FnOnce(&Path) -> String) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let d = TestDaemon::start_logging_to(
            &temp.path().join("state"),
            &temp.path().join("daemon.log"),
        );
        let app = temp.path().join("app");
        std::fs::create_dir(&app).unwrap();
        let go = temp.path().join("go");
        let path = app.join("fly.toml");
        std::fs::write(&path, config(&go)).unwrap();
        Setup {
            temp,
            d,
            config: path,
            go,
        }
    }

    fn cli(&self, args: &[&str]) -> Run {
        let mut all = vec!["--remote", &self.d.api];
        all.extend_from_slice(args);
        common::lakefly(Path::new("."), &all)
    }

    fn deploy_detached(&self) -> Run {
        self.cli(&["deploy", "-c", self.config.to_str().unwrap(), "--detach"])
    }

    /// Lets the waiting command go on while the store takes no write, until the daemon
    /// says it could not record the release's end.
    fn go_while_locked(&self) -> StoreLock {
        let lock = StoreLock::take(&self.temp.path().join("state"));
        std::fs::write(&self.go, "").unwrap();
        wait_logged(
            &self.temp.path().join("daemon.log"),
            "could not record the end of a release",
        );
        lock
    }
}

#[test]
fn a_release_end_the_store_cannot_take_is_recorded_once_it_can() {
    let s = Setup::new(|go| {
        format!(
            "app = \"locked\"\n[processes]\n  app = \"sleep 600\"\n[deploy]\n  \
             release_command = \"while [ ! -e {} ]; do sleep 0.05; done; exit 1\"\n",
            go.display()
        )
    });
    s.deploy_detached().expect_code(0);
    // The release command fails while nothing can be written.
    drop(s.go_while_locked());

    let until = Instant::now() + DEADLINE;
    loop {
        let releases = s
            .cli(&["releases", "-a", "locked", "--json"])
            .expect_code(0)
            .json();
        if releases[0]["status"] == "failed" {
            break;
        }
        assert!(Instant::now() < until, "v1 never ended: {releases:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The app takes a deploy again.
    s.deploy_detached().expect_code(0);
}

/// What a failed build wrote goes at once, not only after the release's end is recorded:
/// on a full disk the record may wait for that very space.
#[test]
fn a_failed_builds_tree_goes_before_its_end_is_recorded() {
    let s = Setup::new(|go| {
        format!(
            "app = \"filled\"\n[build]\n  command = \"while [ ! -e {} ]; do sleep 0.05; done; \
             head -c 100000 /dev/zero > junk; exit 1\"\n[processes]\n  app = \"sleep 600\"\n",
            go.display()
        )
    });
    s.deploy_detached().expect_code(0);
    let _lock = s.go_while_locked();
    let tree = s.temp.path().join("state/releases/filled/1");
    assert!(
        !tree.exists(),
        "the failed build's tree waits for the record"
    );
}

/// A start that cannot record the end of a release the last run left rolling out still
/// starts, supervising the machines as they are, rather than exit (and, under systemd,
/// exit again every two seconds while nothing watches the apps); the next start with
/// room records it failed.
#[test]
fn a_start_that_cannot_undo_an_interrupted_rollout_still_starts() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let mut d = TestDaemon::start_in(&state, &[]);
    let app = temp.path().join("app");
    std::fs::create_dir(&app).unwrap();
    let config = app.join("fly.toml");
    std::fs::write(
        &config,
        "app = \"cut\"\n[processes]\n  app = \"sleep 600\"\n[deploy]\n  release_command = \"sleep 600\"\n",
    )
    .unwrap();
    let cli = |d: &TestDaemon, args: &[&str]| {
        let mut all = vec!["--remote", &d.api];
        all.extend_from_slice(args);
        common::lakefly(Path::new("."), &all)
    };
    cli(&d, &["deploy", "-c", config.to_str().unwrap(), "--detach"]).expect_code(0);
    d.kill9();

    let lock = StoreLock::take(&state);
    let d = TestDaemon::start_in(&state, &[]);
    drop(lock);
    let releases = cli(&d, &["releases", "-a", "cut", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(releases[0]["status"], "running", "{releases:#}");
    drop(d);

    let d = TestDaemon::start_in(&state, &[]);
    let releases = cli(&d, &["releases", "-a", "cut", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(releases[0]["status"], "failed", "{releases:#}");
}
