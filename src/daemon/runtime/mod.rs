//! The supervisor: keeps each machine's process in the state the store says it should be
//! in. One task per machine (`supervisor.rs`); this module creates them, routes requests to
//! them, and reconciles what a crashed daemon left behind.

mod backoff;
mod boot;
pub mod cgroup;
pub mod check_board;
pub mod console;
pub(crate) mod environment;
pub mod exec;
pub mod exits;
pub mod health;
mod https_check;
pub mod listening;
pub mod live_restore;
pub mod logs;
pub mod mounts;
pub mod oneoff;
pub mod oneoff_pids;
pub mod output_lines;
pub mod ports;
pub mod process;
mod proxy_target;
mod resident;
mod shell_command;
mod stragglers;
mod supervisor;
mod unstored;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot};

use self::logs::LogSink;
use self::supervisor::{Control, Supervisor};
use crate::api::types::{kind, Machine, MachineSpec, MachineState};
use crate::daemon::edge::backends::Backends;
use crate::daemon::events::{now, EventHub, NewEvent};
use crate::daemon::store::machines::{self, Desired, Record};
use crate::daemon::store::{Store, StoreError};

/// What can be asked of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start it.
    Start,
    /// Stop it.
    Stop,
    /// Stop it with another signal or timeout than its own (`machines stop -s --timeout`).
    StopWith(StopHow),
    /// Stop and start it.
    Restart,
    /// Stop it another way (as `StopWith`) and start it.
    RestartWith(StopHow),
    /// Stop and forget it.
    Destroy,
}

/// How a stop (or a restart's stop) goes when it is not the machine's own way (its
/// `kill_signal`, then SIGKILL after its `kill_timeout`): either may be given instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StopHow {
    /// The signal that asks it to stop.
    pub signal: Option<Signal>,
    /// How long it has before SIGKILL.
    pub timeout: Option<Duration>,
}

/// Fly's default time between the kill signal and SIGKILL.
const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(5);

impl StopHow {
    /// The signal and the time before SIGKILL (also how long a drain may take) for a
    /// machine of `spec`: what was given, else fly.toml's `kill_signal` (SIGINT, as Fly,
    /// without one) and `kill_timeout` (5 s).
    pub fn resolve(self, spec: &MachineSpec) -> (Signal, Duration) {
        let signal = self.signal.unwrap_or_else(|| {
            (spec.kill_signal.as_deref())
                .and_then(crate::api::signal::parse)
                .unwrap_or(Signal::SIGINT)
        });
        let timeout = self.timeout.unwrap_or_else(|| {
            spec.kill_timeout
                .map_or(DEFAULT_KILL_TIMEOUT, |d| d.to_std())
        });
        (signal, timeout)
    }
}

/// How long the daemon, starting, waits for the machines it brings back to start before
/// it serves the edge anyway.
const BOOT_WAIT: Duration = Duration::from_secs(5);

