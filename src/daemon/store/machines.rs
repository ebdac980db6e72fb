//! Machines in the store: what each should be doing (`desired`), what it is doing
//! (`state`), and the identity of its process (`pid` + its start time).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{sqlite, StoreError};
use crate::api::types::{ExitInfo, HealthState, Machine, MachineSpec, MachineState};

/// What a machine should be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desired {
    /// Running (restarted per policy).
    Started,
    /// Not running.
    Stopped,
    /// Gone.
    Destroyed,
}

impl Desired {
    fn as_str(self) -> &'static str {
        match self {
            Desired::Started => "started",
            Desired::Stopped => "stopped",
            Desired::Destroyed => "destroyed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "started" => Desired::Started,
            "destroyed" => Desired::Destroyed,
            _ => Desired::Stopped,
        }
    }
}

/// A machine row with what only the daemon needs.
#[derive(Debug, Clone)]
pub struct Record {
    /// The public view.
    pub machine: Machine,
    /// What it should be doing.
    pub desired: Desired,
    /// The recorded process start time (clock ticks since boot), with `machine.pid`.
    pub pid_start: Option<u64>,
}

/// A bijection on 56-bit numbers, so consecutive ids do not look consecutive, mixed with
/// the state's `salt` (a bijection too), so another state's ids are others; ids stay
/// unique because `seq` is never reused.
fn id_for(seq: i64, salt: u64) -> String {
    const MASK: u64 = (1 << 56) - 1;
    let scrambled = (seq as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15 | 1) & MASK;
    format!("{:014x}", (scrambled ^ salt) & MASK)
}

/// The state's machine id salt (migration 10); 0 where none is recorded.
fn id_salt(conn: &Connection, path: &Path) -> Result<u64, StoreError> {
    let salt: Option<i64> = super::meta::get(conn, path, "machine_id_salt")?;
    Ok(salt.unwrap_or(0) as u64)
}

/// Records a new machine: one that should be started is `created` until its supervisor
/// starts it; one that should not is `stopped` from the start (it replaces a stopped one).
pub fn insert(
    conn: &Connection,
    path: &Path,
    app: &str,
    spec: &MachineSpec,
    desired: Desired,
    now: &str,
) -> Result<Machine, StoreError> {
    let spec_json = serde_json::to_string(spec).unwrap_or_default();
    let state = match desired {
        Desired::Started => MachineState::Created,
        Desired::Stopped | Desired::Destroyed => MachineState::Stopped,
    };
    conn.execute(
        "INSERT INTO machines (id, app, process_group, spec, desired, state, created_at)
         VALUES ('', ?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            app,
            spec.process_group,
            spec_json,
            desired.as_str(),
            state.as_str(),
            now
        ],
    )
    .map_err(sqlite(path))?;
    let seq = conn.last_insert_rowid();
    let id = id_for(seq, id_salt(conn, path)?);
    conn.execute(
        "UPDATE machines SET id = ?1 WHERE seq = ?2",
        params![id, seq],
    )
    .map_err(sqlite(path))?;
    Ok(Machine {
        id,
        app: app.to_string(),
        process_group: spec.process_group.clone(),
        state,
        health: HealthState::Unknown,
        release_version: spec.release_version,
        pid: None,
        port: None,
        restarts: 0,
        last_exit: None,
        started_at: None,
        created_at: now.to_string(),
        spec: spec.clone(),
    })
}

/// Marks the machine as running `pid` since `started_at`.
pub fn set_running(
    conn: &Connection,
    path: &Path,
    id: &str,
    pid: u32,
    pid_start: Option<u64>,
    port: Option<u16>,
    started_at: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE machines SET state = 'started', pid = ?2, pid_start = ?3, port = ?4, started_at = ?5 WHERE id = ?1",
        params![id, pid, pid_start.map(|t| t as i64), port, started_at],
    )
    .map_err(sqlite(path))?;
    Ok(())
}

