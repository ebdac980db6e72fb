//! The `meta` table: facts about the state itself, one value per key (the master key's
//! check value, the scheme secret digests follow, the salt of machine ids).

use std::path::Path;

use rusqlite::types::{FromSql, ToSql};
use rusqlite::{Connection, OptionalExtension};

use super::{sqlite, StoreError};

/// The value recorded under `key`, if any.
pub fn get<T: FromSql>(conn: &Connection, path: &Path, key: &str) -> Result<Option<T>, StoreError> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
        row.get(0)
    })
    .optional()
    .map_err(sqlite(path))
}

/// Records `value` under `key`, over any value there.
pub fn set(conn: &Connection, path: &Path, key: &str, value: &dyn ToSql) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        rusqlite::params![key, value],
    )
    .map(drop)
    .map_err(sqlite(path))
}
