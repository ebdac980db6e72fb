//! `lakeflyd backup` and `lakeflyd restore`: a backup taken while the daemon serves, the
//! state directory lost, restored, and the app served again with its secrets; a backup or
//! restore over something that is there is refused, and so is a key that does not fit.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::daemon::TestDaemon;
use common::files::{app_with, copy_dir, get_text, python_server, PYTHON_WEB};
use common::Run;

fn server() -> String {
    python_server(r#""token=" + os.environ.get("TOKEN", "")"#)
}

fn config() -> String {
    format!("app = \"kept\"\n{PYTHON_WEB}")
}

fn lakefly(d: &TestDaemon, args: &[&str]) -> Run {
    d.cli(Path::new("."), args)
}

fn answer(d: &TestDaemon) -> String {
    let status = lakefly(d, &["status", "-a", "kept", "--json"])
        .expect_code(0)
        .json();
    let machine = &status["machines"][0];
    assert_eq!(machine["state"], "started", "{status}");
    let port = machine["port"].as_u64().unwrap();
    get_text(&format!("http://127.0.0.1:{port}/"))
}

/// Waits until the app's machine answers after a start, or fails at a deadline.
fn answer_once_up(d: &TestDaemon) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status = lakefly(d, &["status", "-a", "kept", "--json"])
            .expect_code(0)
            .json();
        if status["machines"][0]["health"] == "passing" {
            return answer(d);
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_backup_taken_while_serving_brings_a_lost_host_back() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let backup = root.path().join("backup");
    let mut d = TestDaemon::start_in(&state, &[]);
    let app = app_with(
        root.path(),
        "kept",
        &[("fly.toml", &config()), ("server.py", &server())],
    );
    let config = app.join("fly.toml");
    lakefly(&d, &["deploy", "-c", config.to_str().unwrap()]).expect_code(0);
    lakefly(&d, &["secrets", "set", "TOKEN=s3cr3t", "-a", "kept"]).expect_code(0);
    assert_eq!(answer(&d), "token=s3cr3t");

    let state_arg = state.to_str().unwrap();
    let run = common::lakeflyd(&["backup", "--state", state_arg, backup.to_str().unwrap()])
        .expect_code(0);
    let copied = run.json();
    assert_eq!(copied["master_key"], true, "{copied}");
    assert!(copied["files"].as_u64().unwrap() > 3, "{copied}");
    assert!(run.stderr.contains("==> backed up"), "{}", run.stderr);
    let key_mode = std::fs::metadata(backup.join("master.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    assert!(backup.join("releases/kept/1/server.py").is_file());
    assert!(!root.path().join("backup.partial").exists());
    // A backup never lands on one that is there.
    let again = common::lakeflyd(&["backup", "--state", state_arg, backup.to_str().unwrap()])
        .expect_code(6);
    assert!(
        again.stderr.contains("exists and is not empty"),
        "{}",
        again.stderr
    );

    // The host loses its state directory; the backup brings it back.
    d.stop();
    std::fs::remove_dir_all(&state).unwrap();
    let run = common::lakeflyd(&["restore", "--state", state_arg, backup.to_str().unwrap()])
        .expect_code(0);
    assert!(run.stderr.contains("==> restored"), "{}", run.stderr);
    let again = common::lakeflyd(&["restore", "--state", state_arg, backup.to_str().unwrap()])
        .expect_code(6);
    assert!(
        again.stderr.contains("exists and is not empty") && again.stderr.contains("hint: "),
        "{}",
        again.stderr
    );
    let d = TestDaemon::start_in(&state, &[]);
    assert_eq!(answer_once_up(&d), "token=s3cr3t");
    let releases = lakefly(&d, &["releases", "-a", "kept", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(releases.as_array().unwrap().len(), 2, "{releases}");

    // A backup whose key is not the one its secrets were sealed with is refused, and
    // leaves nothing behind.
    let wrong = root.path().join("wrong");
    copy_dir(&backup, &wrong);
    std::fs::write(wrong.join("master.key"), [7u8; 32]).unwrap();
    let elsewhere = root.path().join("elsewhere");
    let run = common::lakeflyd(&[
        "restore",
        "--state",
        elsewhere.to_str().unwrap(),
        wrong.to_str().unwrap(),
    ])
    .expect_code(1);
    assert!(
        run.stderr.contains("does not open the secrets"),
        "{}",
        run.stderr
    );
    assert!(!elsewhere.exists() && !root.path().join("elsewhere.restoring").exists());
}

/// A damaged database (a disk fault, a copy taken mid-write) is named as such at start,
/// with the way back, rather than a hint about space and permissions.
#[test]
fn a_damaged_database_refuses_the_start_and_points_at_a_restore() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let mut d = TestDaemon::start_in(&state, &[]);
    lakefly(&d, &["apps", "create", "kept"]).expect_code(0);
    d.stop();
    // What the write-ahead log holds would shadow the damaged page (a daemon's exit does
    // not always fold it into the file): a disk fault takes it too.
    for log in ["state.db-wal", "state.db-shm"] {
        match std::fs::remove_file(state.join(log)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot remove {log}: {e}"),
        }
    }
    let db = state.join("state.db");
    let mut bytes = std::fs::read(&db).unwrap();
    // The first page past the header: the schema's root, without which nothing opens.
    let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    bytes[100..page].fill(0xff);
    std::fs::write(&db, bytes).unwrap();

    let refused = common::lakeflyd_in(&state, &[]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("state.db")
            && refused.stderr.contains("hint: the database is damaged")
            && refused.stderr.contains("lakeflyd restore"),
        "{}",
        refused.stderr
    );
}
