//! Every user of a host can reach its loopback, so an API without tokens serves only the
//! user lakeflyd runs as, root, and the members of `--local-group`: anyone else is refused
//! (403, exit 4), told who asked and who may, and changes nothing. Other users are played
//! with util-linux `setpriv`, as root (as the suite's capability tests are).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::daemon::TestDaemon;
use common::Run;

/// A uid with no account on the host.
const STRANGER: u32 = 54321;
/// Debian's `nobody`, whose primary group is `nogroup`.
const NOBODY: u32 = 65534;

/// A `lakefly` other users can run, and a home for them.
struct OtherUsers {
    dir: tempfile::TempDir,
    lakefly: PathBuf,
}

impl OtherUsers {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let open = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        open(dir.path(), 0o755);
        // The build's own directory may be one only root may enter.
        let lakefly = dir.path().join("lakefly");
        std::fs::copy(env!("CARGO_BIN_EXE_lakefly"), &lakefly).expect("copy lakefly");
        let home = dir.path().join("home");
        std::fs::create_dir(&home).expect("home");
        open(&home, 0o777);
        OtherUsers { dir, lakefly }
    }

    /// `lakefly --remote api args` as `uid` with primary group `gid` and no other.
    fn lakefly(&self, uid: u32, gid: u32, api: &str, args: &[&str]) -> Run {
        let mut all = vec!["--remote", api];
        all.extend_from_slice(args);
        self.run(uid, gid, &self.lakefly, &all)
    }

    /// `program args` as `uid` with primary group `gid` and no other, in their home.
    fn run(&self, uid: u32, gid: u32, program: &Path, args: &[&str]) -> Run {
        let home = self.dir.path().join("home");
        let output = Command::new("setpriv")
            .args(["--reuid", &uid.to_string(), "--regid", &gid.to_string()])
            .arg("--clear-groups")
            .arg(program)
            .args(args)
            .current_dir(&home)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("NO_COLOR", "1")
            .output()
            .expect("run setpriv");
        Run::from(output)
    }
}

/// The error a `--json` run printed.
fn error_of(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stderr)
        .unwrap_or_else(|e| panic!("stderr is not a JSON error ({e}):\n{}", run.stderr))
}

#[test]
fn another_local_user_is_refused_and_changes_nothing() {
    let d = TestDaemon::start();
    let work = tempfile::tempdir().unwrap();
    d.cli(work.path(), &["apps", "create", "mine"])
        .expect_code(0);
    let others = OtherUsers::new();

    let listed = others
        .lakefly(STRANGER, STRANGER, &d.api, &["--json", "apps", "list"])
        .expect_code(4);
    let error = error_of(&listed);
    assert_eq!(error["code"], "local_user_refused", "{error}");
    let message = error["error"].as_str().unwrap();
    assert!(
        message.contains("runs as root (uid 0)")
            && message.contains(&format!("comes from uid {STRANGER}")),
        "{message}"
    );
    assert!(
        error["hint"].as_str().unwrap().contains("--local-group"),
        "{error}"
    );
    assert!(listed.stdout.is_empty(), "{}", listed.stdout);

    others
        .lakefly(
            STRANGER,
            STRANGER,
            &d.api,
            &["apps", "destroy", "mine", "--yes"],
        )
        .expect_code(4);
    others
        .lakefly(NOBODY, NOBODY, &d.api, &["secrets", "list", "-a", "mine"])
        .expect_code(4);
    // `/health` and the metrics stay open to any local user: a monitor's check, and the
    // host's Prometheus, which runs as a user of its own.
    for path in ["/health", "/metrics", "/v1/metrics/targets"] {
        let fetched = others
            .run(
                STRANGER,
                STRANGER,
                Path::new("python3"),
                &[
                    "-c",
                    "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).status)",
                    &d.url(path),
                ],
            )
            .expect_code(0);
        assert_eq!(fetched.stdout.trim(), "200", "{path}");
    }

    // The daemon's own user is served, and the app is still there.
    let apps = d
        .cli(work.path(), &["--json", "apps", "list"])
        .expect_code(0);
    assert_eq!(apps.json()[0]["name"], "mine", "{}", apps.stdout);
}

#[test]
fn the_members_of_the_local_group_are_served() {
    let temp = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_in(&temp.path().join("state"), &["--local-group", "nogroup"]);
    d.cli(temp.path(), &["apps", "create", "shared"])
        .expect_code(0);
    let others = OtherUsers::new();

    let apps = others
        .lakefly(NOBODY, NOBODY, &d.api, &["--json", "apps", "list"])
        .expect_code(0);
    assert_eq!(apps.json()[0]["name"], "shared", "{}", apps.stdout);

    let refused = others
        .lakefly(STRANGER, STRANGER, &d.api, &["--json", "apps", "list"])
        .expect_code(4);
    let message = error_of(&refused)["error"].as_str().unwrap().to_string();
    assert!(message.contains("members of group nogroup"), "{message}");
}

#[test]
fn an_unknown_local_group_stops_the_start() {
    let state = tempfile::tempdir().unwrap();
    let run =
        common::lakeflyd_in(state.path(), &["--local-group", "no-such-group-9"]).expect_code(2);
    assert!(
        run.stderr
            .contains("--local-group no-such-group-9: no such group on this host")
            && run
                .stderr
                .contains("hint: create it (`groupadd no-such-group-9`"),
        "{}",
        run.stderr
    );
}
