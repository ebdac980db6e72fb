//! Apps in the store. Writers take a connection inside an event-hub change, so the row and
//! its event commit together.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{sqlite, Store, StoreError};
use crate::api::types::App;

/// Inserts an app; `false` when the name is taken.
pub fn insert_app(
    conn: &Connection,
    path: &Path,
    name: &str,
    now: &str,
) -> Result<bool, StoreError> {
    let inserted = conn
        .execute(
            "INSERT INTO apps (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            params![name, now],
        )
        .map_err(sqlite(path))?;
    Ok(inserted == 1)
}

/// Deletes an app with its machines and logs; `false` when there was none.
pub fn delete_app(conn: &Connection, path: &Path, name: &str) -> Result<bool, StoreError> {
    conn.execute("DELETE FROM logs WHERE app = ?1", [name])
        .map_err(sqlite(path))?;
    let deleted = conn
        .execute("DELETE FROM apps WHERE name = ?1", [name])
        .map_err(sqlite(path))?;
    Ok(deleted == 1)
}

/// The version of the release `app` runs; `None` before its first (or without the app).
pub fn current_release(
    conn: &Connection,
    path: &Path,
    app: &str,
) -> Result<Option<u64>, StoreError> {
    Ok(get_app(conn, path, app)?.and_then(|a| a.current_release))
}

/// One app.
pub fn get_app(conn: &Connection, path: &Path, name: &str) -> Result<Option<App>, StoreError> {
    conn.query_row(
        "SELECT name, created_at, current_release FROM apps WHERE name = ?1",
        [name],
        row_to_app,
    )
    .optional()
    .map_err(sqlite(path))
}

impl Store {
    /// Every app, by name.
    pub async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        self.run(|conn, path| {
            let mut stmt = conn
                .prepare("SELECT name, created_at, current_release FROM apps ORDER BY name")
                .map_err(sqlite(path))?;
            let rows = stmt.query_map([], row_to_app).map_err(sqlite(path))?;
            rows.collect::<Result<_, _>>().map_err(sqlite(path))
        })
        .await
    }

    /// One app.
    pub async fn app(&self, name: String) -> Result<Option<App>, StoreError> {
        self.run(move |conn, path| get_app(conn, path, &name)).await
    }
}

fn row_to_app(row: &rusqlite::Row) -> rusqlite::Result<App> {
    Ok(App {
        name: row.get(0)?,
        created_at: row.get(1)?,
        current_release: row.get::<_, Option<i64>>(2)?.map(|v| v as u64),
        machines: None,
    })
}
