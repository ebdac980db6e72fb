//! Reading machine output back.

use std::path::Path;

use rusqlite::{Connection, ToSql};

use super::{sqlite, StoreError};
use crate::api::types::LogEntry;

/// Which lines to read.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Only this machine's.
    pub machine: Option<String>,
    /// Only this process group's.
    pub process_group: Option<String>,
    /// Only this job's runs' (`job:NAME#RUN`).
    pub job: Option<String>,
    /// Only lines after this id.
    pub after: Option<u64>,
    /// Only lines stamped at or before this time (RFC 3339 with milliseconds, as stored).
    pub until: Option<String>,
    /// At most this many: the newest, or the first after `after`.
    pub limit: usize,
}

/// Up to `q.limit` lines of `app` that match, oldest first: the newest ones, or with
/// `q.after`, the first ones after it.
pub fn read(
    conn: &Connection,
    path: &Path,
    app: &str,
    q: &LogQuery,
) -> Result<Vec<LogEntry>, StoreError> {
    let mut sql = String::from(
        "SELECT l.id, l.time, l.machine, m.process_group, l.stream, l.line
         FROM logs l LEFT JOIN machines m ON m.id = l.machine WHERE l.app = ?1",
    );
    let after = q.after.map(|a| i64::try_from(a).unwrap_or(i64::MAX));
    let mut params: Vec<&dyn ToSql> = vec![&app];
    if let Some(machine) = &q.machine {
        params.push(machine);
        sql.push_str(&format!(" AND l.machine = ?{}", params.len()));
    }
    if let Some(group) = &q.process_group {
        params.push(group);
        sql.push_str(&format!(" AND m.process_group = ?{}", params.len()));
    }
    let job = q.job.as_ref().map(|name| format!("job:{name}#"));
    if let Some(prefix) = &job {
        params.push(prefix);
        let n = params.len();
        sql.push_str(&format!(" AND substr(l.machine, 1, length(?{n})) = ?{n}"));
    }
    if let Some(after) = &after {
        params.push(after);
        sql.push_str(&format!(" AND l.id > ?{}", params.len()));
    }
    if let Some(until) = &q.until {
        params.push(until);
        sql.push_str(&format!(" AND l.time <= ?{}", params.len()));
    }
    // Without `after`: the newest lines. With it: the oldest after it, so a reader paging
    // forward never skips lines.
    let newest = after.is_none();
    let order = if newest { "DESC" } else { "ASC" };
    sql.push_str(&format!(" ORDER BY l.id {order} LIMIT {}", q.limit));
    let mut stmt = conn.prepare(&sql).map_err(sqlite(path))?;
    let rows = stmt
        .query_map(params.as_slice(), |row| {
            Ok(LogEntry {
                id: row.get::<_, i64>(0)? as u64,
                time: row.get(1)?,
                machine: row.get(2)?,
                process_group: row.get(3)?,
                stream: row.get(4)?,
                line: row.get(5)?,
            })
        })
        .map_err(sqlite(path))?;
    let mut lines = rows.collect::<Result<Vec<_>, _>>().map_err(sqlite(path))?;
    if newest {
        lines.reverse();
    }
    Ok(lines)
}
