//! What a supervisor records as its machine changes: the desired and current state, each
//! exit, a stop, a failure, a destroy, each with its event in the same transaction.

use std::time::Duration;

use super::super::unstored::Change;
use super::{Next, Supervisor};
use crate::api::types::{kind, ExitInfo, MachineState};
use crate::daemon::events::NewEvent;
use crate::daemon::store::machines::{self, Desired};
use crate::daemon::store::StoreError;

impl Supervisor {
    /// What the machine should be doing, kept across daemon restarts.
    pub(super) async fn set_desired(&mut self, desired: Desired) {
        self.desired = desired;
        if let Err(e) = self.write_desired().await {
            tracing::error!(machine = %self.id, error = %e, "could not record desired state; trying again until the store takes it");
        }
    }

    /// Tries again to record what the machine should be doing, if the store could not
    /// take it before.
    pub(super) async fn record_desired_again(&mut self) {
        if self.desired_unrecorded && self.write_desired().await.is_ok() {
            tracing::info!(machine = %self.id, desired = ?self.desired, "the machine's desired state is recorded now");
        }
    }

    async fn write_desired(&mut self) -> Result<(), StoreError> {
        let (id, desired) = (self.id.clone(), self.desired);
        let written = self
            .hub
            .change(move |tx, path| {
                machines::set_desired(tx, path, &id, desired).map(|()| ((), vec![]))
            })
            .await;
        self.desired_unrecorded = written.is_err();
        written
    }

    /// Writes `change` of the machine's state with `events`, in one transaction, and notes
    /// whether the store took it (`unstored`): what every record of its state goes through.
    async fn write_state(&self, change: Change, events: Vec<NewEvent>) -> Result<(), StoreError> {
        let (id, stored) = (self.id.clone(), change.clone());
        let written = self
            .hub
            .change(move |tx, path| stored.store(tx, path, &id).map(|()| ((), events)))
            .await;
        self.unstored.after_write(&self.id, change, &written);
        written
    }

    /// A new state, with its event if any.
    pub(super) async fn record_state(
        &self,
        state: MachineState,
        event: Option<(&'static str, serde_json::Value)>,
    ) -> Result<(), StoreError> {
        let events = event
            .map(|(k, data)| NewEvent::app(&self.app, k, data))
            .into_iter()
            .collect();
        self.write_state(Change::State(state), events).await
    }

    /// A process started as `pid` at `started_at` (`start` in clock ticks since boot), on
    /// `port`.
    pub(super) async fn record_started(
        &self,
        pid: u32,
        start: Option<u64>,
        port: Option<u16>,
        started_at: &str,
    ) -> Result<(), StoreError> {
        let data = serde_json::json!({ "machine": self.id, "pid": pid, "port": port, "process_group": self.spec.process_group });
        let change = Change::Running {
            pid,
            pid_start: start,
            port,
            started_at: started_at.to_string(),
        };
        let event = NewEvent::app(&self.app, kind::MACHINE_STARTED, data);
        self.write_state(change, vec![event]).await
    }

    /// An exit the policy answers (`state`: starting again after `restart_in`, or down).
    pub(super) async fn record_exit(
        &self,
        state: MachineState,
        exit: &ExitInfo,
        restart_in: Option<Duration>,
    ) -> Result<(), StoreError> {
        let mut data = serde_json::json!({
            "machine": self.id,
            "code": exit.code,
            "signal": exit.signal,
            "restarts": self.restarts,
            "restarting": restart_in.is_some(),
            "restart_in_ms": restart_in.map(|d| d.as_millis() as u64),
        });
        if exit.oom_killed {
            data["oom_killed"] = true.into();
        }
        let event = NewEvent::app(&self.app, kind::MACHINE_EXITED, data);
        self.write_state(self.exited(state, Some(exit)), vec![event])
            .await
    }

    /// A stop that was asked for.
    pub(super) async fn record_stopped(&self, exit: &ExitInfo) -> Result<(), StoreError> {
        let data =
            serde_json::json!({ "machine": self.id, "code": exit.code, "signal": exit.signal });
        let event = NewEvent::app(&self.app, kind::MACHINE_STOPPED, data);
        self.write_state(self.exited(MachineState::Stopped, Some(exit)), vec![event])
            .await
    }

    /// The process ended (`exit`, when known) and `state` follows.
    fn exited(&self, state: MachineState, exit: Option<&ExitInfo>) -> Change {
        Change::Exited {
            state,
            exit: exit.cloned(),
            restarts: self.restarts,
        }
    }

    /// The machine cannot run (`reason`); it stays down until asked to start.
    pub(super) async fn fail(&mut self, reason: String) -> Result<Next, StoreError> {
        tracing::warn!(machine = %self.id, %reason, "machine failed");
        self.write_state(self.exited(MachineState::Failed, None), vec![])
            .await?;
        self.emit_failed(reason).await?;
        self.answer_pending();
        Ok(Next::Idle)
    }

    /// The `machine.failed` event.
    pub(super) async fn emit_failed(&self, reason: String) -> Result<(), StoreError> {
        self.hub
            .emit(NewEvent::app(
                &self.app,
                kind::MACHINE_FAILED,
                serde_json::json!({ "machine": self.id, "reason": reason }),
            ))
            .await
    }

    /// Destroys a machine with no process running.
    pub(super) async fn destroy(&mut self) {
        self.destroy_after(&super::exit_info(None)).await;
    }

    /// Destroys the machine whose process ended as `exit`. A store that cannot take it (a
    /// full disk) is asked again in the background until it does: the next daemon would
    /// otherwise start the machine again.
    pub(super) async fn destroy_after(&mut self, exit: &ExitInfo) {
        let (hub, unstored) = (self.hub.clone(), self.unstored.clone());
        let change = self.exited(MachineState::Destroyed, Some(exit));
        let (id, app, stored) = (self.id.clone(), self.app.clone(), change.clone());
        let record = move || {
            let (id, app, stored) = (id.clone(), app.clone(), stored.clone());
            move |tx: &rusqlite::Transaction<'_>, path: &std::path::Path| {
                machines::set_desired(tx, path, &id, Desired::Destroyed)?;
                stored.store(tx, path, &id)?;
                let event = NewEvent::app(
                    &app,
                    kind::MACHINE_DESTROYED,
                    serde_json::json!({ "machine": id }),
                );
                Ok(((), vec![event]))
            }
        };
        let written = hub.change(record()).await;
        unstored.after_write(&self.id, change, &written);
        let Err(e) = written else {
            return;
        };
        tracing::error!(machine = %self.id, error = %e, "could not record the destroy; trying again until the store takes it");
        let id = self.id.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(super::RECORD_AGAIN).await;
                if hub.change(record()).await.is_ok() {
                    unstored.forget(&id);
                    tracing::info!(machine = %id, "the machine's destroy is recorded now");
                    return;
                }
            }
        });
    }
}
