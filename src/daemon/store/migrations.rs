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
