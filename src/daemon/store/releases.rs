//! Releases in the store.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{sqlite, StoreError};
use std::collections::BTreeMap;

use crate::api::types::{MachineSpec, Release};
use crate::config::AppConfig;

/// A release about to be recorded.
pub struct NewRelease<'a> {
    /// The app.
    pub app: &'a str,
    /// What it runs.
    pub config: &'a AppConfig,
    /// Its bundle's digest.
    pub bundle: &'a str,
    /// Its rollout strategy.
    pub strategy: &'a str,
    /// What it is for.
    pub description: &'a str,
}

/// Records the next release of an app as running; returns its version.
pub fn insert(
    conn: &Connection,
    path: &Path,
    new: &NewRelease,
    now: &str,
) -> Result<u64, StoreError> {
    let version: i64 = conn
        .query_row(
            "SELECT coalesce(max(version), 0) + 1 FROM releases WHERE app = ?1",
            [new.app],
            |row| row.get(0),
        )
        .map_err(sqlite(path))?;
    conn.execute(
        "INSERT INTO releases (app, version, status, description, config, bundle, strategy, created_at)
         VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7)",
        params![
            new.app,
            version,
            new.description,
            serde_json::to_string(new.config).unwrap_or_default(),
            new.bundle,
            new.strategy,
            now
        ],
    )
    .map_err(sqlite(path))?;
    Ok(version as u64)
}

/// The version of `app`'s release that is still running, if one is.
pub fn running(conn: &Connection, path: &Path, app: &str) -> Result<Option<u64>, StoreError> {
    conn.query_row(
        "SELECT version FROM releases WHERE app = ?1 AND status = 'running'",
        [app],
        |row| row.get::<_, i64>(0),
    )
    .optional()
    .map(|v| v.map(|v| v as u64))
    .map_err(sqlite(path))
}

/// Marks a release finished; a complete one becomes the app's current release.
pub fn finish(
    conn: &Connection,
    path: &Path,
    app: &str,
    version: u64,
    status: &str,
    now: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE releases SET status = ?3, finished_at = ?4 WHERE app = ?1 AND version = ?2",
        params![app, version as i64, status, now],
    )
    .map_err(sqlite(path))?;
    if status == "complete" {
        conn.execute(
            "UPDATE apps SET current_release = ?2 WHERE name = ?1",
            params![app, version as i64],
        )
        .map_err(sqlite(path))?;
    }
    Ok(())
}

/// Marks releases left `running` by a crashed daemon as failed.
pub fn fail_interrupted(conn: &Connection, path: &Path, now: &str) -> Result<usize, StoreError> {
    conn.execute(
        "UPDATE releases SET status = 'failed', finished_at = ?1, description = description || ' (interrupted)' WHERE status = 'running'",
        [now],
    )
    .map_err(sqlite(path))
}

/// The releases of `app`, newest first.
pub fn list(
    conn: &Connection,
    path: &Path,
    app: &str,
    limit: usize,
) -> Result<Vec<Release>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT version, status, description, bundle, strategy, created_at, finished_at
             FROM releases WHERE app = ?1 ORDER BY version DESC LIMIT ?2",
        )
        .map_err(sqlite(path))?;
    let rows = stmt
        .query_map(params![app, limit as i64], |row| {
            Ok(Release {
                version: row.get::<_, i64>(0)? as u64,
                status: row.get(1)?,
                description: row.get(2)?,
                bundle: row.get(3)?,
                strategy: row.get(4)?,
                created_at: row.get(5)?,
                finished_at: row.get(6)?,
            })
        })
        .map_err(sqlite(path))?;
    rows.collect::<Result<_, _>>().map_err(sqlite(path))
}

