//! How a machine's process comes to run under its supervisor: started now (`launch`), or
//! taken back from an earlier run of the daemon under `--live-restore` (`adopt`).

use std::sync::Arc;

use super::super::cgroup::{Limits, MachineCgroup};
use super::super::live_restore::{self, Streams};
use super::super::ports::PortLease;
use super::super::resident::MemoryWatch;
use super::super::{environment, mounts, process, stragglers};
use super::{Next, Supervisor};
use crate::daemon::events::now;
use crate::daemon::store::StoreError;
use crate::secret::Redactor;

/// A machine process an earlier run of the daemon started and left running
/// (`--live-restore`), to be supervised again.
pub struct Adopted {
    /// Its pid, which leads its process group.
    pub pid: u32,
    /// Its start time, which tells it from a later process given the same pid.
    pub start_time: u64,
    /// Its `$PORT`.
    pub port: Option<u16>,
    /// Its output FIFOs, reopened.
    pub streams: Streams,
}

/// The process a machine runs, as its supervisor waits for it.
pub(super) enum Leader {
    /// Started by this daemon: its exit status is read.
    Child(tokio::process::Child),
    /// Started by an earlier run: only its end is seen.
    Adopted {
        /// Its pid.
        pid: u32,
        /// Its start time.
        start_time: u64,
    },
}

impl Leader {
    /// Whether its pid is still its own, so a signal to its group reaches the machine: a
    /// child is, until this daemon reaps it; an adopted process only while it runs, since
    /// whoever reaps it frees its pid for another.
    pub(super) fn still_runs(&self) -> bool {
        match self {
            Leader::Child(_) => true,
            Leader::Adopted { pid, start_time } => {
                super::super::process::is_same_process(*pid, *start_time)
            }
        }
    }

    /// Waits for it to end: its exit status, when it can be known.
    pub(super) async fn wait(&mut self) -> Option<std::process::ExitStatus> {
        match self {
            Leader::Child(child) => child.wait().await.ok(),
            Leader::Adopted { pid, start_time } => {
                live_restore::exited(*pid, *start_time).await;
                None
            }
        }
    }
}

/// A machine process that runs, with what its supervisor watches it with.
pub(super) struct Launched {
    pub(super) pid: u32,
    pub(super) leader: Leader,
    /// Its `$PORT`, held so that no other machine is given it while this process runs.
    pub(super) port: Option<PortLease>,
    pub(super) cgroup: Option<MachineCgroup>,
    pub(super) memory_watch: Option<MemoryWatch>,
    pub(super) streams: Streams,
    /// Hides the app's secrets in what it prints.
    pub(super) redactor: Arc<Redactor>,
    /// Taken back from an earlier run.
    pub(super) resumed: bool,
    /// The leader's start time, in clock ticks since boot.
    pub(super) start_time: Option<u64>,
    /// When it started (for an adopted one: when it was taken back).
    pub(super) started_at: String,
    /// The store could not take the start yet; it is tried again while the process runs.
    pub(super) unrecorded: bool,
}

