//! Wire types of scheduled jobs, shared by the daemon's `/v1/.../jobs` and LSH `/jobs`
//! handlers and the client.

use serde::{Deserialize, Serialize};

use crate::config::units::Duration;

/// What a job does and when: a command or an HTTP call on the app, on a cron schedule, an
/// interval, or only when triggered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Unique within the app.
    pub name: String,
    /// Shell command run in the release's directory with the app's env and secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// HTTP method of a call on the app (default `GET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// HTTP path called on a healthy machine of the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Cron expression: 5 fields, 6 with seconds first, or 7 with a year last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The zone `schedule` is read in: an IANA name (`Europe/Berlin`) or `local` (the
    /// daemon host's, as crontab reads it); UTC when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Time between runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Limit on one attempt (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Extra attempts after a failed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// The process group whose release, env and machines the job uses (default: the app's
    /// default group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_group: Option<String>,
}

/// The zone a schedule is read in: UTC when none is named, `local` for the host's (as
/// crontab reads it), else an IANA name from the host's time zone database.
pub fn schedule_zone(name: Option<&str>) -> Result<jiff::tz::TimeZone, String> {
    match name {
        None => Ok(jiff::tz::TimeZone::UTC),
        Some("local") => jiff::tz::TimeZone::try_system()
            .map_err(|e| format!("the host's time zone cannot be read: {e}")),
        Some(name) => jiff::tz::TimeZone::get(name).map_err(|_| {
            format!(
                "time_zone {name:?} is not a zone this host knows: use an IANA name such as \"Europe/Berlin\", \"UTC\" or \"local\" (the host's)"
            )
        }),
    }
}

/// The shortest interval between a job's runs.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// A cron schedule read (5 fields, 6 with seconds first, or 7 with a year last, as
/// croner reads them), or why it is not one.
pub fn parse_schedule(expr: &str) -> Result<croner::Cron, String> {
    expr.parse::<croner::Cron>().map_err(|e| {
        format!(
            "{expr:?} is not a cron expression: {}",
            e.to_string().trim_end_matches('.')
        )
    })
}

/// `POST /jobs` (LSH): a job for an app named in the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    /// The app.
    pub app: String,
    /// The job.
    #[serde(flatten)]
    pub spec: JobSpec,
}

/// A job as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Never reused.
    pub id: u64,
    /// Its app.
    pub app: String,
    /// `config` (from fly.toml `[[jobs]]`) or `api`.
    pub source: String,
    /// `idle`, `running` or `stopped` (not scheduled until started).
    pub status: String,
    /// What it does and when.
    #[serde(flatten)]
    pub spec: JobSpec,
    /// When it runs next, if it is scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    /// Its latest run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<JobRun>,
}

/// One run of a job (with its retries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRun {
    /// Never reused.
    pub id: u64,
    /// The job.
    pub job_id: u64,
    /// `schedule` or `manual`.
    pub trigger: String,
    /// `running`, `succeeded`, `failed`, `timed_out`, `skipped` (the previous run was
    /// still going), or `cancelled` (its job was deleted while it ran).
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// A command's exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// An HTTP call's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The last few KiB of output (or response body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// `GET /status` (LSH): the daemon at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// `ok`.
    pub status: String,
    /// The daemon's version.
    pub version: String,
    /// Apps.
    pub apps: u64,
    /// Machines that are not destroyed.
    pub machines: u64,
    /// Jobs, and how many of them run now.
    pub jobs: u64,
    /// Jobs running now.
    pub jobs_running: u64,
}
