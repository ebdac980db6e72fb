//! `apps restart` and `machines restart ID...`: an app's running machines (or the ones
//! named) stopped and started again in place, one at a time, each healthy before the next
//! is touched, as `fly apps restart` and `fly machine restart` do. It picks up a change on
//! the host (a rotated file, a leak to shed) without a release, and without downtime when
//! the app has two machines or more (each is drained before its stop).

use super::rollout::{Failure, Rollout};
use super::{DeployError, Deployer, DEFAULT_WAIT_TIMEOUT};
use crate::api::types::{kind, Machine, MachineState};
use crate::daemon::events::NewEvent;
use crate::daemon::runtime::StopHow;

impl Deployer {
    /// Restarts `chosen` in the order given, or without a choice the app's started
    /// machines group by group, one at a time, each stopped `how` and, when `gate`, within
    /// the release's `wait_timeout` to be healthy again before the next (else once it has
    /// started); returns them as they are afterwards.
    pub async fn restart_app(
        &self,
        app: &str,
        chosen: Option<Vec<Machine>>,
        how: StopHow,
        gate: bool,
    ) -> Result<Vec<Machine>, DeployError> {
        // Held to the end: a destroy waits for it, and refuses it once begun.
        let _change = self.in_flight.begin_change(app)?;
        if let Some(version) = self.running(app).await? {
            return Err(DeployError::Running(version));
        }
        // Each machine's health comes as an event, which a full disk would not let through.
        self.store.writable().await?;
        let wait_timeout = self
            .current_source(app)
            .await?
            .and_then(|current| current.config.deploy.and_then(|d| d.wait_timeout))
            .map_or(DEFAULT_WAIT_TIMEOUT, |d| d.to_std());
        let machines = match chosen {
            // As named, whatever their state (a stopped one is started), as flyctl's.
            Some(chosen) => chosen,
            None => {
                let mut started: Vec<Machine> = (self.runtime.list(app).await?)
                    .into_iter()
                    .filter(|m| matches!(m.state, MachineState::Started | MachineState::Starting))
                    .collect();
                // Group by group; within one, in the order they were created.
                started.sort_by(|a, b| a.process_group.cmp(&b.process_group));
                started
            }
        };
        let mut events = self.machine_events(app);
        let progress = |_: &'static str, detail: String| tracing::info!(app, "{detail}");
        let outcome = Rollout {
            app,
            runtime: &self.runtime,
            events: &mut events,
            wait_timeout,
            // In place: no old machine waits to be stopped (as `fly apps restart`).
            smoke_time: std::time::Duration::ZERO,
            max_unavailable: 1.0,
            progress: &progress,
            cancel: &mut super::in_flight::Cancel::never(),
        }
        .restart(&machines, how, gate)
        .await
        .map_err(restart_failed);
        // The restart's last event either way: a client following the app's events has
        // seen every step once it sees this.
        let ids: Vec<&str> = machines.iter().map(|m| m.id.as_str()).collect();
        let data = match &outcome {
            Ok(()) => serde_json::json!({ "machines": ids }),
            Err(e) => serde_json::json!({ "machines": ids, "error": e.to_string() }),
        };
        self.hub
            .emit(NewEvent::app(app, kind::APP_RESTARTED, data))
            .await?;
        outcome?;
        let mut after = Vec::with_capacity(machines.len());
        for machine in &machines {
            after.push(
                self.runtime.get(app, &machine.id).await.map_err(|e| {
                    DeployError::RestartFailed(format!("machine {}: {e}", machine.id))
                })?,
            );
        }
        Ok(after)
    }
}

/// The error a restart that stopped at a machine is, with its check's last output.
fn restart_failed(failure: Failure) -> DeployError {
    let mut reason = failure.reason;
    if let Some(output) = failure.check_output {
        reason.push_str(&format!("; its check said: {}", output.trim()));
    }
    reason.push_str("; the machines after it were not restarted");
    DeployError::RestartFailed(reason)
}
