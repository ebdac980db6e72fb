//! lakeflyd: the platform daemon. [`run`] backs both `lakeflyd` and `lakefly daemon run`;
//! [`Daemon::start`] is what tests and embedders call to get the bound addresses.

pub mod backup;
pub mod bundles;
pub mod cancel;
pub mod deploy;
pub mod edge;
pub mod events;
mod excerpt;
mod in_flight;
pub mod inherited;
pub mod jobs;
mod journal;
mod logging;
pub mod metrics;
pub mod open_files;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod server_tls;
pub(crate) mod service_manager;
mod signals;
pub(crate) mod stall;
pub mod store;
pub mod tls_expiry;
pub mod volumes;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::events::{EventHub, NewEvent};
use self::store::Store;
use crate::api::types::kind;
use crate::cli::daemon::RunArgs;
use crate::config::units;
use crate::error::Error;

/// How often old events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What a daemon needs to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the API listens: an address (port 0 picks a free port) or a socket passed.
    pub api: inherited::Listen,
    /// The edge: its address, domain and auto-stop/start timings.
    pub edge: edge::EdgeOptions,
    /// State directory.
    pub state_dir: PathBuf,
    /// Keep at most this many events.
    pub events_keep: u64,
    /// Drop events older than this.
    pub events_max_age: units::Duration,
    /// Largest bundle upload accepted, in bytes.
    pub bundle_max_bytes: u64,
    /// Log lines kept per app.
    pub log_lines_per_app: u64,
    /// How long a deploy's new machine must have run before old ones give way to it.
    pub smoke_time: Duration,
    /// The API's certificate; none serves plain HTTP.
    pub api_tls: Vec<server_tls::TlsFiles>,
    /// Browser origins the API answers CORS requests from.
    pub cors_origins: Vec<String>,
    /// Where machines' `$PORT` comes from.
    pub machine_ports: runtime::ports::PortRange,
    /// Machines outlive the daemon, for its next run to take back (`--live-restore`).
    pub live_restore: bool,
    /// Who may use the API: tokens, or without them (on loopback only) local users.
    pub access: server::auth::Access,
}

/// A running daemon.
pub struct Daemon {
    /// Where the API listens.
    pub api_addr: SocketAddr,
    /// The API's URL: `https://` when it serves TLS.
    pub api_url: String,
    /// The API's certificate, when it serves TLS.
    api_tls: Option<Arc<server_tls::ServerTls>>,
    /// Where the edge serves apps.
    pub edge_addr: SocketAddr,
    /// Where the edge serves apps over HTTPS, when it does.
    pub edge_https: Option<SocketAddr>,
    edge: edge::Edge,
    hub: EventHub,
    runtime: runtime::Runtime,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    pruner: JoinHandle<()>,
    state_dir: PathBuf,
    // Held for the daemon's life: a second daemon on the same state dir is refused.
    _lock: File,
}

