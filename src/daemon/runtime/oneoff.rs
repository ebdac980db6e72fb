//! One-off commands: a release's `[build] command` and `[deploy] release_command`, job
//! runs, and commands exec'd in a machine's environment. Run with `/bin/sh -c` in the
//! release's directory, bounded in time, the whole process group killed at the end; the
//! last lines of output kept, or (exec) each stream captured up to a limit.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

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
    let ended = wait_then_kill(&mut spawned, timeout).await;
    group.0 = None;
    let exit_code = match &ended {
        Ended::Exited(status) => status.code(),
        _ => None,
    };
    let timed_out = matches!(ended, Ended::TimedOut);
    let (success, summary) = match ended {
        Ended::Exited(s) if s.success() => (true, "exited 0".to_string()),
        Ended::Exited(s) => (
            false,
            match s.code() {
                Some(code) => format!("exited {code}"),
                None => "was killed by a signal".to_string(),
            },
        ),
        Ended::WaitFailed(e) => (false, format!("could not be waited for: {e}")),
        Ended::TimedOut => (
            false,
            format!(
                "did not finish within {}",
                crate::config::units::Duration::from_millis(timeout.as_millis() as u64)
            ),
        ),
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

/// How waiting for a one-off command ended.
enum Ended {
    Exited(std::process::ExitStatus),
    WaitFailed(std::io::Error),
    TimedOut,
}

/// Waits for the command up to `timeout`, then kills its whole group: what it started in
/// the background goes with it, as does the command itself when it ran out of time.
async fn wait_then_kill(spawned: &mut process::Spawned, timeout: Duration) -> Ended {
    let waited = tokio::time::timeout(timeout, spawned.child.wait()).await;
    let _ = process::signal_group(spawned.pid, Signal::SIGKILL);
    match waited {
        Ok(Ok(status)) => Ended::Exited(status),
        Ok(Err(e)) => Ended::WaitFailed(e),
        Err(_) => {
            let _ = spawned.child.wait().await;
            Ended::TimedOut
        }
    }
}

/// How a command whose output was captured ended, and what it wrote.
#[derive(Debug)]
pub struct Captured {
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did (`SIGKILL` at the time limit).
    pub signal: Option<Signal>,
    /// Whether it was killed at the time limit.
    pub timed_out: bool,
    /// Its standard output, up to the limit.
    pub stdout: Vec<u8>,
    /// Its standard error, up to the limit.
    pub stderr: Vec<u8>,
    /// Whether either stream went past the limit (the rest was read and dropped).
    pub truncated: bool,
}

/// Runs `command` in `dir` with `env` like [`run`], keeping up to `limit` bytes of each
/// output stream.
pub async fn capture(
    command: &str,
    dir: &Path,
    env: &BTreeMap<String, String>,
    timeout: Duration,
    limit: usize,
) -> std::io::Result<Captured> {
    let mut spawned = process::spawn(command, dir, env, process::MemoryLimit::None)?;
    let mut group = KillGroupOnDrop(Some(spawned.pid));
    let stdout = spawned
        .child
        .stdout
        .take()
        .map(|p| tokio::spawn(read_bounded(p, limit)));
    let stderr = spawned
        .child
        .stderr
        .take()
        .map(|p| tokio::spawn(read_bounded(p, limit)));
    let ended = wait_then_kill(&mut spawned, timeout).await;
    group.0 = None;
    // The group is gone, so the pipes are closed and both readers end.
    let collect = |reader: Option<tokio::task::JoinHandle<(Vec<u8>, bool)>>| async move {
        match reader {
            Some(reader) => reader.await.unwrap_or_default(),
            None => (Vec::new(), false),
        }
    };
    let ((stdout, cut_out), (stderr, cut_err)) = tokio::join!(collect(stdout), collect(stderr));
    let (exit_code, signal, timed_out) = match ended {
        Ended::Exited(status) => {
            use std::os::unix::process::ExitStatusExt;
            let signal = status.signal().and_then(|n| Signal::try_from(n).ok());
            (status.code(), signal, false)
        }
        Ended::TimedOut => (None, Some(Signal::SIGKILL), true),
        Ended::WaitFailed(e) => return Err(e),
    };
    Ok(Captured {
        exit_code,
        signal,
        timed_out,
        stdout,
        stderr,
        truncated: cut_out || cut_err,
    })
}

/// Reads `pipe` to its end, keeping the first `limit` bytes; whether more came.
async fn read_bounded(mut pipe: impl AsyncRead + Unpin, limit: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut cut = false;
    let mut buf = vec![0u8; 16 * 1024];
    // Reading on past the limit keeps the command from blocking on a full pipe.
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = limit - kept.len();
        cut |= n > room;
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    (kept, cut)
}
