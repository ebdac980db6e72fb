//! `lakefly deploy`: validate, pack, upload what the daemon lacks, start the release, and
//! follow it live until it is complete (exit 0) or failed (exit 7, previous release kept).

use std::path::{Path, PathBuf};

use clap::Args;

use super::release_follow::{detached, subscribe, watch};
use super::remote::{block_on, client};
use super::GlobalArgs;
use crate::api::client::ClientError;
use crate::api::types::DeployRequest;
use crate::config::model::Strategy;
use crate::config::units::Duration;
use crate::config::{plan, AppConfig};
use crate::dockerfile::DEFAULT_DOCKERFILE;
use crate::error::Error;
use crate::output::progress::Progress;
use crate::output::Output;

/// Deploy the app in the config's directory.
#[derive(Debug, Default, Args)]
#[command(
    after_help = "The app directory is the one holding the config file; .gitignore and\n.lakeflyignore (in any directory) and .dockerignore (at the root, or [build] ignorefile,\nread as Docker reads it) say what stays out of the bundle. An unchanged directory uploads\nnothing, and files built before (same files, [build] and [env]) are not built\nagain unless --rebuild (flyctl's --no-cache). flyctl's flags for what one host has\nnot (--remote-only, --local-only, --depot and Fly's other builders, --dns-checks,\n--no-public-ips, --flycast, --lease-timeout, --primary-region, --label, --deploy-retries,\n--max-concurrent, --volume-initial-size) change nothing, as a note says; --yes, --now and\n--ha=false are accepted; --regions, --process-groups, --update-only, --only-machines,\n--image, --build-only, --push, --signal, --build-secret and --file-* are refused with what\nto do instead. --ignorefile names the Docker ignore file, as flyctl's.\n\nExit codes: 0 complete, 7 failed (the previous release keeps running), 3 invalid config,\n8 daemon unreachable.\n\nExamples:\n  lakefly deploy\n  lakefly deploy services/api\n  lakefly deploy -c examples/hello/fly.toml --strategy bluegreen\n  lakefly deploy --detach --json"
)]
pub struct DeployArgs {
    /// The directory to deploy from, as flyctl's `deploy [WORKING_DIRECTORY]`: the command
    /// runs there, so `-c` and `--dockerfile` are read from it.
    #[arg(value_name = "WORKING_DIRECTORY")]
    pub working_directory: Option<PathBuf>,
    /// Rollout strategy (overrides `[deploy] strategy`).
    #[arg(long, value_parser = parse_strategy, value_name = "rolling|immediate|canary|bluegreen")]
    pub strategy: Option<Strategy>,
    /// How long a new machine has to become healthy (overrides `[deploy] wait_timeout`).
    #[arg(long, value_name = "DURATION", value_parser = above_zero("2m", "wait_timeout"))]
    pub wait_timeout: Option<Duration>,
    /// Return once the release has started, without following it.
    #[arg(long)]
    pub detach: bool,
    /// Run `[build] command` again even when an earlier release of the same files,
    /// `[build]` and `[env]` was built (e.g. to pick up newer unpinned dependencies).
    #[arg(long, alias = "no-cache")]
    pub rebuild: bool,
    /// Set an environment variable for this release, over `[env]` (repeatable; the file
    /// is not changed).
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = parse_variable)]
    pub env: Vec<(String, String)>,
    /// Give a Dockerfile `ARG` a value for this release, over `[build.args]` (repeatable).
    #[arg(long = "build-arg", value_name = "NAME=VALUE", value_parser = parse_variable)]
    pub build_args: Vec<(String, String)>,
    /// Watch each new machine for lakeflyd's `--smoke-time` (10 s by default) from its
    /// start, checks passed, before old machines stop: one that crashes meanwhile fails
    /// the release. `--smoke-checks=false` counts it once its checks pass, as flyctl's.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub smoke_checks: Option<bool>,
    /// How long `release_command` may run (overrides `[deploy]
    /// release_command_timeout`).
    #[arg(long, value_name = "DURATION", value_parser = above_zero("10m", "release_command_timeout"))]
    pub release_command_timeout: Option<Duration>,
    /// Do not run `[deploy] release_command` for this release (a fix that must go out
    /// while the migration is what fails).
    #[arg(long)]
    pub skip_release_command: bool,
    /// A rolling deploy's batch: below 1 a fraction of a group's machines, else a count
    /// (overrides `[deploy] max_unavailable`).
    #[arg(long, value_name = "N", value_parser = parse_max_unavailable)]
    pub max_unavailable: Option<f64>,
    /// The size of every group's machines for this release (`shared-cpu-2x`: its CPUs and
    /// memory), over fly.toml's `[[vm]]`, as flyctl's.
    #[arg(long, value_name = "SIZE", value_parser = super::scale::size_name)]
    pub vm_size: Option<String>,
    /// Memory of every group's machines for this release, over fly.toml's: MB (1024) or a
    /// size with its unit (1gb).
    #[arg(long, value_name = "MB", value_parser = super::scale::memory_mb)]
    pub vm_memory: Option<u64>,
    /// CPUs of every group's machines for this release, over fly.toml's.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub vm_cpus: Option<u32>,
    /// Read this Dockerfile for this release, over `[build] dockerfile` (a path from the
    /// current directory, inside the app directory: `Dockerfile.production`), as flyctl's.
    #[arg(long, value_name = "PATH")]
    pub dockerfile: Option<PathBuf>,
    /// Read this Docker ignore file for this release, over `[build] ignorefile` and the
    /// app directory's `.dockerignore` (a path from the current directory), as flyctl's.
    #[arg(long, value_name = "PATH")]
    pub ignorefile: Option<PathBuf>,
    /// The Dockerfile stage that runs for this release, over `[build] build-target`.
    #[arg(long, value_name = "STAGE")]
    pub build_target: Option<String>,
    /// flyctl's flags with no work here (noted), or that would change a deploy (refused,
    /// with what to do instead).
    #[command(flatten)]
    pub flyctl: super::flyctl_flags::DeployFlags,
}

