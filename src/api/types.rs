//! Requests, responses and events of the `/v1` API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::model::{Check, RestartPolicy};
use crate::config::units::Duration;

/// The body of every error response: a message, a stable code, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong.
    pub error: String,
    /// Stable machine-readable code (`app_not_found`, `app_exists`...).
    pub code: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// One entry of `GET /v1/metrics/targets`, in Prometheus's HTTP service discovery format
/// (`http_sd_configs`): where one machine serves one `[[metrics]]` endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsTarget {
    /// `host:port` to scrape (one).
    pub targets: Vec<String>,
    /// Labels the scraped series get: `app`, `process_group`, `instance` (the machine's
    /// id, as on Fly), and `__metrics_path__`.
    pub labels: BTreeMap<String, String>,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`; `degraded` when the daemon serves but something needs its operator
    /// (`problems` says what); `stopping` while it stops its machines to exit.
    pub status: String,
    /// What needs doing, when degraded: its disk is full, say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The daemon's version.
    pub version: String,
    /// Where the edge serves apps (`ADDR`), when the daemon has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
    /// The domain apps are served under: `<app>.<domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// An app as the daemon knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Unique name (`[a-z0-9-]{1,63}`).
    pub name: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// The release that runs, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_release: Option<u64>,
    /// Its machines, counted (`GET /v1/apps` and `GET /v1/apps/{name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machines: Option<MachineCounts>,
}

/// How many machines an app has, and how many of them run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineCounts {
    /// Machines not destroyed.
    pub total: u32,
    /// Of those, started.
    pub started: u32,
}

/// `POST /v1/apps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateApp {
    /// The new app's name.
    pub name: String,
}

/// The header of `HEAD /v1/bundles/{sha256}` answers that gives the largest upload the
/// daemon takes, in bytes: a client refuses a bigger bundle before sending it, since the
/// daemon's early 413 would reach it mid-upload as a broken pipe.
pub const BUNDLE_MAX_BYTES_HEADER: &str = "lakefly-bundle-max-bytes";

/// `PUT /v1/bundles/{sha256}`: what was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleStored {
    /// The bundle's SHA-256.
    pub digest: String,
    /// Compressed size in bytes.
    pub size: u64,
    /// Entries in the archive (absent when it was already stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// Bytes once unpacked (absent when it was already stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpacked_bytes: Option<u64>,
}

/// How to run one machine: what `POST /v1/apps/{app}/machines` takes, and what a release
/// turns each process group into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineSpec {
    /// The process group the machine belongs to.
    #[serde(default = "default_group")]
    pub process_group: String,
    /// Command line, run with `/bin/sh -c` like a `[processes]` entry.
    pub command: String,
    /// Extra environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: the app's directory under the daemon's state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Signal that asks the machine to stop (default `SIGINT`, as on Fly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_signal: Option<String>,
    /// Time between the kill signal and SIGKILL (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_timeout: Option<Duration>,
    /// When to restart after an exit (default on-failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    /// Restarts allowed in a row before the machine is marked failed (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// The port the app listens on; the daemon allocates `$PORT` for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_port: Option<u16>,
    /// `internal_port` is served over UDP only (`protocol = "udp"`), so no TCP connection
    /// can tell whether the app is up: without checks, staying up counts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub udp_only: bool,
    /// The release the machine runs, when it came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_version: Option<u64>,
    /// Persistent directories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountSpec>,
    /// Health checks, by name. Without any, the machine is healthy once `internal_port`
    /// accepts connections, or after staying up for a second when it has no TCP port.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, Check>,
    /// Memory limit in MiB (`[[vm]] memory`): a cgroup's `memory.max`, else the resident
    /// memory of its processes, watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// CPUs it may use at once (`[[vm]] cpus`, or its size's): a cgroup's `cpu.max`;
    /// not enforced without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Swap it may use in MiB (`swap_size_mb`): a cgroup's `memory.swap.max`; without a
    /// cgroup (or the kernel's swap accounting), the host's swap, unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_mb: Option<u64>,
    /// What `lakefly console` runs without `-C` (fly.toml's `console_command`, paths
    /// mapped onto a Dockerfile's tree); a shell when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_command: Option<String>,
}

/// A persistent directory of the app, kept across machines and releases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// Volume name: the directory's name under the daemon's state.
    pub source: String,
    /// The absolute path the app expects it at.
    pub destination: String,
}

