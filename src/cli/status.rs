//! `lakefly status`: the app, its current release, and its machines.

use clap::Args;

use super::machines::machine_table;
use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::api::types::AppStatus;
use crate::error::Error;

/// Show the app's release and machines.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lakefly status\n  lakefly status -a hello --json\n  lakefly status --watch      # redrawn on each change, as `lakefly watch`"
)]
pub struct StatusArgs {
    /// Keep it on screen, redrawn on each change (`lakefly watch`), as `fly status --watch`.
    #[arg(long)]
    pub watch: bool,
    /// flyctl's `--all` and `--deployment`: what `status` shows anyway; `--rate`, noted.
    #[command(flatten)]
    pub flyctl: super::flyctl_flags::StatusFlags,
}

/// Prints the status.
pub fn run(global: &GlobalArgs, args: StatusArgs) -> Result<(), Error> {
    args.flyctl.note(&global.output());
    if args.watch {
        return super::watch::run(global, super::watch::WatchArgs {});
    }
    let out = global.output();
    let app = app_name(global)?;
    let api = client(global)?;
    let (status, health) = block_on(async {
        let status = api.status(&app).await?;
        // What the daemon says needs its operator (a full disk): the status shown may be
        // out of date. A daemon too old to say is not a failure.
        let health = api.health().await.ok();
        Ok((status, health))
    })?;
    if let Some(health) = &health {
        for problem in &health.problems {
            out.note(&format!(
                "warning: the daemon is {}: {problem}",
                health.status
            ));
        }
    }
    if out.json {
        return out.json(&status);
    }
    out.text(&status_text(&status))
}

/// The app, its release, and its machines' table, for people (`status`, `watch`).
pub fn status_text(status: &AppStatus) -> String {
    let mut release = status.release.as_ref().map_or("none yet".to_string(), |r| {
        format!("v{} ({})", r.version, r.status)
    });
    if let Some(next) = status.rolling_out {
        release.push_str(&format!(
            "; v{next} rolling out (`lakefly releases cancel` stops it)"
        ));
    }
    let machines = machine_table(&status.machines);
    let mut head = format!("App      {}\nRelease  {release}\n", status.app);
    for (n, url) in status.urls.iter().enumerate() {
        let label = if n == 0 { "URLs" } else { "" };
        head.push_str(&format!("{label:<9}{url}\n"));
    }
    format!("{head}\n{machines}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_release_one_a_line() {
        let status = AppStatus {
            app: "shop".into(),
            release: None,
            rolling_out: None,
            machines: vec![],
            urls: vec![
                "http://shop.localhost:4281/".into(),
                "tcp://shop.localhost:5433".into(),
            ],
        };
        assert_eq!(
            status_text(&status),
            "App      shop\nRelease  none yet\nURLs     http://shop.localhost:4281/\n         tcp://shop.localhost:5433\n\nNo machines."
        );
    }

    #[test]
    fn a_release_rolling_out_is_shown_beside_the_current_one() {
        let status = AppStatus {
            app: "shop".into(),
            release: Some(crate::api::types::ReleaseSummary {
                version: 3,
                status: "complete".into(),
            }),
            rolling_out: Some(4),
            machines: vec![],
            urls: vec![],
        };
        assert!(
            status_text(&status).starts_with(
                "App      shop\nRelease  v3 (complete); v4 rolling out (`lakefly releases cancel` stops it)\n"
            ),
            "{}",
            status_text(&status)
        );
    }
}