/// `NAME=VALUE` with a name a shell could export; the value may be empty or hold `=`.
fn parse_variable(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once('=') else {
        return Err(format!("{s:?} has no `=`: write NAME=VALUE"));
    };
    if !crate::config::names::is_variable_name(name) {
        return Err(format!(
            "{name:?} is not a variable name: letters, digits and _, not starting with a digit"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

fn parse_strategy(s: &str) -> Result<Strategy, String> {
    Strategy::ALL
        .iter()
        .find(|(name, _)| *name == s)
        .map(|(_, strategy)| *strategy)
        .ok_or_else(|| "use rolling, immediate, canary or bluegreen".to_string())
}

/// `--max-unavailable`: above zero, as fly.toml's: a fraction below 1, else a count.
fn parse_max_unavailable(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(n),
        _ => {
            Err("give a fraction above 0 (0.5: half the machines at a time) or a count (2)".into())
        }
    }
}

/// A timeout flag's parser: a duration above zero (nothing finishes within none), or whole
/// seconds as flyctl takes them; `example` and `key` go into the error.
fn above_zero(
    example: &'static str,
    key: &'static str,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s| {
        let timeout = Duration::parse_flag(s).map_err(|e| format!("{e}"))?;
        if timeout.as_millis() == 0 {
            return Err(format!(
                "must be above zero, e.g. {example} (default: [deploy] {key}, else 5m)"
            ));
        }
        Ok(timeout)
    }
}

/// Runs a deploy.
pub fn run(global: &GlobalArgs, args: DeployArgs) -> Result<(), Error> {
    let out = global.output();
    if let Some(dir) = &args.working_directory {
        std::env::set_current_dir(dir).map_err(|e| Error::BadFlag {
            flag: "WORKING_DIRECTORY",
            message: format!("{}: {e}", dir.display()),
            hint: "give the app's directory, the one that holds its fly.toml".into(),
        })?;
    }
    let path = &global.config_path();
    let (mut config, report) = crate::config::load(path)?.into_valid()?;
    if report.warnings().next().is_some() && !out.json {
        out.note(crate::output::error::render_report(&report).trim_end());
    }
    let app = global
        .app
        .clone()
        .or_else(|| config.app.clone())
        .ok_or_else(|| Error::NoApp {
            config: Some(path.to_path_buf()),
        })?;
    let dir = crate::config::app_dir(path).to_path_buf();
    if let Some(dockerfile) = &args.dockerfile {
        let within = within_app_dir(dockerfile, &dir)?;
        config.build.get_or_insert_with(Default::default).dockerfile = Some(within);
    }
    if let Some(stage) = &args.build_target {
        config
            .build
            .get_or_insert_with(Default::default)
            .build_target = Some(stage.clone());
    }
    let mut config = runnable(config, &dir, path)?;
    overrides(&mut config, &args, &out);
    args.flyctl.note(&out);
    let api = client(global)?;
    if args.vm_size.is_some() || args.vm_memory.is_some() || args.vm_cpus.is_some() {
        if config.vm.is_empty() {
            // What the app runs with now is what the flags change, as a deploy of a
            // fly.toml without [[vm]] keeps it (`scale vm`, an earlier --vm-size).
            config.vm = block_on(current_sizes(&api, &app))?;
        }
        resize(&mut config, &args);
    }

    // Pack into a temporary file beside nothing the app sees.
    let bundle_file = tempfile::NamedTempFile::new()
        .map_err(|e| Error::io("create a temporary file in", &std::env::temp_dir(), e))?;
    // The Dockerfile goes even if `.dockerignore` lists it (flyctl's for Node apps does).
    let build = config.build.as_ref();
    let dockerfile = build.and_then(|b| b.dockerfile.as_deref());
    let always: Vec<&Path> = dockerfile.map(Path::new).into_iter().collect();
    let ignorefile = args.ignorefile.as_deref().map(ignore_file).transpose()?;
    let selection = crate::bundle::Selection {
        // Absolute, a file named by the flag is read wherever it is.
        docker_ignore: ignorefile.as_deref().unwrap_or_else(|| {
            Path::new(
                build
                    .and_then(|b| b.ignorefile.as_deref())
                    .unwrap_or(crate::bundle::DOCKER_IGNORE),
            )
        }),
        always: &always,
    };
    let packed =
        crate::bundle::pack(&dir, selection, bundle_file.as_file()).map_err(|e| match e {
            crate::bundle::PackError::Walk { dir, source } => {
                Error::io("read", &dir, std::io::Error::other(source))
            }
            crate::bundle::PackError::Io { path, source } => Error::io("pack", &path, source),
            crate::bundle::PackError::LinkOutside { dir, link, target } => Error::LinkOutside {
                // Absolute: `.` says nothing about where the link is.
                dir: std::fs::canonicalize(&dir).unwrap_or(dir),
                link,
                target,
            },
        })?;
    let digest = packed.digest.to_string();
    if !packed.left_out.is_empty() {
        // On stderr even with --json: a file the app may expect is not in its release.
        let names: Vec<String> = packed
            .left_out
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        out.note(&format!(
            "warning: left out {} (named pipes, sockets and devices cannot be uploaded; \
             list them in .lakeflyignore to silence this)",
            names.join(", ")
        ));
    }
    if !out.json {
        out.note(&format!(
            "==> packed {} entries of {} ({} KiB), sha256 {}",
            packed.entries,
            dir.display(),
            packed.size.div_ceil(1024),
            &digest[..12]
        ));
    }
    block_on(async move {
        // Asked first: a bundle larger than the daemon takes is refused before the app is
        // created or a byte is sent (refused mid-upload, it would read as a broken pipe).
        let head = api.bundle_head(&digest).await?;
        if let Some(max) = head
            .max_bytes
            .filter(|max| !head.stored && packed.size > *max)
        {
            return Err(too_large(&dir, packed.size, max, api.base()));
        }
        if api.app(&app).await?.is_none() {
            api.create_app(&app).await?;
            if !out.json {
                out.note(&format!("==> created app {app}"));
            }
            super::volumes::note_leftovers(&api, &app, out).await;
        }
        let uploaded = if head.stored {
            if !out.json {
                out.note("==> the daemon already has this bundle; nothing to upload");
            }
            0
        } else {
            let bar = Progress::new(out).bytes(packed.size);
            let counter = bar.clone();
            api.upload_bundle(&digest, bundle_file.path(), move |n| {
                if let Some(bar) = &counter {
                    bar.inc(n);
                }
            })
            .await?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if !out.json {
                out.note(&format!(
                    "==> uploaded the bundle ({} KiB)",
                    packed.size.div_ceil(1024)
                ));
            }
            packed.size
        };
        if out.json {
            out.ndjson(&serde_json::json!({
                "app": app,
                "bundle": digest,
                "bundle_bytes": packed.size,
                "uploaded_bytes": uploaded,
            }))?;
        }
        if config.env.contains_key("PORT") && !out.json {
            out.note("    note: [env] sets PORT; each machine gets its own $PORT from the daemon, which wins");
        }
        // Follow before starting, so no event of the release is missed.
        let stream = if args.detach {
            None
        } else {
            Some(subscribe(&api, &app).await?)
        };
        let request = DeployRequest {
            config,
            bundle: digest,
            strategy: args.strategy,
            wait_timeout: args.wait_timeout,
            description: None,
            rebuild: args.rebuild,
            skip_smoke_checks: args.smoke_checks == Some(false),
        };
        let version = api.deploy(&app, &request).await?;
        match stream {
            Some(stream) => watch(out, &app, version, stream).await?,
            None => return detached(out, &app, version),
        }
        if !out.json {
            // Read from the routes the edge serves now, so only what answers is shown.
            let urls = api.status(&app).await.map(|s| s.urls).unwrap_or_default();
            for url in urls {
                out.note(&format!("    visit {url}"));
            }
        }
        Ok(())
    })
}

/// The daemon's refusal of a bundle over its `--bundle-max-bytes`, said before sending it.
fn too_large(dir: &Path, size: u64, max: u64, daemon: &str) -> Error {
    Error::Api(ClientError::Api {
        status: 413,
        error: crate::api::types::ApiError {
            error: format!(
                "the bundle packed from {} is {} KiB, more than the {} KiB the daemon at {daemon} takes",
                dir.display(),
                size.div_ceil(1024),
                max / 1024
            ),
            code: crate::api::codes::BUNDLE_TOO_LARGE.into(),
            hint: Some(format!(
                "leave build output, dependencies and data out with .lakeflyignore (or \
                 .dockerignore), or start lakeflyd with a larger --bundle-max-bytes (now {max})"
            )),
        },
    })
}

/// The file `flag` names by its `path` from the current directory, made absolute; one
/// that is not there is the flag's error.
fn flag_file(flag: &'static str, path: &Path, what: &str) -> Result<PathBuf, Error> {
    std::fs::canonicalize(path).map_err(|e| Error::BadFlag {
        flag,
        message: format!("{}: {e}", path.display()),
        hint: format!("give the {what}'s path from the current directory"),
    })
}

/// `--ignorefile`'s file, which must be one: named on purpose, its absence would pack
/// what it was to leave out.
fn ignore_file(path: &Path) -> Result<PathBuf, Error> {
    let flag = "--ignorefile";
    let found = flag_file(flag, path, "ignore file")?;
    if !found.is_file() {
        return Err(Error::BadFlag {
            flag,
            message: format!("{} is not a file", path.display()),
            hint: "give the ignore file's path (.dockerignore's form), not a directory's".into(),
        });
    }
    Ok(found)
}

/// `--dockerfile`'s file as `[build] dockerfile` names one: its path within the app
/// directory `dir`, the only files a release has.
fn within_app_dir(dockerfile: &Path, dir: &Path) -> Result<String, Error> {
    let flag = "--dockerfile";
    let found = flag_file(flag, dockerfile, "Dockerfile")?;
    let app_dir = std::fs::canonicalize(dir).map_err(|e| Error::io("read", dir, e))?;
    match found.strip_prefix(&app_dir) {
        Ok(within) if found.is_file() => Ok(within.to_string_lossy().into_owned()),
        Ok(_) => Err(Error::BadFlag {
            flag,
            message: format!("{} is not a file", dockerfile.display()),
            hint: "give the Dockerfile's path, not its directory's".into(),
        }),
        Err(_) => Err(Error::BadFlag {
            flag,
            message: format!(
                "{} is outside the app directory {}",
                dockerfile.display(),
                app_dir.display()
            ),
            hint: "a release holds only the app directory's files: put the Dockerfile there".into(),
        }),
    }
}

/// `--env` over `[env]` and `--build-arg` over `[build.args]`, for this release only.
fn overrides(config: &mut AppConfig, args: &DeployArgs, out: &Output) {
    config.env.extend(args.env.iter().cloned());
    if args.release_command_timeout.is_some() || args.max_unavailable.is_some() {
        let deploy = config.deploy.get_or_insert_with(Default::default);
        if let Some(timeout) = args.release_command_timeout {
            deploy.release_command_timeout = Some(timeout);
        }
        if let Some(n) = args.max_unavailable {
            deploy.max_unavailable = Some(n);
        }
    }
    if args.skip_release_command {
        let skipped = config
            .deploy
            .as_mut()
            .and_then(|d| d.release_command.take());
        if let (Some(command), false) = (skipped, out.json) {
            out.note(&format!(
                "    note: not running release_command `{command}` for this release"
            ));
        }
    }
    if args.build_args.is_empty() {
        return;
    }
    let build = config.build.get_or_insert_with(Default::default);
    if build.dockerfile.is_none() && !out.json {
        out.note("    note: --build-arg values go to a Dockerfile's ARGs; this app is not built from one");
    }
    build.args.extend(args.build_args.iter().cloned());
}

/// The `[[vm]]` sections of `app`'s current release; none for an app without one (or
/// none yet).
async fn current_sizes(
    api: &crate::api::client::Client,
    app: &str,
) -> Result<Vec<crate::config::model::Vm>, Error> {
    let Some(app) = api.app(app).await? else {
        return Ok(Vec::new());
    };
    let Some(version) = app.current_release else {
        return Ok(Vec::new());
    };
    Ok(api.release_config(&app.name, version).await?.vm)
}

/// `--vm-size`, `--vm-memory`, `--vm-cpus`: every `[[vm]]` takes what is given; without one,
/// one for every group.
fn resize(config: &mut AppConfig, args: &DeployArgs) {
    if config.vm.is_empty() {
        config.vm.push(Default::default());
    }
    for vm in &mut config.vm {
        if let Some(size) = &args.vm_size {
            vm.size = Some(size.clone());
        }
        vm.memory_mb = args.vm_memory.or(vm.memory_mb);
        vm.cpus = args.vm_cpus.or(vm.cpus);
    }
}

/// The config with what each process group runs settled (the `Dockerfile` beside it named
/// when nothing else says how to build, as flyctl builds it), or why one has nothing to
/// run, found before the app is created or anything uploaded.
fn runnable(mut config: AppConfig, dir: &Path, path: &Path) -> Result<AppConfig, Error> {
    match plan::runnable(&config, dir) {
        plan::Runnable::AsConfigured => Ok(config),
        plan::Runnable::BesideConfig => {
            config.build.get_or_insert_with(Default::default).dockerfile =
                Some(DEFAULT_DOCKERFILE.to_string());
            Ok(config)
        }
        plan::Runnable::Nothing { group, why } => Err(Error::NothingToRun {
            config: path.to_path_buf(),
            group,
            why,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_durations_or_seconds_and_never_zero() {
        let parse = above_zero("2m", "wait_timeout");
        assert_eq!(parse("300").unwrap(), Duration::from_millis(300_000));
        assert_eq!(parse("5m0s").unwrap(), Duration::from_millis(300_000));
        assert_eq!(parse("90s").unwrap(), Duration::from_millis(90_000));
        assert!(parse("0").unwrap_err().contains("must be above zero"));
        assert!(parse("0s").unwrap_err().contains("must be above zero"));
        assert!(parse("soon").is_err());
    }
}