/// Why a machine request failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No such machine in that app.
    #[error("machine {id:?} does not exist in app {app:?}")]
    NotFound {
        /// The app.
        app: String,
        /// The machine.
        id: String,
    },
    /// A command could not be run in the machine's environment.
    #[error("cannot run the command in machine {id}: {reason}")]
    Exec {
        /// The machine.
        id: String,
        /// Why.
        reason: String,
    },
    /// A signal for a machine with no process running.
    #[error("machine {id} is {state}: no process runs to signal")]
    NotRunning {
        /// The machine.
        id: String,
        /// Its state.
        state: &'static str,
    },
    /// The daemon is stopping and starts nothing now.
    #[error("lakeflyd is stopping and starts no machine now")]
    Stopping,
    /// A proxied port the machine does not listen on.
    #[error(
        "machine {id} does not listen on port {port}{}",
        listening_on(listening)
    )]
    NotListening {
        /// The machine.
        id: String,
        /// The port asked for.
        port: u16,
        /// The TCP ports its processes listen on, as the app knows them.
        listening: Vec<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// ": it listens on 8080, 9091", or that it listens on none.
fn listening_on(ports: &[String]) -> String {
    if ports.is_empty() {
        return ": it listens on no TCP port".into();
    }
    format!(": it listens on {}", ports.join(", "))
}

/// Runs the machines.
#[derive(Clone)]
pub struct Runtime {
    /// Tags each machine's processes, so its stragglers are found (`stragglers.rs`).
    daemon_id: Arc<str>,
    store: Store,
    hub: EventHub,
    logs: LogSink,
    apps_dir: PathBuf,
    volumes_dir: PathBuf,
    restarts: prometheus_client::metrics::counter::Counter,
    secrets: Arc<crate::daemon::secrets::SecretStore>,
    backends: Backends,
    cgroups: Option<cgroup::Cgroups>,
    ports: ports::PortPool,
    checks: check_board::CheckBoard,
    oneoff_pids: oneoff_pids::OneOffPids,
    machines: Arc<Mutex<Supervisors>>,
    /// Machines' states the store could not take (a full disk), shown over it.
    unstored: unstored::Unstored,
    /// Under `--live-restore`, where machines' output FIFOs are.
    live_restore: Option<live_restore::Outputs>,
}

/// The machines' supervisors, by machine id.
#[derive(Default)]
struct Supervisors {
    senders: HashMap<String, mpsc::Sender<Control>>,
    /// The daemon is stopping: no supervisor starts any more, so none outlives it (the
    /// store keeps what each machine should be doing, for the next start).
    closed: bool,
}

/// Where the runtime keeps machines' files and what it gives them.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The daemon's state directory: apps' work dirs and volumes live under it.
    pub state_dir: PathBuf,
    /// Log lines kept per app.
    pub log_lines_per_app: u64,
    /// Where machines' `$PORT` comes from.
    pub machine_ports: ports::PortRange,
    /// Machines outlive the daemon and the next run takes them back (`--live-restore`).
    pub live_restore: bool,
}

impl Runtime {
    /// Where machines without a working directory of their own run, one per app.
    pub fn apps_dir(&self) -> &std::path::Path {
        &self.apps_dir
    }

    /// Where machines' volumes live, one directory per app (`volumes.rs`).
    pub fn volumes_dir(&self) -> &std::path::Path {
        &self.volumes_dir
    }

    /// Where every change is recorded and published.
    pub fn hub(&self) -> &EventHub {
        &self.hub
    }

    /// Where machines' (and job runs') output lines go.
    pub fn logs(&self) -> &LogSink {
        &self.logs
    }

    /// The one-off commands running now, noted so a crash does not leave them behind.
    pub fn oneoff_pids(&self) -> &oneoff_pids::OneOffPids {
        &self.oneoff_pids
    }

