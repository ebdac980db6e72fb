//! The normalized app config: every odd form of `fly.toml` reduced to one shape.
//!
//! This is what `lakefly config show --json` prints and what the daemon consumes: lists are
//! lists, durations carry units, memory is in MiB, and every section that names process
//! groups names at least one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::decode::reader::Extra;
use super::units::Duration;

/// The process group an app runs when `[processes]` is absent.
pub const DEFAULT_GROUP: &str = "app";

/// A whole `fly.toml`, normalized.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppConfig {
    /// App name (`[a-z0-9-]{1,63}`); `-a` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Fly region the app prefers; kept for compatibility, unused on one host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
    /// Signal that asks a machine to stop (`SIGINT` when unset, as on Fly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_signal: Option<String>,
    /// Time between the kill signal and SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_timeout: Option<Duration>,
    /// Swap per machine in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_size_mb: Option<u64>,
    /// Command `fly console` runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_command: Option<String>,
    /// How the app is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// How releases roll out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    /// Environment for every machine; values are strings whatever the file wrote.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Process groups: name to command line. Empty means one group, `app`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub processes: BTreeMap<String, String>,
    /// The HTTP service on the edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_service: Option<HttpService>,
    /// TCP/UDP services with their own public ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// Machine-level checks by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, Check>,
    /// Machine sizes, per process group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vm: Vec<Vm>,
    /// Persistent directories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// Static files the edge serves from the release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statics: Vec<Static>,
    /// Files written into machines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSpec>,
    /// Prometheus endpoints of the app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metrics>,
    /// Restart policies, per process group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart: Vec<Restart>,
    /// Legacy and experimental settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experimental: Option<Experimental>,
    /// Scheduled and manual jobs (lakefly extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<Job>,
    /// Top-level keys lakefly does not use, kept as written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

impl AppConfig {
    /// The process group names this config runs, in name order.
    pub fn group_names(&self) -> Vec<&str> {
        if self.processes.is_empty() {
            vec![DEFAULT_GROUP]
        } else {
            self.processes.keys().map(String::as_str).collect()
        }
    }

    /// The group a section means when it names none: `app` if defined, else the first by name.
    pub fn default_group(&self) -> &str {
        if self.processes.is_empty() || self.processes.contains_key(DEFAULT_GROUP) {
            DEFAULT_GROUP
        } else {
            self.processes
                .keys()
                .next()
                .map_or(DEFAULT_GROUP, String::as_str)
        }
    }
}

/// `[build]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Build {
    /// Buildpack builder image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder: Option<String>,
    /// Prebuilt image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Dockerfile whose final stage lakefly reads (without a container engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Ignore file for the build context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignorefile: Option<String>,
    /// Dockerfile stage (`build-target` or `build_target`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_target: Option<String>,
    /// Buildpacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buildpacks: Vec<String>,
    /// Build arguments.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// Shell command run once per release in the unpacked bundle (lakefly extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

impl Build {
    /// Whether it says what to build from (a Dockerfile, an image, a builder or
    /// buildpacks); without that, flyctl builds the `Dockerfile` beside `fly.toml`.
    pub fn names_a_source(&self) -> bool {
        self.dockerfile.is_some()
            || self.image.is_some()
            || self.builder.is_some()
            || !self.buildpacks.is_empty()
    }
}

/// How a release replaces the machines of the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Replace `max_unavailable` machines at a time, each new one healthy before an old one stops.
    Rolling,
    /// Replace everything at once without waiting for health.
    Immediate,
    /// One new machine first; when healthy, rolling for the rest.
    Canary,
    /// A full new set, all healthy, then switch traffic in one step.
    Bluegreen,
}

