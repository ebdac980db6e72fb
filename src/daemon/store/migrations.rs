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
