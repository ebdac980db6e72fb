//! `lakefly launch`: write a fly.toml for the current directory, then deploy it (as
//! `fly launch` does) unless `--no-deploy`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use clap::Args;

use super::GlobalArgs;
use crate::config::names;
use crate::error::Error;
use crate::launch;

/// Write a fly.toml for the current directory, then deploy it.
#[derive(Debug, Args)]
#[command(
    after_help = "lakefly looks for a Procfile, a package.json start script, a Python project\n(requirements.txt or pyproject.toml) or a Dockerfile, writes a commented fly.toml, and\ndeploys it as `lakefly deploy` does (not when it found nothing to run). flyctl's\n--copy-config deploys the config file there is as it is; --generate-name and\n--internal-port do as flyctl's; its --now, --yes, --ha=false, --org, --region, --no-db,\n--no-redis, --no-object-storage and --no-github-workflow are accepted.\n\nExamples:\n  lakefly launch\n  lakefly launch --no-deploy --name api -c deploy/fly.toml\n  lakefly launch --force"
)]
pub struct LaunchArgs {
    /// App name (default: the directory's name, asked on a terminal).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Overwrite an existing config file.
    #[arg(long)]
    pub force: bool,
    /// Write the config file and create the app, without deploying it.
    #[arg(long)]
    pub no_deploy: bool,
    /// Make up the app's name (`quiet-river-4821`), as flyctl's.
    #[arg(long, conflicts_with = "name")]
    pub generate_name: bool,
    /// The port the app listens on (`http_service.internal_port`), over what was
    /// detected, as flyctl's.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub internal_port: Option<u16>,
    /// Only write the config file: the app is not created on the daemon.
    #[arg(long, alias = "no-create-app", requires = "no_deploy")]
    pub no_create: bool,
    /// flyctl's flags with nothing to do here (noted), or refused with what to do.
    #[command(flatten)]
    pub flyctl: super::flyctl_flags::LaunchFlags,
}

/// Writes the config file next to the app (the `-c` path's directory).
pub fn run(global: &GlobalArgs, args: LaunchArgs) -> Result<(), Error> {
    let out = global.output();
    let path = &global.config_path();
    args.flyctl.note(&out);
    if path.exists() && args.flyctl.copy_config {
        return deploy_as_it_is(global, &args, path);
    }
    if path.exists() && !args.force {
        return Err(Error::AlreadyExists {
            path: path.to_path_buf(),
            flag: "--force",
        });
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::env::current_dir().map_err(|e| Error::io("read", Path::new("."), e))?,
    };
    let dir = dir.canonicalize().map_err(|e| Error::io("open", &dir, e))?;
    let mut plan = launch::detect(&dir)?;
    if let Some(port) = args.internal_port {
        // Given a port, the app serves HTTP there: its first group, when nothing said so.
        plan.internal_port = port;
        if plan.http_group.is_none() {
            plan.http_group = plan.processes.keys().next().cloned();
        }
    }
    let default_name = launch::app_name_from_dir(
        &dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let given = match args.generate_name {
        true => Some(names::generated_app_name()),
        false => args.name.clone().or(global.app.clone()),
    };
    // On a terminal, a name that cannot be had is asked for again, as flyctl asks.
    let asking = given.is_none() && std::io::stdin().is_terminal() && !out.json && !args.flyctl.yes;
    let named_in_file = crate::config::load(path)
        .ok()
        .and_then(|loaded| loaded.config.app);
    let (name, created) = loop {
        let name = match &given {
            Some(name) => name.clone(),
            None if asking => ask_name(&default_name)?,
            None => default_name.clone(),
        };
        // The app first: a daemon that cannot be reached, or an app of that name that is
        // another project's, leaves nothing written.
        let claimed = match names::check_app_name(&name) {
            Err(problem) => Err(Error::InvalidAppName { name, problem }),
            Ok(()) if args.no_create => Ok((name, false)),
            Ok(()) => {
                let named_here = named_in_file.as_deref() == Some(name.as_str());
                claim_app(global, &name, named_here).map(|created| (name, created))
            }
        };
        match claimed {
            Err(e @ (Error::InvalidAppName { .. } | Error::AppTaken { .. })) if asking => {
                out.note(&format!("{e}; pick another name"));
            }
            claimed => break claimed?,
        }
    };
    let text = launch::render(&name, &plan);
    crate::atomic_write::write(path, text.as_bytes(), 0o644)?;
    let left_out = launch::lakeflyignore::add(&dir, &plan.left_out)?;
    let deploy = !args.no_deploy && !plan.sources.is_empty();
    if out.json {
        #[derive(serde::Serialize)]
        struct Launched<'a> {
            file: &'a Path,
            app: &'a str,
            /// Whether the app was created on the daemon by this launch.
            created: bool,
            detected: &'a [String],
            /// Patterns added to `.lakeflyignore`.
            left_out: &'a [&'a str],
        }
        let launched = Launched {
            file: path,
            app: &name,
            created,
            detected: &plan.sources,
            left_out: &left_out,
        };
        if !deploy {
            return out.json(&launched);
        }
        // The first line of the deploy's NDJSON stream.
        out.ndjson(&launched)?;
    } else {
        let found = if plan.sources.is_empty() {
            "found nothing to run: edit [processes]".to_string()
        } else {
            format!("from {}", plan.sources.join(", "))
        };
        out.note(&format!(
            "wrote {} for app {name} ({found})",
            path.display()
        ));
        if created {
            out.note(&format!("created app {name}"));
        }
        if !left_out.is_empty() {
            let why = match plan.secret_files.is_empty() {
                true => "the build makes them on the host",
                false => "the build makes them on the host; a key goes as a secret",
            };
            out.note(&format!(
                "added {} to .lakeflyignore: uploads leave them out ({why})",
                left_out.join(", ")
            ));
        }
        if !deploy {
            for (secret, file) in &plan.secret_files {
                out.note(&format!(
                    "{secret} must be a secret: `lakefly secrets set {secret}=- < {file}`"
                ));
            }
            out.note(if args.no_create {
                "next: review it, then `lakefly config validate` and `lakefly deploy`"
            } else {
                "next: review it, then `lakefly config validate`, `lakefly secrets set` for any \
                 credentials it needs, and `lakefly deploy`"
            });
            return Ok(());
        }
    }
    if !plan.secret_files.is_empty() {
        stage_secret_files(global, &name, &dir, &plan.secret_files)?;
    }
    super::deploy::run(global, super::deploy::DeployArgs::default())
}

