//! `lakefly checks list`: each running machine's health checks with their latest result,
//! as `fly checks list` shows them: the place to look when a machine is `critical`.

use clap::{Args, Subcommand};

use super::machines::uptime;
use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::api::checks::CheckStatus;
use crate::error::Error;
use crate::output::table::Table;

/// Show the app's health checks and what each last saw.
#[derive(Debug, Args)]
#[command(
    after_help = "A machine without checks has one, `implicit`: its port accepting connections (or, \
without a port, staying up for a second). Stopped machines run no checks.\n\nExamples:\n  \
lakefly checks list\n  lakefly checks list -a hello --json"
)]
pub struct ChecksArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ChecksCommand,
}

/// Check commands.
#[derive(Debug, Subcommand)]
pub enum ChecksCommand {
    /// List each running machine's checks, their status and last output.
    #[command(visible_alias = "ls")]
    List {
        /// Only this machine's.
        #[arg(long, value_name = "ID")]
        machine: Option<String>,
        /// Only the check of this name, as CHECK shows it (`http_service.checks[0]`, or a
        /// `[checks.NAME]` entry's NAME), as flyctl's.
        #[arg(long, value_name = "NAME")]
        check_name: Option<String>,
    },
}

/// Runs a checks command.
pub fn run(global: &GlobalArgs, args: ChecksArgs) -> Result<(), Error> {
    let out = global.output();
    let app = app_name(global)?;
    let api = client(global)?;
    let ChecksCommand::List {
        machine,
        check_name,
    } = args.command;
    let mut checks = block_on(async { Ok(api.checks(&app).await?) })?;
    if let Some(machine) = &machine {
        checks.retain(|c| &c.machine == machine);
    }
    // The name asked for, when checks ran (on the machine named): if none is left once
    // it is applied, no check has that name.
    let misnamed = check_name.as_ref().filter(|_| !checks.is_empty());
    if let Some(name) = &check_name {
        checks.retain(|c| &c.name == name);
    }
    if out.json {
        return out.json(&checks);
    }
    if checks.is_empty() {
        let on = machine
            .as_ref()
            .map_or_else(String::new, |m| format!(" on machine {m}"));
        out.note(&match (misnamed, &machine) {
            (Some(name), _) => format!(
                "no check named {name:?} runs in app {app}{on}: CHECK in `lakefly checks list` shows their names"
            ),
            (None, Some(m)) => format!(
                "no checks run for machine {m} of app {app}: it is not started, or not one of \
                 the app's (`lakefly machines list`)"
            ),
            (None, None) => format!("no checks run in app {app}: none of its machines is started"),
        });
        return Ok(());
    }
    out.text(&checks_table(&checks, chrono::Utc::now()))
}

/// MACHINE, CHECK, STATUS, UPDATED (ago) and the last output on one line.
pub(super) fn checks_table(checks: &[CheckStatus], now: chrono::DateTime<chrono::Utc>) -> String {
    let mut table = Table::new(vec!["MACHINE", "CHECK", "STATUS", "UPDATED", "OUTPUT"]);
    for c in checks {
        let updated = c
            .updated_at
            .as_deref()
            .and_then(|t| uptime(t, now))
            .map_or_else(|| "-".to_string(), |age| format!("{age} ago"));
        let output = c.output.as_deref().map_or_else(
            || "-".to_string(),
            |o| o.split_whitespace().collect::<Vec<_>>().join(" "),
        );
        table.row(vec![
            c.machine.clone(),
            c.name.clone(),
            c.status.to_string(),
            updated,
            output,
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_not_run_yet_shows_dashes_and_output_stays_on_one_line() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let checks = [
            CheckStatus {
                machine: "m1".into(),
                name: "http_service.checks[0]".into(),
                status: crate::api::types::HealthState::Critical,
                output: Some("500 http://127.0.0.1:9/health: db\ndown".into()),
                updated_at: Some("2026-12-03T11:59:58Z".into()),
            },
            CheckStatus {
                machine: "m1".into(),
                name: "checks.db".into(),
                status: crate::api::types::HealthState::Unknown,
                output: None,
                updated_at: None,
            },
        ];
        let text = checks_table(&checks, now);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[1].contains("critical") && lines[1].contains("2s ago"),
            "{text}"
        );
        assert!(lines[1].ends_with("/health: db down"), "{text}");
        assert!(
            lines[2].contains("unknown") && lines[2].ends_with('-'),
            "{text}"
        );
    }
}
