//! The edge's access log (`lakeflyd --edge-access-log FILE`): a JSON line per HTTP request
//! answered, written by a thread of its own so a slow disk never holds a request up (lines
//! that find the writer too far behind are dropped and counted), and reopened on SIGHUP so
//! logrotate can move the file away.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Lines waiting for the writer before new ones are dropped.
const QUEUE: usize = 16 * 1024;
/// How often the writer says how many lines it dropped, at most.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(10);

/// One answered request, as written.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// The app (empty when no app was named).
    pub app: &'a str,
    /// The client's address.
    pub client: IpAddr,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The `Host` asked for.
    pub host: &'a str,
    /// Path and query.
    pub target: &'a str,
    /// The status answered (499: the client went away first).
    pub status: u16,
}

/// Where access lines go; cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    queue: SyncSender<String>,
    dropped: Arc<AtomicU64>,
    reopen: Arc<AtomicBool>,
}

impl AccessLog {
    /// Opens (creating, appending) `path` and starts the writer.
    pub fn open(path: &Path) -> std::io::Result<AccessLog> {
        let file = open_file(path)?;
        let (queue, lines) = std::sync::mpsc::sync_channel(QUEUE);
        let log = AccessLog {
            queue,
            dropped: Arc::default(),
            reopen: Arc::default(),
        };
        let writer = Writer {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            dropped: log.dropped.clone(),
            reopen: log.reopen.clone(),
            failing: None,
        };
        std::thread::Builder::new()
            .name("lakefly-access-log".into())
            .spawn(move || writer.run(lines))?;
        Ok(log)
    }

    /// Queues a line for `entry`, a request the edge began on at `started`, or counts it
    /// dropped when the writer is too far behind.
    pub fn record(&self, entry: &Entry<'_>, started: Instant) {
        #[derive(Serialize)]
        struct Line<'a> {
            time: String,
            #[serde(flatten)]
            entry: &'a Entry<'a>,
            /// Milliseconds, as the edge's latency histogram counts them.
            ms: f64,
        }
        let line = Line {
            time: crate::daemon::events::now(),
            entry,
            ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        };
        let Ok(mut line) = serde_json::to_string(&line) else {
            return;
        };
        line.push('\n');
        if let Err(TrySendError::Full(_)) = self.queue.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Has the writer open the file again before its next line (after logrotate moved it).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }
}

/// Opens the log for appending, readable by its owner and group only.
fn open_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    options.open(path)
}

/// The writer thread's side.
struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
    dropped: Arc<AtomicU64>,
    reopen: Arc<AtomicBool>,
    /// Writes have failed (a full disk) since the last that went through, this many lines
    /// lost or held: said once when it starts and once when it ends, not once a request.
    failing: Option<u64>,
}

impl Writer {
    /// Writes lines as they come, flushing whenever none is waiting, until every
    /// [`AccessLog`] is gone.
    fn run(mut self, lines: Receiver<String>) {
        let mut reported = (0, Instant::now());
        loop {
            let line = match lines.recv_timeout(Duration::from_secs(1)) {
                Ok(line) => Some(line),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if self.reopen.swap(false, Ordering::Relaxed) {
                self.reopen_file();
            }
            if let Some(line) = line {
                self.write(line.as_bytes());
                // The rest of a burst goes into the same buffer, flushed once.
                while let Ok(line) = lines.try_recv() {
                    self.write(line.as_bytes());
                }
                match self.out.flush() {
                    Ok(()) => {
                        if let Some(lines) = self.failing.take() {
                            tracing::warn!(path = %self.path.display(), lines, "access log: writing again; lines written meanwhile may be lost");
                        }
                    }
                    Err(e) => self.failed(&e),
                }
            }
            let dropped = self.dropped.load(Ordering::Relaxed);
            if dropped > reported.0 && reported.1.elapsed() >= DROP_REPORT_EVERY {
                tracing::warn!(
                    path = %self.path.display(),
                    dropped = dropped - reported.0,
                    "access log: lines dropped, the writer fell behind"
                );
                reported = (dropped, Instant::now());
            }
        }
        let _ = self.out.flush();
    }

    fn write(&mut self, line: &[u8]) {
        if let Err(e) = self.out.write_all(line) {
            self.failed(&e);
        }
        if let Some(lines) = &mut self.failing {
            *lines += 1;
        }
    }

    fn failed(&mut self, error: &std::io::Error) {
        if self.failing.is_none() {
            tracing::warn!(path = %self.path.display(), %error, "access log: write failed; lines are lost until writes go through again");
            self.failing = Some(0);
        }
    }

    /// Flushes what is buffered into the old file, then writes to a new one at the path;
    /// when that cannot be opened, goes on with the old file.
    fn reopen_file(&mut self) {
        let _ = self.out.flush();
        match open_file(&self.path) {
            Ok(file) => self.out = BufWriter::new(file),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "access log: cannot reopen; writing on to the old file")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<_> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn entry(target: &str) -> Entry<'_> {
        Entry {
            app: "web",
            client: "127.0.0.1".parse().unwrap(),
            scheme: "http",
            method: "GET",
            host: "web.localhost",
            target,
            status: 200,
        }
    }

    #[test]
    fn lines_are_json_and_a_reopen_follows_the_file_moved_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(&path).unwrap();
        log.record(&entry("/a?b=1"), Instant::now());
        let written = lines(&path, 1);
        assert_eq!(written.len(), 1);
        assert!(written[0]["time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
        assert!(written[0]["ms"].as_f64().is_some_and(|ms| ms >= 0.0));
        assert_eq!(written[0]["target"], "/a?b=1");
        assert_eq!(written[0]["status"], 200);
        assert_eq!(written[0]["client"], "127.0.0.1");

        // logrotate: the file is renamed, then the daemon told to reopen.
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen();
        log.record(&entry("/after"), Instant::now());
        let written = lines(&path, 1);
        assert_eq!(written.len(), 1, "the new line is in a new file");
        assert_eq!(written[0]["target"], "/after");
        assert_eq!(lines(&rotated, 1).len(), 1);
    }
}
