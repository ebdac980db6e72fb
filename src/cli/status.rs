//! `lakefly status`: the app, its current release, and its machines.

use clap::Args;

use super::machines::machine_table;
use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
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
    let release = status.release.as_ref().map_or("none yet".to_string(), |r| {
        format!("v{} ({})", r.version, r.status)
    });
    out.text(&format!("App      {}\nRelease  {release}\n", status.app))?;
    if status.machines.is_empty() {
        return out.text("No machines.");
    }
    out.text(&machine_table(&status.machines))
}
