//! What commands print: data on stdout (a table or text for people, JSON with `--json`),
//! messages on stderr. The output mode is passed explicitly, never held globally.

pub mod error;
pub mod progress;
pub mod style;
pub mod table;

use std::io::Write;

use serde::Serialize;

use crate::error::Error;

/// Where and how a command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// `--json`: data as JSON on stdout, errors as JSON on stderr.
    pub json: bool,
}

impl Output {
    /// Prints text for people on stdout, followed by a newline.
    pub fn text(&self, text: &str) -> Result<(), Error> {
        let mut out = anstream::stdout().lock();
        writeln!(out, "{text}").map_err(Error::Output)
    }

    /// Prints `value` as pretty JSON on stdout.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| Error::Output(std::io::Error::other(e)))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}").map_err(Error::Output)
    }

    /// Prints `value` as one line of JSON on stdout and flushes it (NDJSON streams).
    pub fn ndjson<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        let text =
            serde_json::to_string(value).map_err(|e| Error::Output(std::io::Error::other(e)))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")
            .and_then(|()| out.flush())
            .map_err(Error::Output)
    }

    /// Passes on a remote command's output: `stdout` to stdout and `stderr` to stderr,
    /// byte for byte.
    pub fn passthrough(&self, stdout: &str, stderr: &str) -> Result<(), Error> {
        let mut out = std::io::stdout().lock();
        out.write_all(stdout.as_bytes())
            .and_then(|()| out.flush())
            .map_err(Error::Output)?;
        // As with notes, a failed write to stderr has nowhere left to be reported.
        let _ = std::io::stderr().lock().write_all(stderr.as_bytes());
        Ok(())
    }

    /// Prints a message for people on stderr (progress, notes, warnings).
    pub fn note(&self, text: &str) {
        // A failed write to stderr has nowhere left to be reported.
        let _ = writeln!(anstream::stderr().lock(), "{text}");
    }
}

/// Whether an output error only means the reader went away (`lakefly ... | head`).
pub fn is_broken_pipe(err: &Error) -> bool {
    matches!(err, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
}