fn default_group() -> String {
    crate::config::model::DEFAULT_GROUP.to_string()
}

/// Where a machine is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineState {
    /// Recorded, not started yet.
    Created,
    /// Being spawned.
    Starting,
    /// Running.
    Started,
    /// Being stopped.
    Stopping,
    /// Not running, by request or by its restart policy.
    Stopped,
    /// Not running: it kept crashing past its retries, or could not be spawned.
    Failed,
    /// Gone for good.
    Destroyed,
}

impl MachineState {
    /// The state's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineState::Created => "created",
            MachineState::Starting => "starting",
            MachineState::Started => "started",
            MachineState::Stopping => "stopping",
            MachineState::Stopped => "stopped",
            MachineState::Failed => "failed",
            MachineState::Destroyed => "destroyed",
        }
    }

    /// Parses a stored state name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            MachineState::Created,
            MachineState::Starting,
            MachineState::Started,
            MachineState::Stopping,
            MachineState::Stopped,
            MachineState::Failed,
            MachineState::Destroyed,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

/// How a machine's checks stand, and how each check does (`checks list`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Not checked yet, or failing only within its grace period (a start not over).
    #[default]
    Unknown,
    /// Every check passes.
    Passing,
    /// A check fails.
    Critical,
}

impl HealthState {
    /// The name as stored, shown and sent in `machine.health` events.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unknown => "unknown",
            HealthState::Passing => "passing",
            HealthState::Critical => "critical",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            HealthState::Unknown,
            HealthState::Passing,
            HealthState::Critical,
        ]
        .into_iter()
        .find(|health| health.as_str() == s)
    }
}

impl std::fmt::Display for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a machine's process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// Signal name, when a signal ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// When (RFC 3339).
    pub time: String,
    /// Killed for going over its memory limit (`[[vm]] memory`), as Fly's `oom_killed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
}

/// A machine as `GET /v1/apps/{app}/machines` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Unique id, never reused.
    pub id: String,
    /// The app.
    pub app: String,
    /// Its process group.
    pub process_group: String,
    /// Current state.
    pub state: MachineState,
    /// How its checks stand.
    pub health: HealthState,
    /// The release it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_version: Option<u64>,
    /// Its process id while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The `$PORT` allocated to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Restarts after exits.
    pub restarts: u32,
    /// How its process last ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<ExitInfo>,
    /// When its current process started (RFC 3339), while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// How it runs.
    pub spec: MachineSpec,
}

/// `GET /v1/apps/{app}/status`: the app, its current release, and its machines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppStatus {
    /// The app's name.
    pub app: String,
    /// The current release, once there is one.
    pub release: Option<ReleaseSummary>,
    /// The release rolling out to replace the current one, while one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_out: Option<u64>,
    /// Every machine that is not destroyed.
    pub machines: Vec<Machine>,
    /// Where the app is served (its host names on the edge, then its service ports), as
    /// URLs; empty when it serves nothing, or from a daemon that does not say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

/// A release as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSummary {
    /// Version number, 1, 2, 3...
    pub version: u64,
    /// `pending`, `running`, `complete`, `failed` or `rolled_back`.
    pub status: String,
}

/// `POST /v1/apps/{app}/deploys`: run `config` from `bundle` as the app's next release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployRequest {
    /// The normalized config (`lakefly config show --json`).
    pub config: crate::config::AppConfig,
    /// SHA-256 of an uploaded bundle.
    pub bundle: String,
    /// Overrides `[deploy] strategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<crate::config::model::Strategy>,
    /// Overrides `[deploy] wait_timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout: Option<Duration>,
    /// What the release is for (`deploy`, `rollback to v3`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Build again even when an earlier release with the same bundle, `[build]` and
    /// `[env]` left its built files (`deploy --rebuild`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebuild: bool,
    /// Count a new machine once its checks pass, without watching it for the daemon's
    /// `--smoke-time` first (`deploy --smoke-checks=false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_smoke_checks: bool,
}

/// A release as `releases` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// 1, 2, 3... per app.
    pub version: u64,
    /// `running`, `complete`, `failed`.
    pub status: String,
    /// What it was for.
    pub description: String,
    /// The bundle's digest.
    pub bundle: String,
    /// The rollout strategy used.
    pub strategy: String,
    /// When it was created.
    pub created_at: String,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The earlier release whose built files it runs from, when it was not built itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_of: Option<u64>,
}

