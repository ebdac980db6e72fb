//! Replacing an app's machines with a new release's, gated on health, per strategy:
//! `immediate`, `rolling` (batches of `max_unavailable`; each new machine healthy, and up
//! for `smoke_time`, before an old one stops), `canary` (one first, then rolling),
//! `bluegreen` (a full healthy set, then the switch). A failure never leaves the old
//! release down: new machines are destroyed and the old ones that were stopped are
//! started again. A machine that was stopped before the deploy (by `machines stop`, or
//! idle under `auto_stop_machines`) is replaced by a stopped one, as flyctl leaves it
//! stopped; a failure leaves it stopped too. A group whose processes bind ports of their
//! own cannot run an old and a new machine at once: there each old machine stops just
//! before its replacement starts, and starts again if the rollout fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

mod failure;
mod waits;

pub use self::failure::Failure;
use crate::api::types::{Event, Machine, MachineSpec, MachineState};
use crate::config::model::Strategy;
use crate::daemon::runtime::{Action, Runtime, StopHow};
use crate::daemon::store::machines::Desired;

/// One process group to roll out.
pub struct Group {
    /// The new release's spec for it.
    pub spec: MachineSpec,
    /// How many machines it should have.
    pub count: usize,
    /// How many of those are made stopped, in place of stopped old machines.
    pub stopped: usize,
    /// Its machines from earlier releases.
    pub old: Vec<Machine>,
    /// Its processes bind ports of their own (not `$PORT`), which an old machine holds
    /// while it runs: each old machine stops just before its replacement starts.
    pub binds_own_ports: bool,
}

impl Group {
    /// How many new machines start and are waited for.
    fn started(&self) -> usize {
        self.count.saturating_sub(self.stopped)
    }

    /// The old machines that run (or should): each gives way to a new one.
    fn old_running(&self) -> impl Iterator<Item = &Machine> {
        self.old.iter().filter(|m| m.state != MachineState::Stopped)
    }

    /// Whether its new machines cannot start beside the old ones that run.
    pub fn stops_first(&self) -> bool {
        self.binds_own_ports && self.old_running().next().is_some()
    }

    /// The old machines that were stopped before the rollout: gone when it succeeds, left
    /// as they are when it fails.
    fn old_stopped(&self) -> impl Iterator<Item = &Machine> {
        self.old.iter().filter(|m| m.state == MachineState::Stopped)
    }
}

/// What a rollout needs.
pub struct Rollout<'a> {
    /// The app.
    pub app: &'a str,
    /// The machines.
    pub runtime: &'a Runtime,
    /// The app's `machine.*` events, subscribed before any machine was created.
    pub events: &'a mut mpsc::Receiver<Arc<Event>>,
    /// How long a new machine has to become healthy.
    pub wait_timeout: Duration,
    /// How long a new machine must have run, from its start, before the old machines it
    /// replaces stop: one that ends sooner fails the rollout (flyctl's smoke checks).
    pub smoke_time: Duration,
    /// Below 1 a fraction of a group, else a count.
    pub max_unavailable: f64,
    /// Reports a step: `rollout` lines, and `replaced` when an old machine gives way.
    pub progress: &'a (dyn Fn(&'static str, String) + Send + Sync),
    /// Ends the waits for new machines with a failure, so the old ones are restored.
    pub cancel: &'a mut super::in_flight::Cancel,
}

/// What a rollout changed, to finish or undo it.
#[derive(Default)]
struct Changes {
    created: Vec<String>,
    stopped: Vec<String>,
    /// Old machines stopped before the rollout began: destroyed only if it succeeds.
    idle: Vec<String>,
    passed: Passed,
}

/// New machines that passed their checks, each with its restart count then: one that ends
/// before the rollout does fails it, so a release whose machines crash soon after they
/// start does not replace all the machines that run.
type Passed = BTreeMap<String, u32>;

