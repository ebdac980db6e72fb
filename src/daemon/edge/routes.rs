//! What the edge does for one app, read from its release's config: which groups serve the
//! host-routed HTTP service and with what limits, which public ports `[[services]]` want
//! and how each is handled, which statics are served, and which groups stop when idle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backends::Limits;
use super::proxy_proto::ProxyProto;
use super::statics::StaticDir;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::model::{AutoStop, Concurrency, HttpOptions, Service};
use crate::config::AppConfig;

/// Widest `start_port`..`end_port` range bound.
const MAX_PORT_RANGE: u32 = 256;

/// Where one kind of traffic of an app goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The app.
    pub app: String,
    /// The process groups whose machines serve it.
    pub groups: Vec<String>,
    /// The port the app listens on inside its machines.
    pub internal_port: Option<u16>,
    /// `concurrency` limits per machine.
    pub limits: Limits,
    /// Start a machine when traffic arrives and none is healthy.
    pub auto_start: bool,
    /// Files served by the edge before the machines are asked.
    pub statics: Vec<StaticDir>,
    /// `force_https`: plain HTTP requests are redirected to the app's HTTPS port.
    pub force_https: bool,
    /// How HTTP is spoken to the machines (`http_options`).
    pub upstream: UpstreamHttp,
    /// `http_options.idle_timeout`: how long a client connection may wait for its next
    /// request, when not `--edge-idle-timeout`.
    pub idle_timeout: Option<std::time::Duration>,
}

/// How the edge speaks HTTP to an app's machines: fly.toml's `http_options`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamHttp {
    /// `h2_backend`: HTTP/2 without TLS (h2c), else HTTP/1.1.
    pub h2: bool,
    /// `response.headers`: set (`Some`) or removed (`None`) on each response.
    pub response_headers: Vec<(HeaderName, Option<HeaderValue>)>,
    /// `response.pristine`: responses get no `Via` from the edge.
    pub pristine: bool,
    /// `compress` (on unless `false`): answers are compressed for clients that take it.
    pub compress: bool,
}

impl Default for UpstreamHttp {
    fn default() -> Self {
        UpstreamHttp::from_options(&HttpOptions::default())
    }
}

impl UpstreamHttp {
    fn from_options(options: &HttpOptions) -> Self {
        // Names and values were checked when the config was read; a stored config that
        // somehow holds a bad one loses just that header.
        let response_headers = options
            .response_headers
            .iter()
            .filter_map(|(name, value)| {
                let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
                match value {
                    None => Some((name, None)),
                    Some(v) => Some((name, Some(HeaderValue::from_str(v).ok()?))),
                }
            })
            .collect();
        UpstreamHttp {
            h2: options.h2_backend,
            response_headers,
            pristine: options.response_pristine,
            compress: options.compress.unwrap_or(true),
        }
    }

    /// Whether only the full server can do it: the relay speaks HTTP/1.1 and passes
    /// response heads on as they come, with its `Via` (a pristine app is rare enough
    /// not to need a relay of its own).
    pub fn needs_full_server(&self) -> bool {
        self.h2 || !self.response_headers.is_empty() || self.pristine
    }

    /// Adds the edge's `Via` for a response that came over `version`, unless pristine,
    /// then sets and removes the configured headers.
    pub fn apply(&self, headers: &mut HeaderMap, version: http::Version) {
        if !self.pristine {
            let via = HeaderValue::from_static(super::forwarding::via(version));
            headers.append(http::header::VIA, via);
        }
        for (name, value) in &self.response_headers {
            match value {
                Some(value) => headers.insert(name.clone(), value.clone()),
                None => headers.remove(name),
            };
        }
    }
}

