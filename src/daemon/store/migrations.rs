//! Schema versions, applied in order inside transactions; `PRAGMA user_version` records
//! the last one applied. Never edit a shipped migration: add a new one.

use std::path::Path;

use rusqlite::Connection;

use super::{sqlite, StoreError};

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: apps and the event log. AUTOINCREMENT keeps event ids from ever being reused,
    // even after the newest rows are pruned.
    "CREATE TABLE apps (
        name TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        current_release INTEGER
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        app TEXT,
        kind TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX events_by_app ON events (app, id);",
    // 2: machines and their logs. `seq` gives machine ids that are never reused;
    // `desired` is what the machine should be doing, `state` what it is doing, and
    // `pid` + `pid_start` identify its process across a daemon crash.
    "CREATE TABLE machines (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        app TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
        process_group TEXT NOT NULL,
        spec TEXT NOT NULL,
        desired TEXT NOT NULL,
        state TEXT NOT NULL,
        health TEXT NOT NULL DEFAULT 'unknown',
        pid INTEGER,
        pid_start INTEGER,
        port INTEGER,
        restarts INTEGER NOT NULL DEFAULT 0,
        last_exit TEXT,
        started_at TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX machines_by_app ON machines (app);
    CREATE TABLE logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        app TEXT NOT NULL,
        machine TEXT NOT NULL,
        stream TEXT NOT NULL,
        line TEXT NOT NULL
    );
    CREATE INDEX logs_by_app ON logs (app, id);",
    // 3: releases and scale. A release is immutable once finished; `config` is the
    // normalized fly.toml it runs, `bundle` the digest of its files, `specs` the machine
    // spec of each group. `scale` holds the machine count each group should have.
    "CREATE TABLE releases (
        app TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        status TEXT NOT NULL,
        description TEXT NOT NULL,
        config TEXT NOT NULL,
        bundle TEXT NOT NULL,
        strategy TEXT NOT NULL,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        specs TEXT,
        PRIMARY KEY (app, version)
    );
    CREATE TABLE scale (
        app TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
        process_group TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (app, process_group)
    );",
    // 4: secrets, sealed with the master key. `sealed` is the value machines get; a
    // staged change waits in `staged` (a new value) or `staged_unset` until deployed.
    "CREATE TABLE secrets (
        app TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        sealed BLOB,
        digest TEXT,
        staged BLOB,
        staged_digest TEXT,
        staged_unset INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (app, name)
    );",
    // 5: facts about the state itself; `key_check` is a known value sealed with the master
    // key, so a start with the wrong key (or after an interrupted rotation) is caught.
    "CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );",
    // 6: scheduled jobs (`spec` is the JSON `JobSpec`) and their runs.
    "CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        source TEXT NOT NULL,
        spec TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        UNIQUE (app, name)
    );
    CREATE TABLE job_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        trigger TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        exit_code INTEGER,
        http_status INTEGER,
        output TEXT
    );
    CREATE INDEX job_runs_by_job ON job_runs (job_id, id);",
    // 7: host names routed to apps besides `<app>.<domain>` (`lakefly certs add`).
    "CREATE TABLE hostnames (
        hostname TEXT PRIMARY KEY,
        app TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
        created_at TEXT NOT NULL
    );",
    // 8: a release that runs from an older release's built files (same bundle, `[build]`
    // and `[env]`: a rollback, a secrets change) names it in `files_of`; NULL: its own.
    "ALTER TABLE releases ADD COLUMN files_of INTEGER;",
    // 9: the release whose rollout stopped a machine (an old one giving way), so a rollout
    // a crash cut short can start it again at the next start.
    "ALTER TABLE machines ADD COLUMN stopped_for_release INTEGER;",
    // 10: what machine ids of this state are mixed with, so two hosts (or a state made
    // again) do not give out the same ids. A state that has made machines keeps 0: its
    // new ids go on from its old ones, which a new value could meet.
    "INSERT INTO meta (key, value)
     SELECT 'machine_id_salt',
            CASE WHEN EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'machines')
                 THEN 0 ELSE random() & 72057594037927935 END;",
    // 11: the secrets each release was made with (`secrets_pinned`), so its machines start
    // with them whatever has been set since: a failed `secrets set` leaves the values its
    // release failed with in `secrets`, which the release still serving must not take up
    // at its next restart. A release without them (made before, or no machine left on
    // it) takes the app's current secrets.
    "ALTER TABLE releases ADD COLUMN secrets_pinned INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE release_secrets (
        app TEXT NOT NULL,
        version INTEGER NOT NULL,
        name TEXT NOT NULL,
        sealed BLOB NOT NULL,
        PRIMARY KEY (app, version, name),
        FOREIGN KEY (app, version) REFERENCES releases (app, version) ON DELETE CASCADE
    );",
];

/// The schema version this build writes.
pub(crate) const CURRENT: i64 = MIGRATIONS.len() as i64;

pub(crate) fn apply(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite(path))?;
    if version > CURRENT {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known: CURRENT,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(sqlite(path))?;
        tx.execute_batch(sql).map_err(sqlite(path))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(sqlite(path))?;
        tx.commit().map_err(sqlite(path))?;
        tracing::info!(version = i + 1, "migrated state database");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn salt(conn: &Connection) -> i64 {
        conn.query_row(
            "SELECT value FROM meta WHERE key = 'machine_id_salt'",
            [],
            |row| row.get(0),
        )
        .unwrap()
    }

    #[test]
    fn a_state_that_made_machines_keeps_its_ids_going_on_unsalted() {
        let path = Path::new("state.db");
        let mut made = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..9] {
            made.execute_batch(sql).unwrap();
        }
        made.pragma_update(None, "user_version", 9).unwrap();
        made.execute_batch(
            "INSERT INTO apps (name, created_at) VALUES ('web', 't');
             INSERT INTO machines (id, app, process_group, spec, desired, state, created_at)
             VALUES ('x', 'web', 'app', '{}', 'destroyed', 'destroyed', 't');
             DELETE FROM machines;",
        )
        .unwrap();
        apply(&mut made, path).unwrap();
        assert_eq!(salt(&made), 0);

        let mut new = Connection::open_in_memory().unwrap();
        apply(&mut new, path).unwrap();
        let mut other = Connection::open_in_memory().unwrap();
        apply(&mut other, path).unwrap();
        assert_ne!(salt(&new), salt(&other));
        assert!((0..1 << 56).contains(&salt(&new)));
    }
}
