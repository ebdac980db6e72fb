//! The error codes (`ApiError::code`) a client acts on, named once for the daemon that
//! sends them and the client that reads them. Codes only shown to people stay literals
//! where the daemon makes them.

/// The edge's answer to a request naming no app it serves: what an API client pointed at
/// the edge instead of the API gets, and how it tells.
pub const EDGE_UNKNOWN_APP: &str = "unknown_app";

/// A change refused because a release of the app is still rolling out.
pub const DEPLOY_RUNNING: &str = "deploy_running";

/// A request to an API without tokens from a local user it does not serve.
pub const LOCAL_USER_REFUSED: &str = "local_user_refused";

/// A change refused because the daemon is stopping.
pub const DAEMON_STOPPING: &str = "daemon_stopping";

/// A bundle larger than the daemon takes: the daemon's 413, and the client's refusal
/// before sending one (`types::BUNDLE_MAX_BYTES_HEADER`).
pub const BUNDLE_TOO_LARGE: &str = "bundle_too_large";

/// No such machine (in the app named, or at all); one destroyed is no longer found.
pub const MACHINE_NOT_FOUND: &str = "machine_not_found";

/// `apps restart` stopped at a machine that did not come back.
pub const RESTART_FAILED: &str = "restart_failed";

/// An app name that is not a valid DNS label.
pub const INVALID_APP_NAME: &str = "invalid_app_name";
/// A hostname that is not a valid DNS name.
pub const INVALID_HOSTNAME: &str = "invalid_hostname";
/// A volume name the daemon does not take.
pub const INVALID_VOLUME_NAME: &str = "invalid_volume_name";
/// A process group the app's release does not have.
pub const UNKNOWN_GROUP: &str = "unknown_group";
/// A change to an app with several process groups that names none.
pub const GROUP_NEEDED: &str = "group_needed";
/// A memory size that is not one.
pub const BAD_MEMORY: &str = "bad_memory";
/// A VM size preset the daemon does not know.
pub const UNKNOWN_SIZE: &str = "unknown_size";
/// A job whose schedule, zone or command is refused.
pub const INVALID_JOB: &str = "invalid_job";

/// The codes of a 400 that refuses an argument of the command (an app, host, volume or
/// group name, a size, a job's schedule), not the request as a whole: the client exits
/// with its usage code for them, as for the same refusal made on its own side.
pub const ARGUMENT_REFUSALS: &[&str] = &[
    INVALID_APP_NAME,
    INVALID_HOSTNAME,
    INVALID_VOLUME_NAME,
    UNKNOWN_GROUP,
    GROUP_NEEDED,
    BAD_MEMORY,
    UNKNOWN_SIZE,
    INVALID_JOB,
];