/// How a public port of `[[services]]` is served.
#[derive(Debug, Clone, PartialEq)]
pub enum PortRoute {
    /// `handlers = ["http"]`: HTTP, like the host-routed edge.
    Http(Arc<Route>),
    /// No handler (or `proxy_proto`): bytes both ways, after a PROXY protocol header
    /// when one is asked for.
    Tcp(Arc<Route>, Option<ProxyProto>),
    /// `handlers = ["tls", "http"]`: HTTP in TLS the edge terminates.
    Https(Arc<Route>),
    /// `handlers = ["tls"]`: TLS the edge terminates, then bytes both ways.
    TlsTcp(Arc<Route>),
}

/// Idle machines of these groups stop, down to a floor.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoStopRule {
    /// The groups.
    pub groups: Vec<String>,
    /// Machines that keep running however idle.
    pub min_running: u32,
    /// The route whose traffic counts as activity.
    pub internal_port: Option<u16>,
}

/// Everything the edge does for one app.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppRoutes {
    /// The host-routed HTTP service (`<app>.<domain>`).
    pub http: Option<Arc<Route>>,
    /// Public TCP ports.
    pub ports: BTreeMap<u16, PortRoute>,
    /// Public UDP ports (`protocol = "udp"`): datagrams relayed to a machine.
    pub udp: BTreeMap<u16, Arc<Route>>,
    /// Auto-stop rules.
    pub auto_stop: Vec<AutoStopRule>,
    /// Settings the edge cannot honour, to report.
    pub warnings: Vec<String>,
}

impl AppRoutes {
    /// The port `force_https` redirects to: 443 when the app serves HTTPS there, else its
    /// first HTTPS port.
    pub fn https_port(&self) -> Option<u16> {
        let https = |port: &u16| matches!(self.ports.get(port), Some(PortRoute::Https(_)));
        [443]
            .into_iter()
            .chain(self.ports.keys().copied())
            .find(https)
    }

    /// Every public port the app wants bound.
    pub fn public_ports(&self) -> Vec<super::PublicPort> {
        let tcp = self
            .ports
            .keys()
            .map(|&number| super::PublicPort { number, udp: false });
        let udp = self
            .udp
            .keys()
            .map(|&number| super::PublicPort { number, udp: true });
        tcp.chain(udp).collect()
    }

    /// Leaves a public port out (it could not be bound).
    pub fn forget(&mut self, port: super::PublicPort) {
        match port.udp {
            true => self.udp.remove(&port.number).map(drop),
            false => self.ports.remove(&port.number).map(drop),
        };
    }

    /// Whether a route of the app asks for `force_https`.
    pub fn forces_https(&self) -> bool {
        let http_routes = self.ports.values().filter_map(|route| match route {
            PortRoute::Http(route) => Some(route),
            _ => None,
        });
        self.http
            .iter()
            .chain(http_routes)
            .any(|route| route.force_https)
    }
}

/// Reads an app's routes from its config; statics resolve inside `release_dir`.
pub fn from_config(app: &str, cfg: &AppConfig, release_dir: &Path) -> AppRoutes {
    let mut routes = AppRoutes::default();
    // Resolved once: a file is served only when its real path is inside.
    let root = release_dir
        .canonicalize()
        .unwrap_or_else(|_| release_dir.to_path_buf());
    let statics: Vec<StaticDir> = cfg
        .statics
        .iter()
        .map(|s| StaticDir {
            prefix: normalize_prefix(&s.url_prefix),
            dir: static_dir(release_dir, &s.guest_path),
            root: root.clone(),
        })
        .collect();
    // Made by a Dockerfile `RUN` step the host never runs, say (`rails assets:precompile`):
    // the app then answers for them, which the deploy should say rather than hide.
    for (i, (config, dir)) in cfg.statics.iter().zip(&statics).enumerate() {
        if !dir.dir.is_dir() {
            routes.warnings.push(format!(
                "statics[{i}]: guest_path {:?} is no directory of the release's files, so the app answers requests under {}; make it in [build] command, or fix the path",
                config.guest_path, dir.prefix
            ));
        }
    }
    if let Some(http) = &cfg.http_service {
        routes.http = Some(Arc::new(Route {
            app: app.to_string(),
            groups: http.processes.clone(),
            internal_port: Some(http.internal_port),
            limits: limits(http.concurrency.as_ref()),
            auto_start: http.auto_start_machines == Some(true),
            statics: statics.clone(),
            force_https: http.force_https,
            upstream: UpstreamHttp::from_options(&http.http_options),
            idle_timeout: http.http_options.idle_timeout.map(|t| t.to_std()),
        }));
        if stops(http.auto_stop_machines) {
            routes.auto_stop.push(AutoStopRule {
                groups: http.processes.clone(),
                min_running: http.min_machines_running.unwrap_or(0),
                internal_port: Some(http.internal_port),
            });
        }
    }
    for service in &cfg.services {
        add_service(app, service, &statics, &mut routes);
    }
    routes
}