/// The config and bundle a release ran, for a rollback to it.
pub fn source(
    conn: &Connection,
    path: &Path,
    app: &str,
    version: u64,
) -> Result<Option<(AppConfig, String, String)>, StoreError> {
    let row: Option<(String, String, String)> = conn
        .query_row(
            "SELECT config, bundle, status FROM releases WHERE app = ?1 AND version = ?2",
            params![app, version as i64],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(sqlite(path))?;
    let Some((config, bundle, status)) = row else {
        return Ok(None);
    };
    let config = serde_json::from_str(&config).map_err(|_| StoreError::Corrupt {
        path: path.to_path_buf(),
        what: "release config",
        id: version as i64,
    })?;
    Ok(Some((config, bundle, status)))
}

/// The versions of `app`'s releases whose files must stay on disk, and its newest
/// version: the current release and the `previous` complete ones before it (a job run
/// that started before the switch may still use its directory), a release still rolling
/// out, and the release of every machine that is not destroyed (a stopped one can start
/// again).
pub fn versions_in_use(
    conn: &Connection,
    path: &Path,
    app: &str,
    previous: usize,
) -> Result<(u64, std::collections::BTreeSet<u64>), StoreError> {
    let newest: i64 = conn
        .query_row(
            "SELECT coalesce(max(version), 0) FROM releases WHERE app = ?1",
            [app],
            |row| row.get(0),
        )
        .map_err(sqlite(path))?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT version FROM releases WHERE app = ?1 AND status = 'running'
             UNION SELECT current_release FROM apps WHERE name = ?1 AND current_release IS NOT NULL
             UNION SELECT version FROM (SELECT version FROM releases
                 WHERE app = ?1 AND status = 'complete' ORDER BY version DESC LIMIT ?2)",
        )
        .map_err(sqlite(path))?;
    let rows = stmt
        .query_map(params![app, previous as i64 + 1], |row| {
            row.get::<_, i64>(0)
        })
        .map_err(sqlite(path))?;
    let mut versions = std::collections::BTreeSet::new();
    for row in rows {
        versions.insert(row.map_err(sqlite(path))? as u64);
    }
    for record in super::machines::list(conn, path, app)? {
        versions.extend(record.machine.release_version);
    }
    Ok((newest as u64, versions))
}

/// The digests of every bundle a release of any app runs or could be rolled back to.
pub fn bundles_in_use(
    conn: &Connection,
    path: &Path,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT DISTINCT bundle FROM releases")
        .map_err(sqlite(path))?;
    let rows = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(sqlite(path))?;
    rows.collect::<Result<_, _>>().map_err(sqlite(path))
}

/// Records the machine spec of each group of a release (for scaling it later).
pub fn set_specs(
    conn: &Connection,
    path: &Path,
    app: &str,
    version: u64,
    specs: &BTreeMap<String, MachineSpec>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE releases SET specs = ?3 WHERE app = ?1 AND version = ?2",
        params![
            app,
            version as i64,
            serde_json::to_string(specs).unwrap_or_default()
        ],
    )
    .map_err(sqlite(path))?;
    Ok(())
}

/// The machine spec of each group of a release.
pub fn specs(
    conn: &Connection,
    path: &Path,
    app: &str,
    version: u64,
) -> Result<BTreeMap<String, MachineSpec>, StoreError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT specs FROM releases WHERE app = ?1 AND version = ?2",
            params![app, version as i64],
            |row| row.get(0),
        )
        .optional()
        .map_err(sqlite(path))?
        .flatten();
    match text {
        Some(text) => serde_json::from_str(&text).map_err(|_| StoreError::Corrupt {
            path: path.to_path_buf(),
            what: "release specs",
            id: version as i64,
        }),
        None => Ok(BTreeMap::new()),
    }
}

/// The machine count each group of `app` should have, where one was set.
pub fn scale(
    conn: &Connection,
    path: &Path,
    app: &str,
) -> Result<BTreeMap<String, u32>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT process_group, count FROM scale WHERE app = ?1")
        .map_err(sqlite(path))?;
    let rows = stmt
        .query_map([app], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .map_err(sqlite(path))?;
    rows.map(|r| {
        r.map(|(g, n)| (g, u32::try_from(n).unwrap_or(0)))
            .map_err(sqlite(path))
    })
    .collect()
}

/// Sets the machine count of a group.
pub fn set_scale(
    conn: &Connection,
    path: &Path,
    app: &str,
    group: &str,
    count: u32,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO scale (app, process_group, count) VALUES (?1, ?2, ?3)
         ON CONFLICT (app, process_group) DO UPDATE SET count = excluded.count",
        params![app, group, count],
    )
    .map_err(sqlite(path))?;
    Ok(())
}

/// The status of one release.
pub fn status(
    conn: &Connection,
    path: &Path,
    app: &str,
    version: u64,
) -> Result<Option<String>, StoreError> {
    conn.query_row(
        "SELECT status FROM releases WHERE app = ?1 AND version = ?2",
        params![app, version as i64],
        |row| row.get(0),
    )
    .optional()
    .map_err(sqlite(path))
}
