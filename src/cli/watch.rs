//! `lakefly watch`: the app's machines, their health, and its jobs, redrawn each time
//! the daemon reports a change (its event stream), not on a timer.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;

use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::api::client::Client;
use crate::api::follow::Item;
use crate::error::Error;
use crate::output::Output;

/// Events closer together than this are drawn once (a deploy sends bursts).
const SETTLE: Duration = Duration::from_millis(150);

/// A live table of the app's machines, health and jobs.
#[derive(Debug, Args)]
#[command(
    after_help = "Redrawn on every change the daemon reports; with --json, one snapshot per line\n(NDJSON: {\"status\", \"jobs\"}). Ctrl-C stops watching.\n\nExamples:\n  lakefly watch\n  lakefly watch -a hello --json | jq -c '.status.machines[] | [.id, .health]'"
)]
pub struct WatchArgs {}

/// Watches until interrupted.
pub fn run(global: &GlobalArgs, _args: WatchArgs) -> Result<(), Error> {
    let out = global.output();
    let app = app_name(global)?;
    let api = client(global)?;
    let redraw = std::io::stdout().is_terminal() && !out.json;
    block_on(async move {
        // Subscribed before the first snapshot, so no change falls in between.
        let stream = super::release_follow::subscribe(&api, &app).await?;
        futures_util::pin_mut!(stream);
        draw(&api, &app, out, redraw).await?;
        while let Some(item) = stream.next().await {
            match item {
                Item::Event(_) => {
                    // Let a burst settle, then draw what it left.
                    while let Ok(Some(Item::Event(_))) =
                        tokio::time::timeout(SETTLE, stream.next()).await
                    {}
                    draw(&api, &app, out, redraw).await?;
                }
                Item::Reconnecting { reason } => out.note(&format!("{reason}; reconnecting")),
                Item::Reconnected => out.note("reconnected"),
            }
        }
        Ok(())
    })
}

/// Fetches the app's state and prints it: a screen, or one NDJSON line.
async fn draw(api: &Client, app: &str, out: Output, redraw: bool) -> Result<(), Error> {
    let (status, jobs) = tokio::join!(api.status(app), api.jobs(app));
    let (status, jobs) = (status?, jobs?);
    if out.json {
        return out.ndjson(&serde_json::json!({ "status": status, "jobs": jobs }));
    }
    let mut screen = super::status::status_text(&status);
    screen.push('\n');
    if !jobs.is_empty() {
        screen.push('\n');
        screen.push_str(&super::jobs::job_table(&jobs));
        screen.push('\n');
    }
    if redraw {
        // Home and clear, then the new screen: the view replaces itself in place.
        screen.insert_str(0, "\x1b[H\x1b[2J");
    }
    out.text(screen.trim_end())
}
