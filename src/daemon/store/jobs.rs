//! Jobs and their runs in the store. Writers run inside an event-hub change, so a row and
//! its `job.*` event commit together.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{sqlite, StoreError};
use crate::api::jobs::{JobRun, JobSpec};

/// A job row: what the scheduler needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Its id.
    pub id: u64,
    /// Its app.
    pub app: String,
    /// `config` or `api`.
    pub source: String,
    /// What it does.
    pub spec: JobSpec,
    /// Whether it is scheduled.
    pub enabled: bool,
    /// When it was made.
    pub created_at: String,
}

const JOB_COLUMNS: &str = "id, app, source, spec, enabled, created_at";
const RUN_COLUMNS: &str =
    "id, job_id, trigger, status, attempts, started_at, finished_at, exit_code, http_status, output";

fn row_to_run(row: &Row<'_>) -> rusqlite::Result<JobRun> {
    Ok(JobRun {
        id: row.get::<_, i64>(0)? as u64,
        job_id: row.get::<_, i64>(1)? as u64,
        trigger: row.get(2)?,
        status: row.get(3)?,
        attempts: row.get::<_, i64>(4)? as u32,
        started_at: row.get(5)?,
        finished_at: row.get(6)?,
        exit_code: row.get(7)?,
        http_status: row.get::<_, Option<i64>>(8)?.map(|s| s as u16),
        output: row.get(9)?,
    })
}

fn collect_jobs(
    conn: &Connection,
    path: &Path,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<JobRecord>, StoreError> {
    let mut stmt = conn.prepare(sql).map_err(sqlite(path))?;
    let rows: Vec<(i64, String, String, String, i64, String)> = stmt
        .query_map(params, |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        })
        .map_err(sqlite(path))?
        .collect::<Result<_, _>>()
        .map_err(sqlite(path))?;
    rows.into_iter()
        .map(|(id, app, source, spec, enabled, created_at)| {
            let spec = serde_json::from_str(&spec).map_err(|_| StoreError::Corrupt {
                path: path.to_path_buf(),
                what: "job spec",
                id,
            })?;
            Ok(JobRecord {
                id: id as u64,
                app,
                source,
                spec,
                enabled: enabled != 0,
                created_at,
            })
        })
        .collect()
}

/// Every job, by id.
pub fn all(conn: &Connection, path: &Path) -> Result<Vec<JobRecord>, StoreError> {
    collect_jobs(
        conn,
        path,
        &format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id"),
        [],
    )
}

/// How a job's runs have gone, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunsSoFar {
    /// The job's app.
    pub app: String,
    /// The job's name.
    pub name: String,
    /// When its last run that succeeded ended (RFC 3339), among the runs kept.
    pub last_success: Option<String>,
    /// How its last run that ran ended (`succeeded`, `failed`, `timed_out`,
    /// `cancelled`); skipped runs and the one going do not count.
    pub last_outcome: Option<String>,
}

/// How every job's runs have gone.
pub fn runs_so_far(conn: &Connection, path: &Path) -> Result<Vec<RunsSoFar>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT j.app, j.name,
                (SELECT MAX(r.finished_at) FROM job_runs r
                    WHERE r.job_id = j.id AND r.status = 'succeeded'),
                (SELECT r.status FROM job_runs r
                    WHERE r.job_id = j.id AND r.status NOT IN ('running', 'skipped')
                    ORDER BY r.id DESC LIMIT 1)
             FROM jobs j ORDER BY j.id",
        )
        .map_err(sqlite(path))?;
    let rows = stmt
        .query_map([], |row| {
            Ok(RunsSoFar {
                app: row.get(0)?,
                name: row.get(1)?,
                last_success: row.get(2)?,
                last_outcome: row.get(3)?,
            })
        })
        .map_err(sqlite(path))?;
    rows.collect::<Result<_, _>>().map_err(sqlite(path))
}

/// The jobs of `app`, by name.
pub fn of_app(conn: &Connection, path: &Path, app: &str) -> Result<Vec<JobRecord>, StoreError> {
    collect_jobs(
        conn,
        path,
        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE app = ?1 ORDER BY name"),
        [app],
    )
}

