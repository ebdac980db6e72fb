//! The release pipeline: unpack the bundle, run `[build] command` and the release command
//! (`prepare.rs`), then roll the machines out (`rollout.rs`). Each step is a
//! `deploy.progress` event; the release ends (`finish.rs`) `complete` (it becomes current)
//! or `failed` (the previous one is kept).

mod again;
mod finish;
mod group_notes;
pub mod in_flight;
mod interrupted;
mod listen_check;
mod prepare;
mod release_bins;
mod release_files;
mod restart;
mod rollout;
mod scale;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

pub use self::interrupted::fail_interrupted;
use self::prepare::{Files, Prepared};
pub(crate) use self::release_bins::VENV;
use self::rollout::{Failure, Group, Rollout};
use super::bundles::BundleStore;
use super::events::{now, EventHub, Start};
use super::runtime::Runtime;
use super::store::releases::{self, NewRelease};
use super::store::{self, EventFilter, Store, StoreError};
use crate::api::types::{kind, DeployRequest, MachineSpec};
use crate::bundle::{self, Digest};
use crate::config::model::Strategy;
use crate::config::{plan, AppConfig};
use crate::daemon::events::NewEvent;
use crate::dockerfile::DEFAULT_DOCKERFILE;

/// Fly's defaults.
const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_MAX_UNAVAILABLE: f64 = 0.33;

