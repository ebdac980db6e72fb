//! `lakefly apps create NAME | list | restart [NAME] | destroy NAME [--yes]`.

use clap::{Args, Subcommand};

use super::remote::{app_name, block_on, client, confirm};
use super::GlobalArgs;
use crate::error::Error;
use crate::output::table::Table;

/// Create, list and destroy apps.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lakefly apps create hello\n  lakefly apps list --json\n  lakefly apps restart hello\n  lakefly apps destroy hello --yes"
)]
pub struct AppsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AppsCommand,
}

/// App commands.
#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Create an app.
    Create {
        /// Its name: lowercase letters, digits and dashes.
        name: String,
    },
    /// List the apps.
    List,
    /// Restart the app's running machines in place, one at a time, each healthy again
    /// before the next (no new release; no downtime with two machines or more).
    Restart {
        /// The app (default: -a, else the config's `app`).
        name: Option<String>,
    },
    /// Destroy an app and its machines.
    Destroy {
        /// The app.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs an apps command.
pub fn run(global: &GlobalArgs, args: AppsArgs) -> Result<(), Error> {
    let out = global.output();
    let api = client(global)?;
    match args.command {
        AppsCommand::Create { name } => {
            let app = block_on(async { Ok(api.create_app(&name).await?) })?;
            if out.json {
                return out.json(&app);
            }
            out.note(&format!("created app {}", app.name));
            Ok(())
        }
        AppsCommand::List => {
            let apps = block_on(async { Ok(api.apps().await?) })?;
            if out.json {
                return out.json(&apps);
            }
            let mut table = Table::new(vec!["NAME", "RELEASE", "CREATED"]);
            for app in apps {
                let release = app
                    .current_release
                    .map_or("-".to_string(), |v| format!("v{v}"));
                table.row(vec![app.name, release, app.created_at]);
            }
            out.text(&table.render())
        }
        AppsCommand::Restart { name } => {
            let name = match name {
                Some(name) => name,
                None => app_name(global)?,
            };
            out.note(&format!(
                "restarting the running machines of {name} one at a time, each healthy before the next..."
            ));
            let machines = block_on(async { Ok(api.restart_app(&name).await?) })?;
            if out.json {
                return out.json(&machines);
            }
            out.note(&format!(
                "==> restarted {} machine{} of {name}",
                machines.len(),
                if machines.len() == 1 { "" } else { "s" }
            ));
            out.text(&super::machines::machine_table(&machines))
        }
        AppsCommand::Destroy { name, yes } => {
            confirm(&format!("destroy app {name} and all its machines?"), yes)?;
            block_on(async { Ok(api.destroy_app(&name).await?) })?;
            if out.json {
                return out.json(&serde_json::json!({ "destroyed": name }));
            }
            out.note(&format!("destroyed app {name}"));
            Ok(())
        }
    }
}
