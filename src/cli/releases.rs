//! `lakefly releases`: the app's releases, newest first; `releases cancel` stops the one
//! rolling out.

use clap::{Args, Subcommand};

use super::release_follow::{follow_release, subscribe, Ended};
use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::error::Error;
use crate::output::progress::Progress;
use crate::output::table::Table;

/// List the app's releases, or cancel the one rolling out.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  lakefly releases\n  lakefly releases --limit 5 --json\n  lakefly releases cancel          # the release rolling out fails; the one before keeps running"
)]
pub struct ReleasesArgs {
    /// What to do instead of listing.
    #[command(subcommand)]
    pub command: Option<ReleasesCommand>,
    /// How many to show.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000)
    )]
    pub limit: usize,
    /// flyctl's column of each release's image: lakefly's releases have none (FILES says
    /// whose build each runs), so it is noted as changing nothing.
    #[arg(long, hide = true)]
    pub image: bool,
}

/// What `releases` does besides listing.
#[derive(Debug, Subcommand)]
pub enum ReleasesCommand {
    /// Stop the release rolling out (as `nomad deployment fail`).
    ///
    /// It fails at once instead of waiting out `wait_timeout`: its new machines go, and
    /// the machines it replaced start again. A build or release command running is
    /// stopped (SIGTERM, then SIGKILL 5 s later).
    Cancel {
        /// The release (default: the one rolling out).
        #[arg(value_name = "VERSION", value_parser = version_arg)]
        target: Option<u64>,
        /// Return once the cancel is asked, without following the release to its end.
        #[arg(long)]
        detach: bool,
    },
}

/// A release VERSION argument, as `releases` shows it (`v3`) or bare (`3`).
pub(super) fn version_arg(value: &str) -> Result<u64, String> {
    let digits = value
        .strip_prefix('v')
        .or_else(|| value.strip_prefix('V'))
        .unwrap_or(value);
    digits
        .parse()
        .map_err(|_| format!("{value:?} is not a release version: use its number, e.g. 3 or v3"))
}

/// Prints the releases, or runs `releases cancel`.
pub fn run(global: &GlobalArgs, args: ReleasesArgs) -> Result<(), Error> {
    if let Some(ReleasesCommand::Cancel { target, detach }) = args.command {
        return cancel(global, target, detach);
    }
    let out = global.output();
    let app = app_name(global)?;
    let api = client(global)?;
    let releases = block_on(async { Ok(api.releases(&app, args.limit).await?) })?;
    if out.json {
        return out.json(&releases);
    }
    if args.image {
        out.note("    note: --image changes nothing: lakefly's releases have no images (FILES says whose build each runs)");
    }
    let mut table = Table::new(vec![
        "VERSION",
        "STATUS",
        "STRATEGY",
        "DESCRIPTION",
        "FILES",
        "CREATED",
    ]);
    for r in releases {
        // Whose build it runs: its own, or an earlier release's (same inputs). "own", not
        // "built": a release still building, or whose build failed, has none yet.
        let files = r.files_of.map_or("own".into(), |v| format!("v{v}'s"));
        table.row(vec![
            format!("v{}", r.version),
            r.status,
            r.strategy,
            r.description,
            files,
            r.created_at,
        ]);
    }
    out.text(&table.render())
}

/// Cancels the release rolling out and follows it to its end (exit 0 once it failed and
/// the one before runs; exit 6 if it went live first).
fn cancel(global: &GlobalArgs, version: Option<u64>, detach: bool) -> Result<(), Error> {
    let out = global.output();
    let app = app_name(global)?;
    let api = client(global)?;
    block_on(async move {
        let stream = match detach {
            true => None,
            false => Some(subscribe(&api, &app).await?),
        };
        let version = api.cancel_release(&app, version).await?;
        let Some(stream) = stream else {
            if out.json {
                return out.json(
                    &serde_json::json!({ "app": app, "version": version, "status": "cancelling" }),
                );
            }
            out.note(&format!(
                "==> cancelling release v{version}; follow it with `lakefly events -a {app}`"
            ));
            return Ok(());
        };
        let progress = Progress::new(out);
        progress.line(&format!("==> cancelling release v{version}"));
        match follow_release(out, &progress, &app, version, stream).await? {
            Ended::Complete => Err(Error::WentLive { app, version }),
            Ended::Failed {
                reason, running, ..
            } => {
                if out.json {
                    return out.json(&serde_json::json!({ "app": app, "version": version, "status": "failed", "reason": reason, "running": running }));
                }
                // Its failure, with the reason, was shown as it came.
                let keeps = running.map_or(format!("no release of {app} runs"), |r| {
                    format!("release v{r} keeps running")
                });
                progress.line(&format!("==> {keeps}"));
                Ok(())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_its_number_with_or_without_the_v_releases_shows() {
        assert_eq!(version_arg("3"), Ok(3));
        assert_eq!(version_arg("v3"), Ok(3));
        assert_eq!(version_arg("V12"), Ok(12));
        for bad in ["vv3", "v", "three", "-1", ""] {
            assert!(version_arg(bad).is_err(), "{bad:?}");
        }
    }
}