impl Supervisor {
    /// Starts the machine's process and records it started; `Err(next)` when it could not
    /// start (recorded as failed).
    pub(super) async fn launch(&mut self) -> Result<Result<Launched, Next>, StoreError> {
        let port_lease = match self.spec.internal_port {
            Some(_) => match self.ports.take() {
                Ok(lease) => Some(lease),
                Err(e) => return self.fail(format!("no port for $PORT: {e}")).await.map(Err),
            },
            None => None,
        };
        let port = port_lease.as_ref().map(PortLease::port);
        if let Err(e) = std::fs::create_dir_all(&self.workdir) {
            let reason = format!("cannot create {}: {e}", self.workdir.display());
            return self.fail(reason).await.map(Err);
        }
        // Secrets are opened for this process only; they are never stored in the clear.
        let secrets = match self
            .secrets
            .env_of(&self.app, self.spec.release_version)
            .await
        {
            Ok(secrets) => secrets,
            Err(e) => return self.fail(e).await.map(Err),
        };
        // What the process prints is recorded without these values.
        let redactor = Arc::new(Redactor::new(secrets.values().map(String::as_str)));
        let mut env = environment::variables(&self.app, &self.id, &self.spec, port, secrets);
        // The tag by which the process's stragglers are found (`stragglers.rs`); only the
        // machine's own: a command exec'd beside it ends with its request, not with it.
        env.insert(stragglers::DAEMON_VAR.into(), self.daemon_id.to_string());
        if let Err(e) = mounts::prepare(
            &self.volumes,
            &self.app,
            &self.workdir,
            &self.spec.mounts,
            &mut env,
        ) {
            return self.fail(e.to_string()).await.map(Err);
        }
        let cgroup = match self.cgroup() {
            Ok(cgroup) => cgroup,
            Err(e) => return self.fail(e).await.map(Err),
        };
        let memory = match &cgroup {
            Some(cgroup) => process::MemoryLimit::Cgroup(&cgroup.procs),
            None => process::MemoryLimit::None,
        };
        // Under live restore the output goes through FIFOs the next daemon can open.
        let (output, fifo_streams) = match &self.live_restore {
            Some(outputs) => match outputs.create(&self.id) {
                Ok(made) => (
                    process::Output::Files {
                        stdout: made.stdout,
                        stderr: made.stderr,
                        held: made.held,
                    },
                    Some(made.streams),
                ),
                Err(e) => {
                    if let Some(cgroup) = cgroup {
                        cgroup.remove();
                    }
                    let reason = format!("cannot make the machine's output FIFOs: {e}");
                    return self.fail(reason).await.map(Err);
                }
            },
            None => (process::Output::Piped, None),
        };
        let spawned = process::spawn_writing_to(
            &self.spec.command,
            &self.workdir,
            &env,
            memory,
            process::Input::Empty,
            output,
        );
        let mut spawned = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                // Nothing joined it: the empty cgroup goes now, not at the next start.
                if let Some(cgroup) = cgroup {
                    cgroup.remove();
                }
                self.remove_output();
                let reason = format!("cannot start `{}`: {e}", self.spec.command);
                return self.fail(reason).await.map(Err);
            }
        };
        let pid = spawned.pid;
        let streams = match fifo_streams {
            Some(streams) => streams,
            None => super::super::logs::streams_of(&mut spawned.child),
        };
        let (start, started_at) = (spawned.start_time, now());
        let unrecorded = match self.record_started(pid, start, port, &started_at).await {
            Ok(()) => false,
            Err(e) => {
                // It runs all the same, as systemd starts a service on a full disk: an app
                // down because its record could not be written is the worse failure.
                // Untracked, it is still found by its tag (`stragglers.rs`) should this
                // daemon die; the record is tried again while it runs.
                tracing::error!(machine = %self.id, pid, error = %e, "could not record the machine's start; it runs, and the record is tried again");
                true
            }
        };
        self.answer_pending();
        // Without a cgroup, the limit is held by watching the machine's resident memory.
        let memory_watch = match (&cgroup, self.spec.memory_mb) {
            (None, Some(mb)) => Some(MemoryWatch::new(pid, mb)),
            _ => None,
        };
        Ok(Ok(Launched {
            pid,
            leader: Leader::Child(spawned.child),
            port: port_lease,
            cgroup,
            memory_watch,
            streams,
            redactor,
            resumed: false,
            start_time: start,
            started_at,
            unrecorded,
        }))
    }

    /// Takes back a process an earlier run started: the store has it as running already.
    pub(super) async fn adopt(&mut self, adopted: Adopted) -> Launched {
        tracing::info!(machine = %self.id, pid = adopted.pid, "taken back from the previous lakeflyd (--live-restore)");
        // Its output goes on being recorded without the secrets it was started with: its
        // release's (`secrets/pinned.rs`).
        let redactor = match self
            .secrets
            .env_of(&self.app, self.spec.release_version)
            .await
        {
            Ok(secrets) => Redactor::new(secrets.values().map(String::as_str)),
            Err(e) => {
                tracing::warn!(machine = %self.id, error = %e, "cannot open the app's secrets to hide them in its output");
                Redactor::new(std::iter::empty())
            }
        };
        // Its cgroup is where the earlier run put it; this is the handle to kill it by.
        let cgroup = self.cgroup().unwrap_or_else(|e| {
            tracing::warn!(machine = %self.id, error = %e, "cannot reopen the machine's cgroup");
            None
        });
        let memory_watch = match (&cgroup, self.spec.memory_mb) {
            (None, Some(mb)) => Some(MemoryWatch::new(adopted.pid, mb)),
            _ => None,
        };
        Launched {
            pid: adopted.pid,
            leader: Leader::Adopted {
                pid: adopted.pid,
                start_time: adopted.start_time,
            },
            port: adopted.port.map(|port| self.ports.hold(port)),
            cgroup,
            memory_watch,
            streams: adopted.streams,
            redactor: Arc::new(redactor),
            resumed: true,
            start_time: Some(adopted.start_time),
            started_at: now(),
            unrecorded: false,
        }
    }

    /// The machine's cgroup, held to its limits, when the daemon has a delegated one.
    fn cgroup(&self) -> Result<Option<MachineCgroup>, String> {
        let Some(cgroups) = &self.cgroups else {
            return Ok(None);
        };
        let limits = Limits {
            memory_mb: self.spec.memory_mb,
            swap_mb: self.spec.swap_mb,
            cpus: self.spec.cpus,
        };
        cgroups
            .machine(&self.id, limits)
            .map(Some)
            .map_err(|e| format!("cannot set up the machine's cgroup: {e}"))
    }

    /// Removes the machine's output FIFOs, once its process has ended.
    pub(super) fn remove_output(&self) {
        if let Some(outputs) = &self.live_restore {
            outputs.remove(&self.id);
        }
    }
}