fn add_service(app: &str, service: &Service, statics: &[StaticDir], routes: &mut AppRoutes) {
    let route = |statics: Vec<StaticDir>, force_https: bool, options: Option<&HttpOptions>| {
        Arc::new(Route {
            app: app.to_string(),
            groups: service.processes.clone(),
            internal_port: service.internal_port,
            limits: limits(service.concurrency.as_ref()),
            auto_start: service.auto_start_machines == Some(true),
            statics,
            force_https,
            upstream: options.map(UpstreamHttp::from_options).unwrap_or_default(),
            idle_timeout: options.and_then(|o| o.idle_timeout).map(|t| t.to_std()),
        })
    };
    if stops(service.auto_stop_machines) {
        routes.auto_stop.push(AutoStopRule {
            groups: service.processes.clone(),
            min_running: service.min_machines_running.unwrap_or(0),
            internal_port: service.internal_port,
        });
    }
    let udp = service.protocol.eq_ignore_ascii_case("udp");
    for port in &service.ports {
        let handlers: Vec<String> = port
            .handlers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let numbers: Vec<u16> = match (port.port, port.start_port, port.end_port) {
            (Some(p), _, _) => vec![p],
            (None, Some(start), Some(end)) if end >= start => {
                if u32::from(end - start) >= MAX_PORT_RANGE {
                    routes.warnings.push(format!(
                        "ports {start}-{end}: ranges wider than {MAX_PORT_RANGE} ports are not bound"
                    ));
                    continue;
                }
                (start..=end).collect()
            }
            _ => continue,
        };
        if udp {
            if !handlers.is_empty() {
                routes.warnings.push(format!(
                    "port {}/udp: handlers apply to TCP; datagrams are passed on as they come",
                    numbers[0]
                ));
            }
            for number in numbers {
                routes
                    .udp
                    .entry(number)
                    .or_insert_with(|| route(Vec::new(), false, None));
            }
            continue;
        }
        let http = handlers.iter().any(|h| h == "http");
        let tls = handlers.iter().any(|h| h == "tls");
        // Already HTTPS when the edge terminates TLS: nothing to redirect.
        let force_https = port.force_https && !tls;
        let proxy = match !tls && handlers.iter().any(|h| h == "proxy_proto") {
            false => None,
            true if http => {
                routes.warnings.push(format!(
                    "port {}: proxy_proto together with the http handler is not supported; \
                     HTTP is served there without a PROXY header (the edge sets X-Forwarded-For)",
                    numbers[0]
                ));
                None
            }
            true => match ProxyProto::from_options(&port.extra) {
                Ok(version) => Some(version),
                Err(e) => {
                    routes
                        .warnings
                        .push(format!("port {}: {e}; it is not served", numbers[0]));
                    continue;
                }
            },
        };
        let options = Some(&port.http_options);
        if http && routes.http.is_none() {
            // With no [http_service], the first HTTP service is what <app>.<domain> reaches.
            routes.http = Some(route(statics.to_vec(), force_https, options));
        }
        for number in numbers {
            let entry = match (tls, http) {
                (true, true) => PortRoute::Https(route(statics.to_vec(), false, options)),
                (true, false) => PortRoute::TlsTcp(route(Vec::new(), false, None)),
                (false, true) => PortRoute::Http(route(statics.to_vec(), force_https, options)),
                (false, false) => PortRoute::Tcp(route(Vec::new(), false, None), proxy),
            };
            routes.ports.entry(number).or_insert(entry);
        }
    }
}

