//! Machine output, line by line, into the store: a channel to one writer task that
//! inserts in batches and keeps each app's log bounded.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params_from_iter, ToSql, Transaction};
use tokio::sync::mpsc;

use super::output_lines::OutputLines;
use crate::daemon::events::now;

use crate::daemon::store::{sqlite, Store, StoreError};

/// Lines buffered between the machines and the writer. When it is full, the reader of a
/// machine's pipe waits, so a chatty app is slowed by its pipe like any writer, and neither
/// loses lines nor grows the daemon's memory.
const QUEUE: usize = 8192;
/// Most lines per insert transaction.
const BATCH: usize = 512;

/// One line of a machine's output.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// When it was read (RFC 3339).
    pub time: String,
    /// The app (shared by every line of a stream, as is the machine: no copy a line).
    pub app: Arc<str>,
    /// The machine id, or `job:NAME#RUN` for a job run's command.
    pub machine: Arc<str>,
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The text, without its line ending.
    pub line: String,
}

/// Where machines send their lines; cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<LogLine>,
}

impl LogSink {
    /// Starts the writer; it keeps the newest `keep_per_app` lines of each app.
    pub fn start(store: Store, keep_per_app: u64) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_lines(store, rx, keep_per_app));
        LogSink { tx }
    }

    /// Queues a line, waiting while the writer is behind.
    pub async fn push(&self, line: LogLine) {
        // The writer only stops with the daemon; a line sent then has nowhere to go.
        let _ = self.tx.send(line).await;
    }

    /// Reads a machine's stdout and stderr, line by line, into the log until they close,
    /// with the values `secrets` hides replaced: an app that prints its `DATABASE_URL`
    /// does not put the password in the daemon's records.
    pub fn pump(
        &self,
        app: &str,
        machine: &str,
        streams: super::live_restore::Streams,
        secrets: Arc<crate::secret::Redactor>,
    ) {
        for (stream, pipe) in streams {
            let sink = self.clone();
            let (app, machine): (Arc<str>, Arc<str>) = (app.into(), machine.into());
            let secrets = secrets.clone();
            tokio::spawn(async move {
                let mut lines = OutputLines::new(pipe);
                while let Some(line) = lines.next_line().await {
                    let line = match secrets.redact(&line) {
                        std::borrow::Cow::Borrowed(_) => line,
                        std::borrow::Cow::Owned(redacted) => redacted,
                    };
                    sink.push(LogLine {
                        time: now(),
                        app: app.clone(),
                        machine: machine.clone(),
                        stream,
                        line,
                    })
                    .await;
                }
            });
        }
    }
}

/// Rows one INSERT statement writes: a statement stepped through per row cost about as
/// much as the row itself.
const ROWS_PER_INSERT: usize = 32;

/// Inserts `lines`, [`ROWS_PER_INSERT`] to a statement.
fn insert(tx: &Transaction<'_>, path: &Path, lines: &[LogLine]) -> Result<(), StoreError> {
    let row = "(?, ?, ?, ?, ?)";
    let sql = |rows: usize| {
        let values = vec![row; rows].join(", ");
        format!("INSERT INTO logs (time, app, machine, stream, line) VALUES {values}")
    };
    let mut chunks = lines.chunks_exact(ROWS_PER_INSERT);
    if chunks.len() > 0 {
        let mut stmt = tx
            .prepare_cached(&sql(ROWS_PER_INSERT))
            .map_err(sqlite(path))?;
        for chunk in chunks.by_ref() {
            stmt.execute(params_from_iter(chunk.iter().flat_map(columns)))
                .map_err(sqlite(path))?;
        }
    }
    let mut stmt = tx.prepare_cached(&sql(1)).map_err(sqlite(path))?;
    for line in chunks.remainder() {
        stmt.execute(params_from_iter(columns(line)))
            .map_err(sqlite(path))?;
    }
    Ok(())
}

/// A line's values, in the order of the logs table's columns.
fn columns(line: &LogLine) -> [&dyn ToSql; 5] {
    [
        &line.time,
        &line.app,
        &line.machine,
        &line.stream,
        &line.line,
    ]
}

