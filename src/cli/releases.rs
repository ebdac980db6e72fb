//! `lakefly releases`: the app's releases, newest first.

use clap::Args;

use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::error::Error;
use crate::output::table::Table;

/// List the app's releases.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  lakefly releases\n  lakefly releases --limit 5 --json")]
pub struct ReleasesArgs {
    /// How many to show.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000)
    )]
    pub limit: usize,
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

/// Prints the releases.
pub fn run(global: &GlobalArgs, args: ReleasesArgs) -> Result<(), Error> {
    let out = global.output();
    let api = client(global)?;
    let app = app_name(global)?;
    let releases = block_on(async { Ok(api.releases(&app, args.limit).await?) })?;
    if out.json {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            version: u64,
            status: &'a str,
            description: &'a str,
            created_at: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            files_of: Option<u64>,
        }
        let rows: Vec<Row> = releases
            .iter()
            .map(|r| Row {
                version: r.version,
                status: &r.status,
                description: &r.description,
                created_at: &r.created_at,
                files_of: r.files_of,
            })
            .collect();
        return out.json(&rows);
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
        // Whose build it runs: its own, or an earlier release's (same inputs).
        let files = r.files_of.map_or("built".into(), |v| format!("v{v}'s"));
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
