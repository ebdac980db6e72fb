//! `lakefly volumes list | create NAME | destroy NAME [--yes]`: the directories on the daemon's host that
//! hold the app's `[mounts]` data, as `fly volumes` shows and removes them.

use clap::{Args, Subcommand};

use super::remote::{app_name, block_on, client, confirm};
use super::GlobalArgs;
use crate::api::volumes::Volume;
use crate::error::Error;
use crate::output::table::Table;

/// List, make and delete the app's volumes.
#[derive(Debug, Args)]
#[command(
    after_help = "A volume is made when a machine whose [mounts] names it first starts (or by `volumes create`), and kept across \
deploys, restarts and `lakefly apps destroy`: only `volumes destroy` deletes its data, and only once \
no machine mounts it. `volumes list --all` finds every app's, and those of apps destroyed since.\n\nExamples:\n  lakefly volumes list\n  lakefly volumes create data\n  lakefly volumes list --all\n  lakefly volumes destroy data -a old-app --yes"
)]
pub struct VolumesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: VolumesCommand,
}

/// Volume commands.
#[derive(Debug, Subcommand)]
pub enum VolumesCommand {
    /// List the app's volumes: space used, the machines that mount each, and where.
    #[command(visible_alias = "ls")]
    List {
        /// Every app's, and those kept from destroyed apps.
        #[arg(long)]
        all: bool,
    },
    /// Make an empty volume before any machine mounts it (a machine's first start makes
    /// one too), as `fly volumes create` before a first deploy.
    Create {
        /// Its name, as `[mounts] source` names it.
        #[arg(value_parser = volume_name)]
        name: String,
        /// flyctl's size in GB: taken, not enforced (a volume is a directory on the host's
        /// disk, with the room that has).
        #[arg(short = 's', long, value_name = "GB")]
        size: Option<u64>,
        /// flyctl's region: the host is the one region, so any is taken.
        #[arg(short = 'r', long, hide = true)]
        region: Option<String>,
        /// flyctl's: accept its prompts. Nothing is asked.
        #[arg(short = 'y', long, hide = true)]
        yes: bool,
        /// flyctl's flags for Fly's volumes (zones, snapshots, encryption, file system,
        /// several at once): noted, or refused with what to do instead.
        #[command(flatten)]
        flyctl: super::flyctl_flags::VolumeCreateFlags,
    },
    /// Delete a volume's data; refused while a machine mounts it.
    #[command(alias = "delete", alias = "rm")]
    Destroy {
        /// The volume (its `[mounts] source`).
        name: String,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

/// Runs a volumes command.
pub fn run(global: &GlobalArgs, args: VolumesArgs) -> Result<(), Error> {
    let out = global.output();
    let api = client(global)?;
    match args.command {
        VolumesCommand::List { all: true } => {
            let volumes = block_on(async { Ok(api.all_volumes().await?) })?;
            if out.json {
                return out.json(&volumes);
            }
            if volumes.is_empty() {
                out.note("no app has volumes");
                return Ok(());
            }
            out.text(&volumes_table(&volumes, true))
        }
        VolumesCommand::List { all: false } => {
            let app = app_name(global)?;
            let volumes = block_on(async { Ok(api.volumes(&app).await?) })?;
            if out.json {
                return out.json(&volumes);
            }
            if volumes.is_empty() {
                out.note(&format!(
                    "app {app} has no volumes: add a [mounts] section to fly.toml for data that \
                     outlives deploys"
                ));
                return Ok(());
            }
            out.text(&volumes_table(&volumes, false))
        }
        VolumesCommand::Create {
            name, size, flyctl, ..
        } => {
            flyctl.note(&out);
            let app = app_name(global)?;
            let volume = block_on(async { Ok(api.create_volume(&app, &name).await?) })?;
            if out.json {
                return out.json(&volume);
            }
            out.note(&format!(
                "created volume {name} of app {app} at {}; machines whose [mounts] source is \"{name}\" mount it",
                volume.path
            ));
            if let Some(gb) = size {
                out.note(&format!(
                    "    note: --size {gb} is not enforced: a volume is a directory on the daemon's host, with the room its disk has"
                ));
            }
            Ok(())
        }
        VolumesCommand::Destroy { name, yes } => {
            let app = app_name(global)?;
            confirm(
                &format!("delete volume {name} of app {app} and all its data?"),
                yes,
            )?;
            block_on(async { Ok(api.destroy_volume(&app, &name).await?) })?;
            if out.json {
                return out.json(&serde_json::json!({ "app": app, "destroyed": name }));
            }
            out.note(&format!("deleted volume {name} of app {app}"));
            Ok(())
        }
    }
}

/// A name a volume can have, as `[mounts] source` is checked.
fn volume_name(name: &str) -> Result<String, String> {
    if crate::daemon::runtime::mounts::is_volume_name(name) {
        Ok(name.to_string())
    } else {
        Err("use letters, digits, `-` and `_`, as [mounts] source names it (e.g. data)".into())
    }
}

/// Tells, on stderr, of the volumes a new app `app` found: left by an earlier app of that
/// name, its machines would mount that data. Said even with `--json`, which keeps stdout
/// for data; a daemon too old to list volumes is passed over.
pub(super) async fn note_leftovers(
    api: &crate::api::client::Client,
    app: &str,
    out: crate::output::Output,
) {
    let Ok(volumes) = api.volumes(app).await else {
        return;
    };
    if volumes.is_empty() {
        return;
    }
    let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    out.note(&format!(
        "note: app {app} has volume{} left from an earlier app of that name ({}): machines \
         that mount {} get that data; `lakefly volumes destroy NAME -a {app}` deletes one",
        if names.len() == 1 { "" } else { "s" },
        names.join(", "),
        if names.len() == 1 { "it" } else { "them" },
    ));
}

/// NAME, USED, MOUNTED BY (machine at destination), PATH; APP first `with_app`.
fn volumes_table(volumes: &[Volume], with_app: bool) -> String {
    let mut header = vec!["NAME", "USED", "MOUNTED BY", "PATH"];
    if with_app {
        header.insert(0, "APP");
    }
    let mut table = Table::new(header);
    for v in volumes {
        let mounted = if v.mounted_by.is_empty() {
            "-".to_string()
        } else {
            v.mounted_by
                .iter()
                .map(|m| format!("{} at {}", m.machine, m.destination))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut row = vec![
            v.name.clone(),
            indicatif::HumanBytes(v.used_bytes).to_string(),
            mounted,
            v.path.clone(),
        ];
        if with_app {
            row.insert(0, v.app.clone());
        }
        table.row(row);
    }
    table.render()
}
