//! The one-off commands running now (job runs, `[build] command`, `release_command`,
//! `machines exec`), noted on disk as `<state>/oneoffs/<pid>` holding the process's start
//! time. A daemon that dies outright (`kill -9`, a crash, the OOM killer) cannot kill them
//! on its way out; the next one stops what is noted before anything runs, so a nightly job
//! does not go on unsupervised beside its next run. Machines need no note: their records
//! hold pid and start time already.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::process;

/// How long a left-over command's group gets to go after SIGKILL before it is forgotten.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// Where running one-off commands are noted; cheap to clone.
#[derive(Debug, Clone)]
pub struct OneOffPids {
    dir: Arc<Path>,
}

impl OneOffPids {
    /// The notes under `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        OneOffPids {
            dir: state_dir.join("oneoffs").into(),
        }
    }

    /// Notes a command just started as the leader of process group `pid`; the note goes
    /// when the returned guard is dropped, after the group is gone. A note that cannot be
    /// written (a full disk) is logged, and the command runs anyway: only a crash during
    /// it would then leave it behind.
    pub fn note(&self, pid: u32) -> Noted {
        let path = self.dir.join(pid.to_string());
        let written = process::start_time(pid)
            .ok_or_else(|| std::io::Error::other("it has already ended"))
            .and_then(|start| {
                std::fs::create_dir_all(&self.dir)?;
                std::fs::write(&path, start.to_string())
            });
        match written {
            Ok(()) => Noted(Some(path)),
            Err(e) => {
                // A command that already ended leaves nothing to stop.
                if process::start_time(pid).is_some() {
                    tracing::warn!(pid, error = %e, path = %path.display(), "could not note a one-off command; a crash of lakeflyd during it would leave it running");
                }
                Noted(None)
            }
        }
    }

    /// Stops (SIGKILL to its group) every noted command a previous daemon left running,
    /// and forgets the notes. Returns how many were still running.
    pub async fn stop_left_over(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut stopping = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let pid = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok());
            let start = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
            if let (Some(pid), Some(start)) = (pid, start) {
                if process::is_same_process(pid, start) {
                    tracing::info!(pid, "stopping a one-off command (a job run, build, release command or exec) left running by the previous run");
                    stopping.push(process::stop_orphan(pid, start, Signal::SIGKILL, STOP_WAIT));
                }
            }
            forget(&path);
        }
        let stopped = stopping.len();
        futures_util::future::join_all(stopping).await;
        stopped
    }
}

/// A running command's note; removed on drop.
#[derive(Debug)]
pub struct Noted(Option<PathBuf>);

impl Drop for Noted {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            forget(path);
        }
    }
}

/// Removes a note; one that stays is harmless (its start time no longer matches a process).
fn forget(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a one-off command's note");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_noted_command_left_running_is_stopped_and_its_note_forgotten() {
        let state = tempfile::tempdir().expect("temp dir");
        let pids = OneOffPids::new(state.path());
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let mut child = std::process::Command::new("sleep")
            .arg("600")
            .process_group(0)
            .spawn()
            .expect("sleep starts");
        let pid = child.id();
        // The daemon dies: the guard is never dropped.
        std::mem::forget(pids.note(pid));
        assert!(state.path().join("oneoffs").join(pid.to_string()).exists());
        // A stale note (its pid's process ended) and a stray file are only forgotten.
        std::fs::write(state.path().join("oneoffs/4194000"), "12345").expect("write");
        std::fs::write(state.path().join("oneoffs/junk"), "x").expect("write");

        assert_eq!(OneOffPids::new(state.path()).stop_left_over().await, 1);
        let status = child.wait().expect("sleep is reaped");
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
        let left = std::fs::read_dir(state.path().join("oneoffs"))
            .expect("dir")
            .count();
        assert_eq!(left, 0, "every note is forgotten");
    }

    #[test]
    fn a_note_goes_when_its_command_is_done() {
        let state = tempfile::tempdir().expect("temp dir");
        let pids = OneOffPids::new(state.path());
        let me = std::process::id();
        let noted = pids.note(me);
        let path = state.path().join("oneoffs").join(me.to_string());
        assert!(path.exists());
        drop(noted);
        assert!(!path.exists());
    }
}