/// Records how the process ended and the state that follows.
pub fn set_exited(
    conn: &Connection,
    path: &Path,
    id: &str,
    state: MachineState,
    exit: Option<&ExitInfo>,
    restarts: u32,
) -> Result<(), StoreError> {
    let exit_json = exit.map(|e| serde_json::to_string(e).unwrap_or_default());
    conn.execute(
        "UPDATE machines SET state = ?2, pid = NULL, pid_start = NULL, health = 'unknown', started_at = NULL,
                last_exit = coalesce(?3, last_exit), restarts = ?4
         WHERE id = ?1",
        params![id, state.as_str(), exit_json, restarts],
    )
    .map_err(sqlite(path))?;
    Ok(())
}

/// Sets only the state.
pub fn set_state(
    conn: &Connection,
    path: &Path,
    id: &str,
    state: MachineState,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE machines SET state = ?2 WHERE id = ?1",
        params![id, state.as_str()],
    )
    .map_err(sqlite(path))?;
    Ok(())
}

/// Sets the health (`unknown`, `passing`, `critical`) of a machine that is running `pid`;
/// `false` when it no longer is (a late check result after an exit changes nothing).
pub fn set_health(
    conn: &Connection,
    path: &Path,
    id: &str,
    pid: u32,
    health: HealthState,
) -> Result<bool, StoreError> {
    let changed = conn
        .execute(
            "UPDATE machines SET health = ?2 WHERE id = ?1 AND pid = ?3 AND state = 'started'",
            params![id, health.as_str(), pid],
        )
        .map_err(sqlite(path))?;
    Ok(changed == 1)
}

/// Sets what the machine should be doing.
pub fn set_desired(
    conn: &Connection,
    path: &Path,
    id: &str,
    desired: Desired,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE machines SET desired = ?2 WHERE id = ?1",
        params![id, desired.as_str()],
    )
    .map_err(sqlite(path))?;
    Ok(())
}

const COLUMNS: &str = "id, app, process_group, spec, desired, state, health, pid, pid_start, port, restarts, last_exit, created_at, seq, started_at";

/// One machine of `app`.
pub fn get(
    conn: &Connection,
    path: &Path,
    app: &str,
    id: &str,
) -> Result<Option<Record>, StoreError> {
    Ok(by_id(conn, path, id)?.filter(|r| r.machine.app == app))
}

/// Machine `id`, whichever app's it is (ids are unique across apps), unless destroyed.
pub fn by_id(conn: &Connection, path: &Path, id: &str) -> Result<Option<Record>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM machines WHERE id = ?1 AND state != 'destroyed'");
    let raw = conn
        .query_row(&sql, params![id], read_row)
        .optional()
        .map_err(sqlite(path))?;
    raw.map(|r| r.into_record(path)).transpose()
}

/// Whether `app` has or ever had a machine `id` (destroyed ones included: ids are never
/// reused, and their logs stay).
pub fn ever_existed(
    conn: &Connection,
    path: &Path,
    app: &str,
    id: &str,
) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM machines WHERE app = ?1 AND id = ?2)",
        params![app, id],
        |row| row.get(0),
    )
    .map_err(sqlite(path))
}

/// The machines of `app` that are not destroyed, oldest first.
pub fn list(conn: &Connection, path: &Path, app: &str) -> Result<Vec<Record>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM machines WHERE app = ?1 AND state != 'destroyed' ORDER BY seq"
    );
    query(conn, path, &sql, params![app])
}

/// How many machines are in each (state, health), leaving out destroyed ones.
pub fn counts(conn: &Connection, path: &Path) -> Result<Vec<(String, String, i64)>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT state, health, count(*) FROM machines WHERE state != 'destroyed' GROUP BY state, health")
        .map_err(sqlite(path))?;
    let rows = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .map_err(sqlite(path))?;
    rows.collect::<Result<_, _>>().map_err(sqlite(path))
}

