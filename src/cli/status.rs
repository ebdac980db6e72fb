//! `lakefly status`: the app, its current release, and its machines.

use clap::Args;

use super::machines::machine_table;
use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::api::types::AppStatus;
use crate::error::Error;

/// Show the app's release and machines.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  lakefly status\n  lakefly status -a hello --json")]
pub struct StatusArgs {}

/// Prints the status.
pub fn run(global: &GlobalArgs, _args: StatusArgs) -> Result<(), Error> {
    let out = global.output();
    let api = client(global)?;
    let app = app_name(global)?;
    let status = block_on(async { Ok(api.status(&app).await?) })?;
    if out.json {
        return out.json(&status);
    }
    out.text(&status_text(&status))
}

/// The app, its release, and its machines' table, for people (`status`, `watch`).
pub fn status_text(status: &AppStatus) -> String {
    let release = status.release.as_ref().map_or("none yet".to_string(), |r| {
        format!("v{} ({})", r.version, r.status)
    });
    let machines = if status.machines.is_empty() {
        "No machines.".to_string()
    } else {
        machine_table(&status.machines)
    };
    format!("App      {}\nRelease  {release}\n\n{machines}", status.app)
}
