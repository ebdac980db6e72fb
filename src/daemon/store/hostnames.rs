//! Host names routed to apps besides `<app>.<domain>` (`lakefly certs add`). A name
//! belongs to one app; its rows go with the app.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{sqlite, Store, StoreError};

/// A host name and the app it routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostnameRecord {
    /// The name, lowercase (`www.example.com`, `*.example.com`).
    pub hostname: String,
    /// The app it routes to.
    pub app: String,
    /// When it was added (RFC 3339).
    pub created_at: String,
}

/// What adding a host name did.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// It is the app's now.
    New(HostnameRecord),
    /// The app had it already.
    Already(HostnameRecord),
    /// Another app has it.
    Taken(HostnameRecord),
}

/// Gives `hostname` to `app` unless some app has it already.
pub fn insert(
    conn: &Connection,
    path: &Path,
    hostname: &str,
    app: &str,
    now: &str,
) -> Result<Added, StoreError> {
    if let Some(existing) = get(conn, path, hostname)? {
        return Ok(if existing.app == app {
            Added::Already(existing)
        } else {
            Added::Taken(existing)
        });
    }
    conn.execute(
        "INSERT INTO hostnames (hostname, app, created_at) VALUES (?1, ?2, ?3)",
        params![hostname, app, now],
    )
    .map_err(sqlite(path))?;
    Ok(Added::New(HostnameRecord {
        hostname: hostname.to_string(),
        app: app.to_string(),
        created_at: now.to_string(),
    }))
}

/// Takes `hostname` from `app`; `false` when the app did not have it.
pub fn delete(
    conn: &Connection,
    path: &Path,
    hostname: &str,
    app: &str,
) -> Result<bool, StoreError> {
    let deleted = conn
        .execute(
            "DELETE FROM hostnames WHERE hostname = ?1 AND app = ?2",
            params![hostname, app],
        )
        .map_err(sqlite(path))?;
    Ok(deleted == 1)
}

/// One host name, whichever app has it.
pub fn get(
    conn: &Connection,
    path: &Path,
    hostname: &str,
) -> Result<Option<HostnameRecord>, StoreError> {
    conn.query_row(
        "SELECT hostname, app, created_at FROM hostnames WHERE hostname = ?1",
        [hostname],
        row_to_record,
    )
    .optional()
    .map_err(sqlite(path))
}

/// The host names of `app`, or of every app, by name.
pub fn list(
    conn: &Connection,
    path: &Path,
    app: Option<&str>,
) -> Result<Vec<HostnameRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT hostname, app, created_at FROM hostnames
             WHERE ?1 IS NULL OR app = ?1 ORDER BY hostname",
        )
        .map_err(sqlite(path))?;
    let rows = stmt.query_map([app], row_to_record).map_err(sqlite(path))?;
    rows.collect::<Result<_, _>>().map_err(sqlite(path))
}

impl Store {
    /// The host names of `app`, or of every app, by name.
    pub async fn hostnames(&self, app: Option<String>) -> Result<Vec<HostnameRecord>, StoreError> {
        self.run(move |conn, path| list(conn, path, app.as_deref()))
            .await
    }
}

fn row_to_record(row: &rusqlite::Row) -> rusqlite::Result<HostnameRecord> {
    Ok(HostnameRecord {
        hostname: row.get(0)?,
        app: row.get(1)?,
        created_at: row.get(2)?,
    })
}
