//! Problems found in a `fly.toml`, each tied to a place in the file.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How bad a problem is: errors stop a command, warnings are reported and let it go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Reported, but the config is usable (`--strict` turns these into errors).
    Warning,
    /// The config cannot be used as written.
    Error,
}

/// A one-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    /// Line number, counting from 1.
    pub line: usize,
    /// Column in characters, counting from 1.
    pub column: usize,
}

/// One problem in a config file: what, where, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The dotted key the problem is about (`services[0].ports[1].port`), empty for the file.
    pub key: String,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it, when there is something to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Where in the file, when known.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// The text of the line the problem is on, for rendering a caret under it.
    #[serde(skip)]
    pub snippet: Option<Snippet>,
}

/// The source line of a diagnostic and the columns to underline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// The whole line, without its line ending.
    pub line: String,
    /// Zero-based character columns to mark within `line`.
    pub columns: Range<usize>,
}

/// All problems found in one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The file they were found in, as the user named it.
    pub file: PathBuf,
    /// Errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// An empty report for `file`.
    pub fn new(file: &Path) -> Self {
        Report {
            file: file.to_path_buf(),
            diagnostics: Vec::new(),
        }
    }

    /// The problems that stop the config from being used.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    /// The problems that are only reported.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Turns every warning into an error (`config validate --strict`).
    pub fn escalate_warnings(&mut self) {
        for d in &mut self.diagnostics {
            d.severity = Severity::Error;
        }
    }

    /// Sorts problems by position so they read top to bottom.
    pub(crate) fn sort(&mut self) {
        self.diagnostics.sort_by_key(|d| {
            (
                d.position.unwrap_or(Position { line: 0, column: 0 }),
                d.severity,
            )
        });
    }

    /// `file:line:col` for a diagnostic, or just the file when the place is unknown.
    pub fn locate(&self, d: &Diagnostic) -> String {
        match d.position {
            Some(p) => format!("{}:{}:{}", self.file.display(), p.line, p.column),
            None => self.file.display().to_string(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.errors().count();
        match self.errors().next() {
            Some(first) if errors == 1 => write!(f, "{}: {}", self.locate(first), first.message),
            Some(_) => write!(f, "{}: {errors} errors", self.file.display()),
            None => write!(f, "{}: no errors", self.file.display()),
        }
    }
}

/// Maps byte offsets in a file's text to lines and columns.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, line_starts }
    }

    /// The position of byte `offset`, clamped to the text.
    pub(crate) fn position(&self, offset: usize) -> Position {
        let offset = self.floor_char_boundary(offset.min(self.text.len()));
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let column = self.text[self.line_starts[line]..offset].chars().count() + 1;
        Position {
            line: line + 1,
            column,
        }
    }

    /// The source line and underline for a byte span.
    pub(crate) fn snippet(&self, span: &Range<usize>) -> Snippet {
        let start = self.position(span.start);
        let line_start = self.line_starts[start.line - 1];
        let line_end = self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |i| line_start + i);
        let line = self.text[line_start..line_end].trim_end_matches('\r');
        let end = self.floor_char_boundary(span.end.clamp(span.start, line_start + line.len()));
        let from = start.column - 1;
        let width = self.text[self.floor_char_boundary(span.start.min(end))..end]
            .chars()
            .count()
            .max(1);
        Snippet {
            line: line.to_string(),
            columns: from..from + width,
        }
    }

    fn floor_char_boundary(&self, mut offset: usize) -> usize {
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let idx = LineIndex::new("a = 1\né = \"x\"\n");
        assert_eq!(idx.position(0), Position { line: 1, column: 1 });
        assert_eq!(idx.position(6), Position { line: 2, column: 1 });
        // 'é' is two bytes but one column.
        assert_eq!(idx.position(9), Position { line: 2, column: 3 });
        assert_eq!(idx.position(999), Position { line: 3, column: 1 });
    }

    #[test]
    fn snippet_underlines_the_span_on_its_line() {
        let text = "app = \"Bad Name\"\nx = 1\n";
        let idx = LineIndex::new(text);
        let s = idx.snippet(&(6..16));
        assert_eq!(s.line, "app = \"Bad Name\"");
        assert_eq!(s.columns, 6..16);
    }
}
