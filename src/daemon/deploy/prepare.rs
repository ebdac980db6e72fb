//! A release's steps before any machine changes: unpack its bundle and run `[build]
//! command` (or reuse an earlier release's built files, see `release_files.rs`), read the
//! Dockerfile a group without a command of its own runs, put the tools the build installed
//! on the search path, run the release command. A failure here leaves the running release
//! as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::in_flight::Cancel;
use super::rollout::Failure;
use super::Deployer;
use crate::bundle::{self, Digest};
use crate::config::{plan, AppConfig};
use crate::daemon::runtime::logs::LogLine;
use crate::daemon::runtime::oneoff;
use crate::daemon::store::releases;

/// `[build] command` may take a while (dependency installs).
const BUILD_TIMEOUT: Duration = Duration::from_secs(1800);
/// Most lines of a build's or release command's output shown as deploy progress: enough
/// for a migration's steps, not a flood of events for a verbose install.
const SHOWN_LINES: usize = 200;
/// Fly's default for the release command.
const DEFAULT_RELEASE_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// A release ready to roll out.
pub(super) struct Prepared {
    /// Where its bundle was unpacked.
    pub dir: PathBuf,
    /// Where its machines run: `dir`, or the Dockerfile's working tree.
    pub workdir: PathBuf,
    /// The Dockerfile's command, for groups without one of their own.
    pub fallback: Option<String>,
    /// The Dockerfile's `ENV` and the release's tool directories on `PATH`, under
    /// fly.toml's `[env]`.
    pub image_env: BTreeMap<String, String>,
    /// `[processes]` commands as they run in the Dockerfile's image (after its
    /// `ENTRYPOINT`), by group; empty without a Dockerfile.
    pub processes: BTreeMap<String, String>,
    /// `console_command` with its paths mapped onto the Dockerfile's tree, when both are.
    pub console_command: Option<String>,
}

/// What a release's Dockerfile makes of it, when it has one.
struct Image {
    /// Where its machines run: the release's directory, or the working tree.
    workdir: PathBuf,
    /// `CMD`/`ENTRYPOINT`, for groups without a command.
    fallback: Option<String>,
    /// `ENV`.
    env: BTreeMap<String, String>,
    /// `[processes]` commands as they run in the image.
    processes: BTreeMap<String, String>,
    /// `console_command` on the tree.
    console_command: Option<String>,
}

impl Image {
    /// No Dockerfile: machines run their own commands in the release's directory.
    fn none(dir: &Path) -> Self {
        Image {
            workdir: dir.to_path_buf(),
            fallback: None,
            env: BTreeMap::new(),
            processes: BTreeMap::new(),
            console_command: None,
        }
    }
}

/// Where a release's files come from.
pub(super) struct Files {
    /// Its bundle.
    pub bundle: Digest,
    /// The earlier release whose built files it runs from; `None`: unpacked and built.
    pub reuse: Option<u64>,
}

/// A one-off command of a release and where it runs.
struct OneOff<'a> {
    command: &'a str,
    dir: &'a Path,
    env: &'a BTreeMap<String, String>,
    timeout: Duration,
    /// The source its whole output joins the app's log as, when it does.
    log_as: Option<String>,
    /// The release's cancel, which stops it.
    cancel: Cancel,
}

impl Deployer {
    /// Unpacks the release and builds it, or takes the built files of the release it
    /// reuses, then runs its release command.
    pub(super) async fn prepare(
        &self,
        app: &str,
        version: u64,
        cfg: &AppConfig,
        files: &Files,
        cancel: &Cancel,
    ) -> Result<Prepared, Failure> {
        let env = release_env(cfg, app, version);
        let dir = match files.reuse {
            Some(files) => self.reuse(app, version, files).await,
            None => None,
        };
        let dir = match dir {
            Some(dir) => dir,
            None => {
                self.unpack_and_build(app, version, cfg, &files.bundle, &env, cancel)
                    .await?
            }
        };
        self.finish_preparing(app, version, cfg, dir, env, cancel)
            .await
    }

    /// The directory of release `files`, whose built files release `version` runs from;
    /// `None` (recorded) when it is gone after all, and the release builds its own.
    async fn reuse(&self, app: &str, version: u64, files: u64) -> Option<PathBuf> {
        let dir = self.release_dir(app, files);
        if tokio::fs::try_exists(&dir).await.unwrap_or(false) {
            let detail = format!(
                "reusing the files built for v{files} (same bundle, [build] and [env]; \
                 `lakefly deploy --rebuild` builds again)"
            );
            self.progress(app, version, "unpack", detail).await;
            return Some(dir);
        }
        let a = app.to_string();
        let recorded = (self.store)
            .run(move |conn, path| releases::set_files_of(conn, path, &a, version, None))
            .await;
        if let Err(e) = recorded {
            tracing::warn!(app, version, error = %e, "could not record that a release builds its own files");
        }
        None
    }