/// One job.
pub fn get(conn: &Connection, path: &Path, id: u64) -> Result<Option<JobRecord>, StoreError> {
    Ok(collect_jobs(
        conn,
        path,
        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
        [id as i64],
    )?
    .pop())
}

/// Adds a job, or replaces the spec of the app's job of that name (keeping its id and
/// whether it is enabled). Returns its id and whether it is new.
pub fn upsert(
    conn: &Connection,
    path: &Path,
    app: &str,
    source: &str,
    spec: &JobSpec,
    now: &str,
) -> Result<(u64, bool), StoreError> {
    let text = serde_json::to_string(spec).unwrap_or_default();
    let existing: Option<i64> = conn
        .query_row(
            "SELECT id FROM jobs WHERE app = ?1 AND name = ?2",
            params![app, spec.name],
            |row| row.get(0),
        )
        .optional()
        .map_err(sqlite(path))?;
    if let Some(id) = existing {
        conn.execute(
            "UPDATE jobs SET spec = ?2, source = ?3 WHERE id = ?1",
            params![id, text, source],
        )
        .map_err(sqlite(path))?;
        return Ok((id as u64, false));
    }
    conn.execute(
        "INSERT INTO jobs (app, name, source, spec, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![app, spec.name, source, text, now],
    )
    .map_err(sqlite(path))?;
    Ok((conn.last_insert_rowid() as u64, true))
}

/// Deletes the app's `config` jobs whose names are not in `keep`; returns their ids.
pub fn remove_config_jobs_except(
    conn: &Connection,
    path: &Path,
    app: &str,
    keep: &[String],
) -> Result<Vec<u64>, StoreError> {
    let gone: Vec<u64> = of_app(conn, path, app)?
        .into_iter()
        .filter(|j| j.source == "config" && !keep.contains(&j.spec.name))
        .map(|j| j.id)
        .collect();
    for id in &gone {
        delete(conn, path, *id)?;
    }
    Ok(gone)
}

/// Deletes a job and its runs.
pub fn delete(conn: &Connection, path: &Path, id: u64) -> Result<bool, StoreError> {
    conn.execute("DELETE FROM jobs WHERE id = ?1", [id as i64])
        .map(|n| n == 1)
        .map_err(sqlite(path))
}

/// Schedules (or stops scheduling) a job.
pub fn set_enabled(
    conn: &Connection,
    path: &Path,
    id: u64,
    enabled: bool,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE jobs SET enabled = ?2 WHERE id = ?1",
        params![id as i64, enabled as i64],
    )
    .map(drop)
    .map_err(sqlite(path))
}

/// Runs kept per job, newest first: a job every second would otherwise add 86,400 rows
/// (each with its output's tail) a day, for ever.
pub const RUNS_KEPT: u64 = 1000;

/// Records a run that starts now (or a skipped one, finished at once), and forgets the
/// job's finished runs beyond the newest [`RUNS_KEPT`]; returns its id.
pub fn insert_run(
    conn: &Connection,
    path: &Path,
    job: u64,
    trigger: &str,
    status: &str,
    now: &str,
) -> Result<u64, StoreError> {
    let running = status == "running";
    let finished = (!running).then_some(now);
    // A run that starts is in its first attempt; a skipped one makes none.
    let attempts = u32::from(running);
    conn.execute(
        "INSERT INTO job_runs (job_id, trigger, status, attempts, started_at, finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![job as i64, trigger, status, attempts, now, finished],
    )
    .map_err(sqlite(path))?;
    let id = conn.last_insert_rowid() as u64;
    conn.execute(
        "DELETE FROM job_runs WHERE job_id = ?1 AND status != 'running' AND id <= (
             SELECT id FROM job_runs WHERE job_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![job as i64, RUNS_KEPT as i64],
    )
    .map_err(sqlite(path))?;
    Ok(id)
}

