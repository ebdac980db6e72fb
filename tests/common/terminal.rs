//! `lakefly` on a terminal of its own, driven as a person would type
//! (`tests/apps/terminal/drive.py`).

use std::path::Path;

/// Runs `lakefly ARGS` on a 43x132 pseudo-terminal, typing each `[wait_for, type]` step of
/// `steps` once the output holds `wait_for`, with `env` added; returns what the terminal
/// showed, ending `exit=<lakefly's exit code>`. Fails when the driver does (a step's text
/// never showed).
pub fn drive(steps: &serde_json::Value, args: &[&str], env: &[(&str, &str)]) -> String {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/terminal/drive.py");
    let output = std::process::Command::new("python3")
        .arg(driver)
        .arg(steps.to_string())
        .arg(env!("CARGO_BIN_EXE_lakefly"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("python3 runs the terminal driver");
    let shown = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    shown
}