/// Why a deploy was not started.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The bundle has not been uploaded.
    #[error("bundle {0} has not been uploaded")]
    BundleMissing(String),
    /// The digest is malformed.
    #[error("{0}")]
    BadDigest(#[from] bundle::BadDigest),
    /// The config does not say what a group runs.
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    /// The app has no release to scale yet.
    #[error("the app has no release yet; deploy it first")]
    NoRelease,
    /// A group the release does not have.
    #[error("process group {group:?} does not exist; the release has {valid}")]
    UnknownGroup {
        /// The group asked for.
        group: String,
        /// The release's groups.
        valid: String,
    },
    /// New machines did not become healthy.
    #[error("{0}")]
    ScaleFailed(String),
    /// A restarted machine did not become healthy again.
    #[error("{0}")]
    RestartFailed(String),
    /// No release to roll back to.
    #[error("{0}")]
    NoRollbackTarget(String),
    /// A rollback named a release that never ran whole (failed, or still rolling out).
    #[error(
        "release v{version} is {status}: a rollback to it would start what never ran whole again"
    )]
    NotRollbackable {
        /// The release named.
        version: u64,
        /// Its status.
        status: String,
    },
    /// A size change that names no group, for an app with several and none called `app`.
    #[error("the app has several process groups ({0}) and none is `app`: say which one")]
    GroupNeeded(String),
    /// A size preset that does not exist.
    #[error("{0:?} is not a machine size lakefly knows")]
    UnknownSize(String),
    /// A memory limit too small to start anything.
    #[error(transparent)]
    BadMemory(#[from] crate::api::scale::TooLittleMemory),
    /// Another release of the app is rolling out.
    #[error("release v{0} of this app is still rolling out")]
    Running(u64),
    /// The app is being destroyed.
    #[error("the app is being destroyed")]
    Destroying,
    /// A scale or restart of the app is still going.
    #[error("a scale or restart of the app is still going")]
    ChangeGoing,
    /// A release an earlier lakeflyd left rolling out, not undone yet (its start had no
    /// room to record that).
    #[error("release v{0} was cut short by a stop of an earlier lakeflyd and is not undone yet")]
    Interrupted(u64),
    /// A cancel for a release that is not rolling out.
    #[error("{}", in_flight::not_rolling(*.version, .status.as_deref()))]
    NotRolling {
        /// The release named, if one was.
        version: Option<u64>,
        /// Its status, when it exists.
        status: Option<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The release an app runs now.
pub(super) struct Current {
    /// Its config.
    pub config: AppConfig,
    /// Its bundle's digest.
    pub bundle: String,
    /// The version whose directory holds its files.
    pub files: u64,
}

/// How a release rolls out: its strategy, and how long it waits for each new machine.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// `[deploy] strategy`, or the one the request names.
    strategy: Strategy,
    /// How long a new machine has to pass its checks.
    wait_timeout: Duration,
    /// How long a new machine must have run before the old ones it replaces stop.
    smoke_time: Duration,
}

/// Starts and runs releases.
#[derive(Clone)]
pub struct Deployer {
    /// The state.
    pub store: Store,
    /// The event log.
    pub hub: EventHub,
    /// The machines.
    pub runtime: Runtime,
    /// The edge, told of each release's routes and ports.
    pub edge: super::edge::Edge,
    /// The scheduler, told of each complete release's `[[jobs]]`.
    pub jobs: super::jobs::Scheduler,
    /// Uploaded bundles.
    pub bundles: BundleStore,
    /// Secrets: staged ones are applied by the next release, and the release command
    /// runs with them.
    pub secrets: std::sync::Arc<super::secrets::SecretStore>,
    /// Where releases are unpacked: `<state>/releases/<app>/<version>`.
    pub releases_dir: PathBuf,
    /// The daemon's shutdown signal.
    pub shutdown: watch::Receiver<bool>,
    /// Releases finished, by outcome.
    pub finished: prometheus_client::metrics::family::Family<
        crate::daemon::metrics::DeployLabels,
        prometheus_client::metrics::counter::Counter,
    >,
    /// Held while release files are removed, and while a new release picks the built
    /// files it reuses until it is recorded (and so keeps them in use).
    pub files_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// What is going on per app: releases rolling out (each with its cancel), other
    /// changes, apps being destroyed.
    pub in_flight: in_flight::InFlight,
    /// How long a new machine must have run before the old machines it replaces stop.
    pub smoke_time: Duration,
}

impl Deployer {
    /// Records the release and starts its pipeline; returns its version at once.
    pub async fn start(&self, app: &str, mut req: DeployRequest) -> Result<u64, DeployError> {
        let digest: Digest = req.bundle.parse()?;
        if self.bundles.claim(&digest).await.is_none() {
            return Err(DeployError::BundleMissing(digest.to_string()));
        }
        // Every group must be runnable before anything is touched: its own command, or a
        // Dockerfile to read one from: the one `[build] dockerfile` names, else, as flyctl
        // builds it, the `Dockerfile` at the bundle's root. That one is also the image of
        // groups with commands when the config says of no other (as `lakefly deploy`
        // sends it).
        let builds_elsewhere = (req.config.build.as_ref()).is_some_and(|b| b.names_a_source());
        let without_command = req
            .config
            .group_names()
            .into_iter()
            .find(|group| plan::command_for(&req.config, group).is_none())
            .map(str::to_string);
        let names_dockerfile = req
            .config
            .build
            .as_ref()
            .is_some_and(|b| b.dockerfile.is_some());
        let beside = match without_command {
            Some(group) if !names_dockerfile => {
                if !self.bundle_holds(&digest, DEFAULT_DOCKERFILE).await {
                    return Err(plan::PlanError::NoCommand(group).into());
                }
                true
            }
            Some(_) => false,
            None => !builds_elsewhere && self.bundle_holds(&digest, DEFAULT_DOCKERFILE).await,
        };
        if beside {
            req.config
                .build
                .get_or_insert_with(Default::default)
                .dockerfile = Some(DEFAULT_DOCKERFILE.into());
        }
        let strategy = req
            .strategy
            .or(req.config.deploy.as_ref().and_then(|d| d.strategy))
            .unwrap_or(Strategy::Rolling);
        let strategy_name = format!("{strategy:?}").to_ascii_lowercase();
        let description = req.description.clone().unwrap_or_else(|| "deploy".into());
        // A build done before for the same inputs is not done again; its files stay until
        // this release is recorded.
        let files_guard = self.files_lock.lock().await;
        let files_of = match req.rebuild {
            true => None,
            false => self.built_before(app, &digest, &req.config).await?,
        };
        let (a, config, bundle) = (app.to_string(), req.config.clone(), digest.to_string());
        let (secrets, in_flight) = (self.secrets.clone(), self.in_flight.clone());
        let (version, mut registration) = self
            .hub
            .change(move |tx, path| {
                // Here, in the transaction that records the release: `apps destroy` marks
                // the app before it looks for releases, so one of the two sees the other.
                if in_flight.is_closing(&a) {
                    return Ok((Err(DeployError::Destroying), vec![]));
                }
                if let Some(running) = releases::running(tx, path, &a)? {
                    return Ok((Err(DeployError::Running(running)), vec![]));
                }
                let new = NewRelease {
                    app: &a,
                    config: &config,
                    bundle: &bundle,
                    strategy: &strategy_name,
                    description: &description,
                    files_of,
                };
                let version = releases::insert(tx, path, &new, &now())?;
                let data = serde_json::json!({ "version": version, "strategy": strategy_name, "bundle": bundle, "description": description });
                let mut events = vec![NewEvent::app(&a, kind::DEPLOY_STARTED, data)];
                // As on Fly, `secrets set --stage` waits for the next release, whatever
                // starts it.
                let staged = secrets.deploy_staged(tx, path, &a, &now())?;
                // Its machines start with these, whatever is set while it runs.
                secrets.pin(tx, path, &a, version)?;
                if !staged.is_empty() {
                    let detail = format!("staged secrets applied: {}", staged.join(", "));
                    events.push(NewEvent::app(
                        &a,
                        kind::SECRETS_UPDATED,
                        serde_json::json!({ "deployed": staged, "staged": false, "release": version }),
                    ));
                    events.push(NewEvent::app(
                        &a,
                        kind::DEPLOY_PROGRESS,
                        serde_json::json!({ "version": version, "step": "secrets", "detail": detail }),
                    ));
                }
                // Noted as rolling out in the transaction that records it, so a cancel
                // never finds it recorded but not yet cancellable (a failed commit drops
                // the note again).
                let registration = in_flight.register(&a, version);
                Ok((Ok((version, registration)), events))
            })
            .await??;
        drop(files_guard);
        // Zero (refused by the CLI and in fly.toml; an API client may send it) is unset:
        // no machine is healthy within none.
        let wait_timeout = req
            .wait_timeout
            .or(req.config.deploy.as_ref().and_then(|d| d.wait_timeout))
            .map(|d| d.to_std())
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_WAIT_TIMEOUT);
        let pace = Pace {
            strategy,
            wait_timeout,
            smoke_time: if req.skip_smoke_checks {
                Duration::ZERO
            } else {
                self.smoke_time
            },
        };
        let deployer = self.clone();
        let app = app.to_string();
        let files = Files {
            bundle: digest,
            reuse: files_of,
        };
        tokio::spawn(async move {
            let outcome = deployer
                .pipeline(&app, &mut registration, &req.config, &files, pace)
                .await;
            // The release's jobs are in place before it is recorded complete: a client
            // that sees the release live can trigger them at once.
            if outcome.is_ok() {
                if let Err(e) = deployer.jobs.sync_config(&app, &req.config.jobs).await {
                    tracing::error!(app, error = %e, "could not update the app's jobs from its release");
                }
            }
            deployer.finish(&app, version, outcome).await;
            // Only now: one waiting for its end (`apps destroy`) finds it recorded.
            drop(registration);
        });
        Ok(version)
    }

    /// The app's `machine.*` events from now on, to wait on new machines' health.
    fn machine_events(
        &self,
        app: &str,
    ) -> tokio::sync::mpsc::Receiver<std::sync::Arc<crate::api::types::Event>> {
        self.hub.subscribe(
            EventFilter::machines_of(app),
            Start::Now,
            self.shutdown.clone(),
        )
    }

    /// The version of the release of `app` still rolling out, if one is.
    pub async fn running(&self, app: &str) -> Result<Option<u64>, DeployError> {
        let a = app.to_string();
        Ok(self
            .store
            .run(move |conn, path| releases::running(conn, path, &a))
            .await?)
    }

    /// Records a step of release `version`; its kind says which (`release.build`...).
    async fn progress(&self, app: &str, version: u64, step: &str, detail: String) {
        let kind = match step {
            "unpack" => kind::RELEASE_UNPACKED,
            "build" => kind::RELEASE_BUILD,
            "release_command" => kind::RELEASE_COMMAND,
            "dockerfile" => kind::RELEASE_DOCKERFILE,
            "replaced" => kind::MACHINE_REPLACED,
            _ => kind::DEPLOY_PROGRESS,
        };
        let data = serde_json::json!({ "version": version, "step": step, "detail": detail });
        if let Err(e) = self.hub.emit(NewEvent::app(app, kind, data)).await {
            tracing::warn!(error = %e, "could not record deploy progress");
        }
    }

    async fn pipeline(
        &self,
        app: &str,
        release: &mut in_flight::Registration,
        cfg: &AppConfig,
        files: &Files,
        pace: Pace,
    ) -> Result<(), Failure> {
        let (version, cancel) = (release.version(), &mut release.cancel);
        let fail = Failure::because;
        let Prepared {
            dir,
            workdir,
            fallback,
            image_env,
            processes,
            console_command,
        } = self.prepare(app, version, cfg, files, cancel).await?;
        // A cancel asked while the steps before ran: no machine has changed yet.
        if let Some(why) = cancel.reason() {
            return Err(Failure::cancelled(&why));
        }

        // Roll out, watching the app's machine events from before the first is created.
        let mut events = self.machine_events(app);
        let existing = self
            .runtime
            .list(app)
            .await
            .map_err(|e| fail(format!("could not list machines: {e}")))?;
        let a = app.to_string();
        let scale = self
            .store
            .run(move |conn, path| releases::scale(conn, path, &a))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut groups = Vec::new();
        let mut specs = BTreeMap::new();
        for group in cfg.group_names() {
            let mut spec: MachineSpec =
                plan::machine_spec(cfg, group, fallback.as_deref(), Some(version))
                    .map_err(|e| fail(e.to_string()))?;
            spec.workdir = Some(workdir.to_string_lossy().into_owned());
            if let Some(command) = processes.get(group) {
                spec.command = command.clone();
            }
            if console_command.is_some() {
                spec.console_command = console_command.clone();
            }
            // fly.toml's [env] wins over the Dockerfile's ENV.
            for (k, v) in &image_env {
                spec.env.entry(k.clone()).or_insert_with(|| v.clone());
            }
            let old: Vec<_> = existing
                .iter()
                .filter(|m| m.process_group == group && m.release_version != Some(version))
                .cloned()
                .collect();
            let old_stopped = old
                .iter()
                .filter(|m| m.state == crate::api::types::MachineState::Stopped)
                .count();
            let running = old.len() - old_stopped;
            // As many as there are, each replaced, as flyctl updates every machine: one
            // destroyed by hand or made by the edge for a request counts as `scale show`
            // counts it. A group with none gets the count `scale` last set (a group
            // scaled to zero stays so), else one.
            let count = match old.len() {
                0 => scale.get(group).map_or(1, |&n| n as usize),
                n => n,
            };
            specs.insert(group.to_string(), spec.clone());
            groups.push(Group {
                spec,
                count,
                // A stopped machine stays stopped, as flyctl leaves it; the machines that
                // run are replaced first.
                stopped: old_stopped.min(count.saturating_sub(running)),
                old,
                binds_own_ports: !plan::own_ports(cfg, group).is_empty(),
            });
        }
        for group in &groups {
            let name = &group.spec.process_group;
            if let Some(note) = (group.count > 1)
                .then(|| group_notes::shared_ports(cfg, name))
                .flatten()
            {
                self.progress(app, version, "ports", note).await;
            }
            if group.stops_first() {
                let note = group_notes::stops_first(cfg, name);
                self.progress(app, version, "ports", note).await;
            }
        }
        for group in groups.iter().filter(|g| g.count == 0) {
            let note = group_notes::scaled_to_zero(cfg, &group.spec.process_group);
            self.progress(app, version, "scale", note).await;
        }
        let a = app.to_string();
        self.store
            .run(move |conn, path| releases::set_specs(conn, path, &a, version, &specs))
            .await
            .map_err(|e| fail(e.to_string()))?;
        // Machines of groups the new config no longer has go once the release runs, not
        // before: a failed release leaves the old one whole.
        let known: Vec<&str> = cfg.group_names();
        let dropped: Vec<_> = existing
            .iter()
            .filter(|m| !known.contains(&m.process_group.as_str()))
            .collect();
        // The new release's routes and ports, bound before any machine changes: a port in
        // use fails the release with the old one untouched.
        let warnings = self
            .edge
            .configure(app, cfg, &dir, super::edge::Ports::Required)
            .map_err(|e| fail(e.to_string()))?;
        for warning in warnings {
            self.progress(app, version, "edge", warning).await;
        }
        let max_unavailable = cfg
            .deploy
            .as_ref()
            .and_then(|d| d.max_unavailable)
            .unwrap_or(DEFAULT_MAX_UNAVAILABLE);
        // Progress lines are recorded in order, and all of them before the release's end.
        let (lines, mut pending) = tokio::sync::mpsc::unbounded_channel::<(&'static str, String)>();
        let recorder = {
            let (deployer, app) = (self.clone(), app.to_string());
            tokio::spawn(async move {
                while let Some((step, detail)) = pending.recv().await {
                    deployer.progress(&app, version, step, detail).await;
                }
            })
        };
        let progress = move |step: &'static str, detail: String| {
            let _ = lines.send((step, detail));
        };
        // From here requests the edge finds no healthy machine for wait for one.
        self.in_flight.begin_replacing(app, version);
        let outcome = Rollout {
            app,
            runtime: &self.runtime,
            events: &mut events,
            wait_timeout: pace.wait_timeout,
            smoke_time: pace.smoke_time,
            max_unavailable,
            progress: &progress,
            cancel,
        }
        .run(pace.strategy, groups)
        .await;
        if outcome.is_ok() {
            for machine in dropped {
                let (id, group) = (&machine.id, &machine.process_group);
                let gone = self
                    .runtime
                    .act(app, id, super::runtime::Action::Destroy)
                    .await;
                progress(
                    "rollout",
                    match gone {
                        Ok(_) => format!("destroyed machine {id}: its group {group} is no longer in the config"),
                        Err(e) => format!("could not destroy machine {id} of group {group}, which the config no longer has: {e}"),
                    },
                );
            }
        }
        drop(progress);
        let _ = recorder.await;
        outcome
    }

    /// Whether the stored bundle `digest` holds a regular file at `name`.
    async fn bundle_holds(&self, digest: &Digest, name: &'static str) -> bool {
        let (path, limits) = (self.bundles.path(digest), self.bundles.limits);
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(path).map_err(bundle::BundleError::Unreadable)?;
            bundle::holds_file(std::io::BufReader::new(file), name, limits)
        })
        .await
        .is_ok_and(|held| held.unwrap_or(false))
    }

    /// The current release's version, config and bundle; `None` before the first.
    pub(super) async fn current_source(&self, app: &str) -> Result<Option<Current>, StoreError> {
        let a = app.to_string();
        self.store
            .run(
                move |conn, path| match store::apps::current_release(conn, path, &a)? {
                    Some(version) => {
                        Ok(
                            releases::source(conn, path, &a, version)?.map(|source| Current {
                                config: source.config,
                                bundle: source.bundle,
                                files: source.files,
                            }),
                        )
                    }
                    None => Ok(None),
                },
            )
            .await
    }

    /// Why the app has no current release: its first one is still rolling out, or it has
    /// none at all.
    pub(super) async fn without_release(&self, app: &str) -> DeployError {
        let a = app.to_string();
        match self
            .store
            .run(move |conn, path| releases::running(conn, path, &a))
            .await
        {
            Ok(Some(version)) => DeployError::Running(version),
            Ok(None) => DeployError::NoRelease,
            Err(e) => DeployError::Store(e),
        }
    }

    /// Sets the edge up for the app's current release (or forgets the app without one).
    pub async fn apply_edge(&self, app: &str) -> Result<(), String> {
        let current = self.current_source(app).await.map_err(|e| e.to_string())?;
        match current {
            Some(current) => {
                let dir = self.release_dir(app, current.files);
                let warnings = self
                    .edge
                    .configure(app, &current.config, &dir, super::edge::Ports::BestEffort)
                    .map_err(|e| e.to_string())?;
                for warning in warnings {
                    tracing::warn!(app, "edge: {warning}");
                }
                Ok(())
            }
            None => {
                self.edge.remove(app);
                Ok(())
            }
        }
    }
}
