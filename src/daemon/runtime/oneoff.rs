//! One-off commands: a release's `[build] command` and `[deploy] release_command`, and job
//! runs. Run with `/bin/sh -c` in the release's directory, bounded in time, the whole
//! process group killed at the end, the last lines of output kept.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::process;

/// Lines of output kept to explain a failure.
const TAIL: usize = 20;

/// How a one-off command ended.
pub struct Outcome {
    /// Whether it exited 0 in time.
    pub success: bool,
    /// What happened, in a few words (`exited 1`, `timed out after 5m`).
    pub summary: String,
    /// Its last lines of output (stdout and stderr together).
    pub tail: Vec<String>,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Whether it was stopped at the time limit.
    pub timed_out: bool,
}

/// Kills a one-off command's process group if dropped while it runs; disarmed once the
/// command was reaped, so a pid the kernel reuses later is never signalled.
struct KillGroupOnDrop(Option<u32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = process::signal_group(pid, Signal::SIGKILL);
        }
    }
}

/// Runs `command` in `dir` with `env`, killing its whole group after `timeout`.
pub async fn run(
    command: &str,
    dir: &Path,
    env: &BTreeMap<String, String>,
    timeout: Duration,
) -> Outcome {
    let mut spawned = match process::spawn(command, dir, env, process::MemoryLimit::None) {
        Ok(spawned) => spawned,
        Err(e) => {
            return Outcome {
                success: false,
                summary: format!("could not start: {e}"),
                tail: Vec::new(),
                exit_code: None,
                timed_out: false,
            }
        }
    };
    // If this future is dropped (the daemon stops mid-run), the command goes with it.
    let mut group = KillGroupOnDrop(Some(spawned.pid));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for pipe in [
        spawned
            .child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        spawned
            .child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let status = tokio::time::timeout(timeout, spawned.child.wait()).await;
    let _ = process::signal_group(spawned.pid, Signal::SIGKILL);
    group.0 = None;
    let exit_code = match &status {
        Ok(Ok(s)) => s.code(),
        _ => None,
    };
    let timed_out = status.is_err();
    let (success, summary) = match status {
        Ok(Ok(s)) if s.success() => (true, "exited 0".to_string()),
        Ok(Ok(s)) => (
            false,
            match s.code() {
                Some(code) => format!("exited {code}"),
                None => "was killed by a signal".to_string(),
            },
        ),
        Ok(Err(e)) => (false, format!("could not be waited for: {e}")),
        Err(_) => {
            let _ = spawned.child.wait().await;
            (
                false,
                format!(
                    "did not finish within {}",
                    crate::config::units::Duration::from_millis(timeout.as_millis() as u64)
                ),
            )
        }
    };
    let mut tail = Vec::new();
    while let Some(line) = rx.recv().await {
        tail.push(line);
        if tail.len() > TAIL {
            tail.remove(0);
        }
    }
    Outcome {
        success,
        summary,
        tail,
        exit_code,
        timed_out,
    }
}
