//! Changes of a machine's state as the supervisor records them, and those the store could
//! not take (a full disk): kept here, per machine, until a write of that machine's state
//! goes through, and shown over its stored record, so that the API says what runs rather
//! than what last fitted on the disk.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::api::types::{ExitInfo, HealthState, Machine, MachineState};
use crate::daemon::store::{machines, StoreError};

/// A change of a machine's state that is not in the store.
#[derive(Debug, Clone)]
pub enum Change {
    /// A process started (as `machines::set_running` records it).
    Running {
        /// Its pid.
        pid: u32,
        /// Its start time, in clock ticks since boot (with the pid, what finds it again).
        pid_start: Option<u64>,
        /// Its `$PORT`.
        port: Option<u16>,
        /// When it started.
        started_at: String,
    },
    /// The process ended (as `machines::set_exited` records it).
    Exited {
        /// The state that follows.
        state: MachineState,
        /// How it ended, when known.
        exit: Option<ExitInfo>,
        /// Restarts so far.
        restarts: u32,
    },
    /// Only the state changed (as `machines::set_state` records it).
    State(MachineState),
}

impl Change {
    /// Writes the change into machine `id`'s stored record.
    pub fn store(
        &self,
        conn: &rusqlite::Connection,
        path: &Path,
        id: &str,
    ) -> Result<(), StoreError> {
        match self {
            Change::Running {
                pid,
                pid_start,
                port,
                started_at,
            } => machines::set_running(conn, path, id, *pid, *pid_start, *port, started_at),
            Change::Exited {
                state,
                exit,
                restarts,
            } => machines::set_exited(conn, path, id, *state, exit.as_ref(), *restarts),
            Change::State(state) => machines::set_state(conn, path, id, *state),
        }
    }
}

/// The changes not stored yet, by machine; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Unstored(Arc<Mutex<HashMap<String, Vec<Change>>>>);

impl Unstored {
    /// Notes whether the store took `change` of machine `id`: one it took holds the
    /// machine's latest state, and what came before it is no longer shown over it.
    pub fn after_write<T, E>(&self, id: &str, change: Change, written: &Result<T, E>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match written {
            Ok(_) => {
                map.remove(id);
            }
            Err(_) => map.entry(id.to_string()).or_default().push(change),
        }
    }

    /// Forgets machine `id` (destroyed).
    pub fn forget(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// `machine` as it is, its unstored changes applied to what the store had.
    pub fn apply(&self, machine: &mut Machine) {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for change in map.get(&machine.id).into_iter().flatten() {
            match change.clone() {
                Change::Running {
                    pid,
                    port,
                    started_at,
                    ..
                } => {
                    machine.state = MachineState::Started;
                    machine.pid = Some(pid);
                    machine.port = port;
                    machine.started_at = Some(started_at);
                }
                Change::Exited {
                    state,
                    exit,
                    restarts,
                } => {
                    machine.state = state;
                    machine.pid = None;
                    machine.health = HealthState::Unknown;
                    machine.started_at = None;
                    machine.last_exit = exit.or(machine.last_exit.take());
                    machine.restarts = restarts;
                }
                Change::State(state) => machine.state = state,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        serde_json::from_value(serde_json::json!({
            "id": "m1", "app": "a", "process_group": "app", "state": "started",
            "health": "passing", "pid": 10, "port": 3000, "restarts": 0,
            "started_at": "t0", "created_at": "t0",
            "spec": { "command": "sleep 1" }
        }))
        .unwrap()
    }

    #[test]
    fn changes_the_store_missed_show_until_one_goes_through() {
        let unstored = Unstored::default();
        let stopped = Change::Exited {
            state: MachineState::Stopped,
            exit: None,
            restarts: 0,
        };
        unstored.after_write("m1", stopped, &Err::<(), _>("full"));
        let mut shown = machine();
        unstored.apply(&mut shown);
        assert_eq!(shown.state, MachineState::Stopped);
        assert_eq!(shown.pid, None);
        assert_eq!(shown.health, HealthState::Unknown);

        let started = Change::Running {
            pid: 11,
            pid_start: None,
            port: Some(3001),
            started_at: "t1".into(),
        };
        unstored.after_write("m1", started, &Err::<(), _>("full"));
        let mut shown = machine();
        unstored.apply(&mut shown);
        assert_eq!(
            (shown.state, shown.pid, shown.port),
            (MachineState::Started, Some(11), Some(3001))
        );

        // A write that goes through has the latest state: the store is shown as it is.
        unstored.after_write(
            "m1",
            Change::State(MachineState::Started),
            &Ok::<(), ()>(()),
        );
        let mut shown = machine();
        unstored.apply(&mut shown);
        assert_eq!(shown.pid, Some(10));
    }
}
