//! `lakefly rollback [VERSION]`: a new release that runs an earlier one's config and files.

use clap::Args;

use super::release_follow::{detached, subscribe, watch};
use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::error::Error;

/// Go back to an earlier release.
#[derive(Debug, Args)]
#[command(
    after_help = "Without VERSION: the last complete release before the current one. The rollback\nis a new release (rolled out like a deploy), so `lakefly releases` keeps the history.\n\nExamples:\n  lakefly rollback\n  lakefly rollback v3 --detach"
)]
pub struct RollbackArgs {
    /// The release to go back to.
    #[arg(value_name = "VERSION", value_parser = super::releases::version_arg)]
    pub target: Option<u64>,
    /// Return once the release has started, without following it.
    #[arg(long)]
    pub detach: bool,
}

/// Starts the rollback and follows it like a deploy.
pub fn run(global: &GlobalArgs, args: RollbackArgs) -> Result<(), Error> {
    let out = global.output();
    let app = app_name(global)?;
    let api = client(global)?;
    block_on(async move {
        let stream = if args.detach {
            None
        } else {
            Some(subscribe(&api, &app).await?)
        };
        let version = api.rollback(&app, args.target).await?;
        match stream {
            Some(stream) => watch(out, &app, version, stream).await,
            None => detached(out, &app, version),
        }
    })
}
