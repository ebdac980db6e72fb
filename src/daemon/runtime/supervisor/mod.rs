//! One task per machine: it owns the process, restarts it per policy with backoff, stops
//! it (kill signal, then SIGKILL after the timeout, to the whole group), and records every
//! transition with its event.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use tokio::sync::{mpsc, oneshot};

mod launch;
mod records;

pub use launch::Adopted;
use launch::{Launched, Leader};

use super::backoff::{backoff, STABLE_AFTER};
use super::logs::{LogLine, LogSink};
use super::resident::MemoryWatch;
use super::{health, process, stragglers, StopHow};
use crate::api::types::{ExitInfo, MachineSpec, MachineState};
use crate::config::model::RestartPolicy;
use crate::daemon::events::{now, EventHub};
use crate::daemon::store::machines::Desired;
use crate::daemon::store::StoreError;

/// Restarts in a row before a crashing machine is marked failed.
const DEFAULT_MAX_RETRIES: u32 = 10;
/// How often a start the store could not take (a full disk) is tried again.
const RECORD_AGAIN: Duration = Duration::from_secs(2);

/// A request to a machine's supervisor; the reply comes once it has been carried out.
#[derive(Debug)]
pub enum Control {
    /// Start it (no-op when running).
    Start(oneshot::Sender<()>),
    /// Stop it (with its kill signal and timeout, unless told others) and keep it stopped.
    Stop(StopHow, oneshot::Sender<()>),
    /// Stop it (as `Stop` does), then start it again.
    Restart(StopHow, oneshot::Sender<()>),
    /// Stop it and forget it.
    Destroy(oneshot::Sender<()>),
    /// The daemon is stopping: stop the process, keep what it should be doing.
    Shutdown(oneshot::Sender<()>),
    /// Send a signal to its main process; the reply is that process's pid, or `None` when
    /// none runs. What follows is the app's: a reload, or an exit the policy restarts.
    Signal(Signal, oneshot::Sender<Option<u32>>),
}

/// What the supervisor knows about its machine.
pub struct Supervisor {
    /// The daemon's id, with which its machines' processes are tagged.
    pub(super) daemon_id: std::sync::Arc<str>,
    pub(super) id: String,
    pub(super) app: String,
    pub(super) spec: MachineSpec,
    pub(super) workdir: PathBuf,
    pub(super) volumes: PathBuf,
    pub(super) desired: Desired,
    /// The store could not take `desired` (a full disk); it is tried again, so that the
    /// next daemon does not undo a stop (or a start) it was asked for.
    pub(super) desired_unrecorded: bool,
    /// Its states the store could not take, shown over the stored record meanwhile.
    pub(super) unstored: super::unstored::Unstored,
    pub(super) restarts: u32,
    /// Exits in a row its restart policy answered with a restart (the backoff and
    /// `max_retries` count them); a start or restart asked for begins the count again, so
    /// a machine that gave up gets all its retries back, as after `systemctl reset-failed`.
    pub(super) crashes_in_a_row: u32,
    pub(super) hub: EventHub,
    pub(super) logs: LogSink,
    pub(super) restart_counter: prometheus_client::metrics::counter::Counter,
    pub(super) secrets: std::sync::Arc<crate::daemon::secrets::SecretStore>,
    /// Where the edge finds machines that serve traffic.
    pub(super) backends: crate::daemon::edge::backends::Backends,
    /// The daemon's delegated cgroup, when memory limits go through one.
    pub(super) cgroups: Option<super::cgroup::Cgroups>,
    /// Where `$PORT` comes from.
    pub(super) ports: super::ports::PortPool,
    /// Where the latest result of each check is shown.
    pub(super) checks: super::check_board::CheckBoard,
    pub(super) control: mpsc::Receiver<Control>,
    /// A start or restart request, answered once the process is recorded as started (or
    /// as failed), so the caller sees the new state.
    pub(super) pending: Option<oneshot::Sender<()>>,
    /// Dropped (or told) once the first process is started and offered to the edge, or
    /// will not be: the daemon opens the edge after the machines it brings back.
    pub(super) booted: Option<oneshot::Sender<()>>,
    /// Under `--live-restore`, where its output FIFOs are: it outlives the daemon.
    pub(super) live_restore: Option<super::live_restore::Outputs>,
    /// The process an earlier run left running, to take back instead of starting one.
    pub(super) adopted: Option<Adopted>,
}