    /// How machine memory limits are enforced here: `cgroup_v2`, or `resident_watch` (the
    /// supervisor kills a machine whose processes hold more than its limit in memory).
    pub fn memory_enforcement(&self) -> &'static str {
        if self.cgroups.is_some() {
            "cgroup_v2"
        } else {
            "resident_watch"
        }
    }

    /// Whether `[[vm]] cpus` is held here: only through a delegated cgroup with the cpu
    /// controller.
    pub fn limits_cpus(&self) -> bool {
        self.cgroups.as_ref().is_some_and(|c| c.limits_cpus())
    }

    /// Whether the daemon is stopping (its machines are being stopped, and no other starts).
    pub fn is_stopping(&self) -> bool {
        self.supervisors().closed
    }

    /// Records a new machine of `app` and starts it.
    pub async fn create(&self, app: &str, spec: MachineSpec) -> Result<Machine, RuntimeError> {
        self.create_as(app, spec, Desired::Started).await
    }

    /// Records a new machine of `app`, stopped: it replaces a stopped machine, which a
    /// deploy leaves stopped, as flyctl does. A start (`machines start`, a request the edge
    /// auto-starts it for) runs it.
    pub async fn create_stopped(
        &self,
        app: &str,
        spec: MachineSpec,
    ) -> Result<Machine, RuntimeError> {
        self.create_as(app, spec, Desired::Stopped).await
    }

    async fn create_as(
        &self,
        app: &str,
        spec: MachineSpec,
        desired: Desired,
    ) -> Result<Machine, RuntimeError> {
        if self.is_stopping() {
            return Err(RuntimeError::Stopping);
        }
        let app_name = app.to_string();
        let machine = self
            .hub
            .change(move |tx, path| {
                let machine = machines::insert(tx, path, &app_name, &spec, desired, &now())?;
                let mut data = serde_json::json!({ "machine": machine.id, "process_group": machine.process_group });
                if desired == Desired::Stopped {
                    data["state"] = MachineState::Stopped.as_str().into();
                }
                Ok((machine, vec![NewEvent::app(&app_name, kind::MACHINE_CREATED, data)]))
            })
            .await?;
        // Nobody waits for a new machine's first start here: the deploy follows it.
        let record = Record {
            machine: machine.clone(),
            desired,
            pid_start: None,
        };
        drop(self.supervise(record, None));
        Ok(machine)
    }

    /// Records that release `version`'s rollout is about to stop machine `id`, an old one
    /// giving way (`store::rollouts::undo_rollout` starts it again after a crash).
    pub async fn note_stopped_for_release(&self, id: &str, version: u64) -> Result<(), StoreError> {
        let id = id.to_string();
        self.store
            .run(move |conn, path| {
                crate::daemon::store::rollouts::set_stopped_for_release(conn, path, &id, version)
            })
            .await
    }

    /// The latest result of each health check of `app`'s running machines.
    pub fn checks(&self, app: &str) -> Vec<crate::api::checks::CheckStatus> {
        self.checks.of_app(app)
    }

    /// The machines of `app`.
    pub async fn list(&self, app: &str) -> Result<Vec<Machine>, StoreError> {
        let app = app.to_string();
        let records = self
            .store
            .run(move |conn, path| machines::list(conn, path, &app))
            .await?;
        Ok(records
            .into_iter()
            .filter_map(|r| self.shown(r.machine))
            .collect())
    }

    /// `machine` as it is: its stored record with what the store could not take over it;
    /// `None` when that is its destroy.
    fn shown(&self, mut machine: Machine) -> Option<Machine> {
        self.unstored.apply(&mut machine);
        (machine.state != MachineState::Destroyed).then_some(machine)
    }

    /// One machine of `app`.
    pub async fn get(&self, app: &str, id: &str) -> Result<Machine, RuntimeError> {
        let (a, i) = (app.to_string(), id.to_string());
        self.store
            .run(move |conn, path| machines::get(conn, path, &a, &i))
            .await?
            .and_then(|r| self.shown(r.machine))
            .ok_or_else(|| RuntimeError::NotFound {
                app: app.to_string(),
                id: id.to_string(),
            })
    }

    /// Machine `id`, whichever app's it is (none when no app has it).
    pub async fn find(&self, id: &str) -> Result<Option<Machine>, StoreError> {
        let i = id.to_string();
        let found = (self.store)
            .run(move |conn, path| machines::by_id(conn, path, &i))
            .await?;
        Ok(found.and_then(|r| self.shown(r.machine)))
    }

    /// Carries out `action` on a machine and returns it as it is afterwards.
    pub async fn act(&self, app: &str, id: &str, action: Action) -> Result<Machine, RuntimeError> {
        // Its supervisor is stopping it for the shutdown; a start would outlive the daemon.
        if self.is_stopping() {
            return Err(RuntimeError::Stopping);
        }
        let machine = self.get(app, id).await?;
        let (reply, done) = oneshot::channel();
        let request = match action {
            Action::Start => Control::Start(reply),
            Action::Stop => Control::Stop(StopHow::default(), reply),
            Action::StopWith(how) => Control::Stop(how, reply),
            Action::Restart => Control::Restart(StopHow::default(), reply),
            Action::RestartWith(how) => Control::Restart(how, reply),
            Action::Destroy => Control::Destroy(reply),
        };
        let sender = self.sender(&machine.id);
        if let Some(sender) = sender {
            if sender.send(request).await.is_ok() {
                let _ = done.await;
            }
        }
        if action == Action::Destroy {
            self.forget(&machine.id);
            return Ok(Machine {
                state: MachineState::Destroyed,
                pid: None,
                ..machine
            });
        }
        self.get(app, id).await
    }

    /// Sends `signal` to machine `id`'s main process and records it (`machine.signaled`).
    pub async fn signal(
        &self,
        app: &str,
        id: &str,
        signal: Signal,
    ) -> Result<crate::api::signal::Signaled, RuntimeError> {
        let machine = self.get(app, id).await?;
        let (reply, done) = oneshot::channel();
        let mut pid = None;
        if let Some(sender) = self.sender(&machine.id) {
            if sender.send(Control::Signal(signal, reply)).await.is_ok() {
                pid = done.await.ok().flatten();
            }
        }
        let Some(pid) = pid else {
            let state = self.get(app, id).await.map_or(machine.state, |m| m.state);
            return Err(RuntimeError::NotRunning {
                id: machine.id,
                state: state.as_str(),
            });
        };
        let signaled = crate::api::signal::Signaled {
            machine: machine.id,
            signal: signal.as_str().to_string(),
            pid,
        };
        let data = serde_json::to_value(&signaled).unwrap_or_default();
        if let Err(e) = self
            .hub
            .emit(NewEvent::app(app, kind::MACHINE_SIGNALED, data))
            .await
        {
            tracing::warn!(error = %e, "recording a signal failed");
        }
        Ok(signaled)
    }

    /// Destroys every machine of `app`.
    pub async fn destroy_all(&self, app: &str) -> Result<(), RuntimeError> {
        for machine in self.list(app).await? {
            match self.act(app, &machine.id, Action::Destroy).await {
                // A `machines destroy` of its own got there first.
                Ok(_) | Err(RuntimeError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Stops every process for a daemon shutdown (under live restore, leaves them running
    /// for the next start to take back); what each machine should be doing is kept, so the
    /// next start brings them back.
    pub async fn shutdown(&self) {
        let senders: Vec<_> = {
            let mut supervisors = self.supervisors();
            supervisors.closed = true;
            supervisors.senders.drain().map(|(_, s)| s).collect()
        };
        let stops = senders.into_iter().map(|sender| async move {
            let (reply, done) = oneshot::channel();
            if sender.send(Control::Shutdown(reply)).await.is_ok() {
                let _ = done.await;
            }
        });
        futures_util::future::join_all(stops).await;
    }

    /// Starts a supervisor for `record`'s machine (taking back `adopted`, its process an
    /// earlier run left running); what it returns resolves once its first start has
    /// reached the edge, or will not.
    fn supervise(
        &self,
        record: Record,
        adopted: Option<supervisor::Adopted>,
    ) -> oneshot::Receiver<()> {
        let (booted, on_booted) = oneshot::channel();
        let (tx, rx) = mpsc::channel(8);
        let machine = record.machine;
        let workdir = environment::workdir(&self.apps_dir, &machine.app, &machine.spec);
        let supervisor = Supervisor {
            daemon_id: self.daemon_id.clone(),
            id: machine.id.clone(),
            app: machine.app.clone(),
            spec: machine.spec.clone(),
            workdir,
            volumes: self.volumes_dir.clone(),
            desired: record.desired,
            desired_unrecorded: false,
            unstored: self.unstored.clone(),
            restarts: machine.restarts,
            crashes_in_a_row: 0,
            hub: self.hub.clone(),
            logs: self.logs.clone(),
            restart_counter: self.restarts.clone(),
            secrets: self.secrets.clone(),
            backends: self.backends.clone(),
            cgroups: self.cgroups.clone(),
            ports: self.ports.clone(),
            checks: self.checks.clone(),
            control: rx,
            pending: None,
            booted: Some(booted),
            live_restore: self.live_restore.clone(),
            adopted,
        };
        let mut supervisors = self.supervisors();
        // Stopping: the machine is left as recorded, for the next start (`booted` drops).
        if !supervisors.closed {
            supervisors.senders.insert(machine.id.clone(), tx);
            tokio::spawn(supervisor.run());
        }
        on_booted
    }

    fn supervisors(&self) -> std::sync::MutexGuard<'_, Supervisors> {
        self.machines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sender(&self, id: &str) -> Option<mpsc::Sender<Control>> {
        self.supervisors().senders.get(id).cloned()
    }

    fn forget(&self, id: &str) {
        self.supervisors().senders.remove(id);
    }
}
