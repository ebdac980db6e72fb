//! The latest result of every health check of every running machine, kept in memory for
//! `GET /v1/apps/{app}/checks`: a machine's checks appear when they start watching it and
//! go when its process does (they run again from the start with the next one).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::health::Verdict;
use crate::api::checks::CheckStatus;
use crate::api::types::HealthState;
use crate::daemon::events::now;

/// Every watched machine's checks; cheap to clone.
#[derive(Clone, Default)]
pub struct CheckBoard {
    machines: Arc<Mutex<HashMap<String, Watched>>>,
    /// Numbers each process's entry, so a late result of a machine's previous process
    /// never lands on (or removes) its next one's.
    entered: Arc<AtomicU64>,
}

/// One machine's checks.
struct Watched {
    app: String,
    entry: u64,
    checks: BTreeMap<String, Latest>,
}

/// One check's last result; `None` until it has run.
#[derive(Default)]
struct Latest {
    result: Option<(Verdict, String, String)>,
}

/// A machine's place on the board; its checks leave the board when it drops.
pub struct Entry(Recorder);

/// Records results on one entry; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    board: CheckBoard,
    machine: String,
    entry: u64,
}

impl CheckBoard {
    /// Puts `machine` of `app` on the board with `checks`, none run yet.
    pub fn enter(&self, app: &str, machine: &str, checks: &[String]) -> Entry {
        let entry = self.entered.fetch_add(1, Ordering::Relaxed);
        let watched = Watched {
            app: app.to_string(),
            entry,
            checks: checks
                .iter()
                .map(|name| (name.clone(), Latest::default()))
                .collect(),
        };
        self.lock().insert(machine.to_string(), watched);
        Entry(Recorder {
            board: self.clone(),
            machine: machine.to_string(),
            entry,
        })
    }

    /// The checks of `app`'s machines, by machine then check name.
    pub fn of_app(&self, app: &str) -> Vec<CheckStatus> {
        let machines = self.lock();
        let mut ids: Vec<&String> = machines
            .iter()
            .filter(|(_, watched)| watched.app == app)
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        ids.into_iter()
            .flat_map(|id| {
                machines[id].checks.iter().map(move |(name, latest)| {
                    let (status, output, updated_at) = match &latest.result {
                        Some((verdict, output, at)) => {
                            (verdict.status(), Some(output.clone()), Some(at.clone()))
                        }
                        None => (HealthState::Unknown, None, None),
                    };
                    CheckStatus {
                        machine: id.clone(),
                        name: name.clone(),
                        status,
                        output,
                        updated_at,
                    }
                })
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Watched>> {
        self.machines.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Entry {
    /// What records results on this entry.
    pub fn recorder(&self) -> Recorder {
        self.0.clone()
    }
}

impl Recorder {
    /// Records a run of `check`.
    pub fn record(&self, check: &str, verdict: Verdict, output: &str) {
        let mut machines = self.board.lock();
        if let Some(latest) = machines
            .get_mut(&self.machine)
            .filter(|watched| watched.entry == self.entry)
            .and_then(|watched| watched.checks.get_mut(check))
        {
            latest.result = Some((verdict, output.to_string(), now()));
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut machines = self.0.board.lock();
        if machines
            .get(&self.0.machine)
            .is_some_and(|watched| watched.entry == self.0.entry)
        {
            machines.remove(&self.0.machine);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_show_unknown_until_run_and_leave_with_their_machine() {
        let board = CheckBoard::default();
        let names = ["b".to_string(), "a".to_string()];
        let web = board.enter("shop", "m2", &names);
        let _other = board.enter("blog", "m9", &names);
        let first = board.enter("shop", "m1", &names[..1]);
        web.recorder()
            .record("a", Verdict::Critical, "503 http://127.0.0.1:1/: down");
        first
            .recorder()
            .record("b", Verdict::Starting, "connection refused");
        let listed: Vec<(String, String, HealthState)> = board
            .of_app("shop")
            .into_iter()
            .map(|c| (c.machine, c.name, c.status))
            .collect();
        let row = |m: &str, n: &str, s| (m.to_string(), n.to_string(), s);
        assert_eq!(
            listed,
            [
                row("m1", "b", HealthState::Unknown),
                row("m2", "a", HealthState::Critical),
                row("m2", "b", HealthState::Unknown)
            ]
        );
        drop(first);
        // The machine's next process: the previous one's late results and its leaving
        // touch nothing of it.
        let late = web.recorder();
        let next = board.enter("shop", "m2", &names[..1]);
        late.record("b", Verdict::Passing, "200");
        drop(web);
        let listed: Vec<_> = board.of_app("shop").into_iter().map(|c| c.status).collect();
        assert_eq!(listed, [HealthState::Unknown]);
        drop(next);
        assert!(board.of_app("shop").is_empty());
        assert_eq!(board.of_app("blog").len(), 2);
    }
}