impl Rollout<'_> {
    /// Runs the rollout; on failure, restores the old machines before returning.
    pub async fn run(mut self, strategy: Strategy, groups: Vec<Group>) -> Result<(), Failure> {
        let mut changes = Changes::default();
        let result = match strategy {
            Strategy::Immediate => self.immediate(&groups, &mut changes).await,
            Strategy::Bluegreen => self.bluegreen(&groups, &mut changes).await,
            Strategy::Canary => self.rolling(&groups, &mut changes, true).await,
            Strategy::Rolling => self.rolling(&groups, &mut changes, false).await,
        };
        let result = match result {
            // An end while the last old machines stopped counts too.
            Ok(()) => self.none_ended(&changes.passed).await,
            failed => failed,
        };
        match result {
            Ok(()) => {
                // The new release runs; the old machines that were stopped go for good.
                for id in changes.stopped.iter().chain(&changes.idle) {
                    let _ = self.runtime.act(self.app, id, Action::Destroy).await;
                }
                let started: usize = groups.iter().map(Group::started).sum();
                if started == 0 && groups.iter().any(|g| g.stopped > 0) {
                    (self.progress)(
                        "rollout",
                        "no machine of this release has run yet: each replaces a stopped one \
                         and stays stopped until started (`lakefly machines start`, or a \
                         request with auto_start_machines), unchecked until then"
                            .into(),
                    );
                }
                Ok(())
            }
            // Nothing starts now; the next start undoes the rollout (`interrupted.rs`).
            Err(failure) if self.runtime.is_stopping() => Err(failure),
            Err(failure) => {
                for id in &changes.created {
                    let _ = self.runtime.act(self.app, id, Action::Destroy).await;
                }
                for id in &changes.stopped {
                    let _ = self.runtime.act(self.app, id, Action::Start).await;
                }
                let undone = match changes.stopped.len() {
                    0 => "removed the new machines; no machine had been stopped".to_string(),
                    1 => "restored the previous release (1 machine started again)".to_string(),
                    n => format!("restored the previous release ({n} machines started again)"),
                };
                (self.progress)("rollout", undone);
                Err(failure)
            }
        }
    }

    /// Adds `n` machines of `spec` and waits until they are healthy; on failure they are
    /// destroyed again.
    pub async fn add(mut self, spec: &MachineSpec, n: usize) -> Result<(), Failure> {
        let mut changes = Changes::default();
        let mut new = BTreeSet::new();
        let mut result = Ok(());
        for _ in 0..n {
            match self.create(spec, Desired::Started, &mut changes).await {
                Ok(id) => {
                    new.insert(id);
                }
                Err(failure) => {
                    result = Err(failure);
                    break;
                }
            }
        }
        if result.is_ok() {
            result = self.wait_healthy(new, &mut changes.passed).await;
        }
        if result.is_err() {
            for id in &changes.created {
                let _ = self.runtime.act(self.app, id, Action::Destroy).await;
            }
        }
        result
    }

    /// Restarts `machines` in place one at a time, each stopped `how` and (when `gate`)
    /// healthy again before the next is touched; stops at the first that is not (the rest
    /// are left as they were).
    pub async fn restart(
        mut self,
        machines: &[Machine],
        how: StopHow,
        gate: bool,
    ) -> Result<(), Failure> {
        let mut passed = Passed::new();
        for (n, machine) in machines.iter().enumerate() {
            let id = &machine.id;
            (self
                .runtime
                .act(self.app, id, Action::RestartWith(how))
                .await)
                .map_err(|e| Failure::because(format!("could not restart machine {id}: {e}")))?;
            (self.progress)(
                "restart",
                format!("restarted machine {id} ({} of {})", n + 1, machines.len()),
            );
            if gate {
                self.wait_healthy(BTreeSet::from([id.clone()]), &mut passed)
                    .await?;
            }
        }
        self.none_ended(&passed).await
    }

    async fn immediate(&mut self, groups: &[Group], changes: &mut Changes) -> Result<(), Failure> {
        for group in groups {
            // The new machines would find the group's own ports taken until the old ones
            // went, and crash meanwhile: the old ones stop first (and are destroyed once
            // the rollout succeeds, or started again if a new one cannot be made).
            let stops_first = group.stops_first();
            if stops_first {
                for old in group.old_running() {
                    self.stop(&old.id, &group.spec, changes).await;
                }
            }
            for _ in 0..group.started() {
                self.create(&group.spec, Desired::Started, changes).await?;
            }
            self.create_stopped(group, changes).await?;
            if !stops_first {
                for old in group.old_running() {
                    let _ = self.runtime.act(self.app, &old.id, Action::Destroy).await;
                }
            }
        }
        Ok(())
    }

    async fn bluegreen(&mut self, groups: &[Group], changes: &mut Changes) -> Result<(), Failure> {
        // A group that cannot run a green set beside the blue one is switched machine by
        // machine once the others have switched.
        let (one_by_one, switched): (Vec<&Group>, Vec<&Group>) =
            groups.iter().partition(|group| group.stops_first());
        let mut new = BTreeSet::new();
        for group in &switched {
            for _ in 0..group.started() {
                new.insert(self.create(&group.spec, Desired::Started, changes).await?);
            }
        }
        self.wait_ready(new, &mut changes.passed).await?;
        for group in switched {
            self.create_stopped(group, changes).await?;
            for old in group.old_running() {
                self.stop(&old.id, &group.spec, changes).await;
            }
        }
        for group in one_by_one {
            self.stop_first(group, changes).await?;
        }
        Ok(())
    }

    /// Replaces `group`'s machines one at a time, each old machine stopped just before its
    /// replacement starts, as the ports the group binds itself allow only one at once.
    async fn stop_first(&mut self, group: &Group, changes: &mut Changes) -> Result<(), Failure> {
        let mut old = group.old_running();
        for _ in 0..group.started() {
            if let Some(machine) = old.next() {
                self.stop(&machine.id, &group.spec, changes).await;
            }
            let id = self.create(&group.spec, Desired::Started, changes).await?;
            self.wait_ready(BTreeSet::from([id]), &mut changes.passed)
                .await?;
        }
        // A group that shrank: its remaining old machines stop too.
        for machine in old {
            self.stop(&machine.id, &group.spec, changes).await;
        }
        self.create_stopped(group, changes).await
    }

    async fn rolling(
        &mut self,
        groups: &[Group],
        changes: &mut Changes,
        canary: bool,
    ) -> Result<(), Failure> {
        for group in groups {
            if group.stops_first() {
                self.stop_first(group, changes).await?;
                continue;
            }
            let started = group.started();
            let batch = batch_size(self.max_unavailable, started);
            let mut old = group.old_running();
            let mut made = 0;
            let mut first = canary;
            while made < started {
                let size = if first { 1 } else { batch.min(started - made) };
                first = false;
                let mut new = BTreeSet::new();
                for _ in 0..size {
                    new.insert(self.create(&group.spec, Desired::Started, changes).await?);
                }
                self.wait_ready(new, &mut changes.passed).await?;
                for _ in 0..size {
                    if let Some(machine) = old.next() {
                        self.stop(&machine.id, &group.spec, changes).await;
                    }
                }
                made += size;
            }
            // A group that shrank: its remaining old machines stop too.
            for machine in old {
                self.stop(&machine.id, &group.spec, changes).await;
            }
            self.create_stopped(group, changes).await?;
        }
        Ok(())
    }

    /// Makes `group`'s stopped machines, in place of its old stopped ones (noted in
    /// `changes.idle`, to go if the rollout succeeds).
    async fn create_stopped(
        &mut self,
        group: &Group,
        changes: &mut Changes,
    ) -> Result<(), Failure> {
        for _ in 0..group.stopped {
            self.create(&group.spec, Desired::Stopped, changes).await?;
        }
        changes
            .idle
            .extend(group.old_stopped().map(|m| m.id.clone()));
        Ok(())
    }

    /// Makes a machine of `spec`, started or (in place of a stopped one) stopped.
    async fn create(
        &mut self,
        spec: &MachineSpec,
        desired: Desired,
        changes: &mut Changes,
    ) -> Result<String, Failure> {
        let (made, how) = match desired {
            Desired::Stopped => (
                self.runtime.create_stopped(self.app, spec.clone()).await,
                ", stopped as the machine it replaces was",
            ),
            _ => (self.runtime.create(self.app, spec.clone()).await, ""),
        };
        let machine =
            made.map_err(|e| Failure::because(format!("could not create a machine: {e}")))?;
        (self.progress)(
            "rollout",
            format!(
                "created machine {} ({}){how}",
                machine.id, spec.process_group
            ),
        );
        changes.created.push(machine.id.clone());
        Ok(machine.id)
    }

    /// Stops old machine `id` for the release `new` belongs to, recorded first so that a
    /// crash before the rollout ends starts it again (`deploy::fail_interrupted`).
    async fn stop(&mut self, id: &str, new: &MachineSpec, changes: &mut Changes) {
        if let Some(version) = new.release_version {
            if let Err(e) = self.runtime.note_stopped_for_release(id, version).await {
                tracing::warn!(machine = %id, error = %e, "could not record why the machine stops");
            }
        }
        if self.runtime.act(self.app, id, Action::Stop).await.is_ok() {
            (self.progress)("replaced", format!("stopped old machine {id}"));
            changes.stopped.push(id.to_string());
        }
    }
}

/// Machines replaced at once: below 1, that fraction of the group (at least one); 1 or more,
/// that many.
fn batch_size(max_unavailable: f64, count: usize) -> usize {
    let n = if max_unavailable < 1.0 {
        (max_unavailable * count as f64).ceil() as usize
    } else {
        max_unavailable as usize
    };
    n.clamp(1, count.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_follow_max_unavailable() {
        assert_eq!(batch_size(0.33, 1), 1);
        assert_eq!(batch_size(0.33, 3), 1);
        assert_eq!(batch_size(0.33, 10), 4);
        assert_eq!(batch_size(2.0, 10), 2);
        assert_eq!(batch_size(5.0, 3), 3);
        assert_eq!(batch_size(0.0, 3), 1);
    }
}
