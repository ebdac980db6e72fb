//! With no remote configured, the client starts a local daemon in the background, says so,
//! reuses it afterwards, and `lakefly daemon status|stop` manage it.

mod common;

use std::process::{Command, Stdio};

struct Local {
    data: tempfile::TempDir,
    addr: String,
}

impl Local {
    fn new() -> Self {
        let port = common::free_port();
        Local {
            data: tempfile::tempdir().unwrap(),
            addr: format!("127.0.0.1:{port}"),
        }
    }

    fn lakefly(&self, args: &[&str]) -> (i32, String, String) {
        self.lakefly_in(std::path::Path::new("."), args)
    }

    /// `lakefly args`, run in `dir`.
    fn lakefly_in(&self, dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_lakefly"))
            .args(args)
            .current_dir(dir)
            .env("XDG_DATA_HOME", self.data.path())
            .env("XDG_CONFIG_HOME", self.data.path())
            .env("LAKEFLY_LOCAL_ADDR", &self.addr)
            .env("LAKEFLY_LOCAL_EDGE", "127.0.0.1:0")
            .env_remove("LAKEFLY_REMOTE")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.lakefly(&["daemon", "stop"]);
    }
}

#[test]
fn the_client_starts_a_local_daemon_once_and_daemon_stop_stops_it() {
    let local = Local::new();
    // Not running is exit 8, as a daemon that cannot be reached, so scripts can test it.
    let (code, stdout, stderr) = local.lakefly(&["daemon", "status"]);
    assert_eq!(code, 8, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with("error: the local lakefly daemon is not running (state in "),
        "{stderr}"
    );
    assert!(stderr.contains("lakefly daemon start"), "{stderr}");
    let (code, stdout, _) = local.lakefly(&["daemon", "status", "--json"]);
    assert_eq!(code, 8);
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["running"], false, "{stdout}");

    let (code, _, stderr) = local.lakefly(&["apps", "create", "hello"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.starts_with("==> started a local lakefly daemon"),
        "{stderr}"
    );
    let state = local.data.path().join("lakefly");
    assert!(stderr.contains(&state.display().to_string()), "{stderr}");
    assert!(state.join("lakeflyd.log").exists());

    // The second command finds it running.
    let (code, stdout, stderr) = local.lakefly(&["apps", "list", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("started a local"), "{stderr}");
    let apps: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(apps[0]["name"], "hello");

    let (_, stdout, _) = local.lakefly(&["daemon", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["running"], true);
    assert_eq!(status["api"], format!("http://{}", local.addr));
    // It outlives the command that started it, so it keeps no hold on the directory that
    // command ran in (a project's, one to unmount or delete).
    let pid = status["pid"].as_u64().unwrap();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(cwd, state.canonicalize().unwrap());

    let (code, _, stderr) = local.lakefly(&["daemon", "stop"]);
    assert_eq!(code, 0);
    assert!(
        stderr.starts_with("stopped the local daemon (pid "),
        "{stderr}"
    );
    assert!(
        std::net::TcpStream::connect(&local.addr).is_err(),
        "the daemon no longer listens"
    );
    let (code, _, stderr) = local.lakefly(&["daemon", "status"]);
    assert_eq!(code, 8, "{stderr}");
}

#[test]
fn daemon_start_starts_the_local_daemon_unless_it_runs() {
    let local = Local::new();
    let (code, stdout, stderr) = local.lakefly(&["daemon", "start", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let started: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(started["started"], true, "{stdout}");
    assert_eq!(started["api"], format!("http://{}", local.addr));
    assert!(
        stderr.starts_with("==> started a local lakefly daemon"),
        "{stderr}"
    );

    let (code, stdout, stderr) = local.lakefly(&["daemon", "start"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with(&format!(
            "the local daemon already runs at http://{}",
            local.addr
        )),
        "{stderr}"
    );
}

#[test]
fn a_command_that_names_no_app_starts_no_daemon() {
    let local = Local::new();
    let nowhere = tempfile::tempdir().unwrap();
    for args in [
        &["status"][..],
        &["scale", "count", "2"],
        &["logs"],
        &["events"],
        &["secrets", "list"],
        &["releases"],
        &["jobs", "list"],
    ] {
        let (code, _, stderr) = local.lakefly_in(nowhere.path(), args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: no app name: pass -a APP"),
            "{args:?}: {stderr}"
        );
    }
    let (code, _, _) = local.lakefly(&["daemon", "status"]);
    assert_eq!(code, 8, "no daemon was started for them");
}

/// A daemon on the local address that is not this user's (another user's, or one run by
/// hand on other state) is told apart from this user's own, with how to move that.
#[test]
fn another_daemon_on_the_local_address_is_not_taken_for_this_users_own() {
    let other = common::daemon::TestDaemon::start();
    let local = Local {
        data: tempfile::tempdir().unwrap(),
        addr: other.api.trim_start_matches("http://").to_string(),
    };
    let (code, stdout, stderr) = local.lakefly(&["daemon", "status"]);
    assert_eq!(code, 8, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!("; {} is answered by another daemon", local.addr))
            && stderr
                .contains("hint: commands without --remote go to the daemon that answers there")
            && stderr.contains("LAKEFLY_LOCAL_ADDR"),
        "{stderr}"
    );

    let (code, _, stderr) = local.lakefly(&["daemon", "start"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.starts_with(&format!("another daemon answers at {}", other.api)),
        "{stderr}"
    );
}
