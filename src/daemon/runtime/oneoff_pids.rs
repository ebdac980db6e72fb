//! The one-off commands running now (job runs, `[build] command`, `release_command`,
//! `machines exec`), noted on disk as `<state>/oneoffs/<pid>` holding the process's start
//! time. A daemon that dies outright (`kill -9`, a crash, the OOM killer) cannot kill them
//! on its way out; the next one stops what is noted before anything runs, so a nightly job
//! does not go on unsupervised beside its next run. Machines need no note: their records
//! hold pid and start time already. A daemon killed between a command's start and its
//! note leaves no note: every command's environment is also tagged with the daemon's id,
//! and the next daemon stops the tagged ones it finds in `/proc` as well.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::process;

/// The variable that marks a process as a one-off command's (with the daemon's id).
pub const ONEOFF_VAR: &str = "LAKEFLY_ONEOFF";

/// How long a left-over command's group gets to go after SIGKILL before it is forgotten.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// Where running one-off commands are noted; cheap to clone.
#[derive(Debug, Clone)]
pub struct OneOffPids {
    dir: Arc<Path>,
    /// This daemon's id (`stragglers::daemon_id`), which commands' environments carry.
    daemon_id: Arc<str>,
}

impl OneOffPids {
    /// The notes under `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        OneOffPids {
            dir: state_dir.join("oneoffs").into(),
            daemon_id: super::stragglers::daemon_id(state_dir).into(),
        }
    }

    /// The id of the daemon whose state directory this is.
    pub fn daemon_id(&self) -> &Arc<str> {
        &self.daemon_id
    }

    /// `env` with this daemon's one-off tag, which a command's processes inherit.
    pub fn tagged(&self, env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut env = env.clone();
        let daemon_var = super::stragglers::DAEMON_VAR.to_string();
        env.insert(daemon_var, self.daemon_id.to_string());
        env.insert(ONEOFF_VAR.to_string(), "1".to_string());
        env
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
        // No directory: nothing was ever noted.
        let entries = std::fs::read_dir(&self.dir).into_iter().flatten();
        let mut stopping = Vec::new();
        let mut noted = std::collections::HashSet::new();
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
                    noted.insert(pid);
                    stopping.push(process::stop_orphan(pid, start, Signal::SIGKILL, STOP_WAIT));
                }
            }
            forget(&path);
        }
        // Tagged but not noted: started just before the daemon died. (A noted command
        // is tagged too, and still running until the stops below are awaited.)
        let entry = format!("{}={}", super::stragglers::DAEMON_VAR, self.daemon_id);
        let tagged = tokio::task::spawn_blocking(move || tagged_leaders(&entry))
            .await
            .unwrap_or_default();
        for (pid, start) in tagged.into_iter().filter(|(pid, _)| !noted.contains(pid)) {
            tracing::info!(pid, "stopping a one-off command left running by the previous run, which died before noting it");
            stopping.push(process::stop_orphan(pid, start, Signal::SIGKILL, STOP_WAIT));
        }
        let stopped = stopping.len();
        futures_util::future::join_all(stopping).await;
        stopped
    }
}

/// The live process-group leaders (with their start times) whose environment holds
/// `daemon_entry` and the one-off tag: each a one-off command's, whose group a SIGKILL
/// ends.
fn tagged_leaders(daemon_entry: &str) -> Vec<(u32, u64)> {
    let oneoff = format!("{ONEOFF_VAR}=1");
    super::stragglers::others_environ()
        .filter(|(_, environ)| {
            let has = |want: &str| environ.split(|&b| b == 0).any(|e| e == want.as_bytes());
            has(daemon_entry) && has(&oneoff)
        })
        .map(|(pid, _)| pid)
        .filter(|&pid| process::group_of(pid) == Some(pid))
        .filter_map(|pid| Some((pid, process::start_time(pid)?)))
        .collect()
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

    /// A command started just before the daemon died has no note; its tag finds it. One
    /// of another daemon (another state directory) is left alone.
    #[tokio::test]
    async fn a_tagged_command_left_without_a_note_is_stopped_and_another_daemons_kept() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let state = tempfile::tempdir().expect("temp dir");
        let other = tempfile::tempdir().expect("temp dir");
        let pids = OneOffPids::new(state.path());
        let spawn = |pids: &OneOffPids| {
            std::process::Command::new("sleep")
                .arg("600")
                .env_clear()
                .envs(pids.tagged(&BTreeMap::new()))
                .process_group(0)
                .spawn()
                .expect("sleep starts")
        };
        let mut ours = spawn(&pids);
        let mut theirs = spawn(&OneOffPids::new(other.path()));
        // Tagged and noted, as most are: stopped (and counted, and logged) once.
        let mut noted = spawn(&pids);
        std::mem::forget(pids.note(noted.id()));

        assert_eq!(OneOffPids::new(state.path()).stop_left_over().await, 2);
        for child in [&mut ours, &mut noted] {
            let status = child.wait().expect("sleep is reaped");
            assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
        }
        assert!(
            theirs.try_wait().expect("try_wait").is_none(),
            "another daemon's runs on"
        );
        theirs.kill().expect("kill");
        theirs.wait().expect("reaped");
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