/// `POST /v1/apps/{app}/rollbacks`: a new release that reuses an earlier one's config and
/// bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRequest {
    /// The release to go back to; default: the last complete one before the current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// `POST /v1/apps/{app}/cancels`: stop the release rolling out; it fails, and the one
/// before keeps running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    /// The release to cancel; default: the one rolling out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// A secret's value on the wire: a string that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(pub crate::secret::Secret);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for SecretValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(self.0.expose()))
    }
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretValue(crate::secret::Secret::from(s)))
    }
}

/// `POST /v1/apps/{app}/secrets`: set and unset secrets, now or staged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecretsRequest {
    /// Names to set, with their values.
    #[serde(default)]
    pub set: BTreeMap<String, SecretValue>,
    /// Names to remove.
    #[serde(default)]
    pub unset: Vec<String>,
    /// Store without a new release; `secrets deploy` applies staged changes.
    #[serde(default)]
    pub stage: bool,
}

/// What a secrets change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretsChanged {
    /// Names whose value or presence changed.
    pub changed: Vec<String>,
    /// Names that already had that value (or were not set).
    pub unchanged: Vec<String>,
    /// The release that rolls the change out, when one was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<u64>,
}

/// A secret as `secrets list` shows it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    /// The variable name.
    pub name: String,
    /// A short SHA-256 of the value, to tell values apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// `deployed` or `staged`.
    pub status: String,
    /// When it last changed.
    pub updated_at: String,
}

/// A host name routed to an app besides `<app>.<domain>` (`lakefly certs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hostname {
    /// The name, lowercase: `www.example.com`, or `*.example.com` for every name one
    /// label under it that no app has by its own name.
    pub hostname: String,
    /// The app it routes to.
    pub app: String,
    /// When it was added (RFC 3339).
    pub created_at: String,
    /// The edge's certificate file HTTPS for the name is served with, when one of the
    /// edge's certificates covers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// When that certificate expires (RFC 3339): lakeflyd does not renew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_expires: Option<String>,
}

/// `POST /v1/apps/{app}/certs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddHostname {
    /// The host name to route to the app.
    pub hostname: String,
}

/// One line of a machine's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Position in the app's log; use it as `after` to read on.
    pub id: u64,
    /// When it was read (RFC 3339).
    pub time: String,
    /// The machine that wrote it, or `job:NAME#RUN` for a job run's command.
    pub machine: String,
    /// That machine's process group (none for a job run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_group: Option<String>,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text.
    pub line: String,
}

/// One recorded change. `id` is strictly increasing and never reused, across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the event log.
    pub id: u64,
    /// When it happened (RFC 3339, UTC).
    pub time: String,
    /// The app it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// What happened: `app.created`, `machine.exited`... Unknown kinds pass through.
    pub kind: String,
    /// Details, shaped by `kind`.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Event {
    /// Its data as `key=value` pairs by name (strings bare, nulls left out), as people read
    /// it in `lakefly events` and lakeflyd's log: one line whatever a value holds (a check's
    /// multi-line output, an app's escape sequences are quoted and escaped).
    pub fn details(&self) -> String {
        match &self.data {
            serde_json::Value::Object(map) => {
                // By name, so a kind's details read the same way every time whatever order
                // the daemon built them in.
                let mut details: Vec<_> = map.iter().filter(|(_, v)| !v.is_null()).collect();
                details.sort_unstable_by_key(|(k, _)| k.as_str());
                details
                    .into_iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::String(s) if s.chars().any(char::is_control) => {
                            format!("{k}={s:?}")
                        }
                        serde_json::Value::String(s) => format!("{k}={s}"),
                        other => format!("{k}={other}"),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            other => other.to_string(),
        }
    }
}

/// Most events one answer of the stored event log holds (`GET /v1/events?follow=false`);
/// a reader pages on with `since` set to the last id it got.
pub const MAX_EVENTS_PAGE: usize = 10_000;

pub use super::exec::{ExecEnd, ExecEvent, ExecRequest, ExecResult, NDJSON};
/// Event kinds the daemon emits.
pub use super::kind;
pub use super::scale::{
    GroupScale, MemoryChange, MemoryRequest, ScaleChange, ScaleRequest, VmChange, VmRequest, VmSize,
};