/// How a run ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunEnd {
    /// `succeeded`, `failed` or `timed_out`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// A command's exit code.
    pub exit_code: Option<i32>,
    /// An HTTP call's status.
    pub http_status: Option<u16>,
    /// The output's tail.
    pub output: String,
}

/// Records that a running run began its attempt number `attempt`.
pub fn retry_run(conn: &Connection, path: &Path, run: u64, attempt: u32) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE job_runs SET attempts = ?2 WHERE id = ?1 AND status = 'running'",
        params![run as i64, attempt],
    )
    .map(drop)
    .map_err(sqlite(path))
}

/// Records the end of a run.
pub fn finish_run(
    conn: &Connection,
    path: &Path,
    run: u64,
    end: &RunEnd,
    now: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE job_runs SET status = ?2, attempts = ?3, finished_at = ?4, exit_code = ?5, http_status = ?6, output = ?7 WHERE id = ?1",
        params![
            run as i64,
            end.status,
            end.attempts,
            now,
            end.exit_code,
            end.http_status.map(i64::from),
            end.output
        ],
    )
    .map(drop)
    .map_err(sqlite(path))
}

/// Runs that were going when the daemon stopped are marked failed at start.
pub fn fail_interrupted(conn: &Connection, path: &Path, now: &str) -> Result<usize, StoreError> {
    conn.execute(
        "UPDATE job_runs SET status = 'failed', finished_at = ?1, output = 'the daemon stopped during the run' WHERE status = 'running'",
        [now],
    )
    .map_err(sqlite(path))
}

/// A job's runs, newest first.
pub fn runs(
    conn: &Connection,
    path: &Path,
    job: u64,
    limit: u32,
) -> Result<Vec<JobRun>, StoreError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM job_runs WHERE job_id = ?1 ORDER BY id DESC LIMIT ?2"
        ))
        .map_err(sqlite(path))?;
    let rows = stmt
        .query_map(params![job as i64, limit], row_to_run)
        .map_err(sqlite(path))?;
    rows.collect::<Result<_, _>>().map_err(sqlite(path))
}

/// When a job last started a run that was not skipped (RFC 3339).
pub fn last_start(conn: &Connection, path: &Path, job: u64) -> Result<Option<String>, StoreError> {
    conn.query_row(
        "SELECT started_at FROM job_runs WHERE job_id = ?1 AND status != 'skipped' ORDER BY id DESC LIMIT 1",
        [job as i64],
        |row| row.get(0),
    )
    .optional()
    .map_err(sqlite(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_keeps_its_newest_runs_and_any_still_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = super::super::Store::open(dir.path()).expect("store");
        store
            .run_blocking(|conn, path| {
                super::super::apps::insert_app(conn, path, "a", "now")?;
                let spec: JobSpec = serde_json::from_value(
                    serde_json::json!({ "name": "tick", "command": "true" }),
                )
                .expect("spec");
                let (job, _) = upsert(conn, path, "a", "api", &spec, "now")?;
                let (other, _) = upsert(
                    conn,
                    path,
                    "a",
                    "api",
                    &JobSpec {
                        name: "other".into(),
                        ..spec
                    },
                    "now",
                )?;
                let other_run = insert_run(conn, path, other, "schedule", "succeeded", "now")?;
                // The oldest run of `tick` never finished (a long one, still going).
                let long = insert_run(conn, path, job, "schedule", "running", "now")?;
                let mut newest = 0;
                for _ in 0..RUNS_KEPT + 10 {
                    newest = insert_run(conn, path, job, "schedule", "skipped", "now")?;
                }
                let kept = runs(conn, path, job, u32::MAX)?;
                assert_eq!(kept.len() as u64, RUNS_KEPT + 1);
                assert_eq!(kept.first().map(|r| r.id), Some(newest));
                assert_eq!(
                    kept.last().map(|r| r.id),
                    Some(long),
                    "the running one stays"
                );
                let others = runs(conn, path, other, u32::MAX)?;
                assert_eq!(others.iter().map(|r| r.id).collect::<Vec<_>>(), [other_run]);
                Ok(())
            })
            .expect("runs");
    }
}
