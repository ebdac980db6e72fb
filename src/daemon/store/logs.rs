//! Reading machine output back, and keeping each app's newest lines.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, ToSql};

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

/// Removes `app`'s lines older than its newest `keep`; returns how many went. Counted in
/// the app's own lines: ids are shared by every app, so "the last `keep` ids" would keep
/// far fewer of a quiet app's lines beside a chatty one.
pub fn prune(conn: &Connection, path: &Path, app: &str, keep: u64) -> Result<usize, StoreError> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    // The newest line past the ones kept (through the (app, id) index).
    let newest_gone: Option<i64> = conn
        .query_row(
            "SELECT id FROM logs WHERE app = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2",
            params![app, keep],
            |row| row.get(0),
        )
        .optional()
        .map_err(sqlite(path))?;
    let Some(newest_gone) = newest_gone else {
        return Ok(0);
    };
    conn.execute(
        "DELETE FROM logs WHERE app = ?1 AND id <= ?2",
        params![app, newest_gone],
    )
    .map_err(sqlite(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_app_keeps_its_own_newest_lines_however_the_apps_interleave() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = super::super::Store::open(dir.path()).expect("store");
        let lines = |conn: &Connection, app: &str| -> Vec<String> {
            let q = LogQuery {
                limit: 1000,
                ..LogQuery::default()
            };
            read(conn, dir.path(), app, &q)
                .expect("read")
                .into_iter()
                .map(|l| l.line)
                .collect()
        };
        store
            .run_blocking(|conn, path| {
                // A chatty app writes nine lines for each of a quiet one's.
                for i in 0..100 {
                    let app = if i % 10 == 0 { "quiet" } else { "chatty" };
                    conn.execute(
                        "INSERT INTO logs (time, app, machine, stream, line) VALUES ('t', ?1, 'm', 'stdout', ?2)",
                        params![app, format!("{app} {i}")],
                    )
                    .map_err(sqlite(path))?;
                }
                assert_eq!(prune(conn, path, "quiet", 5)?, 5);
                assert_eq!(prune(conn, path, "chatty", 5)?, 85);
                assert_eq!(prune(conn, path, "quiet", 5)?, 0, "nothing more to remove");
                assert_eq!(prune(conn, path, "none", 5)?, 0);
                assert_eq!(lines(conn, "quiet"), ["quiet 50", "quiet 60", "quiet 70", "quiet 80", "quiet 90"]);
                assert_eq!(lines(conn, "chatty"), ["chatty 95", "chatty 96", "chatty 97", "chatty 98", "chatty 99"]);
                Ok(())
            })
            .expect("prune");
    }
}
