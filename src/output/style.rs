//! The few styles lakefly's human output uses; `anstream` drops them when the stream is
//! not a terminal or `NO_COLOR` is set.

use anstyle::{AnsiColor, Style};

/// `error:` labels.
pub const ERROR: Style = AnsiColor::Red.on_default().bold();
/// `warning:` labels.
pub const WARNING: Style = AnsiColor::Yellow.on_default().bold();
/// `hint:` labels and carets.
pub const HINT: Style = AnsiColor::Cyan.on_default().bold();
/// Gutters and locations.
pub const DIM: Style = Style::new().dimmed();
/// Emphasis.
pub const BOLD: Style = Style::new().bold();