    /// Unpacks the release's bundle into its own directory and runs `[build] command` there.
    async fn unpack_and_build(
        &self,
        app: &str,
        version: u64,
        cfg: &AppConfig,
        digest: &Digest,
        env: &BTreeMap<String, String>,
        cancel: &Cancel,
    ) -> Result<PathBuf, Failure> {
        let fail = Failure::because;
        let dir = self.release_dir(app, version);
        let (source, dest) = (self.bundles.path(digest), dir.clone());
        let limits = self.bundles.limits;
        let unpacked = tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(&dest);
            let file = std::fs::File::open(&source).map_err(bundle::BundleError::Unreadable)?;
            let unpacked = bundle::unpack(std::io::BufReader::new(file), &dest, limits);
            // A tree unpacked in part is of no use, and what it holds may be what filled
            // the disk the release's end must then be recorded on.
            if unpacked.is_err() {
                let _ = std::fs::remove_dir_all(&dest);
            }
            unpacked
        })
        .await
        .map_err(|e| fail(format!("unpacking failed: {e}")))?
        .map_err(|e| fail(format!("unpacking failed: {e}")))?;
        self.progress(
            app,
            version,
            "unpack",
            format!("{} entries", unpacked.entries),
        )
        .await;

        if let Some(build) = cfg.build.as_ref().and_then(|b| b.command.as_deref()) {
            self.progress(app, version, "build", format!("running `{build}`"))
                .await;
            let no_secrets = BTreeMap::new();
            // The host's proxy, for fetching dependencies; `[env]` may override it.
            let mut build_env = crate::daemon::runtime::process::host_proxy();
            build_env.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
            let run = OneOff {
                command: build,
                dir: &dir,
                env: &build_env,
                timeout: BUILD_TIMEOUT,
                // Not logged: `npm ci`, `pip install` would crowd the app's own lines out.
                log_as: None,
                cancel: cancel.clone(),
            };
            let outcome = self
                .run_shown(app, version, "build", run, &no_secrets)
                .await;
            if !outcome.success {
                // No machine runs from a tree whose build failed; what the build wrote
                // may be what filled the disk.
                if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
                    tracing::warn!(app, version, error = %e, dir = %dir.display(), "could not remove a failed build's tree");
                }
                return Err(command_failure("[build] command", &outcome));
            }
        }
        Ok(dir)
    }

    /// Reads the Dockerfile, puts the release's tools on the search path and runs the
    /// release command.
    async fn finish_preparing(
        &self,
        app: &str,
        version: u64,
        cfg: &AppConfig,
        dir: PathBuf,
        env: BTreeMap<String, String>,
        cancel: &Cancel,
    ) -> Result<Prepared, Failure> {
        let fail = Failure::because;
        let Image {
            workdir,
            fallback,
            env: mut image_env,
            processes,
            console_command,
        } = self.read_dockerfile(app, version, cfg, &dir).await?;
        super::release_bins::add_to_search_path(&dir, &mut image_env);
        if let Some(release) = cfg
            .deploy
            .as_ref()
            .and_then(|d| d.release_command.as_deref())
        {
            self.progress(
                app,
                version,
                "release_command",
                format!("running `{release}`"),
            )
            .await;
            // Zero (refused in fly.toml; an API client may send it) is unset, as for
            // wait_timeout: no command finishes within none.
            let timeout = cfg
                .deploy
                .as_ref()
                .and_then(|d| d.release_command_timeout)
                .map(|d| d.to_std())
                .filter(|d| !d.is_zero())
                .unwrap_or(DEFAULT_RELEASE_COMMAND_TIMEOUT);
            // As on Fly, with the app's secrets (a migration needs `DATABASE_URL`); they
            // win over `[env]` as for machines.
            let secrets = (self.secrets.env_of(app, Some(version)).await)
                .map_err(|e| fail(format!("release_command: {e}")))?;
            let mut env = env;
            // Secrets cannot take lakefly's own names (LAKEFLY_*, FLY_*), so those stay.
            env.extend(secrets.clone());
            for (k, v) in &image_env {
                env.entry(k.clone()).or_insert_with(|| v.clone());
            }
            let run = OneOff {
                command: release,
                dir: &workdir,
                env: &env,
                timeout,
                // Logged whole, as a Fly release machine's output is.
                log_as: Some(format!("release_command:v{version}")),
                cancel: cancel.clone(),
            };
            let outcome = (self.run_shown(app, version, "release_command", run, &secrets)).await;
            if !outcome.success {
                return Err(command_failure("release_command", &outcome));
            }
        }
        Ok(Prepared {
            dir,
            workdir,
            fallback,
            image_env,
            processes,
            console_command,
        })
    }

    /// Runs a release's one-off command (`[build] command`, the release command), each
    /// line of its output shown as a progress line of `step` as it is written (the first
    /// [`SHOWN_LINES`]), the values of `secrets` it was given hidden there, in the last
    /// lines its outcome keeps and, when it has a `log_as`, in the app's log.
    async fn run_shown(
        &self,
        app: &str,
        version: u64,
        step: &'static str,
        run: OneOff<'_>,
        secrets: &BTreeMap<String, String>,
    ) -> oneoff::Outcome {
        let (live, mut lines) = tokio::sync::mpsc::channel::<oneoff::LiveLine>(64);
        let log_as = run.log_as;
        let shower = {
            let (this, app) = (self.clone(), Arc::<str>::from(app));
            let log_as = log_as.map(Arc::<str>::from);
            let redactor = crate::secret::Redactor::new(secrets.values().map(String::as_str));
            tokio::spawn(async move {
                let mut shown = 0;
                while let Some(oneoff::LiveLine { stream, line }) = lines.recv().await {
                    if let Some(source) = &log_as {
                        let logged = LogLine {
                            time: crate::daemon::events::now(),
                            app: app.clone(),
                            machine: source.clone(),
                            stream,
                            line: redactor.redact(&line).into_owned(),
                        };
                        this.runtime.logs().push(logged).await;
                    }
                    if line.trim().is_empty() {
                        continue;
                    }
                    shown += 1;
                    let detail = match shown {
                        n if n <= SHOWN_LINES => redactor.redact(&line).into_owned(),
                        n if n == SHOWN_LINES + 1 => {
                            "(more output not shown here; a failure shows its last lines)".into()
                        }
                        _ => continue,
                    };
                    this.progress(&app, version, step, detail).await;
                }
            })
        };
        let pids = self.runtime.oneoff_pids();
        let mut cancel = run.cancel;
        let (command, dir, env, timeout) = (run.command, run.dir, run.env, run.timeout);
        let stop = cancel.requested();
        let mut outcome =
            oneoff::run_until(pids, command, dir, env, timeout, Some(live), stop).await;
        // Every line shown before the outcome is.
        let _ = shower.await;
        outcome.redact(secrets);
        outcome
    }

    /// Reads `[build] dockerfile` when the config names one or some group has no command
    /// of its own: builds the working tree from its final stage and says how machines run
    /// in it. Otherwise [`Image::none`].
    async fn read_dockerfile(
        &self,
        app: &str,
        version: u64,
        cfg: &AppConfig,
        dir: &Path,
    ) -> Result<Image, Failure> {
        let fail = Failure::because;
        // As on Fly, a Dockerfile the config names is the image every group runs in, with
        // or without commands of their own (the client names the one beside fly.toml when
        // nothing else says how to build). When every group has a command, a named file
        // that is not there is said and passed over, as before Dockerfiles were read for
        // them, so such an app deploys as it did.
        let named = cfg.build.as_ref().and_then(|b| b.dockerfile.as_deref());
        let without_command = cfg
            .group_names()
            .into_iter()
            .find(|g| plan::command_for(cfg, g).is_none());
        if without_command.is_none() {
            match named {
                Some(name) if dir.join(name).is_file() => {}
                Some(name) => {
                    let note = format!("{name} is not in the app's files; every group has a command in [processes], so they run in the release's directory");
                    self.progress(app, version, "dockerfile", note).await;
                    return Ok(Image::none(dir));
                }
                None => return Ok(Image::none(dir)),
            }
        }
        let name = cfg
            .build
            .as_ref()
            .and_then(|b| b.dockerfile.clone())
            .unwrap_or_else(|| crate::dockerfile::DEFAULT_DOCKERFILE.into());
        let text = tokio::fs::read_to_string(dir.join(&name))
            .await
            .map_err(|e| fail(format!("cannot read {name}: {e}")))?;
        let stage = {
            // `$PATH` and the like mean the base image's; on the host, what machines inherit.
            let host = |var: &str| {
                crate::daemon::runtime::process::PASS_THROUGH
                    .contains(&var)
                    .then(|| std::env::var(var).ok())
                    .flatten()
            };
            let build = cfg.build.clone().unwrap_or_default();
            let options = crate::dockerfile::BuildOptions {
                host: &host,
                args: &build.args,
                target: build.build_target.as_deref(),
            };
            crate::dockerfile::parse(&text, &options).map_err(|e| fail(format!("{name}: {e}")))?
        };
        for skipped in &stage.skipped {
            self.progress(
                app,
                version,
                "dockerfile",
                format!("not applied on the host: {skipped}"),
            )
            .await;
        }
        if (stage.skipped.iter()).any(|s| matches!(s, crate::dockerfile::Skipped::Run { .. })) {
            let hint = "RUN steps have no image to run in: put what they do in [build] command, \
                        which runs in the release's directory before its machines start";
            self.progress(app, version, "dockerfile", hint.to_string())
                .await;
        }
        if let Some((line, user)) = &stage.user {
            let own = tokio::task::spawn_blocking(own_user)
                .await
                .unwrap_or_default();
            let note = format!(
                "not applied on the host: line {line}: USER {user}; machines run as lakeflyd's own user{own}"
            );
            self.progress(app, version, "dockerfile", note).await;
        }
        let tree = self.releases_dir.join(app).join(format!("{version}-tree"));
        let (context, target) = (dir.to_path_buf(), tree.clone());
        let workdir = stage.workdir.clone();
        // An empty entry runs the image's own CMD, not an empty one.
        let processes: BTreeMap<String, String> = (cfg.processes.keys())
            .filter_map(|group| Some((group.clone(), plan::processes_entry(cfg, group)?.into())))
            .collect();
        let mut built = tokio::task::spawn_blocking(move || {
            crate::dockerfile::build_tree(&stage, &context, &target, &processes)
        })
        .await
        .map_err(|e| fail(format!("building the working tree failed: {e}")))?
        .map_err(|e| fail(format!("{name}: {e}")))?;
        if let (Some(group), None) = (without_command, &built.command) {
            return Err(fail(format!(
                "{name} has no CMD or ENTRYPOINT, and [processes] names no command for {group}"
            )));
        }
        for not_applied in std::mem::take(&mut built.not_applied) {
            self.progress(
                app,
                version,
                "dockerfile",
                format!("not applied on the host: {not_applied}"),
            )
            .await;
        }
        let runs = match (without_command, &built.command) {
            (Some(_), Some(command)) => format!("; runs `{command}`"),
            _ => String::new(),
        };
        self.progress(
            app,
            version,
            "dockerfile",
            format!("WORKDIR {workdir} is {}{runs}", tree.display()),
        )
        .await;
        for (group, command) in &built.processes {
            self.progress(
                app,
                version,
                "dockerfile",
                format!("{group} runs `{command}`"),
            )
            .await;
        }
        let console_command = cfg.console_command.as_deref().map(|c| built.on_tree(c));
        Ok(Image {
            workdir: tree,
            fallback: built.command,
            env: built.env,
            processes: built.processes,
            console_command,
        })
    }
}

