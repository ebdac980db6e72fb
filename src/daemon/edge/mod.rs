//! The edge: lakeflyd's public listener. HTTP on the edge address is routed by
//! `Host: <app>.<domain>` or a name added to an app (`hosts.rs`), relayed by `relay/`
//! and, for what the relay leaves, served by hyper (`http.rs`); each `[[services.ports]]`
//! port gets a listener of its own, HTTP or raw TCP (`tcp.rs`). Traffic goes only to
//! healthy machines that are not draining (`backends.rs`), over kept-alive connections
//! (`pool.rs`). What an app wants is read from its release's config (`routes.rs`) when a
//! release rolls out.

pub mod access_log;
mod acquire;
mod addresses;
pub(crate) mod answers;
pub mod autostart;
pub mod backends;
mod bodies;
mod compress;
mod conn;
mod forwarding;
pub mod heartbeat;
pub mod hosts;
pub mod http;
mod listeners;
mod options;
mod own_ports;
mod pool;
mod proxy_proto;
mod public_ports;
mod relay;
pub mod routes;
pub mod statics;
mod tcp;
pub mod tls;
mod udp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::backends::Backends;
pub use self::listeners::default_threads;
use self::listeners::{accept_https, edge_thread};
pub use self::options::{EdgeError, EdgeOptions, Ports};
pub use self::public_ports::PublicPort;
use self::public_ports::ServicePorts;
use self::routes::{AppRoutes, PortRoute, Route};
use super::deploy::in_flight::InFlight;
use super::inherited::Listen;
use super::metrics::Metrics;
use super::runtime::Runtime;
use super::store::Store;
use crate::config::AppConfig;

/// What the edge's connections share.
pub struct EdgeState {
    backends: Backends,
    routes: RwLock<HashMap<String, AppRoutes>>,
    /// Which app a host name is for.
    hosts: hosts::Hosts,
    metrics: Metrics,
    runtime: Runtime,
    store: Store,
    /// Changes going per app: a machine started for a request is one, refused while the
    /// app is being destroyed.
    in_flight: InFlight,
    auto_start_wait: Duration,
    /// How long a body or an answer may wait for its reader or writer.
    stall_timeout: Duration,
    /// How long a connection may carry no request.
    idle_timeout: Duration,
    /// Where host-routed HTTPS is served, when it is.
    https_addr: Option<SocketAddr>,
    /// TLS for ports with the `tls` handler, when a certificate was given.
    tls: Option<crate::daemon::server_tls::ServerTls>,
    /// Apps a machine is being auto-started for, and how that goes.
    waking: Arc<Mutex<HashMap<String, watch::Receiver<autostart::Wake>>>>,
    /// `--edge-access-log`, when given.
    access_log: Option<access_log::AccessLog>,
    /// Set when the daemon stops: ends what follows the event feed.
    shutdown: watch::Receiver<bool>,
}

impl EdgeState {
    /// What `find` takes from the routes of `app`, if it has any.
    fn look_up<T>(&self, app: &str, find: impl FnOnce(&AppRoutes) -> Option<T>) -> Option<T> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
            .and_then(find)
    }

    fn http_route(&self, app: &str) -> Option<Arc<Route>> {
        self.look_up(app, |r| r.http.clone())
    }

    /// The host route of the app a request's host name and path are for, or of the app a
    /// host name (a TLS client's SNI) is for, without a path.
    fn host_route(&self, host: &str, path: Option<&str>) -> Option<Arc<Route>> {
        self.hosts
            .app_for(host, path)
            .and_then(|app| self.http_route(&app))
    }

    /// How long a client connection to `route`'s app may carry no request: the app's
    /// `http_options.idle_timeout`, else `--edge-idle-timeout`.
    fn idle_timeout_of(&self, route: Option<&Route>) -> Duration {
        route
            .and_then(|route| route.idle_timeout)
            .unwrap_or(self.idle_timeout)
    }

    fn port_route(&self, app: &str, port: u16) -> Option<PortRoute> {
        self.look_up(app, |r| r.ports.get(&port).cloned())
    }

    /// Counts a client connection in `/metrics` for as long as the guard lives.
    fn open_connection(&self) -> OpenConnection {
        let gauge = self.metrics.edge_connections.clone();
        gauge.inc();
        OpenConnection(gauge)
    }

    /// The port the app's `force_https` redirects to: its own HTTPS port, else the
    /// edge's host-routed HTTPS.
    fn https_port(&self, app: &str) -> Option<u16> {
        self.look_up(app, AppRoutes::https_port)
            .or(self.https_addr.map(|a| a.port()))
    }

    fn udp_route(&self, app: &str, port: u16) -> Option<Arc<Route>> {
        self.look_up(app, |r| r.udp.get(&port).cloned())
    }

    fn service_http_route(&self, app: &str, port: u16) -> Option<Arc<Route>> {
        match self.port_route(app, port)? {
            PortRoute::Http(route) | PortRoute::Https(route) => Some(route),
            PortRoute::Tcp(..) | PortRoute::TlsTcp(_) => None,
        }
    }
}

