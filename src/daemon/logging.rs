//! lakeflyd's own log on stderr. Under systemd (stderr is the journal's stream, as
//! `$JOURNAL_STREAM` says) each line starts with its syslog priority (`<4>` for a warning,
//! sd-daemon's prefixes), so `journalctl -p warning` finds the warnings, and carries no
//! time of its own, since the journal stamps every line.

use std::io::{self, Write};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::cli::daemon::LogFormat;

/// Sets the process's log subscriber: `LAKEFLY_LOG` filters (default `info`).
pub(super) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("LAKEFLY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    // A second init (tests that start several daemons in one process) keeps the first.
    let _ = match format {
        LogFormat::Human if stderr_is_the_journal() => {
            builder.without_time().with_writer(Prioritized).try_init()
        }
        LogFormat::Human => builder.with_writer(io::stderr).try_init(),
        LogFormat::Json => builder.json().with_writer(io::stderr).try_init(),
    };
}

/// Whether stderr is the stream systemd connected to the journal: `$JOURNAL_STREAM` is
/// its `device:inode` (a child whose stderr was redirected keeps the variable, not the
/// stream, so the two are compared).
fn stderr_is_the_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    // `/proc/self/fd/2` stats the socket itself.
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    stream.to_string_lossy() == format!("{}:{}", meta.dev(), meta.ino())
}

/// sd-daemon's priority prefix of a level.
fn prefix(level: &Level) -> &'static [u8] {
    match *level {
        Level::ERROR => b"<3>",
        Level::WARN => b"<4>",
        Level::INFO => b"<6>",
        Level::DEBUG | Level::TRACE => b"<7>",
    }
}

/// Makes stderr writers that start each log line with its priority.
struct Prioritized;

impl<'a> MakeWriter<'a> for Prioritized {
    type Writer = PrefixedLine<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        PrefixedLine::new(prefix(&Level::INFO), io::stderr())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        PrefixedLine::new(prefix(meta.level()), io::stderr())
    }
}

/// A writer for one log line (the fmt layer writes each whole), its prefix sent with the
/// first write, in the same call, so no other thread's line lands between the two.
struct PrefixedLine<W> {
    prefix: Option<&'static [u8]>,
    inner: W,
}

impl<W: Write> PrefixedLine<W> {
    fn new(prefix: &'static [u8], inner: W) -> Self {
        PrefixedLine {
            prefix: Some(prefix),
            inner,
        }
    }
}

impl<W: Write> Write for PrefixedLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.prefix.take() {
            Some(prefix) => {
                self.inner.write_all(&[prefix, buf].concat())?;
                Ok(buf.len())
            }
            None => self.inner.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_starts_with_its_priority_once() {
        assert_eq!(prefix(&Level::ERROR), b"<3>");
        let mut line = PrefixedLine::new(prefix(&Level::WARN), Vec::new());
        line.write_all(b"WARN lakefly::events: deploy.failed")
            .unwrap();
        line.write_all(b" version=3\n").unwrap();
        assert_eq!(
            String::from_utf8(line.inner).unwrap(),
            "<4>WARN lakefly::events: deploy.failed version=3\n"
        );
    }

    #[test]
    fn without_journal_stream_stderr_is_not_the_journal() {
        // Tests do not run under systemd; a stale variable names another stream.
        if std::env::var_os("JOURNAL_STREAM").is_none() {
            assert!(!stderr_is_the_journal());
        }
    }
}
