//! What a rollout records so that a crash cannot leave it half done: which old machine it
//! stops for which release, and, at the next start, how its changes are undone.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{params, Connection};

use super::machines::{set_desired, Desired};
use super::{sqlite, StoreError};

/// Records that the rollout of release `version` stops machine `id` (an old one giving
/// way), before it stops: a crash before the rollout ends can then start it again.
pub fn set_stopped_for_release(
    conn: &Connection,
    path: &Path,
    id: &str,
    version: u64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE machines SET stopped_for_release = ?2 WHERE id = ?1",
        params![id, version as i64],
    )
    .map_err(sqlite(path))?;
    Ok(())
}

/// What undoing a rollout changes, by machine id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Undone {
    /// The release's own machines, now to be destroyed.
    pub destroyed: Vec<String>,
    /// The older machines its rollout had stopped, now to run again.
    pub started: Vec<String>,
    /// The release's own machines that stay: their group is one of the current release's
    /// and has no older machine left (an `immediate` rollout destroys the old ones at
    /// once), so removing them would take the group down.
    pub kept: Vec<String>,
}

/// Undoes what the rollout of `app`'s release `version` did before a crash cut it short,
/// as a failed rollout undoes it itself: its machines are to be destroyed (the runtime does
/// it at start) and the old ones it stopped are to run again.
pub fn undo_rollout(
    conn: &Connection,
    path: &Path,
    app: &str,
    version: u64,
) -> Result<Undone, StoreError> {
    let both = params![app, version as i64];
    let pair = |row: &rusqlite::Row| Ok((row.get(0)?, row.get(1)?));
    let new: Vec<(String, String)> = query(
        conn,
        path,
        "SELECT id, process_group FROM machines WHERE app = ?1 AND state != 'destroyed' \
         AND json_extract(spec, '$.release_version') = ?2 ORDER BY seq",
        both,
        pair,
    )?;
    let stopped: Vec<String> = query(
        conn,
        path,
        "SELECT id FROM machines WHERE app = ?1 AND state != 'destroyed' \
         AND desired = 'stopped' AND stopped_for_release = ?2 ORDER BY seq",
        both,
        |row| row.get(0),
    )?;
    let current_groups: BTreeSet<String> = query(
        conn,
        path,
        "SELECT j.key FROM releases r, json_each(r.specs) j WHERE r.app = ?1 \
         AND r.version = (SELECT current_release FROM apps WHERE name = ?1)",
        [app],
        |row| row.get(0),
    )?
    .into_iter()
    .collect();
    let groups_with_old: BTreeSet<String> = query(
        conn,
        path,
        "SELECT DISTINCT process_group FROM machines WHERE app = ?1 AND state != 'destroyed' \
         AND json_extract(spec, '$.release_version') IS NOT ?2",
        both,
        |row| row.get(0),
    )?
    .into_iter()
    .collect();
    let mut undone = Undone {
        started: stopped,
        ..Undone::default()
    };
    for (id, group) in new {
        if current_groups.contains(&group) && !groups_with_old.contains(&group) {
            undone.kept.push(id);
        } else {
            undone.destroyed.push(id);
        }
    }
    for (ids, desired) in [
        (&undone.destroyed, Desired::Destroyed),
        (&undone.started, Desired::Started),
    ] {
        for id in ids {
            set_desired(conn, path, id, desired)?;
        }
    }
    Ok(undone)
}

/// The rows `sql` selects with `params`, each mapped by `row`.
fn query<T>(
    conn: &Connection,
    path: &Path,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare(sql).map_err(sqlite(path))?;
    let rows = stmt.query_map(params, row).map_err(sqlite(path))?;
    rows.collect::<Result<_, _>>().map_err(sqlite(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with app `a`: release 1 current (groups `web` and `worker`), release 2
    /// interrupted (groups `web`, `worker` and the new `cron`).
    fn store() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        drop(super::super::Store::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute_batch(
            r#"INSERT INTO apps (name, created_at, current_release) VALUES ('a', 't', 1);
            INSERT INTO releases (app, version, status, description, config, bundle, strategy, created_at, specs)
              VALUES ('a', 1, 'complete', 'd', '{}', 'b', 'rolling', 't', '{"web":{},"worker":{}}'),
                     ('a', 2, 'running', 'd', '{}', 'b', 'rolling', 't', '{"web":{},"worker":{},"cron":{}}');"#,
        )
        .unwrap();
        (dir, conn)
    }

    fn machine(conn: &Connection, id: &str, group: &str, release: u64, state: &str) {
        conn.execute(
            "INSERT INTO machines (id, app, process_group, spec, desired, state, created_at) \
             VALUES (?1, 'a', ?2, ?3, ?4, ?4, 't')",
            params![
                id,
                group,
                format!(r#"{{"command":"x","release_version":{release}}}"#),
                state
            ],
        )
        .unwrap();
    }

    #[test]
    fn new_machines_go_and_stopped_old_ones_start_unless_a_group_would_be_left_empty() {
        let (_dir, conn) = store();
        // web: rolling, one old stopped for v2, one still running.
        machine(&conn, "web-old-1", "web", 1, "stopped");
        machine(&conn, "web-old-2", "web", 1, "started");
        machine(&conn, "web-new", "web", 2, "started");
        // worker: immediate, the old one already destroyed.
        machine(&conn, "worker-old", "worker", 1, "destroyed");
        machine(&conn, "worker-new", "worker", 2, "started");
        // cron: only the failed release has it.
        machine(&conn, "cron-new", "cron", 2, "started");
        // A machine a user stopped is not one the rollout stopped.
        machine(&conn, "web-mine", "web", 1, "stopped");
        set_stopped_for_release(&conn, Path::new("db"), "web-old-1", 2).unwrap();

        let undone = undo_rollout(&conn, Path::new("db"), "a", 2).unwrap();
        assert_eq!(
            undone,
            Undone {
                destroyed: vec!["web-new".into(), "cron-new".into()],
                started: vec!["web-old-1".into()],
                kept: vec!["worker-new".into()],
            }
        );
        let desired = |id: &str| -> String {
            conn.query_row("SELECT desired FROM machines WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(desired("web-old-1"), "started");
        assert_eq!(desired("web-new"), "destroyed");
        assert_eq!(desired("worker-new"), "started");
        assert_eq!(desired("web-mine"), "stopped");
    }
}