/// A client connection counted as open; the count drops with it.
struct OpenConnection(prometheus_client::metrics::gauge::Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The running edge; cheap to clone.
#[derive(Clone)]
pub struct Edge {
    state: Arc<EdgeState>,
    /// Service ports bound, with the app each belongs to.
    ports: Arc<ServicePorts>,
    ip: IpAddr,
    /// The API's port, to name it when a service port cannot be bound for being it.
    api_port: Option<u16>,
    /// Where host-routed HTTP is served.
    pub addr: SocketAddr,
    /// Where host-routed HTTPS is served, when it is.
    pub https_addr: Option<SocketAddr>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Flips to `true` when the edge stops accepting.
    accepting: Arc<watch::Sender<bool>>,
    /// The host-routed listeners until `open` serves them.
    unopened: Arc<Mutex<Option<Unopened>>>,
    /// The edge threads' signs of life.
    heartbeats: Arc<heartbeat::Heartbeats>,
}

/// Host-routed listeners bound but not yet served: connections wait in their queues.
struct Unopened {
    listener: std::net::TcpListener,
    https: Option<tokio::net::TcpListener>,
    threads: usize,
    shutdown: watch::Receiver<bool>,
}

impl Edge {
    /// Reads the TLS certificates again, when the edge has some: `None` when it has not,
    /// else the files read, or why they were not taken (the old certificates stay).
    pub fn reload_tls(
        &self,
    ) -> Option<Result<&[crate::daemon::server_tls::TlsFiles], crate::daemon::server_tls::TlsError>>
    {
        let tls = self.state.tls.as_ref()?;
        Some(tls.reload().map(|()| tls.files()))
    }

    /// Has the access log, when there is one, write to a new file at its path from now on
    /// (after logrotate moved the old one): `false` when there is none.
    pub fn reopen_access_log(&self) -> bool {
        match &self.state.access_log {
            Some(log) => {
                log.reopen();
                true
            }
            None => false,
        }
    }

    /// Binds the edge address and starts serving it.
    pub async fn start(
        options: EdgeOptions,
        backends: Backends,
        runtime: Runtime,
        store: Store,
        metrics: Metrics,
        in_flight: InFlight,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Edge, crate::error::Error> {
        let bind_error = |source| crate::error::Error::Bind {
            what: "edge",
            addr: options.addr.addr(),
            source,
        };
        let listener = listeners::open(&options.addr).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let tls = crate::daemon::server_tls::ServerTls::load(options.tls.clone())?;
        let access_log = match &options.access_log {
            Some(path) => Some(
                access_log::AccessLog::open(path)
                    .map_err(|e| crate::error::Error::io("open the edge's access log", path, e))?,
            ),
            None => None,
        };
        let https = match &options.https {
            Some(at) => {
                let bind_error = |source| crate::error::Error::Bind {
                    what: "edge HTTPS",
                    addr: at.addr(),
                    source,
                };
                let listener = listeners::open(at).map_err(bind_error)?;
                let addr = listener.local_addr().map_err(bind_error)?;
                let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_error)?;
                Some((listener, addr))
            }
            None => None,
        };
        let https_addr = https.as_ref().map(|(_, addr)| *addr);
        let state = Arc::new(EdgeState {
            backends,
            routes: RwLock::default(),
            hosts: hosts::Hosts::new(&options.domain),
            metrics,
            runtime,
            store,
            in_flight,
            auto_start_wait: options.auto_start_wait,
            stall_timeout: options.stall_timeout,
            idle_timeout: options.idle_timeout,
            https_addr,
            tls,
            waking: Arc::default(),
            access_log,
            shutdown: shutdown.clone(),
        });
        let (accepting, _) = watch::channel(false);
        let tasks = vec![tokio::spawn(autostart::stop_idle(
            state.clone(),
            options.auto_stop_after,
            shutdown.clone(),
        ))];
        let unopened = Unopened {
            listener,
            https: https.map(|(listener, _)| listener),
            threads: options.threads,
            shutdown,
        };
        Ok(Edge {
            state,
            ports: Arc::new(ServicePorts::new(addr.ip(), options.ports.clone())),
            ip: addr.ip(),
            api_port: options.api_port,
            addr,
            https_addr,
            tasks: Arc::new(Mutex::new(tasks)),
            accepting: Arc::new(accepting),
            unopened: Arc::new(Mutex::new(Some(unopened))),
            heartbeats: Arc::new(heartbeat::Heartbeats::new(options.threads)),
        })
    }

    /// Starts serving the host-routed listeners, once the daemon has applied every app's
    /// routes: a client that connected before (during a restart, to a socket the service
    /// manager kept open) is answered by its app, not told that no such app is served.
    /// Later calls do nothing.
    pub fn open(&self) -> Result<(), crate::error::Error> {
        let Some(unopened) = self
            .unopened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return Ok(());
        };
        let spawn_error = |source| crate::error::Error::Bind {
            what: "edge",
            addr: self.addr,
            source,
        };
        let stop = self.accepting.subscribe();
        self.heartbeats.open();
        for slot in 1..=unopened.threads {
            let listener = unopened.listener.try_clone().map_err(spawn_error)?;
            let (state, stop) = (self.state.clone(), stop.clone());
            let (exit, beats) = (unopened.shutdown.clone(), self.heartbeats.clone());
            std::thread::Builder::new()
                .name(format!("lakefly-edge-{slot}"))
                .spawn(move || edge_thread(slot, listener, state, beats, stop, exit))
                .map_err(spawn_error)?;
        }
        if let Some(listener) = unopened.https {
            let task = tokio::spawn(accept_https(listener, self.state.clone(), stop));
            self.tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(task);
        }
        self.ports.open();
        Ok(())
    }

    /// Applies an app's config: routes, statics, limits, and its service ports (bound
    /// before anything changes, so a port in use leaves the old settings in place).
    /// Returns settings the edge cannot honour, for the deploy's progress.
    pub fn configure(
        &self,
        app: &str,
        cfg: &AppConfig,
        release_dir: &Path,
        ports_policy: Ports,
    ) -> Result<Vec<String>, EdgeError> {
        let mut routes = routes::from_config(app, cfg, release_dir);
        if self.state.tls.is_none() {
            routes.ports.retain(|port, route| {
                let tls = matches!(route, PortRoute::Https(_) | PortRoute::TlsTcp(_));
                if tls {
                    routes.warnings.push(format!(
                        "port {port}: its handlers include \"tls\" and lakeflyd has no certificate; \
                         start it with --edge-tls-cert and --edge-tls-key to serve it \
                         (HTTP is served on {app}.{} and on ports with handlers = [\"http\"])",
                        self.state.hosts.domain()
                    ));
                }
                !tls
            });
        }
        if routes.forces_https() && routes.https_port().is_none() && self.state.https_addr.is_none()
        {
            routes.warnings.push(
                "force_https is not applied: no port of this app serves HTTPS; start lakeflyd \
                 with --edge-https ADDR, --edge-tls-cert and --edge-tls-key (every app by its \
                 host name), or give the app a [[services.ports]] with handlers = [\"tls\", \
                 \"http\"] (and the certificate)"
                    .to_string(),
            );
        }
        let own = own_ports::OwnPorts {
            http: self.addr.port(),
            https: self.https_addr.map(|a| a.port()),
        };
        let refused_own = own.take(app, self.state.hosts.domain(), &mut routes);
        let mut ports = self.ports.lock();
        // A port that cannot be served fails a deploy; otherwise it is left out and reported.
        // (Sockets bound before a failure close when `bound` drops: nothing changes.)
        let refuse = |routes: &mut AppRoutes, port: PublicPort, error: EdgeError| match ports_policy
        {
            Ports::Required => Err(error),
            Ports::BestEffort => {
                routes.warnings.push(format!("{error}; it is not served"));
                routes.forget(port);
                Ok(())
            }
        };
        for (port, error) in refused_own {
            refuse(&mut routes, port, error)?;
        }
        let mut bound = Vec::new();
        for port in routes.public_ports() {
            match ports.holder(port) {
                Some(holder) if holder != app => {
                    let other = holder.to_string();
                    let shared_by = match routes.ports.get(&port.number) {
                        _ if port.udp => None,
                        Some(PortRoute::Http(_)) => Some("--edge"),
                        Some(PortRoute::Https(_)) => Some("--edge-https"),
                        _ => None,
                    };
                    let error = EdgeError::PortTaken {
                        port,
                        app: app.to_string(),
                        other,
                        shared_by,
                    };
                    refuse(&mut routes, port, error)?;
                    continue;
                }
                // Already this app's: its socket stays.
                Some(_) => continue,
                None => {}
            }
            match ports.bind(port) {
                Ok(socket) => bound.push((port, socket)),
                Err(source) if source.kind() == std::io::ErrorKind::PermissionDenied => {
                    routes.warnings.push(format!(
                        "port {port} needs privileges lakeflyd does not have (CAP_NET_BIND_SERVICE); \
                         it is not served, <app>.{} still is",
                        self.state.hosts.domain()
                    ));
                    routes.forget(port);
                }
                Err(_) if !port.udp && self.api_port == Some(port.number) => {
                    let error = EdgeError::ApiPort {
                        port: port.number,
                        app: app.to_string(),
                    };
                    refuse(&mut routes, port, error)?;
                }
                Err(source) => {
                    let error = EdgeError::PortInUse {
                        port,
                        app: app.to_string(),
                        ip: self.ip,
                        source,
                    };
                    refuse(&mut routes, port, error)?;
                }
            }
        }
        ports.release(app, &routes.public_ports());
        let warnings = routes.warnings.clone();
        // The routes go in before a new port is served: a connection already waiting on
        // it (on a socket systemd kept open through a restart) must find its route, not
        // be dropped for want of one.
        self.state
            .routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app.to_string(), routes);
        for (port, socket) in bound {
            ports.serve(port, socket, self.state.clone(), app);
        }
        Ok(warnings)
    }

    /// The edge threads' signs of life, for the watchdog and `/health`.
    pub fn heartbeats(&self) -> Arc<heartbeat::Heartbeats> {
        self.heartbeats.clone()
    }

    /// The domain apps are served under.
    pub fn domain(&self) -> &str {
        self.state.hosts.domain()
    }

    /// Where `app` can be reached, as URLs, from the routes it is served with now.
    pub fn urls(&self, app: &str) -> Vec<String> {
        let mut names = vec![format!("{app}.{}", self.domain())];
        names.extend(self.state.hosts.exact_names_of(app));
        let at = addresses::Listening {
            http: self.addr,
            https: self.https_addr,
            names: &names,
        };
        self.state
            .look_up(app, |routes| Some(addresses::urls(routes, &at)))
            .unwrap_or_default()
    }

    /// Which app a host name is for, and which names are apps' own.
    pub fn hosts(&self) -> &hosts::Hosts {
        &self.state.hosts
    }

    /// Routes the host names the store holds (after one was added or removed, or an app
    /// destroyed). Read and applied under the store's lock, so of two reloads racing, the
    /// later read is the one that stays.
    pub async fn reload_hostnames(&self) -> Result<(), crate::daemon::store::StoreError> {
        let state = self.state.clone();
        self.state
            .store
            .run(move |conn, path| {
                let names = crate::daemon::store::hostnames::list(conn, path, None)?;
                state
                    .hosts
                    .replace(names.into_iter().map(|n| (n.hostname, n.app)));
                Ok(())
            })
            .await
    }

    /// Each edge certificate's file and when it expires (Unix seconds).
    pub fn certificate_expiries(&self) -> Vec<(String, i64)> {
        let Some(tls) = &self.state.tls else {
            return Vec::new();
        };
        tls.expiries()
            .into_iter()
            .filter_map(|(files, expires)| Some((files.cert.display().to_string(), expires?)))
            .collect()
    }

    /// The file of the edge certificate that covers `hostname` for HTTPS, and when it
    /// expires (RFC 3339), if one does.
    pub fn certificate_for(&self, hostname: &str) -> Option<(String, Option<String>)> {
        let tls = self.state.tls.as_ref()?;
        let (files, expires) = tls.covering(hostname)?;
        let expires = expires.and_then(crate::daemon::tls_expiry::rfc3339);
        Some((files.cert.display().to_string(), expires))
    }

    /// A machine of `app`'s process `group` for a call lakeflyd makes itself (an HTTP
    /// job), chosen as for a request: it counts as busy while the lease is held (so
    /// `auto_stop_machines` does not stop it under the call), and when the app's HTTP
    /// service auto-starts that group, a stopped machine is started and waited for.
    pub async fn lease_for_call(&self, app: &str, group: &str) -> Option<backends::Lease> {
        let groups = vec![group.to_string()];
        let route = match self.state.http_route(app) {
            Some(http) if http.groups.iter().any(|g| g == group) => Route {
                groups,
                ..(*http).clone()
            },
            _ => Route {
                app: app.to_string(),
                groups,
                internal_port: None,
                limits: backends::Limits::default(),
                auto_start: false,
                statics: Vec::new(),
                force_https: false,
                upstream: routes::UpstreamHttp::default(),
                idle_timeout: None,
            },
        };
        acquire::acquire(&self.state, &route, &[]).await.ok()
    }

    /// Forgets an app: its host route and its ports.
    pub fn remove(&self, app: &str) {
        self.state
            .routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(app);
        self.ports.lock().release(app, &[]);
    }

    /// Stops accepting connections; requests in flight go on until the daemon's shutdown
    /// signal, which comes after the machines drained.
    pub fn stop_accepting(&self) {
        // Kept even before `open` made a receiver, so one made later sees it.
        self.accepting.send_replace(true);
        self.ports.stop();
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

/// How a connection reached the edge, for `X-Forwarded-Proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP in TLS the edge terminated.
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}