impl Strategy {
    /// Every strategy with its spelling in `fly.toml`.
    pub const ALL: [(&'static str, Strategy); 4] = [
        ("rolling", Strategy::Rolling),
        ("immediate", Strategy::Immediate),
        ("canary", Strategy::Canary),
        ("bluegreen", Strategy::Bluegreen),
    ];
}

/// `[deploy]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deploy {
    /// Rollout strategy; rolling when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Command run in a one-off machine before the rollout; non-zero fails the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_command: Option<String>,
    /// Limit on `release_command` (Fly's default: 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_command_timeout: Option<Duration>,
    /// Below 1, a fraction of a group; 1 or more, a count (Fly's default: 0.33).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<f64>,
    /// How long a new machine has to become healthy (Fly's default: 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout: Option<Duration>,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

/// `auto_stop_machines`: `true`/`false` or `"stop"`, `"suspend"`, `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoStop {
    /// Never stop idle machines.
    Off,
    /// Stop idle machines.
    Stop,
    /// Suspend idle machines (lakefly stops them).
    Suspend,
}

/// What `concurrency` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConcurrencyKind {
    /// Open connections (Fly's default).
    Connections,
    /// In-flight HTTP requests.
    Requests,
}

/// Load limits per machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Concurrency {
    /// What is counted.
    #[serde(rename = "type")]
    pub kind: ConcurrencyKind,
    /// Above this, prefer other machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_limit: Option<u32>,
    /// Above this, send nothing more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_limit: Option<u32>,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

/// Health check protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// An HTTP request must answer 2xx.
    Http,
    /// A TCP connection must be accepted.
    Tcp,
    /// A type lakefly does not run (Fly's old `script` checks); kept, reported, ignored.
    #[serde(untagged)]
    Other(String),
}

/// A health check, from any place `fly.toml` puts one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `http` or `tcp`.
    #[serde(rename = "type")]
    pub kind: CheckKind,
    /// Port to check; the service's `internal_port` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// HTTP path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Skip TLS verification for `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_skip_verify: Option<bool>,
    /// HTTP headers sent with the check.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Time one check may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Time after start before failures count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<Duration>,
    /// Legacy Fly v1 restart limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_limit: Option<u32>,
    /// Groups the check applies to (top-level checks only; service checks follow the service).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<String>,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

/// `[http_service]`: HTTP on the edge, routed by host name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpService {
    /// Port the app listens on inside the machine (mapped onto `$PORT`).
    pub internal_port: u16,
    /// Redirect HTTP to HTTPS.
    #[serde(default)]
    pub force_https: bool,
    /// Stop idle machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_stop_machines: Option<AutoStop>,
    /// Start a stopped machine when a request arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_start_machines: Option<bool>,
    /// Floor for `auto_stop_machines`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_machines_running: Option<u32>,
    /// Groups that serve it (never empty).
    pub processes: Vec<String>,
    /// Load limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// HTTP checks on `internal_port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// `http_options`: how the edge speaks HTTP to the app.
    #[serde(default, skip_serializing_if = "HttpOptions::is_default")]
    pub http_options: HttpOptions,
    /// Other keys (`tls_options`...), kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

/// `http_options` of `[http_service]` or of a `[[services.ports]]` with the `http`
/// handler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpOptions {
    /// `h2_backend`: the edge speaks HTTP/2 without TLS (h2c) to the app, as gRPC
    /// servers need.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub h2_backend: bool,
    /// `idle_timeout`: how long the edge keeps an idle client connection of this app
    /// open (instead of `lakeflyd --edge-idle-timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// `response.headers`: set to the value (a string) or removed (`false`, here `None`)
    /// on each of the app's responses.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub response_headers: BTreeMap<String, Option<String>>,
    /// `response.pristine`: the edge adds no header of its own (its `Via`) to the app's
    /// responses.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub response_pristine: bool,
    /// `compress`: whether the edge compresses the app's answers for clients that accept
    /// it (Fly's proxy does unless it is `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

impl HttpOptions {
    /// Nothing set.
    pub fn is_default(&self) -> bool {
        *self == HttpOptions::default()
    }
}