fn stops(auto_stop: Option<AutoStop>) -> bool {
    matches!(auto_stop, Some(AutoStop::Stop | AutoStop::Suspend))
}

/// The limits of `concurrency`, whatever its `type`: on HTTP the edge's connection to a
/// machine carries one request at a time (idle ones carry no load), so connections in
/// use and requests in flight are the same count.
fn limits(concurrency: Option<&Concurrency>) -> Limits {
    Limits {
        soft: concurrency.and_then(|c| c.soft_limit),
        hard: concurrency.and_then(|c| c.hard_limit),
    }
}

/// `/static` and `/static/` both match `/static/...`.
fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

/// `guest_path` inside the release: `public` and `/public` are `<release>/public`; an image
/// path such as `/app/public` (a Dockerfile's WORKDIR) is `<release>/public` when the
/// release has no `app/` directory of its own.
fn static_dir(release_dir: &Path, guest_path: &str) -> PathBuf {
    let relative = guest_path.trim_start_matches('/');
    let direct = release_dir.join(relative);
    if direct.exists() {
        return direct;
    }
    match relative.split_once('/') {
        Some((_, rest)) if release_dir.join(rest).exists() => release_dir.join(rest),
        _ => direct,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `text` read as a valid config.
    pub(crate) fn config(text: &str) -> AppConfig {
        let (cfg, _) = crate::config::parse(text, Path::new("fly.toml"))
            .into_valid()
            .expect("valid config");
        cfg
    }

    #[test]
    fn http_service_sets_the_host_route_limits_and_auto_stop() {
        let cfg = config(
            r#"
app = "web"
[http_service]
internal_port = 8080
force_https = true
auto_stop_machines = "stop"
auto_start_machines = true
min_machines_running = 1
[http_service.concurrency]
type = "requests"
soft_limit = 20
hard_limit = 25
"#,
        );
        let routes = from_config("web", &cfg, Path::new("/nonexistent"));
        assert!(routes.warnings.is_empty(), "{:?}", routes.warnings);
        // It asks for a redirect, and has no HTTPS port to redirect to.
        assert!(routes.forces_https());
        assert_eq!(routes.https_port(), None);
        let http = routes.http.expect("http route");
        assert_eq!(http.groups, vec!["app"]);
        assert_eq!(http.internal_port, Some(8080));
        assert_eq!(
            http.limits,
            Limits {
                soft: Some(20),
                hard: Some(25)
            }
        );
        assert!(http.auto_start);
        assert_eq!(routes.auto_stop.len(), 1);
        assert_eq!(routes.auto_stop[0].min_running, 1);
        assert!(routes.ports.is_empty());
    }

    #[test]
    fn services_ports_bind_by_handler() {
        let cfg = config(
            r#"
app = "svc"
[[services]]
protocol = "tcp"
internal_port = 8001
[[services.ports]]
port = 8001
handlers = ["http"]
force_https = true
[[services.ports]]
port = 443
handlers = ["tls", "http"]
[[services]]
protocol = "tcp"
internal_port = 5432
[[services.ports]]
port = 15432
"#,
        );
        let routes = from_config("svc", &cfg, Path::new("/nonexistent"));
        assert!(matches!(routes.ports.get(&8001), Some(PortRoute::Http(r)) if r.force_https));
        assert!(
            matches!(routes.ports.get(&15432), Some(PortRoute::Tcp(r, None)) if r.internal_port == Some(5432))
        );
        // Served when the edge has a certificate (its `configure` decides).
        assert!(matches!(routes.ports.get(&443), Some(PortRoute::Https(_))));
        assert_eq!(routes.https_port(), Some(443));
        // No [http_service]: the HTTP service answers on <app>.<domain> too.
        assert_eq!(routes.http.expect("http").internal_port, Some(8001));
    }

    #[test]
    fn proxy_proto_ports_carry_their_version_and_odd_ones_are_reported() {
        let cfg = config(
            r#"
app = "pg"
[[services]]
protocol = "tcp"
internal_port = 5432
[[services.ports]]
port = 5432
handlers = ["proxy_proto"]
[[services.ports]]
port = 5433
handlers = ["proxy_proto"]
proxy_proto_options = { version = "v2" }
[[services.ports]]
port = 5434
handlers = ["proxy_proto"]
proxy_proto_options = { version = "v9" }
[[services.ports]]
port = 8080
handlers = ["http", "proxy_proto"]
"#,
        );
        let routes = from_config("pg", &cfg, Path::new("/nonexistent"));
        let proxy = |port| match routes.ports.get(&port) {
            Some(PortRoute::Tcp(_, proxy)) => *proxy,
            other => panic!("port {port}: {other:?}"),
        };
        assert_eq!(proxy(5432), Some(ProxyProto::V1));
        assert_eq!(proxy(5433), Some(ProxyProto::V2));
        assert!(!routes.ports.contains_key(&5434));
        assert!(matches!(routes.ports.get(&8080), Some(PortRoute::Http(_))));
        let said = routes.warnings.join("\n");
        assert!(
            said.contains("port 5434: proxy_proto_options.version"),
            "{said}"
        );
        assert!(
            said.contains("port 8080: proxy_proto together with the http"),
            "{said}"
        );
    }

    #[test]
    fn udp_services_get_udp_ports_beside_tcp_ones_of_the_same_number() {
        let cfg = config(
            r#"
app = "dns"
[[services]]
  protocol = "udp"
  internal_port = 53
  [[services.ports]]
    port = 5353
  [[services.ports]]
    port = 5400
    handlers = ["http"]
[[services]]
  protocol = "tcp"
  internal_port = 53
  [[services.ports]]
    port = 5353
"#,
        );
        let routes = from_config("dns", &cfg, Path::new("/nonexistent"));
        assert_eq!(routes.udp.keys().copied().collect::<Vec<_>>(), [5353, 5400]);
        assert_eq!(routes.udp[&5353].internal_port, Some(53));
        assert!(matches!(
            routes.ports.get(&5353),
            Some(PortRoute::Tcp(_, None))
        ));
        assert_eq!(
            routes.warnings,
            ["port 5400/udp: handlers apply to TCP; datagrams are passed on as they come"]
        );
        let public: Vec<String> = routes
            .public_ports()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(public, ["5353", "5353/udp", "5400/udp"]);
    }

    #[test]
    fn statics_resolve_inside_the_release() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("public")).expect("mkdir");
        assert_eq!(
            static_dir(dir.path(), "/app/public"),
            dir.path().join("public")
        );
        assert_eq!(static_dir(dir.path(), "public"), dir.path().join("public"));
        assert_eq!(normalize_prefix("/static/"), "/static");
        assert_eq!(normalize_prefix("assets"), "/assets");
    }

    #[test]
    fn a_static_directory_the_release_lacks_is_warned_about() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("public")).expect("mkdir");
        let cfg = config(
            "app = \"s\"\n[[statics]]\n  guest_path = \"/app/public\"\n  url_prefix = \"/\"\n\
             [[statics]]\n  guest_path = \"/app/public/assets\"\n  url_prefix = \"/assets/\"\n",
        );
        let routes = from_config("s", &cfg, dir.path());
        assert_eq!(
            routes.warnings,
            ["statics[1]: guest_path \"/app/public/assets\" is no directory of the release's files, \
              so the app answers requests under /assets; make it in [build] command, or fix the path"]
        );
    }
}