impl Daemon {
    /// SIGHUP: reads the edge's and the API's TLS certificates again, so a renewed one
    /// is served from the next handshake on without a restart (each outcome is an event),
    /// and opens the edge's access log anew.
    pub async fn reload(&self) {
        let api = self
            .api_tls
            .as_ref()
            .map(|tls| tls.reload().map(|()| tls.files()));
        let reloads: Vec<_> = [self.edge.reload_tls(), api]
            .into_iter()
            .flatten()
            .collect();
        let access_log = self.edge.reopen_access_log();
        if access_log {
            tracing::info!("SIGHUP: the edge's access log is opened anew");
        }
        if reloads.is_empty() && !access_log {
            tracing::info!("SIGHUP: nothing to reload (no --edge-tls-cert, --api-tls-cert or --edge-access-log)");
        }
        for reload in reloads {
            let events = match reload {
                Ok(files) => files
                    .iter()
                    .map(|files| {
                        tracing::info!(role = files.role, cert = %files.cert.display(), "SIGHUP: TLS certificate read again");
                        NewEvent::daemon(
                            kind::TLS_RELOADED,
                            serde_json::json!({ "role": files.role, "cert": files.cert, "key": files.key }),
                        )
                    })
                    .collect(),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: the TLS certificates served so far stay");
                    vec![NewEvent::daemon(
                        kind::TLS_RELOAD_FAILED,
                        serde_json::json!({ "role": e.role(), "error": e.to_string() }),
                    )]
                }
            };
            for event in events {
                if let Err(e) = self.hub.emit(event).await {
                    tracing::warn!(error = %e, "could not record the reload");
                }
            }
        }
    }

    /// Opens the state, binds the API and starts serving.
    pub async fn start(options: Options) -> Result<Self, Error> {
        // An open API beyond loopback would let anyone who reaches it run commands here.
        let api_at = options.api.addr();
        let tokens = &options.access.tokens;
        if !api_at.ip().is_loopback() && !tokens.is_configured() {
            return Err(Error::InsecureApi { addr: api_at });
        }
        if !tokens.is_configured() {
            tracing::info!(api = %api_at, "{}", options.access.local.describe());
        }
        if !api_at.ip().is_loopback() && options.api_tls.is_empty() {
            tracing::warn!(api = %api_at, "the API is served beyond loopback without TLS: tokens and secrets cross the network in the clear; give --api-tls-cert and --api-tls-key");
        }
        // Read before anything starts, so an unusable certificate stops the start cleanly.
        let api_tls = server_tls::ServerTls::load(options.api_tls.clone())?.map(Arc::new);
        let lock = lock_state_dir(&options.state_dir)?;
        let store = Store::open(&options.state_dir)?;
        // Bind before any machine starts, so an address in use stops the start cleanly.
        let api_bind_error = |source| Error::Bind {
            what: "API",
            addr: api_at,
            source,
        };
        let listener = options
            .api
            .open(|addr| {
                let listener = std::net::TcpListener::bind(addr)?;
                listener.set_nonblocking(true)?;
                Ok(listener)
            })
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(api_bind_error)?;
        let api_addr = listener.local_addr().map_err(api_bind_error)?;
        // Prune before serving, so a resume right after start sees the retained window.
        prune_once(&store, options.events_keep, options.events_max_age).await;
        let secrets = Arc::new(secrets::SecretStore::new(
            store.clone(),
            secrets::rotate::open_key(&store, &options.state_dir)?,
        ));
        let metrics = metrics::Metrics::default();
        let hub = EventHub::new(store.clone(), metrics.events.clone());
        // A release that was rolling out when the daemon died did not finish: it fails, and
        // the runtime brings back the release before it. A store that cannot take that (a
        // full disk) must not leave every machine unsupervised, as exiting would: they run
        // as recorded, and a start with space to record it undoes the rollout.
        if let Err(e) = deploy::fail_interrupted(&hub).await {
            tracing::error!(error = %e, "could not undo the rollout lakeflyd's end cut short; its machines run as they were, and the release stays marked as rolling out until lakeflyd starts with room to record it");
        }
        let backends = edge::backends::Backends::new(options.edge.threads);
        let runtime = runtime::Runtime::start(
            store.clone(),
            hub.clone(),
            runtime::RuntimeOptions {
                state_dir: options.state_dir.clone(),
                log_lines_per_app: options.log_lines_per_app,
                machine_ports: options.machine_ports,
                live_restore: options.live_restore,
            },
            metrics.restarts.clone(),
            secrets.clone(),
            backends.clone(),
        )
        .await?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        // Shared by the deploys and the edge, which starts machines for requests too.
        let in_flight = deploy::in_flight::InFlight::default();
        let edge = edge::Edge::start(
            edge::EdgeOptions {
                api_port: Some(api_addr.port()),
                ..options.edge.clone()
            },
            backends.clone(),
            runtime.clone(),
            store.clone(),
            metrics.clone(),
            in_flight.clone(),
            shutdown_rx.clone(),
        )
        .await?;
        let bundle_store = bundles::BundleStore::new(
            &options.state_dir,
            options.bundle_max_bytes,
            Default::default(),
        );
        let deploys = metrics.deploys.clone();
        let jobs = jobs::Scheduler::start(
            jobs::Context {
                store: store.clone(),
                hub: hub.clone(),
                secrets: secrets.clone(),
                edge: edge.clone(),
                apps_dir: options.state_dir.join("apps"),
                volumes_dir: options.state_dir.join("volumes"),
                oneoff_pids: runtime.oneoff_pids().clone(),
                logs: runtime.logs().clone(),
            },
            shutdown_rx.clone(),
        )
        .await?;
        let deployer = deploy::Deployer {
            store: store.clone(),
            hub: hub.clone(),
            runtime: runtime.clone(),
            edge: edge.clone(),
            jobs: jobs.clone(),
            bundles: bundle_store.clone(),
            releases_dir: options.state_dir.join("releases"),
            secrets: secrets.clone(),
            shutdown: shutdown_rx.clone(),
            finished: deploys,
            files_lock: Default::default(),
            in_flight,
            smoke_time: options.smoke_time,
        };
        edge.reload_hostnames().await?;
        // Every app's current release is served again, ports included; what the last run
        // left on disk and nothing uses any more goes.
        let apps: Vec<String> = store
            .list_apps()
            .await?
            .into_iter()
            .map(|a| a.name)
            .collect();
        for app in &apps {
            if let Err(e) = deployer.apply_edge(app).await {
                tracing::warn!(app = %app, error = %e, "could not set up the edge for this app");
            }
            deployer.remove_unused_release_files(app).await;
        }
        deployer.remove_files_of_gone_apps(&apps).await;
        deployer.remove_unused_bundles().await;
        edge.open()?;
        let state = Arc::new(server::SharedState {
            store: store.clone(),
            hub: hub.clone(),
            runtime: runtime.clone(),
            metrics,
            deployer,
            jobs,
            edge: edge.clone(),
            bundles: bundle_store,
            secrets,
            api_tls: api_tls.clone(),
            shutdown: shutdown_rx.clone(),
        });
        let app = server::router(state, options.access.clone(), &options.cors_origins);
        let stopping = shutdown_rx.clone();
        let (server, api_url) = match &api_tls {
            Some(tls) => {
                let listener = server::tls_listener::TlsListener::new(listener, tls.clone())
                    .map_err(api_bind_error)?;
                (
                    tokio::spawn(server::serve::serve(listener, app, stopping)),
                    format!("https://{api_addr}"),
                )
            }
            None => (
                tokio::spawn(server::serve::serve(listener, app, stopping)),
                format!("http://{api_addr}"),
            ),
        };
        // Under systemd's WatchdogSec=; it ends with the daemon.
        tokio::spawn(service_manager::watchdog(
            store.clone(),
            edge.heartbeats(),
            shutdown_rx.clone(),
        ));
        let pruner = tokio::spawn(prune_events(
            store,
            options.events_keep,
            options.events_max_age,
            shutdown_rx,
        ));
        // Neither is worth not starting over (a full disk): machines and the edge run, and
        // the supervisors retry what they cannot record.
        let started = hub.emit(NewEvent::daemon(
            kind::DAEMON_STARTED,
            serde_json::json!({
                "api": api_addr.to_string(),
                "edge": edge.addr.to_string(),
                "edge_https": edge.https_addr.map(|a| a.to_string()),
                "pid": std::process::id(),
            }),
        ));
        if let Err(e) = started.await {
            tracing::error!(error = %e, "could not record that lakeflyd started");
        }
        if let Err(e) = write_record(&options.state_dir, &api_url) {
            tracing::error!(error = %e, "could not write {RECORD_FILE}: `lakefly daemon status` will not find this daemon");
        }
        tracing::info!(api = %api_addr, edge = %edge.addr, state = %options.state_dir.display(), "lakeflyd started");
        Ok(Daemon {
            api_addr,
            api_url,
            api_tls,
            edge_addr: edge.addr,
            edge_https: edge.https_addr,
            edge,
            hub,
            runtime,
            shutdown,
            server,
            pruner,
            state_dir: options.state_dir.clone(),
            _lock: lock,
        })
    }

    /// Stops serving: long-lived streams end, in-flight requests finish, state is flushed.
    pub async fn shutdown(self) -> Result<(), Error> {
        tracing::info!("lakeflyd stopping");
        service_manager::stopping();
        // Recorded before the streams close, so followers see why they ended.
        if let Err(e) = self
            .hub
            .emit(NewEvent::daemon(
                kind::DAEMON_STOPPING,
                serde_json::json!({}),
            ))
            .await
        {
            tracing::warn!(error = %e, "could not record daemon.stopping");
        }
        // No new connections; requests in flight finish while their machines drain.
        self.edge.stop_accepting();
        // Machines stop with their kill signal and timeout (under live restore they are
        // left running); what each should be doing is kept, so the next start brings them
        // back.
        self.runtime.shutdown().await;
        let _ = self.shutdown.send(true);
        if let Err(e) = self.server.await {
            tracing::warn!(error = %e, "API server task failed");
        }
        let _ = self.pruner.await;
        let _ = std::fs::remove_file(self.state_dir.join(RECORD_FILE));
        Ok(())
    }
}

