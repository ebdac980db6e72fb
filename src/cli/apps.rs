//! `lakefly apps create NAME | list | restart [NAME] | destroy NAME [--yes]`.

use clap::{Args, Subcommand};

use super::remote::{app_name, block_on, client, confirm};
use super::GlobalArgs;
use crate::api::signal::{Signal, StopRequest};
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
        #[arg(required_unless_present_any = ["by_name", "generate_name"])]
        name: Option<String>,
        /// Its name, as flyctl's `apps create --name` takes it.
        #[arg(long = "name", value_name = "NAME", conflicts_with = "name")]
        by_name: Option<String>,
        /// Make up a name (`quiet-river-4821`), as flyctl's.
        #[arg(long, conflicts_with_all = ["name", "by_name"])]
        generate_name: bool,
        /// Write the name into the config file's `app` (-c; one with only that when there
        /// is none), as flyctl's.
        #[arg(long)]
        save: bool,
        /// flyctl's flags with nothing to do here (noted).
        #[command(flatten)]
        flyctl: super::flyctl_flags::AppsCreateFlags,
    },
    /// List the apps.
    #[command(visible_alias = "ls")]
    List {
        /// flyctl's `--org`, with nothing to do here (noted).
        #[command(flatten)]
        flyctl: super::flyctl_flags::OrgFlag,
    },
    /// Restart the app's running machines in place, one at a time, each healthy again
    /// before the next (no new release; no downtime with two machines or more).
    Restart {
        /// The app (default: -a, else the config's `app`).
        name: Option<String>,
        /// Kill each at once (SIGKILL), not with its kill_signal: what it serves is cut off
        /// (as flyctl's).
        #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        force_stop: Option<bool>,
        /// Restart the next as soon as one has started, not once it passes its checks (as
        /// flyctl's): quicker, and the app may serve nothing meanwhile.
        #[arg(long)]
        skip_health_checks: bool,
    },
    /// Open the app in a browser (`lakefly open`), as flyctl's `apps open`.
    Open(super::open::OpenArgs),
    /// List the app's releases (`lakefly releases`), as flyctl's `apps releases`.
    Releases(super::releases::ReleasesArgs),
    /// Destroy an app and its machines (its volumes are kept: `lakefly volumes`).
    #[command(alias = "delete", alias = "remove", alias = "rm")]
    Destroy {
        /// The app.
        name: String,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

/// Runs an apps command.
pub fn run(global: &GlobalArgs, args: AppsArgs) -> Result<(), Error> {
    let out = global.output();
    match args.command {
        AppsCommand::Open(open) => super::open::run(global, open),
        AppsCommand::Releases(releases) => super::releases::run(global, releases),
        AppsCommand::Create {
            name,
            by_name,
            generate_name,
            save,
            flyctl,
        } => {
            flyctl.note(&out);
            let api = client(global)?;
            let config = global.config_path();
            if save {
                super::config::check_editable(&config)?;
            }
            // clap requires one of the three; an empty name would be refused as a name.
            let name = match generate_name {
                true => crate::config::names::generated_app_name(),
                false => name.or(by_name).unwrap_or_default(),
            };
            let app = block_on(async {
                let app = api.create_app(&name).await?;
                super::volumes::note_leftovers(&api, &name, out).await;
                Ok(app)
            })?;
            if !out.json {
                out.note(&format!("created app {}", app.name));
            }
            if save && super::config::save_app_name(&config, &app.name)? && !out.json {
                out.note(&format!(
                    "wrote app = {:?} to {}",
                    app.name,
                    config.display()
                ));
            }
            if out.json {
                return out.json(&app);
            }
            Ok(())
        }
        AppsCommand::List { flyctl } => {
            flyctl.note(&out);
            let api = client(global)?;
            let apps = block_on(async { Ok(api.apps().await?) })?;
            if out.json {
                return out.json(&apps);
            }
            let mut table = Table::new(vec!["NAME", "RELEASE", "MACHINES", "CREATED"]);
            for app in apps {
                let release = app
                    .current_release
                    .map_or("-".to_string(), |v| format!("v{v}"));
                // An older daemon does not count them.
                let machines = app.machines.map_or("-".to_string(), |m| {
                    format!("{} of {} started", m.started, m.total)
                });
                table.row(vec![app.name, release, machines, app.created_at]);
            }
            out.text(&table.render())
        }
        AppsCommand::Restart {
            name,
            force_stop,
            skip_health_checks,
        } => {
            let name = match name {
                Some(name) => name,
                None => app_name(global)?,
            };
            let api = client(global)?;
            let each = match skip_health_checks {
                true => "the next as soon as one has started",
                false => "each healthy before the next",
            };
            out.note(&format!(
                "==> restarting the running machines of {name} one at a time, {each}"
            ));
            let request = crate::api::restart::RestartRequest {
                machines: Vec::new(),
                stop: StopRequest {
                    signal: force_stop
                        .unwrap_or(false)
                        .then(|| Signal::SIGKILL.as_str().to_string()),
                    timeout: None,
                },
                skip_health_checks,
            };
            let machines = block_on(super::restarting::restart(&api, &name, &request, out))?;
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
            let api = client(global)?;
            let kept = block_on(async {
                api.destroy_app(&name).await?;
                // Volumes outlive the app; say where the data stayed. A daemon too old to
                // list them is no reason to fail a destroy that happened.
                Ok(api.volumes(&name).await.unwrap_or_default())
            })?;
            let kept: Vec<String> = kept.into_iter().map(|v| v.name).collect();
            if out.json {
                return out.json(&serde_json::json!({ "destroyed": name, "volumes_kept": kept }));
            }
            out.note(&format!("destroyed app {name}"));
            if !kept.is_empty() {
                let (s, them) = if kept.len() == 1 {
                    ("", "it")
                } else {
                    ("s", "them")
                };
                out.note(&format!(
                    "kept its volume{s} {}: `lakefly volumes list -a {name}` shows {them}, \
                     `lakefly volumes destroy NAME -a {name}` deletes one",
                    kept.join(", ")
                ));
            }
            Ok(())
        }
    }
}
