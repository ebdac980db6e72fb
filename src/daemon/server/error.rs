//! Errors a handler returns, each mapped to a status and an [`ApiError`] body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::codes;
use crate::api::types::ApiError;
use crate::daemon::bundles::UploadError;
use crate::daemon::deploy::DeployError;
use crate::daemon::jobs::JobError;
use crate::daemon::store::StoreError;
use crate::daemon::volumes::VolumeError;

/// What can go wrong answering a request.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No app by that name.
    #[error("app {0:?} does not exist")]
    AppNotFound(String),
    /// The name is taken.
    #[error("app {0:?} already exists")]
    AppExists(String),
    /// The name breaks the naming rules.
    #[error("app name {name:?} {problem}")]
    InvalidAppName {
        /// The name as sent.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// No machine by that id in the app.
    #[error("machine {id:?} does not exist in app {app:?}")]
    MachineNotFound {
        /// The app.
        app: String,
        /// The machine id.
        id: String,
    },
    /// No app has a machine by that id (one looked up without its app).
    #[error("no app has a machine {id:?}")]
    UnknownMachine {
        /// The machine id.
        id: String,
    },
    /// A host name for an app breaks the naming rules.
    #[error("host name {hostname:?} {problem}")]
    InvalidHostname {
        /// The name as sent.
        hostname: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Another app has the host name.
    #[error("host name {hostname:?} already routes to app {app:?}")]
    HostnameTaken {
        /// The name.
        hostname: String,
        /// The app that has it.
        app: String,
    },
    /// The app has no such host name.
    #[error("app {app:?} has no host name {hostname:?}")]
    HostnameNotFound {
        /// The name.
        hostname: String,
        /// The app.
        app: String,
    },
    /// The app has no such release.
    #[error("app {app:?} has no release v{version}")]
    ReleaseNotFound {
        /// The app.
        app: String,
        /// The version asked for.
        version: u64,
    },
    /// A query parameter or header is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A JSON body over the limit the API reads for its request (bundles have their own).
    #[error("the request body is larger than this request takes")]
    BodyTooLarge,
    /// A command could not be started in a machine's environment.
    #[error("{0}")]
    ExecFailed(String),
    /// A proxied port the machine does not listen on.
    #[error("{0}")]
    NotListening(String),
    /// The daemon could not connect to the machine's port it proxies to.
    #[error("{0}")]
    ProxyConnect(String),
    /// A signal for a machine with no process running.
    #[error("machine {id} is {state}: no process runs to signal")]
    NotRunning {
        /// The machine.
        id: String,
        /// Its state.
        state: &'static str,
    },
    /// No accepted API token was presented.
    #[error("{0}")]
    Unauthorized(String),
    /// An API without tokens was asked by a local user it does not serve.
    #[error("{0}")]
    LocalUserRefused(String),
    /// A deploy could not start.
    #[error(transparent)]
    Deploy(#[from] crate::daemon::deploy::DeployError),
    /// A job request was refused.
    #[error(transparent)]
    Job(#[from] crate::daemon::jobs::JobError),
    /// A bundle upload was refused.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// A volume could not be listed or deleted.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The daemon is stopping and takes no change.
    #[error("lakeflyd is stopping: it starts and changes nothing now")]
    Stopping,
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::daemon::runtime::RuntimeError> for ServerError {
    fn from(e: crate::daemon::runtime::RuntimeError) -> Self {
        match e {
            crate::daemon::runtime::RuntimeError::NotFound { app, id } => {
                ServerError::MachineNotFound { app, id }
            }
            e @ crate::daemon::runtime::RuntimeError::Exec { .. } => {
                ServerError::ExecFailed(e.to_string())
            }
            crate::daemon::runtime::RuntimeError::NotRunning { id, state } => {
                ServerError::NotRunning { id, state }
            }
            e @ crate::daemon::runtime::RuntimeError::NotListening { .. } => {
                ServerError::NotListening(e.to_string())
            }
            crate::daemon::runtime::RuntimeError::Stopping => ServerError::Stopping,
            crate::daemon::runtime::RuntimeError::Store(e) => ServerError::Store(e),
        }
    }
}

impl ServerError {
    /// Whether the request failed because the daemon's disk is full, whichever store it
    /// was writing (the state database, a bundle).
    fn disk_full(&self) -> bool {
        self.full_dir().is_some()
    }

    /// The directory a write failed in for want of space.
    fn full_dir(&self) -> Option<&std::path::Path> {
        match self {
            ServerError::Store(e)
            | ServerError::Job(JobError::Store(e))
            | ServerError::Deploy(DeployError::Store(e))
                if e.is_disk_full() =>
            {
                e.path().and_then(std::path::Path::parent)
            }
            ServerError::Upload(UploadError::Io { source, path })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                ) =>
            {
                path.parent()
            }
            _ => None,
        }
    }

    /// Whether the cause is the daemon's own storage, whose details stay in its log.
    fn internal(&self) -> bool {
        matches!(
            self,
            ServerError::Store(_)
                | ServerError::Job(JobError::Store(_))
                | ServerError::Deploy(DeployError::Store(_))
                | ServerError::Upload(UploadError::Io { .. })
                | ServerError::Volume(VolumeError::Io { .. })
        )
    }

    fn status(&self) -> StatusCode {
        if self.disk_full() {
            return StatusCode::INSUFFICIENT_STORAGE;
        }
        match self {
            ServerError::AppNotFound(_)
            | ServerError::MachineNotFound { .. }
            | ServerError::UnknownMachine { .. }
            | ServerError::HostnameNotFound { .. }
            | ServerError::ReleaseNotFound { .. }
            | ServerError::NotListening(_) => StatusCode::NOT_FOUND,
            ServerError::ProxyConnect(_) => StatusCode::BAD_GATEWAY,
            ServerError::AppExists(_)
            | ServerError::HostnameTaken { .. }
            | ServerError::NotRunning { .. } => StatusCode::CONFLICT,
            ServerError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ServerError::LocalUserRefused(_) => StatusCode::FORBIDDEN,
            ServerError::Job(e) => match e {
                JobError::NotFound(_) => StatusCode::NOT_FOUND,
                JobError::Exists { .. } | JobError::FromConfig(_) | JobError::NotRunning(_) => {
                    StatusCode::CONFLICT
                }
                JobError::Invalid(_) => StatusCode::BAD_REQUEST,
                JobError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ServerError::InvalidAppName { .. }
            | ServerError::InvalidHostname { .. }
            | ServerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServerError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ServerError::Upload(e) => match e {
                UploadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                UploadError::DigestMismatch { .. }
                | UploadError::Unsafe(_)
                | UploadError::Body(_) => StatusCode::BAD_REQUEST,
                UploadError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ServerError::Deploy(e) => match e {
                DeployError::Running(_) => StatusCode::CONFLICT,
                DeployError::NotRolling {
                    version: Some(_),
                    status: None,
                } => StatusCode::NOT_FOUND,
                DeployError::NotRolling { .. }
                | DeployError::Destroying
                | DeployError::ChangeGoing
                | DeployError::Interrupted(_) => StatusCode::CONFLICT,
                DeployError::NoRollbackTarget(_) => StatusCode::NOT_FOUND,
                DeployError::NotRollbackable { .. } => StatusCode::CONFLICT,
                DeployError::NoRelease | DeployError::UnknownGroup { .. } => {
                    StatusCode::BAD_REQUEST
                }
                DeployError::ScaleFailed(_) | DeployError::RestartFailed(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                DeployError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            },
            ServerError::Volume(e) => match e {
                VolumeError::NotFound { .. } => StatusCode::NOT_FOUND,
                VolumeError::BadName { .. } => StatusCode::BAD_REQUEST,
                VolumeError::InUse { .. } | VolumeError::Exists { .. } => StatusCode::CONFLICT,
                VolumeError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ServerError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            ServerError::ExecFailed(_) | ServerError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        if self.disk_full() {
            return "disk_full";
        }
        match self {
            ServerError::AppNotFound(_) => "app_not_found",
            ServerError::MachineNotFound { .. } | ServerError::UnknownMachine { .. } => {
                codes::MACHINE_NOT_FOUND
            }
            ServerError::AppExists(_) => "app_exists",
            ServerError::InvalidAppName { .. } => codes::INVALID_APP_NAME,
            ServerError::InvalidHostname { .. } => codes::INVALID_HOSTNAME,
            ServerError::HostnameTaken { .. } => "hostname_taken",
            ServerError::HostnameNotFound { .. } => "hostname_not_found",
            ServerError::ReleaseNotFound { .. } => "release_not_found",
            ServerError::BadRequest(_) => "bad_request",
            ServerError::BodyTooLarge => "body_too_large",
            ServerError::NotRunning { .. } => "machine_not_running",
            ServerError::NotListening(_) => "port_not_listened",
            ServerError::ProxyConnect(_) => "proxy_connect_failed",
            ServerError::Unauthorized(_) => "unauthorized",
            ServerError::LocalUserRefused(_) => codes::LOCAL_USER_REFUSED,
            ServerError::Job(e) => match e {
                JobError::NotFound(_) => "job_not_found",
                JobError::Exists { .. } => "job_exists",
                JobError::FromConfig(_) => "job_from_config",
                JobError::NotRunning(_) => "job_not_running",
                JobError::Invalid(_) => codes::INVALID_JOB,
                JobError::Store(_) => "internal",
            },
            ServerError::Upload(e) => match e {
                UploadError::TooLarge { .. } => codes::BUNDLE_TOO_LARGE,
                UploadError::DigestMismatch { .. } => "digest_mismatch",
                UploadError::Unsafe(_) => "unsafe_bundle",
                UploadError::Body(_) => "upload_interrupted",
                UploadError::Io { .. } => "internal",
            },
            ServerError::Deploy(e) => match e {
                DeployError::BundleMissing(_) => "bundle_missing",
                DeployError::BadDigest(_) => "bad_request",
                DeployError::Plan(_) => "config_not_runnable",
                DeployError::Running(_) => codes::DEPLOY_RUNNING,
                DeployError::NotRolling {
                    version: Some(_),
                    status: None,
                } => "release_not_found",
                DeployError::NotRolling { .. } => "not_rolling_out",
                DeployError::Destroying => "app_destroying",
                DeployError::ChangeGoing => "change_in_progress",
                DeployError::Interrupted(_) => "release_interrupted",
                DeployError::NoRollbackTarget(_) => "no_rollback_target",
                DeployError::NotRollbackable { .. } => "not_rollbackable",
                DeployError::NoRelease => "no_release",
                DeployError::UnknownGroup { .. } => codes::UNKNOWN_GROUP,
                DeployError::ScaleFailed(_) => "scale_failed",
                DeployError::RestartFailed(_) => codes::RESTART_FAILED,
                DeployError::BadMemory(_) => codes::BAD_MEMORY,
                DeployError::UnknownSize(_) => codes::UNKNOWN_SIZE,
                DeployError::GroupNeeded(_) => codes::GROUP_NEEDED,
                DeployError::Store(_) => "internal",
            },
            ServerError::Volume(e) => match e {
                VolumeError::NotFound { .. } => "volume_not_found",
                VolumeError::InUse { .. } => "volume_in_use",
                VolumeError::BadName { .. } => codes::INVALID_VOLUME_NAME,
                VolumeError::Exists { .. } => "volume_exists",
                VolumeError::Io { .. } => "internal",
            },
            ServerError::ExecFailed(_) => "exec_failed",
            ServerError::Stopping => codes::DAEMON_STOPPING,
            ServerError::Store(_) => "internal",
        }
    }

    fn hint(&self) -> Option<String> {
        if self.disk_full() {
            return Some(
                "free space there on the daemon's host, then try again; its machines keep \
                 running meanwhile"
                    .into(),
            );
        }
        match self {
            ServerError::AppNotFound(_) => Some("`lakefly apps list` shows the apps".into()),
            ServerError::MachineNotFound { .. } => {
                Some("`lakefly machines list` shows the app's machines".into())
            }
            ServerError::UnknownMachine { .. } => Some(
                "`lakefly machines list -a APP` shows an app's machines (`lakefly apps list` the apps)"
                    .into(),
            ),
            ServerError::AppExists(_) => {
                Some("pick another name, or deploy to the existing app".into())
            }
            ServerError::InvalidAppName { .. } => Some(crate::config::names::APP_NAME_HINT.into()),
            ServerError::InvalidHostname { .. } => Some(crate::config::names::HOSTNAME_HINT.into()),
            ServerError::HostnameTaken { hostname, app } => Some(format!(
                "a name routes to one app: `lakefly certs remove {hostname} -a {app}` first"
            )),
            ServerError::HostnameNotFound { .. } => {
                Some("`lakefly certs list` shows the app's host names".into())
            }
            ServerError::ReleaseNotFound { .. } => {
                Some("`lakefly releases` lists the app's versions".into())
            }
            ServerError::BadRequest(_) => None,
            ServerError::BodyTooLarge => Some(
                "send less: a bundle goes to PUT /v1/bundles/{digest}, which takes far more".into(),
            ),
            ServerError::NotListening(_) => {
                Some("proxy one of the ports it listens on (`lakefly proxy LOCAL:PORT`)".into())
            }
            ServerError::ProxyConnect(_) => {
                Some("`lakefly machines status` and `lakefly logs` say more about the machine".into())
            }
            ServerError::NotRunning { id, .. } => {
                Some(format!("`lakefly machines start {id}` starts it"))
            }
            ServerError::ExecFailed(_) => {
                Some("`lakefly logs` and the daemon's log say more about the machine".into())
            }
            ServerError::Stopping => Some(
                "ask again once it is back (`lakefly daemon status`, or `systemctl status lakeflyd`); what it runs is started again then".into(),
            ),
            ServerError::Job(e) => match e {
                JobError::NotFound(_) => Some("`lakefly jobs list` shows the jobs".into()),
                JobError::Exists { .. } => Some("pick another name, or delete the old job".into()),
                JobError::FromConfig(_) => None,
                JobError::NotRunning(id) => Some(format!(
                    "`lakefly jobs runs {id}` shows its runs; `lakefly jobs stop {id}` stops its schedule"
                )),
                JobError::Invalid(_) => Some(
                    "a job has a name, a command or a path, and a schedule (cron), an interval, or neither (manual)".into(),
                ),
                JobError::Store(_) => Some("see the daemon's log".into()),
            },
            ServerError::Unauthorized(_) => Some(
                "set LAKEFLY_API_TOKEN to a token from the daemon's --token-file (sent as Authorization: Bearer)".into(),
            ),
            ServerError::LocalUserRefused(_) => Some(
                "send the request as the daemon's user, or have lakeflyd started with --local-group GROUP (a group you are in), or with --token-file and use one of its tokens".into(),
            ),
            ServerError::Upload(e) => match e {
                UploadError::TooLarge { .. } => {
                    Some("leave build output and dependencies out with .lakeflyignore".into())
                }
                UploadError::DigestMismatch { .. } => {
                    Some("upload the bytes whose SHA-256 is in the URL".into())
                }
                UploadError::Unsafe(_) => {
                    Some("bundles hold only relative paths and links that stay inside".into())
                }
                UploadError::Body(_) => Some("upload again".into()),
                UploadError::Io { .. } => Some("see the daemon's log".into()),
            },
            ServerError::Deploy(e) => match e {
                DeployError::BundleMissing(_) => {
                    Some("upload it first: PUT /v1/bundles/{sha256}".into())
                }
                DeployError::BadDigest(_) => None,
                DeployError::Plan(_) => {
                    Some("add a [processes] entry (or experimental.cmd) for the group, or a Dockerfile whose CMD it runs: the one [build] dockerfile names, else `Dockerfile` at the bundle's root".into())
                }
                DeployError::Running(_) => Some(
                    "wait for it to finish (`lakefly events`), or stop it: `lakefly releases cancel`"
                        .into(),
                ),
                DeployError::NotRolling { .. } => {
                    Some("`lakefly releases` shows each release's status".into())
                }
                DeployError::Destroying => {
                    Some("deploy again once it is gone, to make the app anew".into())
                }
                DeployError::ChangeGoing => {
                    Some("try again once it has ended: `lakefly events` shows it".into())
                }
                DeployError::Interrupted(_) => Some(
                    "restart lakeflyd once its state directory's disk has room: its start undoes the rollout and restores the release before"
                        .into(),
                ),
                DeployError::NoRollbackTarget(_) => {
                    Some("`lakefly releases` lists the versions".into())
                }
                DeployError::NotRollbackable { .. } => Some(
                    "roll back to a release that ran (complete or rolled_back in `lakefly releases`), or deploy a fix"
                        .into(),
                ),
                DeployError::NoRelease => Some("`lakefly deploy` makes the first release".into()),
                DeployError::UnknownGroup { .. } => {
                    Some("name one of the release's process groups".into())
                }
                DeployError::ScaleFailed(_) => {
                    Some("the new machines were removed; see `lakefly logs`".into())
                }
                DeployError::RestartFailed(_) => Some(
                    "its restart policy keeps trying; `lakefly logs` shows why it fails, `lakefly rollback` goes back to the release before".into(),
                ),
                DeployError::BadMemory(_) => Some("pass a limit in MB, e.g. 256".into()),
                DeployError::GroupNeeded(_) => Some("pass -g GROUP".into()),
                DeployError::UnknownSize(_) => Some(format!(
                    "known sizes: {}",
                    crate::config::sizes::names()
                )),
                DeployError::Store(_) => Some("see the daemon's log".into()),
            },
            ServerError::Volume(e) => match e {
                VolumeError::NotFound { app, .. } => Some(format!(
                    "`lakefly volumes list -a {app}` shows the app's volumes"
                )),
                VolumeError::InUse { .. } => Some(
                    "remove its [mounts] entry from fly.toml and deploy, or destroy those machines (`lakefly machines destroy ID`), then try again".into(),
                ),
                VolumeError::BadName { .. } => {
                    Some("name it as [mounts] source names it, e.g. data or pg_data".into())
                }
                VolumeError::Exists { app, .. } => Some(format!(
                    "it is there for the app's [mounts] to use; `lakefly volumes list -a {app}` shows it"
                )),
                VolumeError::Io { .. } => Some("see the daemon's log".into()),
            },
            ServerError::Store(_) => Some("see the daemon's log".into()),
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        // Internal details stay in the daemon's log.
        let error = if let Some(dir) = self.full_dir() {
            tracing::error!(error = %self, "request failed: the disk is full");
            format!(
                "the daemon's disk is full: no space is left in {}",
                dir.display()
            )
        } else if self.internal() {
            tracing::error!(error = %self, "request failed");
            "internal error in the daemon's storage".into()
        } else {
            self.to_string()
        };
        let body = ApiError {
            error,
            code: self.code().into(),
            hint: self.hint(),
        };
        // An answer given before the body was read says `Connection: close` (serve.rs).
        (self.status(), Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn sqlite_error(code: std::ffi::c_int, message: &str) -> StoreError {
        StoreError::Sqlite {
            path: "/srv/lakefly/state.db".into(),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                Some(message.into()),
            ),
        }
    }

    async fn answer(error: ServerError) -> (StatusCode, ApiError) {
        let response = error.into_response();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_full_disk_is_said_with_what_to_do_whichever_store_was_written() {
        let full = || sqlite_error(rusqlite::ffi::SQLITE_FULL, "database or disk is full");
        let no_space = std::io::Error::from_raw_os_error(28); // ENOSPC
        for error in [
            ServerError::Store(full()),
            ServerError::Deploy(DeployError::Store(full())),
            ServerError::Job(JobError::Store(full())),
            ServerError::Upload(UploadError::Io {
                path: "/srv/lakefly/bundles/incoming".into(),
                source: no_space,
            }),
        ] {
            let shown = format!("{error:?}");
            let (status, body) = answer(error).await;
            assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{shown}");
            assert_eq!(body.code, "disk_full", "{shown}");
            assert!(
                body.error
                    .starts_with("the daemon's disk is full: no space is left in /srv/lakefly"),
                "{}",
                body.error
            );
            assert!(!body.error.contains("os error"), "{}", body.error);
            assert!(!body.error.contains("database or disk"), "{}", body.error);
            assert!(body.hint.unwrap().contains("free space"), "{shown}");
        }
    }

    #[tokio::test]
    async fn other_storage_failures_stay_in_the_daemons_log() {
        let busy = || sqlite_error(rusqlite::ffi::SQLITE_BUSY, "database is locked");
        for error in [
            ServerError::Store(busy()),
            ServerError::Deploy(DeployError::Store(busy())),
        ] {
            let (status, body) = answer(error).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(body.code, "internal");
            assert_eq!(body.error, "internal error in the daemon's storage");
        }
    }
}
