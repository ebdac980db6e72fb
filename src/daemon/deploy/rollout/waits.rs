//! The rollout's waits: for new machines to pass their checks, to stay up for
//! `smoke_time`, and for none that passed to have ended.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::failure::{ended_after_passing, ended_reason, Failure};
use super::{Passed, Rollout};
use crate::api::types::{kind, HealthState, MachineState};
use crate::daemon::deploy::listen_check;
use crate::daemon::runtime::exits::{how_it_ended, CRASHES_BEFORE_FAILING};

/// How often, while new machines are not healthy, where they listen is looked at
/// (`listen_check`).
const WRONG_PORT_LOOK_EVERY: Duration = Duration::from_secs(2);

impl Rollout<'_> {
    /// Fails the rollout when a machine in `passed` has ended since it passed: by the
    /// events received so far, else by its record (an end whose event is on its way).
    pub(super) async fn none_ended(&mut self, passed: &Passed) -> Result<(), Failure> {
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

    /// Waits until every machine in `batch` is healthy and has run `smoke_time` since its
    /// start, so that old machines stop only for new ones that stay up.
    pub(super) async fn wait_ready(
        &mut self,
        batch: BTreeSet<String>,
        passed: &mut Passed,
    ) -> Result<(), Failure> {
        self.wait_healthy(batch.clone(), passed).await?;
        self.stays_up(&batch, passed).await
    }

    /// Waits until every machine in `batch` (all in `passed`) has run `smoke_time` since
    /// its start; one that ends meanwhile fails the rollout, as flyctl's smoke checks
    /// fail a deploy whose machine crashes within its first seconds.
    async fn stays_up(&mut self, batch: &BTreeSet<String>, passed: &Passed) -> Result<(), Failure> {
        if self.smoke_time.is_zero() {
            return Ok(());
        }
        let mut left = Duration::ZERO;
        for id in batch {
            let Ok(machine) = self.runtime.get(self.app, id).await else {
                continue;
            };
            let up = (machine.started_at.as_deref())
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                .and_then(|at| (chrono::Utc::now() - at.to_utc()).to_std().ok())
                .unwrap_or_default();
            left = left.max(self.smoke_time.saturating_sub(up));
        }
        if left >= Duration::from_secs(1) {
            let ids: Vec<&str> = batch.iter().map(String::as_str).collect();
            let (machines, stay) = match ids.len() {
                1 => ("machine", "stays"),
                _ => ("machines", "stay"),
            };
            let secs = left.as_secs_f64().round() as u64;
            (self.progress)(
                "rollout",
                format!(
                    "checking that {machines} {} {stay} up: {secs}s more",
                    ids.join(", ")
                ),
            );
        }
        let until = tokio::time::Instant::now() + left;
        loop {
            let received = tokio::select! {
                received = tokio::time::timeout_at(until, self.events.recv()) => received,
                why = self.cancel.requested() => return Err(Failure::cancelled(&why)),
            };
            match received {
                Ok(Some(event)) => {
                    if let Some(failure) = ended_after_passing(&event, passed) {
                        return Err(failure);
                    }
                }
                Ok(None) => return Err(Failure::because("the daemon is stopping".into())),
                Err(_) => break,
            }
        }
        self.none_ended(passed).await
    }

    /// Waits until every machine in `pending` is healthy, moving each into `passed` as it
    /// is; fails fast on a crash loop, on a machine that listens where it can never be
    /// found healthy, or on one in `passed` that ends.
    pub(super) async fn wait_healthy(
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
                    // A check that failed only within its grace period made no health
                    // event; what it last saw is on the check board.
                    let output = (last_output.get(&id).cloned())
                        .or_else(|| failing_check_output(self.runtime, self.app, &id));
                    let mut failure = Failure::of_machine(
                        &id,
                        format!(
                            "machine {id} was not healthy within {}",
                            crate::config::units::Duration::from_millis(
                                self.wait_timeout.as_millis() as u64
                            )
                        ),
                        output,
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
                    if event.data["health"] == HealthState::Passing.as_str() {
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
                        // How the last one ended tells a crash (a code) from a kill (the
                        // memory limit, a signal).
                        let how = how_it_ended(&event.data);
                        return Err(Failure::of_exit(
                            &id,
                            format!("the app appears to be crashing: machine {id} exited {n} times before it was healthy (last time it {how})"),
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

/// What the first check of machine `id` that does not pass last saw, as `checks list`
/// shows it.
fn failing_check_output(
    runtime: &crate::daemon::runtime::Runtime,
    app: &str,
    id: &str,
) -> Option<String> {
    runtime
        .checks(app)
        .into_iter()
        .filter(|check| check.machine == id && check.status != HealthState::Passing)
        .find_map(|check| check.output)
}
