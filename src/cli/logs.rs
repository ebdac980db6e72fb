//! `lakefly logs`: the app's output from all machines as one stream.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;

use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::api::client::{ClientError, LogsQuery};
use crate::api::types::LogEntry;
use crate::error::Error;
use crate::output::style;

/// How often a follow asks for new lines.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// Most lines fetched per request while following.
const PAGE: usize = 1000;

/// Show the app's logs, and follow them.
#[derive(Debug, Args)]
#[command(
    after_help = "Each line starts with its time, machine id and process group; a job run's lines come\nfrom job:NAME#RUN, a release command's from release_command:vN.\n\nExamples:\n  lakefly logs\n  lakefly logs --no-tail -n 500 --process worker\n  lakefly logs --machine 3779b97f4a7c15 --json\n  lakefly logs --job nightly --no-tail"
)]
pub struct LogsArgs {
    /// Print the recent lines and exit instead of following.
    #[arg(long)]
    pub no_tail: bool,
    /// How many recent lines to show first (flyctl's `logs -n` is `--no-tail` here).
    #[arg(short = 'n', long, value_name = "N", default_value_t = 100)]
    pub lines: usize,
    /// Only this machine's output (flyctl's `-i`/`--instance` work too).
    #[arg(
        short = 'm',
        long,
        value_name = "ID",
        visible_alias = "instance",
        short_alias = 'i'
    )]
    pub machine: Option<String>,
    /// Only the output of a machine picked from a list, asked on the terminal (as `fly
    /// logs -s`).
    #[arg(short = 's', long, conflicts_with_all = ["machine", "job"])]
    pub select: bool,
    /// Only this process group's output.
    #[arg(long, value_name = "GROUP")]
    pub process: Option<String>,
    /// Only this job's runs' output (each line from `job:NAME#RUN`).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["machine", "process"])]
    pub job: Option<String>,
    /// flyctl's `--region`, with nothing to do here (noted).
    #[command(flatten)]
    pub flyctl: super::flyctl_flags::RegionFlag,
}

/// Prints the recent lines, then (unless `--no-tail`) new ones as they come.
pub fn run(global: &GlobalArgs, args: LogsArgs) -> Result<(), Error> {
    let out = global.output();
    args.flyctl.note(&out);
    let app = app_name(global)?;
    let api = client(global)?;
    let colour = !out.json && std::io::stdout().is_terminal();
    let machine = if args.select {
        Some(block_on(super::machine_pick::select_flag(&api, &app))?.id)
    } else {
        args.machine
    };
    let mut query = LogsQuery {
        after: None,
        limit: args.lines,
        machine,
        process: args.process,
        job: args.job,
    };
    block_on(async move {
        let mut reconnecting = false;
        loop {
            match api.logs(&app, &query).await {
                Ok(lines) => {
                    if reconnecting {
                        out.note("reconnected");
                        reconnecting = false;
                    }
                    for line in &lines {
                        if out.json {
                            out.ndjson(&Printed::from(line))?;
                        } else {
                            out.text(&human(colour, line))?;
                        }
                    }
                    // The next page starts after the last line shown: none is shown twice,
                    // also across a daemon restart.
                    query.after = lines.last().map(|l| l.id).or(query.after).or(Some(0));
                    query.limit = PAGE;
                    if lines.len() == PAGE {
                        continue;
                    }
                }
                // While following, a daemon that went away is waited for, not an error.
                Err(ClientError::Unreachable { .. } | ClientError::Timeout { .. })
                    if query.after.is_some() && !args.no_tail =>
                {
                    if !reconnecting {
                        out.note("lost the daemon; reconnecting");
                        reconnecting = true;
                    }
                }
                Err(e) => return Err(e.into()),
            }
            if args.no_tail {
                return Ok(());
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    })
}

/// A line as `--json` prints it: lakefly's fields, and flyctl's names for three of them,
/// so a script written for `fly logs --json` (`jq -r .message`) reads it as it is.
#[derive(serde::Serialize)]
struct Printed<'a> {
    #[serde(flatten)]
    line: &'a LogEntry,
    /// flyctl's `message`: the text.
    message: &'a str,
    /// flyctl's `timestamp`: when it was read.
    timestamp: &'a str,
    /// flyctl's `instance`: the machine.
    instance: &'a str,
}

impl<'a> From<&'a LogEntry> for Printed<'a> {
    fn from(line: &'a LogEntry) -> Self {
        Printed {
            line,
            message: &line.line,
            timestamp: &line.time,
            instance: &line.machine,
        }
    }
}

/// `time machine [group] text`, the prefix dimmed on a terminal.
fn human(colour: bool, line: &LogEntry) -> String {
    let group = line.process_group.as_deref().unwrap_or("-");
    let (dim, reset) = if colour {
        (
            style::DIM.render().to_string(),
            style::DIM.render_reset().to_string(),
        )
    } else {
        (String::new(), String::new())
    };
    format!(
        "{dim}{} {} [{group}]{reset} {}",
        line.time, line.machine, line.line
    )
}
