//! The daemon's state in SQLite (WAL): one connection behind a mutex, reached from async
//! code through `spawn_blocking`, with versioned migrations applied at open.

pub mod apps;
pub mod events;
pub mod hostnames;
pub mod jobs;
pub mod logs;
pub mod machines;
mod migrations;
pub mod releases;
pub mod rollouts;

use std::path::{Path, PathBuf};
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
        )
    }
}

/// A handle to the state database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
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
        f(&mut conn, &self.path)
    }
}

/// Maps a rusqlite error to a [`StoreError`] naming the database.
pub(crate) fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}
