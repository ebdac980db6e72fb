//! Replacing an app's machines with a new release's, gated on health, per strategy:
//! `immediate`, `rolling` (batches of `max_unavailable`; each new machine healthy before an
//! old one stops), `canary` (one first, then rolling), `bluegreen` (a full healthy set, then
//! the switch). A failure never leaves the old release down: new machines are destroyed and
//! the old ones that were stopped are started again. A machine that was stopped before
//! the deploy (by `machines stop`, or idle under `auto_stop_machines`) is replaced by a
//! stopped one, as flyctl leaves it stopped; a failure leaves it stopped too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::listen_check;
use crate::api::types::{kind, Event, Machine, MachineSpec, MachineState};
use crate::config::model::Strategy;
use crate::daemon::runtime::{Action, Runtime};

/// How long after an exit is seen its last output may still arrive: less than the delay
/// before a crashed machine's second restart, so no line of a next run is taken for it.
const EXIT_OUTPUT_SLACK: Duration = Duration::from_millis(150);
/// A new machine that exits this many times before it is healthy is crashing.
const CRASHES_BEFORE_FAILING: u32 = 2;
/// How often, while new machines are not healthy, where they listen is looked at
/// (`listen_check`).
const WRONG_PORT_LOOK_EVERY: Duration = Duration::from_secs(2);

/// Why a rollout stopped.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What went wrong.
    pub reason: String,
    /// The machine it happened to.
    pub machine: Option<String>,
    /// The last output of its failing check.
    pub check_output: Option<String>,
    /// When it was seen (RFC 3339): the machine's log lines up to then tell why; later ones
    /// are its shutdown when the rollout stops it.
    pub seen_at: String,
}

impl Failure {
    /// A release cancelled while it rolled out (`why`: who asked).
    pub fn cancelled(why: &str) -> Self {
        Self::because(format!("cancelled: {why}"))
    }

    /// A failure of the release as a whole, not of one machine.
    pub fn because(reason: String) -> Self {
        Failure {
            reason,
            machine: None,
            check_output: None,
            seen_at: crate::daemon::events::now(),
        }
    }

    /// A failure of machine `id`, with its failing check's last output.
    fn of_machine(id: &str, reason: String, check_output: Option<String>) -> Self {
        Failure {
            reason,
            machine: Some(id.to_string()),
            check_output,
            seen_at: crate::daemon::events::now(),
        }
    }