/// What to do after a step of the loop.
enum Next {
    /// Start (again) now.
    Run,
    /// Wait for a request.
    Idle,
    /// Start again after this delay, unless a request comes first.
    Backoff(Duration),
    /// The machine is destroyed or the daemon stops.
    End,
}

impl Supervisor {
    /// Runs until the machine is destroyed or the daemon shuts down.
    pub async fn run(mut self) {
        // Failed starts in a row whose failure the store could not record (a full disk).
        let mut unrecorded = 0u32;
        let mut next = if self.desired == Desired::Started {
            Next::Run
        } else {
            Next::Idle
        };
        if !matches!(next, Next::Run) {
            self.booted = None;
        }
        loop {
            next = match next {
                Next::Run => {
                    let next = match self.run_process().await {
                        Ok(next) => {
                            unrecorded = 0;
                            next
                        }
                        // It could not start, and the store could not take why (a full
                        // disk, which may be why it could not start): a machine that should
                        // run is tried again, as systemd keeps restarting a service, instead
                        // of staying down for good.
                        Err(e) if self.desired == Desired::Started => {
                            unrecorded += 1;
                            let delay = backoff(unrecorded + 1);
                            tracing::error!(machine = %self.id, error = %e, ?delay, "could not start the machine nor record why; trying again after a delay");
                            self.answer_pending();
                            Next::Backoff(delay)
                        }
                        Err(e) => {
                            tracing::error!(machine = %self.id, error = %e, "could not record machine state");
                            self.answer_pending();
                            Next::Idle
                        }
                    };
                    // The first try is over, whether or not it got as far as the edge.
                    self.booted = None;
                    next
                }
                Next::Idle => tokio::select! {
                    request = self.control.recv() => match request {
                        Some(request) => self.handle_idle(request).await,
                        None => Next::End,
                    },
                    () = tokio::time::sleep(RECORD_AGAIN), if self.desired_unrecorded => {
                        self.record_desired_again().await;
                        Next::Idle
                    }
                },
                Next::Backoff(delay) => {
                    let until = tokio::time::Instant::now() + delay;
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep_until(until) => break Next::Run,
                            () = tokio::time::sleep(RECORD_AGAIN), if self.desired_unrecorded => {
                                self.record_desired_again().await;
                            }
                            request = self.control.recv() => match request {
                                // Nothing runs to signal; the wait goes on.
                                Some(Control::Signal(_, reply)) => {
                                    let _ = reply.send(None);
                                }
                                Some(request) => break self.handle_idle(request).await,
                                None => break Next::End,
                            },
                        }
                    }
                }
                Next::End => return,
            };
        }
    }

    /// A request while no process runs.
    async fn handle_idle(&mut self, request: Control) -> Next {
        let (reply, next) = match request {
            Control::Start(reply) | Control::Restart(_, reply) => {
                self.set_desired(Desired::Started).await;
                self.crashes_in_a_row = 0;
                self.pending = Some(reply);
                return Next::Run;
            }
            Control::Stop(_, reply) => {
                self.set_desired(Desired::Stopped).await;
                let _ = self.record_state(MachineState::Stopped, None).await;
                (reply, Next::Idle)
            }
            Control::Destroy(reply) => {
                self.destroy().await;
                (reply, Next::End)
            }
            Control::Shutdown(reply) => (reply, Next::End),
            Control::Signal(_, reply) => {
                let _ = reply.send(None);
                return Next::Idle;
            }
        };
        let _ = reply.send(());
        next
    }

    /// Starts the process (or takes back the one an earlier run left, under live restore)
    /// and waits for it to exit or for a request.
    async fn run_process(&mut self) -> Result<Next, StoreError> {
        let launched = match self.adopted.take() {
            Some(adopted) => self.adopt(adopted).await,
            None => match self.launch().await? {
                Ok(launched) => launched,
                Err(next) => return Ok(next),
            },
        };
        let Launched {
            pid,
            mut leader,
            // Held until this returns, when the process has ended.
            port: port_lease,
            cgroup,
            mut memory_watch,
            streams,
            redactor,
            resumed,
            start_time,
            started_at: started_at_clock,
            mut unrecorded,
        } = launched;
        let port = port_lease.as_ref().map(super::ports::PortLease::port);
        let started_at = Instant::now();
        self.logs.pump(&self.app, &self.id, streams, redactor);
        // The edge may send it traffic once its checks pass; until it is dropped.
        let registration = port.map(|port| {
            self.backends
                .register(crate::daemon::edge::backends::BackendSpec {
                    machine: self.id.clone(),
                    app: self.app.clone(),
                    group: self.spec.process_group.clone(),
                    port,
                    internal_port: self.spec.internal_port,
                })
        });
        if let Some(booted) = self.booted.take() {
            let _ = booted.send(());
        }
        // Checks run while this process does; dropping the guard ends them.
        let health = health::watch(
            health::Target {
                machine: self.id.clone(),
                app: self.app.clone(),
                pid,
                internal_port: self.spec.internal_port,
                port,
                udp_only: self.spec.udp_only,
                backend: registration.as_ref().map(|r| r.backend()),
                resumed,
            },
            self.spec.checks.clone(),
            self.hub.clone(),
            &self.checks,
        );
        let mut record_again =
            tokio::time::interval_at(tokio::time::Instant::now() + RECORD_AGAIN, RECORD_AGAIN);
        record_again.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let status = loop {
            tokio::select! {
                status = leader.wait() => break status,
                () = MemoryWatch::enforce(&mut memory_watch) => {}
                _ = record_again.tick(), if unrecorded || self.desired_unrecorded => {
                    if unrecorded && self.record_started(pid, start_time, port, &started_at_clock).await.is_ok() {
                        tracing::info!(machine = %self.id, pid, "the machine's start is recorded now");
                        unrecorded = false;
                    }
                    self.record_desired_again().await;
                }
                request = self.control.recv() => {
                    let request = match request {
                        Some(Control::Start(reply)) => {
                            // Already running.
                            let _ = reply.send(());
                            continue;
                        }
                        Some(Control::Signal(_, reply)) if !leader.still_runs() => {
                            // It ended a moment ago; its end is about to be seen.
                            let _ = reply.send(None);
                            continue;
                        }
                        Some(Control::Signal(signal, reply)) => {
                            let sent = process::signal_process(pid, signal);
                            if let Err(e) = &sent {
                                tracing::warn!(machine = %self.id, %signal, error = %e, "could not signal the machine");
                            }
                            let _ = reply.send(sent.ok().map(|()| pid));
                            continue;
                        }
                        // Under live restore the daemon leaves it running, for the next
                        // run to take back; its checks and the edge's hold on it end here.
                        Some(Control::Shutdown(reply)) if self.live_restore.is_some() => {
                            tracing::info!(machine = %self.id, pid, "left running for the next lakeflyd (--live-restore)");
                            let _ = reply.send(());
                            return Ok(Next::End);
                        }
                        other => other,
                    };
                    // `machines stop|restart --signal/--timeout` over the machine's own.
                    let how = match &request {
                        Some(Control::Stop(how, _) | Control::Restart(how, _)) => *how,
                        _ => StopHow::default(),
                    };
                    let (signal, timeout) = how.resolve(&self.spec);
                    // Shown as such while it drains and gets its kill_timeout (a full
                    // disk leaves it shown as started; the stop goes on all the same).
                    let _ = self.record_state(MachineState::Stopping, None).await;
                    // No new requests; the ones in flight finish before the signal.
                    if let Some(registration) = &registration {
                        let left = registration.drain(timeout).await;
                        if left > 0 {
                            tracing::info!(machine = %self.id, left, "requests still in flight after kill_timeout; stopping anyway");
                        }
                    }
                    drop(health);
                    let exit = self.stop_process(pid, &mut leader, signal, timeout).await;
                    if let Some(cgroup) = cgroup {
                        cgroup.kill_and_remove().await;
                    }
                    self.remove_output();
                    return Ok(self.after_stop(request, exit).await);
                }
            }
        };
        drop(health);
        drop(registration);
        let oom_killed = memory_watch.as_ref().is_some_and(MemoryWatch::killed)
            || cgroup.as_ref().is_some_and(|c| c.oom_killed());
        // The leader is gone; anything it left, in its group or out of it, goes too, so a
        // restart never runs beside a straggler.
        self.kill_leftovers(pid, &leader).await;
        if let Some(cgroup) = cgroup {
            cgroup.kill_and_remove().await;
        }
        self.remove_output();
        // Said in its log either way: the resident watch's kill, or the kernel's in the
        // machine's cgroup.
        let memory_kill = memory_watch
            .and_then(|watch| watch.kill_note())
            .or_else(|| oom_killed.then(|| super::cgroup::oom_kill_note(self.spec.memory_mb)));
        if let Some(line) = memory_kill {
            self.say_in_log(line).await;
        }
        if status.is_none() && resumed {
            self.say_in_log(
                "lakefly: the machine ended; it was started by an earlier lakeflyd, so its exit status is not known".into(),
            )
            .await;
        }
        let exit = ExitInfo {
            oom_killed,
            ..exit_info(status)
        };
        let failed = exit.code != Some(0);
        let policy = self.spec.restart.unwrap_or(RestartPolicy::OnFailure);
        let restart = match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failed,
            RestartPolicy::Never => false,
        };
        if started_at.elapsed() >= STABLE_AFTER {
            self.crashes_in_a_row = 0;
        }
        let max_retries = self.spec.max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
        if restart && self.crashes_in_a_row < max_retries {
            self.crashes_in_a_row += 1;
            self.restarts += 1;
            self.restart_counter.inc();
            let delay = backoff(self.crashes_in_a_row);
            // Restarted whether or not the store takes the record (a full disk).
            if let Err(e) = self
                .record_exit(MachineState::Starting, &exit, Some(delay))
                .await
            {
                tracing::error!(machine = %self.id, error = %e, "could not record the machine's exit; restarting it all the same");
            }
            return Ok(Next::Backoff(delay));
        }
        // The policy says it stays down: a store that cannot record it (a full disk) leaves
        // its record behind, but must not make it start again (`run` retries on errors).
        let recorded = if restart {
            let reason = format!(
                "exited {} times in a row; not restarting",
                self.crashes_in_a_row + 1
            );
            match self.record_exit(MachineState::Failed, &exit, None).await {
                Ok(()) => self.emit_failed(reason).await,
                Err(e) => Err(e),
            }
        } else {
            let recorded = self.record_exit(MachineState::Stopped, &exit, None).await;
            self.set_desired(Desired::Stopped).await;
            recorded
        };
        if let Err(e) = recorded {
            tracing::error!(machine = %self.id, error = %e, "could not record that the machine stays down");
        }
        Ok(Next::Idle)
    }

    /// Carries out a request that interrupted a running process, after it was stopped.
    async fn after_stop(&mut self, request: Option<Control>, exit: ExitInfo) -> Next {
        let (reply, next) = match request {
            // `run_process` answers Start itself while the process runs.
            Some(Control::Start(reply)) | Some(Control::Restart(_, reply)) => {
                self.restarts += 1;
                self.pending = Some(reply);
                (None, Next::Run)
            }
            Some(Control::Stop(_, reply)) => {
                self.set_desired(Desired::Stopped).await;
                (Some(reply), Next::Idle)
            }
            Some(Control::Destroy(reply)) => {
                self.destroy_after(&exit).await;
                let _ = reply.send(());
                return Next::End;
            }
            Some(Control::Shutdown(reply)) => (Some(reply), Next::End),
            // `run_process` answers Signal itself without stopping, so none comes here; were
            // one to, the machine runs on.
            Some(Control::Signal(_, reply)) => {
                let _ = reply.send(None);
                (None, Next::Run)
            }
            None => (None, Next::End),
        };
        if let Err(e) = self.record_stopped(&exit).await {
            tracing::error!(machine = %self.id, error = %e, "could not record the stop");
        }
        if let Some(reply) = reply {
            let _ = reply.send(());
        }
        next
    }

    /// `signal` to the group `pid` leads, SIGKILL after `timeout`, then whatever is left.
    async fn stop_process(
        &mut self,
        pid: u32,
        leader: &mut Leader,
        signal: Signal,
        timeout: Duration,
    ) -> ExitInfo {
        let deadline = tokio::time::Instant::now() + timeout;
        if leader.still_runs() {
            let _ = process::signal_group(pid, signal);
        }
        // What left the group (a daemonized server) gets the same signal and time.
        process::signal_each(&self.stragglers(pid).await, signal);
        let status = match tokio::time::timeout_at(deadline, leader.wait()).await {
            Ok(status) => status,
            Err(_) => {
                tracing::info!(machine = %self.id, ?timeout, "kill timeout passed; sending SIGKILL");
                if leader.still_runs() {
                    let _ = process::signal_group(pid, Signal::SIGKILL);
                }
                leader.wait().await
            }
        };
        // The leader may end first: the shell that runs `python3 app.py` exits at the
        // signal while the app still finishes its requests. The rest of the group gets
        // what is left of the timeout.
        process::wait_group_gone(pid, deadline).await;
        let (daemon, id) = (self.daemon_id.clone(), self.id.clone());
        process::wait_none(move || stragglers::of_machine(&daemon, &id, pid), deadline).await;
        self.kill_leftovers(pid, leader).await;
        exit_info(status)
    }

    /// The machine's processes outside the group its leader `leader` led: started in a
    /// session of their own, a signal to the group does not reach them.
    async fn stragglers(&self, leader: u32) -> Vec<u32> {
        let (daemon, id) = (self.daemon_id.clone(), self.id.clone());
        tokio::task::spawn_blocking(move || stragglers::of_machine(&daemon, &id, leader))
            .await
            .unwrap_or_default()
    }

    /// SIGKILLs what is left of the machine once its leader `leader` is gone: its group,
    /// and its stragglers, which the machine's log names (they held on to its port and
    /// files past the process lakefly watched).
    async fn kill_leftovers(&self, leader: u32, process: &Leader) {
        let (daemon, id) = (self.daemon_id.clone(), self.id.clone());
        let tagged = tokio::task::spawn_blocking(move || stragglers::of_machine_all(&daemon, &id))
            .await
            .unwrap_or_default();
        match process {
            Leader::Child(_) => {
                let _ = process::signal_group(leader, Signal::SIGKILL);
            }
            // Not this daemon's child: its pid was freed by whoever reaped it, perhaps a
            // while ago, and may lead another group by now. Only what carries the
            // machine's tag in that group is its own.
            Leader::Adopted { .. } => {
                let own: Vec<u32> = tagged
                    .iter()
                    .filter(|t| t.group == leader)
                    .map(|t| t.pid)
                    .collect();
                process::signal_each(&own, Signal::SIGKILL);
            }
        }
        let left = stragglers::outside(&tagged, leader);
        if left.is_empty() {
            return;
        }
        // Named first: once killed, what they were is gone with them.
        let named: Vec<String> = left
            .iter()
            .map(
                |pid| match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
                    Ok(name) => format!("{} (pid {pid})", name.trim_end()),
                    Err(_) => format!("pid {pid}"),
                },
            )
            .collect();
        process::signal_each(&left, Signal::SIGKILL);
        let line = format!(
            "lakefly: killed {} that left the machine's process group: {}; \
             run servers in the foreground (no daemonizing, no `&`) so lakefly supervises them",
            if left.len() == 1 {
                "a process"
            } else {
                "processes"
            },
            named.join(", ")
        );
        self.say_in_log(line).await;
    }

    /// Puts what lakefly did to the machine in its log (and the daemon's, as a warning),
    /// where its owner reads its output.
    async fn say_in_log(&self, line: String) {
        tracing::warn!(machine = %self.id, "{line}");
        self.logs
            .push(LogLine {
                time: now(),
                app: self.app.as_str().into(),
                machine: self.id.as_str().into(),
                stream: "stderr",
                line,
            })
            .await;
    }

    /// Tells whoever asked for the start in progress that it is over.
    fn answer_pending(&mut self) {
        if let Some(reply) = self.pending.take() {
            let _ = reply.send(());
        }
    }
}

/// The exit code or signal of a finished process.
fn exit_info(status: Option<std::process::ExitStatus>) -> ExitInfo {
    let (code, signal) = match status {
        Some(s) => (
            s.code(),
            s.signal().map(|n| {
                Signal::try_from(n)
                    .map_or_else(|_| format!("signal {n}"), |sig| sig.as_str().to_string())
            }),
        ),
        None => (None, None),
    };
    ExitInfo {
        code,
        signal,
        time: now(),
        oom_killed: false,
    }
}