/// One public port of a `[[services]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    /// Public port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// First port of a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_port: Option<u16>,
    /// Last port of a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<u16>,
    /// `http`, `tls`, `proxy_proto`...; none means raw TCP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handlers: Vec<String>,
    /// Redirect HTTP to HTTPS.
    #[serde(default)]
    pub force_https: bool,
    /// `http_options`, for a port with the `http` handler.
    #[serde(default, skip_serializing_if = "HttpOptions::is_default")]
    pub http_options: HttpOptions,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

/// `[[services]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Port the app listens on inside the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_port: Option<u16>,
    /// Public ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Load limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// TCP checks on `internal_port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_checks: Vec<Check>,
    /// HTTP checks on `internal_port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_checks: Vec<Check>,
    /// Groups that serve it (never empty).
    pub processes: Vec<String>,
    /// Stop idle machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_stop_machines: Option<AutoStop>,
    /// Start a stopped machine when a connection arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_start_machines: Option<bool>,
    /// Floor for `auto_stop_machines`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_machines_running: Option<u32>,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

/// `[[vm]]` (or `[[compute]]`): machine size for some groups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vm {
    /// Fly size preset (`shared-cpu-1x`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Memory in MiB: `memory_mb`, else `memory`, else the size's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// CPU count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// `shared` or `performance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_kind: Option<String>,
    /// GPU count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// GPU model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_kind: Option<String>,
    /// Groups this size applies to; empty means every group without a `[[vm]]` of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<String>,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

/// `[[mounts]]` (or `[mount]`): a persistent directory kept across releases.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    /// Volume name; the directory's name on the host.
    pub source: String,
    /// Absolute path the machine sees.
    pub destination: String,
    /// Requested size in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_size_mb: Option<u64>,
    /// Groups that get it (never empty).
    pub processes: Vec<String>,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

/// `[[statics]]`: files served by the edge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Static {
    /// Directory in the release.
    pub guest_path: String,
    /// URL prefix they are served under.
    pub url_prefix: String,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

/// `[[files]]`: a file written into machines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileSpec {
    /// Where the machine sees it.
    pub guest_path: String,
    /// Source file in the app directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_path: Option<String>,
    /// Secret whose value becomes the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Literal content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_value: Option<String>,
    /// Groups that get it (never empty).
    pub processes: Vec<String>,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

/// `[[metrics]]`: where the app serves Prometheus metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Port inside the machine.
    pub port: u16,
    /// HTTP path.
    pub path: String,
    /// Groups that serve them (never empty).
    pub processes: Vec<String>,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

/// When a machine that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// After every exit.
    Always,
    /// After a non-zero exit or a signal (the default).
    OnFailure,
    /// Never.
    Never,
}

impl RestartPolicy {
    /// Every policy with its spelling in `fly.toml`.
    pub const ALL: [(&'static str, RestartPolicy); 3] = [
        ("always", RestartPolicy::Always),
        ("on-failure", RestartPolicy::OnFailure),
        ("never", RestartPolicy::Never),
    ];
}

/// `[[restart]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restart {
    /// When to restart.
    pub policy: RestartPolicy,
    /// Restarts allowed before giving up (`retries` or `max_retries`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Groups it applies to (never empty).
    pub processes: Vec<String>,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

/// `[experimental]`: legacy settings that still decide what runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Experimental {
    /// Arguments, as Docker's `CMD`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// Program, as Docker's `ENTRYPOINT`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    /// Replaces both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec: Vec<String>,
    /// Roll back a failed deploy (lakefly always keeps the old release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rollback: Option<bool>,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}

/// `[[jobs]]` (lakefly extension): a command or an HTTP call on a schedule, or on demand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Unique name within the app.
    pub name: String,
    /// Shell command run in the release dir with the app's env.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// HTTP method for a call on the app (`GET` when only `path` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// HTTP path called on the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Cron expression: 5 fields, 6 with seconds first, or 7 with a year last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The zone `schedule` is read in (IANA name or `local`; UTC when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Fixed interval between runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Limit on one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Extra attempts after a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Group whose release and env the job uses (never empty).
    pub processes: Vec<String>,
    /// Other keys, kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: Extra,
}
