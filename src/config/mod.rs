//! `fly.toml`: the typed model, its normalization and validation, and edits that keep
//! every byte the user wrote.
//!
//! The same text is parsed twice: once into a spanned tree that [`decode`] turns into the
//! normalized [`AppConfig`] (reporting problems with line and column), and once by
//! [`edit`] into a `toml_edit::DocumentMut` for format-preserving changes.

pub(crate) mod decode;
pub mod diagnostic;
mod duplicate;
pub mod edit;
pub mod keypath;
pub mod lists;
pub mod model;
pub mod names;
pub mod plan;
pub mod save;
pub mod sizes;
pub mod units;
mod validate;

use std::path::Path;

pub use diagnostic::{Diagnostic, Report, Severity};
pub use model::AppConfig;

use crate::error::Error;

/// The file name `-c` defaults to.
pub const DEFAULT_FILE: &str = "fly.toml";

/// A config file read and checked: the model, and every problem found.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The normalized config; sections with errors are left out of it.
    pub config: AppConfig,
    /// Errors and warnings, in file order.
    pub report: Report,
    /// Uses of lakefly extensions, which `--strict` rejects.
    pub extensions: Vec<Diagnostic>,
}

impl Loaded {
    /// The config if it has no errors, else the report as an [`Error::InvalidConfig`].
    pub fn into_valid(self) -> Result<(AppConfig, Report), Error> {
        if self.report.has_errors() {
            Err(Error::InvalidConfig(Box::new(self.report)))
        } else {
            Ok((self.config, self.report))
        }
    }
}

/// The app's directory: the one holding its config file (`.` for a bare file name).
pub fn app_dir(config: &Path) -> &Path {
    match config.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Reads `path` and checks it. Problems in the file are in the report; only I/O fails.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    let text = read(path)?;
    Ok(parse(&text, path))
}

/// Reads a config file as text, with an error that says what to do when it is missing.
pub fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::ConfigNotFound {
            path: path.to_path_buf(),
        },
        _ => Error::io("read", path, source),
    })
}

/// Parses and checks config text; `path` is only used to name the file in the report.
pub fn parse(text: &str, path: &Path) -> Loaded {
    let mut report = Report::new(path);
    let mut d = decode::reader::Decoder::new(text);
    let document = match toml_edit::Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let span = e.span();
            let first = (span.as_ref())
                .filter(|_| e.message().contains("duplicate key"))
                .and_then(|span| duplicate::first_set(text, span));
            let diagnostic = match (first, &span) {
                (Some(first), Some(span)) => {
                    let index = diagnostic::LineIndex::new(text);
                    let line = index.position(first.span.start).line;
                    let again = index.position(span.start).line;
                    d.diagnostic(
                        Severity::Error,
                        &first.path,
                        Some(span),
                        format!(
                            "invalid TOML: {} is defined twice, first on line {line}",
                            first.what
                        ),
                        Some(match first.is_table {
                            true => format!("a table is defined once: move what line {again} sets into the table of line {line}, and delete line {again}"),
                            false => format!("a key is set once in its table: keep line {line} or line {again}, and delete the other"),
                        }),
                    )
                }
                _ => d.diagnostic(
                    Severity::Error,
                    "",
                    span.as_ref(),
                    format!("invalid TOML: {}", e.message().trim_end()),
                    Some(syntax_hint(e.message()).to_string()),
                ),
            };
            report.diagnostics.push(diagnostic);
            return Loaded {
                config: AppConfig::default(),
                report,
                extensions: Vec::new(),
            };
        }
    };
    let config = decode::decode_root(&mut d, document.as_item());
    validate::check(&mut d, &config);
    report.diagnostics = d.diagnostics;
    report.sort();
    Loaded {
        config,
        report,
        extensions: d.extensions,
    }
}

fn syntax_hint(message: &str) -> &'static str {
    if message.contains("duplicate key") || message.contains("redefin") {
        "each key may appear once per table; remove or rename one of them"
    } else if message.contains("string") {
        "check the quotes on this line"
    } else {
        "fix the TOML syntax on this line (see https://toml.io)"
    }
}