async fn write_lines(store: Store, mut rx: mpsc::Receiver<LogLine>, keep_per_app: u64) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut since_prune = 0usize;
    // Finding an app's oldest line to keep walks past the `keep_per_app` newest, so a
    // prune costs as much as the log kept: pruning once a sixteenth of that has come in
    // keeps its cost a line the same however many are kept (a log may then hold that
    // many more until the next prune).
    let prune_every = (BATCH * 4).max(usize::try_from(keep_per_app / 16).unwrap_or(usize::MAX));
    // Lines dropped since the store last took a batch (a full disk): said once when it
    // starts and once when it ends, not once a batch.
    let mut dropped = 0usize;
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let lines = std::mem::take(&mut batch);
        let count = lines.len();
        since_prune += count;
        let prune = since_prune >= prune_every;
        if prune {
            since_prune = 0;
        }
        let result = store
            .run(move |conn, path| {
                let tx = conn.transaction().map_err(sqlite(path))?;
                insert(&tx, path, &lines)?;
                if prune {
                    let apps: std::collections::BTreeSet<&str> =
                        lines.iter().map(|l| &*l.app).collect();
                    for app in apps {
                        crate::daemon::store::logs::prune(&tx, path, app, keep_per_app)?;
                    }
                }
                tx.commit().map_err(sqlite(path))
            })
            .await;
        match result {
            Ok(()) if dropped > 0 => {
                tracing::warn!(
                    dropped,
                    "machine output is stored again; lines were dropped meanwhile"
                );
                dropped = 0;
            }
            Ok(()) => {}
            Err(e) => {
                if dropped == 0 {
                    tracing::warn!(error = %e, "could not store machine output; dropping lines until the store takes them");
                }
                dropped += count;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The stdout and stderr pipes of `child`, by name, for [`LogSink::pump`].
pub fn streams_of(child: &mut tokio::process::Child) -> super::live_restore::Streams {
    let mut streams: super::live_restore::Streams = Vec::with_capacity(2);
    if let Some(out) = child.stdout.take() {
        streams.push(("stdout", Box::new(out)));
    }
    if let Some(err) = child.stderr.take() {
        streams.push(("stderr", Box::new(err)));
    }
    streams
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_stored_whole_and_in_order_across_statements() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        // Two full statements' worth and a few rows more, two apps interleaved.
        let lines: Vec<LogLine> = (0..ROWS_PER_INSERT * 2 + 5)
            .map(|i| LogLine {
                time: format!("t{i}"),
                app: if i % 3 == 0 { "quiet" } else { "chatty" }.into(),
                machine: "m".into(),
                stream: if i % 2 == 0 { "stdout" } else { "stderr" },
                line: format!("line {i}"),
            })
            .collect();
        let stored = store
            .run_blocking(|conn, path| {
                let tx = conn.transaction().map_err(sqlite(path))?;
                insert(&tx, path, &lines)?;
                tx.commit().map_err(sqlite(path))?;
                let mut stmt = conn
                    .prepare("SELECT time, app, stream, line FROM logs ORDER BY id")
                    .map_err(sqlite(path))?;
                let rows = stmt
                    .query_map([], |row| {
                        Ok(format!(
                            "{} {} {} {}",
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, String>(3)?
                        ))
                    })
                    .map_err(sqlite(path))?;
                rows.collect::<Result<Vec<_>, _>>().map_err(sqlite(path))
            })
            .expect("stored");
        let sent: Vec<String> = lines
            .iter()
            .map(|l| format!("{} {} {} {}", l.time, l.app, l.stream, l.line))
            .collect();
        assert_eq!(stored, sent);
    }

    #[tokio::test]
    async fn the_writer_keeps_each_apps_log_near_its_bound_and_its_newest_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_lines(store.clone(), rx, 100));
        let total = BATCH * 4 * 3;
        for i in 0..total {
            let line = LogLine {
                time: "t".into(),
                app: "chatty".into(),
                machine: "m".into(),
                stream: "stdout",
                line: i.to_string(),
            };
            tx.send(line).await.expect("the writer takes lines");
        }
        drop(tx);
        writer.await.expect("the writer ends with its channel");
        let (count, newest) = store
            .run_blocking(|conn, path| {
                conn.query_row("SELECT count(*), max(line + 0) FROM logs", [], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
                })
                .map_err(sqlite(path))
            })
            .expect("counted");
        // Pruned to 100 at each step, with at most one step's lines come in since.
        assert!((100..=100 + (BATCH * 4) as i64).contains(&count), "{count}");
        assert_eq!(newest, total as i64 - 1);
    }
}