/// Runs the daemon until SIGTERM or SIGINT; the entry point of `lakeflyd`.
pub fn run(args: RunArgs) -> Result<(), Error> {
    logging::init(args.log_format);
    // Before any thread of ours starts: taking them removes their variables.
    let inherited = inherited::Inherited::from_env()?;
    open_files::raise();
    let state_dir = match args.state {
        Some(dir) => dir,
        None => default_state_dir()?,
    };
    create_private_dir(&state_dir)
        .map_err(|e| Error::io("create the state directory", &state_dir, e))?;
    let options = Options {
        api: inherited.api.unwrap_or(inherited::Listen::Bind(args.api)),
        edge: edge::EdgeOptions {
            addr: inherited.edge.unwrap_or(inherited::Listen::Bind(args.edge)),
            domain: args.domain.clone(),
            auto_stop_after: args.auto_stop_after.to_std(),
            auto_start_wait: args.auto_start_wait.to_std(),
            stall_timeout: args.edge_stall_timeout.to_std(),
            idle_timeout: args.edge_idle_timeout.to_std(),
            https: inherited
                .edge_https
                .or(args.edge_https.map(inherited::Listen::Bind)),
            access_log: args.edge_access_log.clone(),
            tls: server_tls::TlsFiles::given("edge", &args.edge_tls_cert, &args.edge_tls_key)?,
            ports: inherited.ports,
            threads: args
                .edge_threads
                .map_or_else(edge::default_threads, usize::from),
            api_port: None,
        },
        state_dir: state_dir.clone(),
        events_keep: args.events_keep,
        events_max_age: args.events_max_age,
        bundle_max_bytes: args.bundle_max_bytes,
        log_lines_per_app: args.log_lines_per_app,
        smoke_time: args.smoke_time.to_std(),
        api_tls: server_tls::TlsFiles::given(
            "API",
            args.api_tls_cert.as_slice(),
            args.api_tls_key.as_slice(),
        )?,
        cors_origins: args.cors_origin.clone(),
        machine_ports: args.machine_ports,
        live_restore: args.live_restore,
        access: server::auth::Access {
            tokens: match &args.token_file {
                Some(path) => server::auth::Tokens::load(path)?,
                None => server::auth::Tokens::default(),
            },
            local: server::local_users::LocalUsers::new(args.local_group.as_deref())?,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the runtime in", &state_dir, e))?;
    runtime.block_on(async move {
        // Before the ready line: a SIGHUP right after it must not find the default action
        // (exit) in place.
        let signals = signals::Signals::install();
        let daemon = Daemon::start(options).await?;
        // One line of data on stdout: where the daemon listens (port 0 resolved).
        println!(
            "{}",
            serde_json::json!({
                "api": daemon.api_url,
                "edge": format!("http://{}", daemon.edge_addr),
                "edge_https": daemon.edge_https.map(|a| format!("https://{a}")),
                "state": state_dir,
                "pid": std::process::id(),
            })
        );
        service_manager::ready(&format!(
            "serving: API {}, edge {}",
            daemon.api_url, daemon.edge_addr
        ));
        signals::serve_until_stopped(signals, &daemon).await;
        daemon.shutdown().await
    })
}

async fn prune_events(
    store: Store,
    keep: u64,
    max_age: units::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    // The first tick completes at once; start already pruned.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => prune_once(&store, keep, max_age).await,
            // The only change ever sent is to `true`.
            _ = shutdown.changed() => return,
        }
    }
}

