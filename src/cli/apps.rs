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
        /// flyctl's flags: noted, or refused with what to do instead.
        #[command(flatten)]
        flyctl: super::flyctl_flags::AppsRestartFlags,
    },
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

/// How long, once the restart is answered, its last events may take to arrive.
const LAST_EVENTS: std::time::Duration = std::time::Duration::from_secs(5);

/// Restarts `app`'s machines, showing each one's stop, start and health as they happen.
async fn restart(
    api: &crate::api::client::Client,
    app: &str,
    out: crate::output::Output,
) -> Result<Vec<crate::api::types::Machine>, Error> {
    use futures_util::StreamExt;
    let progress = crate::output::progress::Progress::new(out);
    progress.status(&format!("restarting {app}"));
    // Followed from before the request, so no machine's event is missed.
    let events = super::release_follow::subscribe(api, app).await?;
    futures_util::pin_mut!(events);
    let restarting = api.restart_app(app);
    futures_util::pin_mut!(restarting);
    let show = |event: &crate::api::types::Event| {
        if let Some(line) = restart_step(event) {
            progress.line(&line);
            progress.status(line.trim());
        }
        event.kind == crate::api::types::kind::APP_RESTARTED
    };
    let mut ended = false;
    let restarted = loop {
        tokio::select! {
            restarted = &mut restarting => break restarted,
            item = events.next(), if !ended => match item {
                Some(crate::api::follow::Item::Event(event)) => ended = show(&event),
                Some(_) => {}
                None => ended = true,
            },
        }
    };
    // The steps not shown yet, up to the restart's last event (`app.restarted`), when a
    // restart ran (a refused one, of an unknown app say, has none).
    let ran = match &restarted {
        Ok(_) => true,
        Err(crate::api::client::ClientError::Api { error, .. }) => {
            error.code == crate::api::codes::RESTART_FAILED
        }
        Err(_) => false,
    };
    let deadline = tokio::time::Instant::now() + LAST_EVENTS;
    while ran && !ended {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(crate::api::follow::Item::Event(event))) => ended = show(&event),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    progress.finish();
    Ok(restarted?)
}

/// What a machine event says about a restart in progress, as a progress line.
fn restart_step(event: &crate::api::types::Event) -> Option<String> {
    use crate::api::types::{kind, HealthState};
    let d = &event.data;
    let machine = d["machine"].as_str()?;
    match event.kind.as_str() {
        kind::MACHINE_STOPPED => Some(format!("    machine {machine} stopped")),
        kind::MACHINE_STARTED => Some(format!("    machine {machine} started")),
        kind::MACHINE_HEALTH if d["health"] == HealthState::Passing.as_str() => {
            Some(format!("    machine {machine} is healthy"))
        }
        kind::MACHINE_EXITED => Some(format!("    machine {machine} exited")),
        _ => None,
    }
}

/// Runs an apps command.
pub fn run(global: &GlobalArgs, args: AppsArgs) -> Result<(), Error> {
    let out = global.output();
    let api = client(global)?;
    match args.command {
        AppsCommand::Create {
            name,
            by_name,
            generate_name,
            save,
            flyctl,
        } => {
            flyctl.note(&out);
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
        AppsCommand::Restart { name, flyctl } => {
            flyctl.note(&out);
            let name = match name {
                Some(name) => name,
                None => app_name(global)?,
            };
            out.note(&format!(
                "==> restarting the running machines of {name} one at a time, each healthy before the next"
            ));
            let machines = block_on(restart(&api, &name, out))?;
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
