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
    /// The earlier release whose built files it runs from; `None`: it builds its own.
    pub files_of: Option<u64>,
}

/// What a release was made from.
pub struct Source {
    /// The config it runs.
    pub config: AppConfig,
    /// Its bundle's digest.
    pub bundle: String,
    /// The version whose directory holds its files: its own, or the one it reuses.
    pub files: u64,
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
        "INSERT INTO releases (app, version, status, description, config, bundle, strategy, created_at, files_of)
         VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            new.app,
            version,
            new.description,
            serde_json::to_string(new.config).unwrap_or_default(),
            new.bundle,
            new.strategy,
            now,
            new.files_of.map(|v| v as i64)
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

/// Marks releases left `running` by a crashed daemon as failed; returns each one's app and
/// version.
pub fn fail_interrupted(
    conn: &Connection,
    path: &Path,
    now: &str,
) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT app, version FROM releases WHERE status = 'running' ORDER BY app, version")
        .map_err(sqlite(path))?;
    let interrupted = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))
        .map_err(sqlite(path))?
        .collect::<Result<Vec<(String, u64)>, _>>()
        .map_err(sqlite(path))?;
    conn.execute(
        "UPDATE releases SET status = 'failed', finished_at = ?1, description = description || ' (interrupted)' WHERE status = 'running'",
        [now],
    )
    .map_err(sqlite(path))?;
    Ok(interrupted)
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
            "SELECT version, status, description, bundle, strategy, created_at, finished_at, files_of
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
                files_of: row.get::<_, Option<i64>>(7)?.map(|v| v as u64),
            })
        })
        .map_err(sqlite(path))?;
    rows.collect::<Result<_, _>>().map_err(sqlite(path))
}

/// What a release was made from, for a rollback to it.
pub fn source(
    conn: &Connection,
    path: &Path,
    app: &str,
    version: u64,
) -> Result<Option<Source>, StoreError> {
    let row: Option<(String, String, Option<i64>)> = conn
        .query_row(
            "SELECT config, bundle, files_of FROM releases WHERE app = ?1 AND version = ?2",
            params![app, version as i64],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(sqlite(path))?;
    let Some((config, bundle, files_of)) = row else {
        return Ok(None);
    };
    let config = parse_config(path, version, &config)?;
    Ok(Some(Source {
        config,
        bundle,
        files: files_of.map_or(version, |v| v as u64),
    }))
}

/// `app`'s complete releases of bundle `bundle`, newest first, with their configs and the
/// version whose directory holds their files: where a new release of that bundle may find
/// its build done.
pub fn built_from(
    conn: &Connection,
    path: &Path,
    app: &str,
    bundle: &str,
) -> Result<Vec<Source>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT version, config, files_of FROM releases
             WHERE app = ?1 AND bundle = ?2 AND status = 'complete' ORDER BY version DESC",
        )
        .map_err(sqlite(path))?;
    let rows = stmt
        .query_map(params![app, bundle], |row| {
            Ok((
                row.get::<_, i64>(0)? as u64,
                row.get::<_, String>(1)?,
                row.get::<_, Option<i64>>(2)?,
            ))
        })
        .map_err(sqlite(path))?;
    let mut found = Vec::new();
    for row in rows {
        let (version, config, files_of) = row.map_err(sqlite(path))?;
        found.push(Source {
            config: parse_config(path, version, &config)?,
            bundle: bundle.to_string(),
            files: files_of.map_or(version, |v| v as u64),
        });
    }
    Ok(found)
}

/// Records that release `version` built its own files after all (the ones it was to reuse
/// were gone).
pub fn set_files_of(
    conn: &Connection,
    path: &Path,
    app: &str,
    version: u64,
    files_of: Option<u64>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE releases SET files_of = ?3 WHERE app = ?1 AND version = ?2",
        params![app, version as i64, files_of.map(|v| v as i64)],
    )
    .map_err(sqlite(path))?;
    Ok(())
}

fn parse_config(path: &Path, version: u64, config: &str) -> Result<AppConfig, StoreError> {
    serde_json::from_str(config).map_err(|_| StoreError::Corrupt {
        path: path.to_path_buf(),
        what: "release config",
        id: version as i64,
    })
}

/// The versions of `app`'s releases whose files must stay on disk, and its newest
/// version: the current release and the `previous` complete ones before it (a job run
/// that started before the switch may still use its directory), a release still rolling
/// out, and the release of every machine that is not destroyed (a stopped one can start
/// again); with each, the release whose built files it runs from.
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
    let mut stmt = conn
        .prepare_cached(
            "SELECT version, files_of FROM releases WHERE app = ?1 AND files_of IS NOT NULL",
        )
        .map_err(sqlite(path))?;
    let reused = stmt
        .query_map([app], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })
        .map_err(sqlite(path))?;
    let mut files = Vec::new();
    for row in reused {
        let (version, files_of) = row.map_err(sqlite(path))?;
        if versions.contains(&(version as u64)) {
            files.push(files_of as u64);
        }
    }
    versions.extend(files);
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
