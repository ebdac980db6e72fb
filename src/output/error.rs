//! The one renderer for errors and config diagnostics. Pure functions from an error to
//! text, so every mode is unit-tested; `main` only prints what they return.

use std::fmt::Write;

use serde::Serialize;

use super::style;
use crate::config::{Diagnostic, Report, Severity};
use crate::error::Error;

/// The JSON shape of an error under `--json`.
#[derive(Debug, Serialize)]
pub struct JsonError<'a> {
    /// The message.
    pub error: String,
    /// The stable code.
    pub code: std::borrow::Cow<'static, str>,
    /// What to do about it.
    pub hint: Option<String>,
    /// For config errors: each problem with its place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<&'a [Diagnostic]>,
}

/// Renders `err` for stderr: human text (with styles) or one line of JSON.
pub fn render(err: &Error, json: bool) -> String {
    if json {
        let body = JsonError {
            error: err.to_string(),
            code: err.code(),
            hint: err.hint(),
            diagnostics: match err {
                Error::InvalidConfig(report) | Error::EditRefused(report) => {
                    Some(&report.diagnostics)
                }
                _ => None,
            },
        };
        return serde_json::to_string(&body).unwrap_or_else(|_| {
            format!(
                "{{\"error\":\"unprintable error\",\"code\":\"{}\"}}",
                err.code()
            )
        });
    }
    let mut out = String::new();
    match err {
        Error::InvalidConfig(report) | Error::EditRefused(report) => {
            out.push_str(&render_report(report))
        }
        _ => {
            let _ = writeln!(
                out,
                "{}error:{} {err}",
                style::ERROR.render(),
                style::ERROR.render_reset()
            );
        }
    }
    if let Some(hint) = err.hint() {
        let _ = writeln!(
            out,
            "{}hint:{} {hint}",
            style::HINT.render(),
            style::HINT.render_reset()
        );
    }
    out
}

/// Renders every diagnostic of a report, compiler style: the message, the place, the line
/// with a caret under the problem, and the hint.
pub fn render_report(report: &Report) -> String {
    let mut out = String::new();
    for d in &report.diagnostics {
        render_diagnostic(&mut out, report, d);
    }
    out
}

fn render_diagnostic(out: &mut String, report: &Report, d: &Diagnostic) {
    let (label, label_style) = match d.severity {
        Severity::Error => ("error", style::ERROR),
        Severity::Warning => ("warning", style::WARNING),
    };
    let _ = writeln!(
        out,
        "{}{label}:{} {}{}{}",
        label_style.render(),
        label_style.render_reset(),
        style::BOLD.render(),
        d.message,
        style::BOLD.render_reset()
    );
    let (dim, reset) = (style::DIM.render(), style::DIM.render_reset());
    match (&d.position, &d.snippet) {
        (Some(pos), Some(snippet)) => {
            let number = pos.line.to_string();
            let pad = " ".repeat(number.len());
            let _ = writeln!(out, "{pad}{dim}-->{reset} {}", report.locate(d));
            let _ = writeln!(out, "{pad} {dim}|{reset}");
            let _ = writeln!(out, "{dim}{number} |{reset} {}", snippet.line);
            let caret_pad: String = snippet
                .line
                .chars()
                .take(snippet.columns.start)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let carets = "^".repeat(snippet.columns.len().max(1));
            let _ = writeln!(
                out,
                "{pad} {dim}|{reset} {caret_pad}{}{carets}{}",
                label_style.render(),
                label_style.render_reset()
            );
            if let Some(hint) = &d.hint {
                let _ = writeln!(
                    out,
                    "{pad} {dim}={reset} {}hint:{} {hint}",
                    style::HINT.render(),
                    style::HINT.render_reset()
                );
            }
        }
        _ => {
            let _ = writeln!(out, " {dim}-->{reset} {}", report.locate(d));
            if let Some(hint) = &d.hint {
                let _ = writeln!(
                    out,
                    "  {dim}={reset} {}hint:{} {hint}",
                    style::HINT.render(),
                    style::HINT.render_reset()
                );
            }
        }
    }
}

/// Prints a command-line parsing error (or help/version) and returns the exit code:
/// 0 for help and version, 2 for usage errors, with a JSON body under `--json`.
pub fn exit_on_usage_error(err: &clap::Error, json: bool) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    let code = err.exit_code();
    let help = matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) || err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
    if json && !help {
        let message = err.kind().as_str().map_or_else(
            || {
                err.to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            },
            str::to_string,
        );
        let detail = anstream::adapter::strip_str(&err.render().to_string()).to_string();
        let body = serde_json::json!({
            "error": detail.lines().next().unwrap_or(&message).trim_start_matches("error: "),
            "code": "usage",
            "hint": "run with --help to see the accepted arguments",
        });
        eprintln!("{body}");
    } else {
        // Help goes to stdout, errors to stderr; clap knows which is which.
        let _ = err.print();
    }
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(2))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn plain(s: &str) -> String {
        anstream::adapter::strip_str(s).to_string()
    }

    #[test]
    fn config_errors_show_place_line_caret_and_hint() {
        let loaded = crate::config::parse("app = \"Bad App\"\n", Path::new("fly.toml"));
        let err = Error::InvalidConfig(Box::new(loaded.report));
        let text = plain(&render(&err, false));
        assert_eq!(
            text,
            "error: app name \"Bad App\" may only hold lowercase letters, digits and dashes\n \
             --> fly.toml:1:7\n  |\n1 | app = \"Bad App\"\n  |       ^^^^^^^^^\n  = hint: use 1 to 63 \
             lowercase letters, digits and dashes, starting and ending with a letter or digit\n\
             hint: fix the line above, then run `lakefly config validate`\n"
        );
    }

    #[test]
    fn json_errors_carry_error_code_and_hint() {
        let err = Error::ConfigNotFound {
            path: "x/fly.toml".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&render(&err, true)).unwrap();
        assert_eq!(v["error"], "no config file at x/fly.toml");
        assert_eq!(v["code"], "config_not_found");
        assert!(v["hint"].as_str().unwrap().contains("lakefly launch"));
    }

    #[test]
    fn json_config_errors_list_diagnostics_with_line_and_column() {
        let loaded =
            crate::config::parse("[deploy]\nstrategy = \"sideways\"\n", Path::new("f.toml"));
        let err = Error::InvalidConfig(Box::new(loaded.report));
        let v: serde_json::Value = serde_json::from_str(&render(&err, true)).unwrap();
        assert_eq!(v["code"], "config_invalid");
        assert_eq!(v["diagnostics"][0]["line"], 2);
        assert_eq!(v["diagnostics"][0]["column"], 12);
        assert_eq!(v["diagnostics"][0]["key"], "deploy.strategy");
    }
}