    /// A failure of machine `id` because its process ended: what it printed last may still
    /// be in its pipes when the exit is seen, and nothing of a stop follows (it is not
    /// running), so its lines count a little past now.
    fn of_exit(id: &str, reason: String, check_output: Option<String>) -> Self {
        let later =
            chrono::Utc::now() + chrono::Duration::from_std(EXIT_OUTPUT_SLACK).unwrap_or_default();
        Failure {
            seen_at: crate::daemon::events::stamp(later),
            ..Failure::of_machine(id, reason, check_output)
        }
    }
}

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
            match self.create(spec, &mut changes).await {
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

    /// Restarts `machines` in place one at a time, each healthy again before the next is
    /// touched; stops at the first that is not (the rest are left as they were).
    pub async fn restart(mut self, machines: &[Machine]) -> Result<(), Failure> {
        let mut passed = Passed::new();
        for (n, machine) in machines.iter().enumerate() {
            let id = &machine.id;
            (self.runtime.act(self.app, id, Action::Restart).await)
                .map_err(|e| Failure::because(format!("could not restart machine {id}: {e}")))?;
            (self.progress)(
                "restart",
                format!("restarted machine {id} ({} of {})", n + 1, machines.len()),
            );
            self.wait_healthy(BTreeSet::from([id.clone()]), &mut passed)
                .await?;
        }
        self.none_ended(&passed).await
    }

    async fn immediate(&mut self, groups: &[Group], changes: &mut Changes) -> Result<(), Failure> {
        for group in groups {
            for _ in 0..group.started() {
                self.create(&group.spec, changes).await?;
            }
            self.create_stopped(group, changes).await?;
            for old in group.old_running() {
                let _ = self.runtime.act(self.app, &old.id, Action::Destroy).await;
            }
        }
        Ok(())
    }

    async fn bluegreen(&mut self, groups: &[Group], changes: &mut Changes) -> Result<(), Failure> {
        let mut new = BTreeSet::new();
        for group in groups {
            for _ in 0..group.started() {
                new.insert(self.create(&group.spec, changes).await?);
            }
        }
        self.wait_healthy(new, &mut changes.passed).await?;
        for group in groups {
            self.create_stopped(group, changes).await?;
            for old in group.old_running() {
                self.stop(&old.id, &group.spec, changes).await;
            }
        }
        Ok(())
    }

    async fn rolling(
        &mut self,
        groups: &[Group],
        changes: &mut Changes,
        canary: bool,
    ) -> Result<(), Failure> {
        for group in groups {
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
                    new.insert(self.create(&group.spec, changes).await?);
                }
                self.wait_healthy(new, &mut changes.passed).await?;
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
            let machine = self
                .runtime
                .create_stopped(self.app, group.spec.clone())
                .await
                .map_err(|e| Failure::because(format!("could not create a machine: {e}")))?;
            (self.progress)(
                "rollout",
                format!(
                    "created machine {} ({}), stopped as the machine it replaces was",
                    machine.id, group.spec.process_group
                ),
            );
            changes.created.push(machine.id);
        }
        changes
            .idle
            .extend(group.old_stopped().map(|m| m.id.clone()));
        Ok(())
    }

    async fn create(
        &mut self,
        spec: &MachineSpec,
        changes: &mut Changes,
    ) -> Result<String, Failure> {
        let machine = self
            .runtime
            .create(self.app, spec.clone())
            .await
            .map_err(|e| Failure::because(format!("could not create a machine: {e}")))?;
        (self.progress)(
            "rollout",
            format!("created machine {} ({})", machine.id, spec.process_group),
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

    /// Fails the rollout when a machine in `passed` has ended since it passed: by the
    /// events received so far, else by its record (an end whose event is on its way).
    async fn none_ended(&mut self, passed: &Passed) -> Result<(), Failure> {
        while let Ok(event) = self.events.try_recv() {
            if let Some(failure) = ended_after_passing(&event, passed) {
                return Err(failure);
            }
        }
        for (id, &restarts) in passed {
            let Ok(machine) = self.runtime.get(self.app, id).await else {
                continue;
            };
            let clean = machine
                .last_exit
                .as_ref()
                .is_some_and(|e| e.code == Some(0));
            let crashed = machine.restarts > restarts && !clean;
            if crashed || machine.state == MachineState::Failed {
                let how = match machine.last_exit.map(serde_json::to_value) {
                    Some(Ok(exit)) => how_it_ended(&exit),
                    _ => "failed".to_string(),
                };
                return Err(Failure::of_exit(id, ended_reason(id, &how), None));
            }
        }
        Ok(())
    }

    /// Waits until every machine in `pending` is healthy, moving each into `passed` as it
    /// is; fails fast on a crash loop, on a machine that listens where it can never be
    /// found healthy, or on one in `passed` that ends.
    async fn wait_healthy(
        &mut self,
        mut pending: BTreeSet<String>,
        passed: &mut Passed,
    ) -> Result<(), Failure> {
        let deadline = Instant::now() + self.wait_timeout;
        let mut crashes: BTreeMap<String, u32> = BTreeMap::new();
        let mut last_output: BTreeMap<String, String> = BTreeMap::new();
        // While machines wait, where they listen is looked at now and then: an app that
        // ignores $PORT is told so long before wait_timeout ends the release, and one that
        // cannot become healthy (seen so on two looks in a row) fails it at once.
        let mut port_look = Instant::now() + WRONG_PORT_LOOK_EVERY;
        let mut told: BTreeSet<String> = BTreeSet::new();
        let mut settled: BTreeMap<String, u32> = BTreeMap::new();
        while !pending.is_empty() {
            let wake = port_look.min(deadline);
            let left = wake.saturating_duration_since(Instant::now());
            let received = tokio::select! {
                received = tokio::time::timeout(left, self.events.recv()) => received,
                why = self.cancel.requested() => return Err(Failure::cancelled(&why)),
            };
            let event = match received {
                Ok(Some(event)) => event,
                Err(_) if Instant::now() < deadline => {
                    for id in &pending {
                        let Some(misplaced) = listen_check::look(self.runtime, self.app, id).await
                        else {
                            settled.remove(id);
                            continue;
                        };
                        if told.insert(id.clone()) {
                            (self.progress)(
                                "rollout",
                                format!("machine {id} is not healthy yet{}", misplaced.hint),
                            );
                        }
                        let seen = settled.entry(id.clone()).or_default();
                        *seen = if misplaced.settled { *seen + 1 } else { 0 };
                        if *seen >= 2 {
                            return Err(Failure::of_machine(
                                id,
                                format!("machine {id} cannot become healthy{}", misplaced.hint),
                                last_output.get(id).cloned(),
                            ));
                        }
                    }
                    port_look = Instant::now() + WRONG_PORT_LOOK_EVERY;
                    continue;
                }
                Ok(None) => return Err(Failure::because("the daemon is stopping".into())),
                Err(_) => {
                    // `pending` is not empty: the loop runs only while it holds machines.
                    let id = pending.iter().next().cloned().unwrap_or_default();
                    let mut failure = Failure::of_machine(
                        &id,
                        format!(
                            "machine {id} was not healthy within {}",
                            crate::config::units::Duration::from_millis(
                                self.wait_timeout.as_millis() as u64
                            )
                        ),
                        last_output.get(&id).cloned(),
                    );
                    let why = listen_check::why_not(self.runtime, self.app, &id).await;
                    failure.reason.push_str(&why);
                    return Err(failure);
                }
            };
            if let Some(failure) = ended_after_passing(&event, passed) {
                return Err(failure);
            }
            let Some(id) = event.data["machine"].as_str().map(str::to_string) else {
                continue;
            };
            if !pending.contains(&id) {
                continue;
            }
            match event.kind.as_str() {
                kind::MACHINE_HEALTH => {
                    if let Some(output) = event.data["output"].as_str() {
                        last_output.insert(id.clone(), output.to_string());
                    }
                    if event.data["health"] == "passing" {
                        (self.progress)("rollout", format!("machine {id} is healthy"));
                        pending.remove(&id);
                        let restarts = match self.runtime.get(self.app, &id).await {
                            Ok(machine) => machine.restarts,
                            Err(_) => 0,
                        };
                        passed.insert(id, restarts);
                    } else if let Some(output) = event.data["output"].as_str() {
                        // Said as soon as a check fails (a health event comes only when the
                        // health changes), not only when wait_timeout ends the release.
                        let check = event.data["check"].as_str().unwrap_or("a check");
                        // Its first line (an HTTP check's status and URL); the whole output
                        // comes with the failure.
                        let mut lines = output.lines();
                        let first = lines.next().unwrap_or_default();
                        let more = if lines.next().is_some() { " …" } else { "" };
                        (self.progress)(
                            "rollout",
                            format!("machine {id} is not healthy yet: {check}: {first}{more}"),
                        );
                    }
                }
                kind::MACHINE_EXITED => {
                    // Its restart policy leaves it stopped: it can never become healthy.
                    if event.data["restarting"] == false {
                        let how = how_it_ended(&event.data);
                        // Exit 0 at once is most often a server sent to the background
                        // (`&`, nohup, a start script that daemonizes), as PID-file setups do.
                        let why = if event.data["code"] == 0 {
                            "a process group must keep running: run its server in the foreground (no `&`, nohup or daemonizing start script; `exec` it), and put a one-off step in [deploy] release_command"
                        } else {
                            "a process group must keep running; a one-off step belongs in [deploy] release_command"
                        };
                        return Err(Failure::of_exit(
                            &id,
                            format!("machine {id} {how} before it was healthy, and its restart policy does not start it again ({why})"),
                            last_output.get(&id).cloned(),
                        ));
                    }
                    let n = crashes.entry(id.clone()).or_default();
                    *n += 1;
                    if *n >= CRASHES_BEFORE_FAILING {
                        return Err(Failure::of_exit(
                            &id,
                            format!("the app appears to be crashing: machine {id} exited {n} times before it was healthy"),
                            last_output.get(&id).cloned(),
                        ));
                    }
                }
                kind::MACHINE_FAILED => {
                    return Err(Failure::of_exit(
                        &id,
                        format!(
                            "machine {id} failed: {}",
                            event.data["reason"].as_str().unwrap_or("unknown reason")
                        ),
                        last_output.get(&id).cloned(),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The failure a `machine.exited` or `machine.failed` event of a machine in `passed` means:
/// a release whose machines pass their checks and then crash must not replace the ones
/// that run (flyctl's smoke checks catch the same).
fn ended_after_passing(event: &Event, passed: &Passed) -> Option<Failure> {
    let id = event.data["machine"].as_str()?;
    if !passed.contains_key(id) {
        return None;
    }
    let how = match event.kind.as_str() {
        // A clean exit its restart policy (`always`) starts again is the app's own
        // recycling, as a worker that ends after a batch does: not a crash.
        kind::MACHINE_EXITED if recycled(&event.data) => return None,
        kind::MACHINE_EXITED => how_it_ended(&event.data),
        kind::MACHINE_FAILED => format!(
            "failed ({})",
            event.data["reason"].as_str().unwrap_or("unknown reason")
        ),
        _ => return None,
    };
    Some(Failure::of_exit(id, ended_reason(id, &how), None))
}

/// Whether a `machine.exited` event is a clean exit that its restart policy starts again.
fn recycled(data: &serde_json::Value) -> bool {
    data["code"] == 0 && data["restarting"] == true
}

/// Why a rollout fails when machine `id`, which had passed its checks, ended (`how`).
fn ended_reason(id: &str, how: &str) -> String {
    format!(
        "the app appears to be crashing: machine {id} {how} after it passed its checks, \
         before the release had rolled out"
    )
}

/// How a machine's process ended, by the `code` and `signal` of its `machine.exited` event
/// (or `last_exit`): "exited with code 1", "was ended by SIGKILL".
fn how_it_ended(data: &serde_json::Value) -> String {
    match (data["code"].as_i64(), data["signal"].as_str()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was ended by {signal}"),
        (None, None) => "ended".to_string(),
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

    fn exited(machine: &str, code: i64, restarting: bool) -> Event {
        Event {
            id: 1,
            time: String::new(),
            app: Some("a".into()),
            kind: kind::MACHINE_EXITED.into(),
            data: serde_json::json!({ "machine": machine, "code": code, "signal": null, "restarting": restarting }),
        }
    }

    #[test]
    fn only_an_end_of_a_machine_that_passed_fails_the_rollout_and_a_recycle_does_not() {
        let passed = Passed::from([("m1".to_string(), 0)]);
        let crash = ended_after_passing(&exited("m1", 1, true), &passed).expect("a crash");
        assert_eq!(crash.machine.as_deref(), Some("m1"));
        assert!(crash
            .reason
            .contains("exited with code 1 after it passed its checks"));
        assert!(ended_after_passing(&exited("m1", 0, false), &passed).is_some());
        assert!(ended_after_passing(&exited("m1", 0, true), &passed).is_none());
        assert!(ended_after_passing(&exited("m2", 1, true), &passed).is_none());
    }

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