/// Every machine that is not destroyed, for reconciling at start.
pub fn all_live(conn: &Connection, path: &Path) -> Result<Vec<Record>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM machines WHERE state != 'destroyed' ORDER BY seq");
    query(conn, path, &sql, [])
}

fn query(
    conn: &Connection,
    path: &Path,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Record>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite(path))?;
    let rows = stmt.query_map(params, read_row).map_err(sqlite(path))?;
    rows.map(|r| r.map_err(sqlite(path))?.into_record(path))
        .collect()
}

struct Raw {
    id: String,
    app: String,
    process_group: String,
    spec: String,
    desired: String,
    state: String,
    health: String,
    pid: Option<i64>,
    pid_start: Option<i64>,
    port: Option<i64>,
    restarts: i64,
    last_exit: Option<String>,
    created_at: String,
    seq: i64,
    started_at: Option<String>,
}

fn read_row(row: &rusqlite::Row) -> rusqlite::Result<Raw> {
    Ok(Raw {
        id: row.get(0)?,
        app: row.get(1)?,
        process_group: row.get(2)?,
        spec: row.get(3)?,
        desired: row.get(4)?,
        state: row.get(5)?,
        health: row.get(6)?,
        pid: row.get(7)?,
        pid_start: row.get(8)?,
        port: row.get(9)?,
        restarts: row.get(10)?,
        last_exit: row.get(11)?,
        created_at: row.get(12)?,
        seq: row.get(13)?,
        started_at: row.get(14)?,
    })
}

impl Raw {
    fn into_record(self, path: &Path) -> Result<Record, StoreError> {
        let corrupt = |what| StoreError::Corrupt {
            path: path.to_path_buf(),
            what,
            id: self.seq,
        };
        let spec: MachineSpec =
            serde_json::from_str(&self.spec).map_err(|_| corrupt("machine spec"))?;
        let state = MachineState::parse(&self.state).ok_or_else(|| corrupt("machine state"))?;
        let last_exit = match &self.last_exit {
            Some(json) => Some(serde_json::from_str(json).map_err(|_| corrupt("machine exit"))?),
            None => None,
        };
        Ok(Record {
            desired: Desired::parse(&self.desired),
            pid_start: self.pid_start.map(|t| t as u64),
            machine: Machine {
                id: self.id,
                app: self.app,
                process_group: self.process_group,
                state,
                health: HealthState::parse(&self.health)
                    .ok_or_else(|| corrupt("machine health"))?,
                release_version: spec.release_version,
                pid: self.pid.and_then(|p| u32::try_from(p).ok()),
                port: self.port.and_then(|p| u16::try_from(p).ok()),
                restarts: u32::try_from(self.restarts).unwrap_or(u32::MAX),
                last_exit,
                started_at: self.started_at,
                created_at: self.created_at,
                spec,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fourteen_hex_digits_and_distinct() {
        for salt in [0, 0x00ab_cdef_0123_4567, (1 << 56) - 1] {
            let ids: std::collections::BTreeSet<String> =
                (1..10_000).map(|seq| id_for(seq, salt)).collect();
            assert_eq!(ids.len(), 9_999);
            assert!(ids
                .iter()
                .all(|id| id.len() == 14 && id.bytes().all(|b| b.is_ascii_hexdigit())));
        }
    }

    /// The id of the first machine a new state in `dir` gives out.
    fn first_id(dir: &Path) -> String {
        let store = super::super::Store::open(dir).unwrap();
        store
            .run_blocking(|conn, path| {
                conn.execute_batch("INSERT INTO apps (name, created_at) VALUES ('web', 't')")
                    .map_err(sqlite(path))?;
                let spec: MachineSpec =
                    serde_json::from_value(serde_json::json!({"command": "true"})).unwrap();
                insert(conn, path, "web", &spec, Desired::Started, "now")
            })
            .unwrap()
            .id
    }

    #[test]
    fn two_new_states_give_their_first_machines_other_ids() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        assert_ne!(first_id(a.path()), first_id(b.path()));
    }
}