/// flyctl's `launch --copy-config` of an app that has its config: deployed as it is,
/// nothing written. A `--name` that is not the config's app is refused: the file, which
/// later deploys read, would name another app than the one launched.
fn deploy_as_it_is(global: &GlobalArgs, args: &LaunchArgs, path: &Path) -> Result<(), Error> {
    if let Some(name) = &args.name {
        let (config, _) = crate::config::load(path)?.into_valid()?;
        if config.app.as_deref() != Some(name.as_str()) {
            return Err(Error::BadFlag {
                flag: "--name",
                message: format!(
                    "{name:?} is not the app {} names ({})",
                    path.display(),
                    config.app.as_deref().unwrap_or("none")
                ),
                hint: format!(
                    "drop --name to launch the config as it is, or rename the app in it first: \
                     `lakefly config set app={name}`"
                ),
            });
        }
    }
    if args.no_deploy {
        let config = crate::config::load(path)?.config;
        let created = match (&config.app, args.no_create) {
            (Some(app), false) => claim_app(global, app, true)?,
            _ => false,
        };
        let out = global.output();
        if created {
            out.note(&format!("created app {}", config.app.unwrap_or_default()));
        }
        out.note(&format!(
            "kept {} as it is (--copy-config); `lakefly deploy` deploys it",
            path.display()
        ));
        return Ok(());
    }
    super::deploy::run(global, super::deploy::DeployArgs::default())
}

/// Makes sure the daemon has `app`, creating it as `fly launch` does, so that its secrets
/// can be set before its first deploy: whether it was created. An app that has run a
/// release is another project's unless the config file here already names it (`launch
/// --force` again): it is refused rather than deployed over, as flyctl will not launch
/// into an app that exists. One with no release yet (`lakefly apps create`) is taken.
fn claim_app(global: &GlobalArgs, app: &str, named_here: bool) -> Result<bool, Error> {
    let out = global.output();
    let api = super::remote::client(global)?;
    super::remote::block_on(async {
        match api.app(app).await? {
            Some(existing) => match existing.current_release {
                Some(version) if !named_here => Err(Error::AppTaken {
                    app: app.to_string(),
                    version,
                }),
                _ => Ok(false),
            },
            None => {
                api.create_app(app).await?;
                super::volumes::note_leftovers(&api, app, out).await;
                Ok(true)
            }
        }
    })
}

/// Stages each secret whose value is in a file of the app's directory, as `fly launch`
/// sets `RAILS_MASTER_KEY`: the release the deploy starts applies them. A secret the app
/// has already is left as it is.
fn stage_secret_files(
    global: &GlobalArgs,
    app: &str,
    dir: &Path,
    files: &std::collections::BTreeMap<String, String>,
) -> Result<(), Error> {
    let out = global.output();
    let api = super::remote::client(global)?;
    let mut set = std::collections::BTreeMap::new();
    for (name, file) in files {
        let path = dir.join(file);
        let value = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        let secret = crate::secret::Secret::from(value.trim().to_string());
        set.insert(name.clone(), crate::api::types::SecretValue(secret));
    }
    super::remote::block_on(async {
        let present: Vec<String> = (api.secrets(app).await?)
            .into_iter()
            .map(|s| s.name)
            .collect();
        set.retain(|name, _| !present.contains(name));
        if set.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = set.keys().cloned().collect();
        let request = crate::api::types::SecretsRequest {
            set,
            unset: Vec::new(),
            stage: true,
        };
        api.update_secrets(app, &request).await?;
        if !out.json {
            out.note(&format!(
                "staged {} from {} as secret{} (the release applies it)",
                names.join(", "),
                names
                    .iter()
                    .map(|n| files[n].as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if names.len() == 1 { "" } else { "s" }
            ));
        }
        Ok(())
    })
}

fn ask_name(default: &str) -> Result<String, Error> {
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "App name [{default}]: ");
    let _ = stderr.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::io("read", Path::new("<stdin>"), e))?;
    let answer = line.trim();
    Ok(if answer.is_empty() {
        default.to_string()
    } else {
        answer.to_string()
    })
}
