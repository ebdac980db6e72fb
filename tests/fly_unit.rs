//! The shipped systemd unit passes `systemd-analyze verify` without a warning.

use std::process::Command;

#[test]
fn systemd_unit_verifies_cleanly() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipping: systemd-analyze is not installed");
        return;
    };
    assert!(version.status.success());
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fly/lakeflyd.service"))
            .unwrap();
    // Verify against the binary this build produced; the unit's own path is the install path.
    let unit = unit.replace("/usr/local/bin/lakeflyd", env!("CARGO_BIN_EXE_lakeflyd"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lakeflyd.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Unknown keys only warn (exit 0), so the output must be empty too.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze warned:\n{stderr}"
    );
}
