//! The runtime's start: what the last run of the daemon left running is stopped (or, under
//! `--live-restore`, taken back), then every machine that is not destroyed gets its
//! supervisor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{
    cgroup, check_board, live_restore, oneoff_pids, ports, process, stragglers, supervisor,
    LogSink, Runtime, RuntimeOptions, StopHow, BOOT_WAIT,
};
use crate::api::types::{kind, MachineState};
use crate::daemon::edge::backends::Backends;
use crate::daemon::events::{EventHub, NewEvent};
use crate::daemon::store::machines::{self, Desired, Record};
use crate::daemon::store::{Store, StoreError};

impl Runtime {
    /// Stops what the last run of the daemon left running (machines and one-off
    /// commands), then starts a supervisor for every machine that is not destroyed.
    pub async fn start(
        store: Store,
        hub: EventHub,
        options: RuntimeOptions,
        restarts: prometheus_client::metrics::counter::Counter,
        secrets: Arc<crate::daemon::secrets::SecretStore>,
        backends: Backends,
    ) -> Result<Self, StoreError> {
        let ports = ports::PortPool::new(options.machine_ports);
        if let Some(warning) = ports.ephemeral_overlap() {
            tracing::warn!("{warning}");
        }
        // Its id tags machines and one-off commands alike.
        let oneoff_pids = oneoff_pids::OneOffPids::new(&options.state_dir);
        let runtime = Runtime {
            daemon_id: oneoff_pids.daemon_id().clone(),
            logs: LogSink::start(store.clone(), options.log_lines_per_app),
            restarts,
            secrets,
            backends,
            // Machines that outlive the daemon stay in its cgroup, which a restart must
            // join again: cgroup v2 refuses that beside controllers enabled for them.
            cgroups: if options.live_restore {
                tracing::info!("--live-restore: machine memory limits are held by watching resident memory, not by a cgroup");
                None
            } else {
                cgroup::Cgroups::detect()
            },
            ports,
            checks: check_board::CheckBoard::default(),
            oneoff_pids,
            store,
            hub,
            apps_dir: options.state_dir.join("apps"),
            volumes_dir: options.state_dir.join("volumes"),
            machines: Arc::default(),
            unstored: Default::default(),
            live_restore: options
                .live_restore
                .then(|| live_restore::Outputs::new(&options.state_dir)),
        };
        // A volume deleted when the daemon stopped is deleted whole.
        let volumes_dir = runtime.volumes_dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            crate::daemon::volumes::finish_deletions(&volumes_dir)
        })
        .await;
        let records = runtime
            .store
            .run(|conn, path| machines::all_live(conn, path))
            .await?;
        // Under live restore the machines that still run are taken back as they are.
        let mut adopted = runtime.adoptable(&records);
        // Leftovers are stopped all at once, each within its own kill timeout.
        let mut longest = Duration::ZERO;
        let leftovers: Vec<_> = records
            .iter()
            .filter(|r| !adopted.contains_key(&r.machine.id))
            .filter_map(|r| Some((r.machine.pid?, r.pid_start?, r)))
            .map(|(pid, start, r)| {
                let (signal, timeout) = StopHow::default().resolve(&r.machine.spec);
                longest = longest.max(timeout);
                tracing::info!(machine = %r.machine.id, pid, "stopping a process left by the previous run");
                process::stop_orphan(pid, start, signal, timeout)
            })
            .collect();
        if !leftovers.is_empty() {
            // Under systemd, that time comes on top of the start's timeout.
            crate::daemon::service_manager::extend_start(longest + Duration::from_secs(30));
        }
        futures_util::future::join_all(leftovers).await;
        runtime.oneoff_pids.stop_left_over().await;
        // Output FIFOs a live-restore run left: without the flag no machine writes to one.
        if runtime.live_restore.is_none() {
            live_restore::Outputs::new(&options.state_dir).remove_all();
        }
        // What the last run's machines started outside their groups (a daemonized server)
        // outlived them: nothing of theirs may run beside the machines started now.
        let daemon = runtime.daemon_id.clone();
        let left: Vec<_> = tokio::task::spawn_blocking(move || stragglers::of_daemon(&daemon))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|tagged| !adopted.contains_key(&tagged.machine))
            .collect();
        if !left.is_empty() {
            tracing::warn!(
                count = left.len(),
                "killing processes the previous run's machines left outside their process groups"
            );
            let pids: Vec<u32> = left.into_iter().map(|t| t.pid).collect();
            process::signal_each(&pids, Signal::SIGKILL);
        }
        let mut booting = Vec::with_capacity(records.len());
        for record in records {
            let id = &record.machine.id;
            if let Some(process) = adopted.remove(id) {
                booting.push(runtime.supervise(record, Some(process)));
                continue;
            }
            if record.machine.pid.is_some() {
                let data = serde_json::json!({ "machine": id, "reason": "left running by the previous daemon" });
                (runtime.record_at_start(
                    &record,
                    MachineState::Stopped,
                    kind::MACHINE_STOPPED,
                    data,
                ))
                .await;
            }
            // An interrupted rollout's machine (`deploy::fail_interrupted`) goes now.
            if record.desired == Desired::Destroyed {
                let data = serde_json::json!({ "machine": id });
                (runtime.record_at_start(
                    &record,
                    MachineState::Destroyed,
                    kind::MACHINE_DESTROYED,
                    data,
                ))
                .await;
                continue;
            }
            booting.push(runtime.supervise(record, None));
        }
        // The machines that should run are started and offered to the edge before the
        // daemon serves it, so a request that waited through the restart is held for
        // them rather than refused. A start that hangs holds the daemon back no longer.
        let all_booted = futures_util::future::join_all(booting);
        if tokio::time::timeout(BOOT_WAIT, all_booted).await.is_err() {
            tracing::warn!("some machines were still starting after {BOOT_WAIT:?}; serving anyway");
        }
        Ok(runtime)
    }

    /// The machines an earlier run left running that this one takes back, by id: under
    /// live restore, those that should run whose recorded process still runs (the same
    /// pid and start time) and whose output FIFOs are there.
    fn adoptable(&self, records: &[Record]) -> HashMap<String, supervisor::Adopted> {
        let Some(outputs) = &self.live_restore else {
            return HashMap::new();
        };
        let mut adopted = HashMap::new();
        for record in records {
            let (Some(pid), Some(start_time)) = (record.machine.pid, record.pid_start) else {
                continue;
            };
            if record.desired != Desired::Started || !process::is_same_process(pid, start_time) {
                continue;
            }
            let Some(streams) = outputs.reopen(&record.machine.id) else {
                continue;
            };
            let process = supervisor::Adopted {
                pid,
                start_time,
                port: record.machine.port,
                streams,
            };
            adopted.insert(record.machine.id.clone(), process);
        }
        adopted
    }

    /// Records at start that `record`'s machine is `state` now, with its `kind` event. A
    /// store that cannot take it (a full disk) is logged, not fatal: a daemon that will not
    /// start runs no machine at all, and the supervisors retry what they cannot record.
    async fn record_at_start(
        &self,
        record: &Record,
        state: MachineState,
        kind: &'static str,
        data: serde_json::Value,
    ) {
        let (id, app, restarts) = (
            record.machine.id.clone(),
            record.machine.app.clone(),
            record.machine.restarts,
        );
        let recorded = self
            .hub
            .change(move |tx, path| {
                machines::set_exited(tx, path, &id, state, None, restarts)?;
                Ok(((), vec![NewEvent::app(&app, kind, data)]))
            })
            .await;
        if let Err(e) = recorded {
            tracing::error!(machine = %record.machine.id, error = %e, "could not record the machine {kind} at start");
        }
    }
}
