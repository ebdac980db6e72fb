//! The daemon's state in SQLite (WAL): one connection behind a mutex, reached from async
//! code through `spawn_blocking`, with versioned migrations applied at open.

pub mod apps;
pub mod events;
pub mod hostnames;
pub mod jobs;
pub mod logs;
pub mod machines;
pub mod meta;
mod migrations;
pub mod releases;
pub mod rollouts;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

pub use events::EventFilter;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("state database {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The database was written by a newer lakeflyd.
    #[error("state database {} has schema version {found}, newer than this lakeflyd knows ({known})", path.display())]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// The blocking task running the query panicked or was cancelled.
    #[error("state database task failed: {0}")]
    Task(String),
    /// A stored row could not be read back.
    #[error("state database {}: bad {what} in row {id}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What was unreadable.
        what: &'static str,
        /// The row.
        id: i64,
    },
    /// Writes fail for want of space, so a change that needs several cannot be begun.
    #[error("state database {}: the disk is full", path.display())]
    DiskFull {
        /// The database file.
        path: PathBuf,
    },
}

impl StoreError {
    /// Whether a write failed for want of disk space (SQLite's `SQLITE_FULL`): the one
    /// storage failure whoever runs the daemon can act on.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } if e.code == rusqlite::ErrorCode::DiskFull
        ) || matches!(self, StoreError::DiskFull { .. })
    }

    /// Whether the database file is damaged (not one, or malformed), which no retry mends.
    pub fn is_damaged(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } if matches!(e.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        ) || matches!(self, StoreError::Corrupt { .. })
    }

    /// The database file the error is about, when it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            StoreError::Sqlite { path, .. }
            | StoreError::TooNew { path, .. }
            | StoreError::Corrupt { path, .. }
            | StoreError::DiskFull { path } => Some(path),
            StoreError::Task(_) => None,
        }
    }
}

/// A handle to the state database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
    /// The last write failed for want of space, and none has gone through since.
    disk_full: Arc<AtomicBool>,
}

impl Store {
    /// Opens (creating if needed) `dir/state.db` and migrates it to the current schema.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("state.db");
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(sqlite)?;
        // WAL keeps readers off writers' backs; NORMAL sync is durable across process
        // crashes (kill -9), which is what the daemon must survive.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite)?;
        migrations::apply(&mut conn, &path)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path),
            disk_full: Arc::default(),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection, &Path) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.run_blocking(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` with the connection on the current thread.
    pub fn run_blocking<T>(
        &self,
        f: impl FnOnce(&mut Connection, &Path) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll
        // back), so a poisoned lock is safe to keep using.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let changes = conn.total_changes();
        let result = f(&mut conn, &self.path);
        match &result {
            Err(e) if e.is_disk_full() => self.disk_full.store(true, Ordering::Relaxed),
            Ok(_) if conn.total_changes() > changes => {
                self.disk_full.store(false, Ordering::Relaxed)
            }
            _ => {}
        }
        result
    }

    /// Whether writes fail for want of space: the last one did, and none went through
    /// since. `/health` says so.
    pub fn disk_full(&self) -> bool {
        self.disk_full.load(Ordering::Relaxed)
    }

    /// Whether writes fail for want of space, trying one if the last did: a daemon with
    /// nothing to record would otherwise say so until it next had something.
    pub async fn disk_full_now(&self) -> bool {
        if self.disk_full() {
            self.probe_write().await;
        }
        self.disk_full()
    }

    /// Rewrites the newest event as it is: a write that changes nothing, and sets or
    /// clears [`Store::disk_full`] as any write does.
    async fn probe_write(&self) {
        let _ = self
            .run(|conn, path| {
                conn.execute(
                    "UPDATE events SET id = id WHERE id = (SELECT max(id) FROM events)",
                    [],
                )
                .map_err(sqlite(path))
            })
            .await;
    }

    /// `Err(DiskFull)` when a write fails for want of space (one is tried): for a
    /// change of many steps (a restart of every machine, a scale) that would stop halfway,
    /// or wait on health it could not record.
    pub async fn writable(&self) -> Result<(), StoreError> {
        self.probe_write().await;
        if self.disk_full() {
            return Err(StoreError::DiskFull {
                path: self.path.to_path_buf(),
            });
        }
        Ok(())
    }

    /// The directory the database is in: the daemon's state directory.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// Maps a rusqlite error to a [`StoreError`] naming the database.
pub(crate) fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's own limit on the database's pages stands in for a full disk: a write past
    /// it fails with `SQLITE_FULL`, as one on a full file system does.
    fn cap_pages(store: &Store, extra: i64) {
        store
            .run_blocking(|conn, path| {
                let pages: i64 = conn
                    .query_row("PRAGMA page_count", [], |r| r.get(0))
                    .map_err(sqlite(path))?;
                conn.pragma_update(None, "max_page_count", pages + extra)
                    .map_err(sqlite(path))
            })
            .unwrap();
    }

    fn write_log_lines(store: &Store, bytes: usize) -> Result<(), StoreError> {
        store.run_blocking(|conn, path| {
            conn.execute(
                "INSERT INTO logs (time, app, machine, stream, line) VALUES ('t', 'a', 'm', 'stdout', ?1)",
                [" ".repeat(bytes)],
            )
            .map(|_| ())
            .map_err(sqlite(path))
        })
    }

    #[test]
    fn a_write_that_finds_no_space_is_told_apart_and_marks_the_store_full_until_one_goes_through() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.dir(), dir.path());
        write_log_lines(&store, 10).unwrap();
        assert!(!store.disk_full());

        cap_pages(&store, 0);
        let error = write_log_lines(&store, 1 << 20).unwrap_err();
        assert!(error.is_disk_full(), "{error}");
        assert!(store.disk_full());
        // A read goes through; it says nothing about writes.
        store
            .run_blocking(|conn, path| {
                conn.query_row("SELECT count(*) FROM logs", [], |r| r.get::<_, i64>(0))
                    .map_err(sqlite(path))
            })
            .unwrap();
        assert!(store.disk_full());

        cap_pages(&store, 10_000);
        write_log_lines(&store, 10).unwrap();
        assert!(!store.disk_full());
    }

    #[tokio::test]
    async fn a_store_whose_writes_fail_for_space_is_not_writable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.writable().await.unwrap();
        cap_pages(&store, 0);
        assert!(write_log_lines(&store, 1 << 20).unwrap_err().is_disk_full());
        // No event to rewrite: the probe changes nothing, and proves nothing.
        let error = store.writable().await.unwrap_err();
        assert!(error.is_disk_full(), "{error}");
        assert_eq!(error.path(), Some(dir.path().join("state.db").as_path()));
    }

    #[tokio::test]
    async fn a_full_store_is_tried_again_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .run_blocking(|conn, path| {
                conn.execute(
                    "INSERT INTO events (time, kind, data) VALUES ('t', 'k', '{}')",
                    [],
                )
                .map_err(sqlite(path))
            })
            .unwrap();
        cap_pages(&store, 0);
        assert!(write_log_lines(&store, 1 << 20).unwrap_err().is_disk_full());
        assert!(store.disk_full());
        // The probe rewrites a page the cap allows: space again, nothing else written.
        assert!(!store.disk_full_now().await, "the probe did not clear it");
    }
}
