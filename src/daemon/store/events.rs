//! The persisted event log: append, read after an id, read the tail, prune.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{sqlite, StoreError};
use crate::api::types::Event;

/// Which events a reader wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this app's events.
    pub app: Option<String>,
    /// Only kinds starting with this (`machine.`).
    pub kind_prefix: Option<String>,
    /// Only events about this machine (whose `data.machine` it is).
    pub machine: Option<String>,
}

impl EventFilter {
    /// The `machine.*` events of `app`: what a wait on its machines' health and exits reads.
    pub fn machines_of(app: &str) -> Self {
        EventFilter {
            app: Some(app.to_string()),
            kind_prefix: Some("machine.".into()),
            machine: None,
        }
    }

    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &Event) -> bool {
        self.app
            .as_deref()
            .is_none_or(|app| event.app.as_deref() == Some(app))
            && self
                .kind_prefix
                .as_deref()
                .is_none_or(|prefix| event.kind.starts_with(prefix))
            && self.machine.as_deref().is_none_or(|machine| {
                event.data.get("machine").and_then(|m| m.as_str()) == Some(machine)
            })
    }

    /// SQL conditions and parameters for this filter, after `id > ?1`.
    fn sql(&self) -> (String, Vec<String>) {
        let mut sql = String::new();
        let mut params = Vec::new();
        if let Some(app) = &self.app {
            params.push(app.clone());
            sql.push_str(&format!(" AND app = ?{}", params.len() + 1));
        }
        if let Some(prefix) = &self.kind_prefix {
            // Prefix match without LIKE's wildcards: substr compares bytes exactly.
            params.push(prefix.clone());
            let n = params.len() + 1;
            sql.push_str(&format!(" AND substr(kind, 1, length(?{n})) = ?{n}"));
        }
        if let Some(machine) = &self.machine {
            params.push(machine.clone());
            let n = params.len() + 1;
            sql.push_str(&format!(" AND json_extract(data, '$.machine') = ?{n}"));
        }
        (sql, params)
    }
}

/// The parameters of a query built with [`EventFilter::sql`]: the id for `?1`, then the
/// filter's own.
fn bind<'a>(id: &'a i64, filter_params: &'a [String]) -> Vec<&'a dyn rusqlite::ToSql> {
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![id];
    values.extend(filter_params.iter().map(|s| s as &dyn rusqlite::ToSql));
    values
}

/// Appends an event and returns it with its id.
pub fn insert(
    conn: &Connection,
    path: &Path,
    time: &str,
    app: Option<&str>,
    kind: &str,
    data: &serde_json::Value,
) -> Result<Event, StoreError> {
    conn.execute(
        "INSERT INTO events (time, app, kind, data) VALUES (?1, ?2, ?3, ?4)",
        params![time, app, kind, data.to_string()],
    )
    .map_err(sqlite(path))?;
    Ok(Event {
        id: conn.last_insert_rowid() as u64,
        time: time.to_string(),
        app: app.map(str::to_string),
        kind: kind.to_string(),
        data: data.clone(),
    })
}

/// Up to `limit` events with id greater than `after`, oldest first.
pub fn after(
    conn: &Connection,
    path: &Path,
    after: u64,
    filter: &EventFilter,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    let (conditions, extra) = filter.sql();
    let sql = format!(
        "SELECT id, time, app, kind, data FROM events WHERE id > ?1{conditions} ORDER BY id LIMIT {limit}"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(sqlite(path))?;
    // Ids are stored as SQLite integers (i64); ids beyond that never occur.
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let values = bind(&after, &extra);
    let rows = stmt
        .query_map(values.as_slice(), read_row)
        .map_err(sqlite(path))?;
    collect(rows, path)
}

/// The last `count` events matching `filter`, oldest first.
pub fn tail(
    conn: &Connection,
    path: &Path,
    count: usize,
    filter: &EventFilter,
) -> Result<Vec<Event>, StoreError> {
    let (conditions, extra) = filter.sql();
    let sql = format!(
        "SELECT id, time, app, kind, data FROM events WHERE id > ?1{conditions} ORDER BY id DESC LIMIT {count}"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(sqlite(path))?;
    let values = bind(&0, &extra);
    let rows = stmt
        .query_map(values.as_slice(), read_row)
        .map_err(sqlite(path))?;
    let mut events = collect(rows, path)?;
    events.reverse();
    Ok(events)
}

/// The id just before the last `count` events matching `filter` (0 when there are fewer),
/// so that reading [`after`] it pages through that tail.
pub fn before_tail(
    conn: &Connection,
    path: &Path,
    count: usize,
    filter: &EventFilter,
) -> Result<u64, StoreError> {
    let Some(offset) = count.checked_sub(1) else {
        return last_id(conn, path);
    };
    let (conditions, extra) = filter.sql();
    let sql = format!(
        "SELECT id FROM events WHERE id > ?1{conditions} ORDER BY id DESC LIMIT 1 OFFSET {offset}"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(sqlite(path))?;
    let values = bind(&0, &extra);
    let oldest: Option<i64> = stmt
        .query_row(values.as_slice(), |row| row.get(0))
        .optional()
        .map_err(sqlite(path))?;
    Ok(oldest.map_or(0, |id| id as u64 - 1))
}

/// The oldest retained id, if any event is retained.
pub fn first_id(conn: &Connection, path: &Path) -> Result<Option<u64>, StoreError> {
    conn.query_row("SELECT min(id) FROM events", [], |row| {
        row.get::<_, Option<i64>>(0)
    })
    .optional()
    .map(|v| v.flatten().map(|id| id as u64))
    .map_err(sqlite(path))
}

/// The newest id ever assigned (0 before the first event), from SQLite's sequence table,
/// so it holds even when every event has been pruned.
pub fn last_id(conn: &Connection, path: &Path) -> Result<u64, StoreError> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(sqlite(path))?;
    Ok(seq.unwrap_or(0) as u64)
}

/// Drops events beyond the newest `keep` and those older than `older_than` (RFC 3339);
/// returns how many were dropped.
pub fn prune(
    conn: &Connection,
    path: &Path,
    keep: u64,
    older_than: &str,
) -> Result<usize, StoreError> {
    let by_count = conn
        .execute(
            "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?1",
            [keep as i64],
        )
        .map_err(sqlite(path))?;
    let by_age = conn
        .execute("DELETE FROM events WHERE time < ?1", [older_than])
        .map_err(sqlite(path))?;
    Ok(by_count + by_age)
}

type RawRow = (i64, String, Option<String>, String, String);

fn read_row(row: &rusqlite::Row) -> rusqlite::Result<RawRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn collect(
    rows: impl Iterator<Item = rusqlite::Result<RawRow>>,
    path: &Path,
) -> Result<Vec<Event>, StoreError> {
    rows.map(|row| {
        let (id, time, app, kind, data) = row.map_err(sqlite(path))?;
        let data = serde_json::from_str(&data).map_err(|_| StoreError::Corrupt {
            path: path.to_path_buf(),
            what: "event data",
            id,
        })?;
        Ok(Event {
            id: id as u64,
            time,
            app,
            kind,
            data,
        })
    })
    .collect()
}