async fn prune_once(store: &Store, keep: u64, max_age: units::Duration) {
    let age =
        chrono::Duration::milliseconds(i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX));
    let cutoff = chrono::Utc::now()
        .checked_sub_signed(age)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    match store
        .run(move |conn, path| store::events::prune(conn, path, keep, &cutoff))
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(pruned = n, "pruned old events"),
        Err(e) => tracing::warn!(error = %e, "could not prune events"),
    }
}

/// `lakeflyd secrets rotate-key`: re-seals every secret under a new master key. The
/// daemon must be stopped (it holds the state directory's lock while it runs).
pub fn rotate_master_key(state_dir: Option<PathBuf>) -> Result<usize, Error> {
    let state_dir = match state_dir {
        Some(dir) => dir,
        None => default_state_dir()?,
    };
    let _lock = lock_state_dir(&state_dir)?;
    let store = Store::open(&state_dir)?;
    Ok(secrets::rotate::rotate(&store, &state_dir)?)
}

/// `$XDG_DATA_HOME/lakefly`, else `~/.local/share/lakefly`.
pub fn default_state_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("lakefly"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/lakefly")),
        None => Err(Error::NoStateDir),
    }
}

/// The file in the state dir that says which process serves it, and where.
pub const RECORD_FILE: &str = "lakeflyd.json";

/// What `lakeflyd.json` holds, for `lakefly daemon status|stop`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// `http://ADDR` of the API.
    pub api: String,
    /// The daemon's pid.
    pub pid: u32,
    /// Its start time (clock ticks since boot), so a reused pid is never taken for it.
    pub pid_start: Option<u64>,
}

fn write_record(state_dir: &Path, api_url: &str) -> Result<(), Error> {
    let pid = std::process::id();
    let record = Record {
        api: api_url.to_string(),
        pid,
        pid_start: runtime::process::start_time(pid),
    };
    let text = serde_json::to_vec(&record).unwrap_or_default();
    crate::atomic_write::write(&state_dir.join(RECORD_FILE), &text, 0o600)
}

/// Creates `dir` and its parents, readable by the daemon's user only.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn lock_state_dir(dir: &Path) -> Result<File, Error> {
    create_private_dir(dir).map_err(|e| Error::io("create the state directory", dir, e))?;
    let path = dir.join("lakeflyd.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::StateLocked {
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
    }
}