/// `[env]` and what lakefly names the release by, for `[build] command` (which gets no
/// secrets: what it makes stays on disk) and, with the secrets, the release command.
fn release_env(cfg: &AppConfig, app: &str, version: u64) -> BTreeMap<String, String> {
    let mut env = cfg.env.clone();
    env.extend(lakefly_vars(app, version));
    env
}

/// The variables that name the app and release to its commands.
fn lakefly_vars(app: &str, version: u64) -> [(String, String); 3] {
    [
        ("LAKEFLY_APP_NAME".into(), app.to_string()),
        ("LAKEFLY_RELEASE_VERSION".into(), version.to_string()),
        ("FLY_APP_NAME".into(), app.to_string()),
    ]
}

/// The user lakeflyd (and so every machine) runs as, for a note: ` (alice, uid 1000)`.
fn own_user() -> String {
    let uid = nix::unistd::geteuid();
    match nix::unistd::User::from_uid(uid).ok().flatten() {
        Some(user) => format!(" ({}, uid {uid})", user.name),
        None => format!(" (uid {uid})"),
    }
}

fn command_failure(what: &str, outcome: &oneoff::Outcome) -> Failure {
    let failure = match &outcome.stopped {
        Some(why) => Failure::because(format!("cancelled while its {what} ran: {why}")),
        None => Failure::because(format!("{what} {}", outcome.summary)),
    };
    Failure {
        check_output: (!outcome.tail.is_empty()).then(|| outcome.tail.join("\n")),
        ..failure
    }
}
