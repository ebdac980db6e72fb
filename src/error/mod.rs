//! The one error type of lakefly: every failure has a stable code, a message, a hint, and
//! an exit code. `output::error` renders it; nothing else prints errors.

use crate::credentials::remotes::RemoteError;
use std::path::{Path, PathBuf};

use crate::config::edit::EditError;
use crate::config::keypath::KeyPathError;
use crate::config::Report;

mod hint;

/// Exit codes, stable for scripts (see DESIGN.md).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Any error without a more specific code.
    pub const ERROR: i32 = 1;
    /// Bad command-line usage.
    pub const USAGE: i32 = 2;
    /// The app config is invalid.
    pub const INVALID_CONFIG: i32 = 3;
    /// Authentication failed.
    pub const AUTH: i32 = 4;
    /// Something named does not exist.
    pub const NOT_FOUND: i32 = 5;
    /// The request conflicts with the current state.
    pub const CONFLICT: i32 = 6;
    /// A deploy failed and the previous release was kept.
    pub const DEPLOY_FAILED: i32 = 7;
    /// The daemon could not be reached.
    pub const UNREACHABLE: i32 = 8;
    /// Interrupted by Ctrl-C.
    pub const INTERRUPTED: i32 = 130;
}

/// Everything that can go wrong in a lakefly command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file has errors; the report lists each with its place.
    #[error("{0}")]
    InvalidConfig(Box<Report>),
    /// A `config set` or `unset` would have made the config invalid; the file is as it was.
    /// The report places each problem in the text the edit would have written.
    #[error("{0}")]
    EditRefused(Box<Report>),

    /// A process group has no command of its own, and no Dockerfile gives it one.
    #[error("{}: nothing says what process group {group:?} runs: {why}", config.display())]
    NothingToRun {
        /// The config file.
        config: PathBuf,
        /// The group.
        group: String,
        /// What the config has instead.
        why: crate::config::plan::NothingToRun,
    },
    /// The config file does not exist.
    #[error("no config file at {}", path.display())]
    ConfigNotFound {
        /// Where it was looked for.
        path: PathBuf,
    },

    /// A `config get/set/unset` key is malformed.
    #[error("invalid key {key:?}: {source}")]
    InvalidKey {
        /// The key as typed.
        key: String,
        /// What is wrong with it.
        source: KeyPathError,
    },

    /// A `config set` argument is not `KEY=VALUE`.
    #[error("{arg:?} is not KEY=VALUE")]
    NotAnAssignment {
        /// The argument as typed.
        arg: String,
    },

    /// `config get` of a key the file does not have.
    #[error("{key} is not set in {}", file.display())]
    KeyNotSet {
        /// The key.
        key: String,
        /// The file.
        file: PathBuf,
    },

    /// An edit cannot be applied to the file's structure.
    #[error("cannot edit {key}: {source}")]
    Edit {
        /// The key being edited.
        key: String,
        /// Why it cannot.
        source: EditError,
    },

    /// A file exists where a command would create one.
    #[error("{} already exists", path.display())]
    AlreadyExists {
        /// The file.
        path: PathBuf,
        /// The flag that allows overwriting it.
        flag: &'static str,
    },

    /// An app name does not follow the naming rules.
    #[error("app name {name:?} {problem}")]
    InvalidAppName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// A host name given on the command line breaks the naming rules.
    #[error("host name {hostname:?} {problem}")]
    InvalidHostname {
        /// The name as given.
        hostname: String,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// Another daemon already uses the state directory.
    #[error("another lakeflyd is running with state directory {}", dir.display())]
    StateLocked {
        /// The directory.
        dir: PathBuf,
    },

    /// A listener could not be opened.
    #[error("cannot listen for the {what} on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },

    /// The sockets a service manager passed cannot be used.
    #[error(transparent)]
    Inherited(#[from] crate::daemon::inherited::InheritedError),

    /// Neither `--state` nor a home directory says where state goes.
    #[error("no state directory: HOME is not set")]
    NoStateDir,

    /// A path under the user's home is needed and HOME is not set.
    #[error("HOME is not set, and {needs} goes under it")]
    NoHome {
        /// What needs the home directory.
        needs: &'static str,
    },

    /// The secrets master key cannot be used.
    #[error(transparent)]
    MasterKey(#[from] crate::daemon::secrets::KeyError),

    /// The API would listen beyond loopback with no token to check.
    #[error("refusing to serve the API on {addr} without a token: anyone who reaches it could run commands on this host")]
    InsecureApi {
        /// The address asked for.
        addr: std::net::SocketAddr,
    },

    /// The API token file cannot be used.
    #[error(transparent)]
    TokenFile(#[from] crate::daemon::server::auth::TokenFileError),

    /// `--local-group` names no group.
    #[error(transparent)]
    LocalGroup(#[from] crate::daemon::server::local_users::UnknownGroup),

    /// A named remote, or the remotes file, cannot be used.
    #[error(transparent)]
    Remote(#[from] crate::credentials::remotes::RemoteError),

    /// A stored API token cannot be read or kept.
    #[error(transparent)]
    Token(#[from] crate::credentials::tokens::TokenError),

    /// A TLS certificate or key lakeflyd was given cannot be used.
    #[error(transparent)]
    ServerTls(#[from] crate::daemon::server_tls::TlsError),

    /// The daemon's state database failed.
    #[error(transparent)]
    Store(#[from] crate::daemon::store::StoreError),

    /// `lakeflyd backup` or `restore` did not happen.
    #[error(transparent)]
    Backup(#[from] crate::daemon::backup::BackupError),

    /// A request to the daemon failed.
    #[error(transparent)]
    Api(#[from] crate::api::client::ClientError),

    /// Ctrl-C while following a release: it goes on without us.
    #[error("stopped following release v{version} of {app}; it goes on")]
    Detached {
        /// The app.
        app: String,
        /// The release.
        version: u64,
    },

    /// The daemon stayed out of reach while a release was followed.
    #[error("lost lakeflyd while following release v{version} of {app}: it has not answered for {waited}")]
    LostDaemon {
        /// The app.
        app: String,
        /// The release.
        version: u64,
        /// How long it was tried, as "2m".
        waited: String,
    },

    /// `daemon status`: no local daemon runs.
    #[error("the local lakefly daemon is not running (state in {}){}", state.display(), taken.as_ref().map(|at| format!("; {at} is answered by another daemon")).unwrap_or_default())]
    DaemonNotRunning {
        /// Its state directory.
        state: PathBuf,
        /// The local address, when something else answers there (another user's daemon,
        /// or one started by hand on other state).
        taken: Option<String>,
    },

    /// The embedded local daemon could not be started.
    #[error("could not start a local lakefly daemon: {detail}")]
    EmbeddedDaemon {
        /// What happened.
        detail: String,
        /// Its log file.
        log: PathBuf,
    },

    /// A release failed; the previous one keeps running.
    #[error("release v{version} of {app} failed: {reason}")]
    DeployFailed {
        /// The app.
        app: String,
        /// The release.
        version: u64,
        /// Why.
        reason: String,
        /// The release that keeps running; none when no release of the app ever ran.
        running: Option<u64>,
        /// Whether anything of the release ran, and so may have logged why it failed.
        app_said: bool,
    },

    /// `launch` would deploy a new project into an app that runs another's releases.
    #[error("app {app} already exists and runs release v{version}")]
    AppTaken {
        /// The app.
        app: String,
        /// Its current release.
        version: u64,
    },

    /// `releases cancel` came too late: the release went live.
    #[error("release v{version} went live before it could be cancelled")]
    WentLive {
        /// The app.
        app: String,
        /// The release.
        version: u64,
    },

    /// A command exec'd in a machine did not exit 0; lakefly exits with its code (or
    /// 128 + the signal that ended it, as shells do).
    #[error("the command on machine {machine} {how}")]
    ExecFailed {
        /// The machine.
        machine: String,
        /// How it ended: `exited 3`, `was killed by SIGTERM`, `did not finish within 1m`.
        how: String,
        /// The exit code to pass on.
        code: i32,
        /// Whether it ran out of time.
        timed_out: bool,
    },

    /// A `secrets` argument is malformed or needs what is not there.
    #[error("{message}")]
    BadSecretInput {
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },

    /// A `scale count` argument does not fit the app.
    #[error("{message}")]
    BadScale {
        /// What is wrong.
        message: String,
        /// How to write it.
        hint: String,
    },

    /// A lakeflyd option `daemon install` was to write into the service (after `--`) that
    /// the service could not start with.
    #[error("lakeflyd option for the service: {message}")]
    ServiceOption {
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },

    /// flyctl's command that lakefly has no counterpart of (`ips`, `postgres`).
    #[error("lakefly has no `{command}` command (it is flyctl's)")]
    FlyctlOnly {
        /// The command, as typed.
        command: String,
        /// What does its job here.
        instead: &'static str,
    },

    /// A flag's value does not fit what it names (a file outside the app directory).
    #[error("{flag} {message}")]
    BadFlag {
        /// The flag, as written (`--dockerfile`).
        flag: &'static str,
        /// What is wrong with its value.
        message: String,
        /// How to fix it.
        hint: String,
    },

    /// `machines exec --stdin` was given more than a command is passed.
    #[error("--stdin: standard input is over {mib} MiB, the most exec passes on")]
    StdinTooLarge {
        /// The limit.
        mib: usize,
    },

    /// A destructive command needs confirmation and stdin is not a terminal.
    #[error("{what} needs confirmation, and stdin is not a terminal")]
    NeedsConfirmation {
        /// What would be done.
        what: String,
    },

    /// `--select` without a terminal to ask on.
    #[error("--select asks which machine on a terminal, and stdin is not one")]
    SelectNeedsTerminal,

    /// The answer to a machine prompt named no machine of the list (or not only such).
    #[error("{answer:?} is not one of the {count} machines listed")]
    NotListed {
        /// What was typed.
        answer: String,
        /// How many were listed.
        count: usize,
    },

    /// The user declined a confirmation.
    #[error("{0}: cancelled")]
    Cancelled(String),

    /// A job named on the command line is not one of the app's.
    #[error("{app} has no job named {name:?}")]
    JobNotFound {
        /// The app.
        app: String,
        /// The name as given.
        name: String,
    },

    /// `open` for an app the edge serves no web address of.
    #[error("app {app} has no web address: the edge serves no HTTP for it")]
    NotServed {
        /// The app.
        app: String,
    },

    /// The app has no release to show.
    #[error("app {app} has no release yet")]
    NoRelease {
        /// The app.
        app: String,
    },

    /// `console` was not told which machine, and the app has none started.
    #[error("app {app} has no started machine to open a console in")]
    NoStartedMachine {
        /// The app.
        app: String,
    },

    /// A `machines` command given no machine, with no terminal to ask on which.
    #[error(
        "lakefly machines {command} needs a machine id (there is no terminal to ask which on)"
    )]
    MachineNotNamed {
        /// The command (`stop`).
        command: &'static str,
    },

    /// A machine to choose, and the app has none.
    #[error("app {app} has no machines")]
    NoMachines {
        /// The app.
        app: String,
    },

    /// `machines wait`: the machine did not reach the state asked for in time, or can no
    /// longer (it was destroyed).
    #[error("machine {machine} did not reach {wanted}{within}: it is {state}")]
    NotReached {
        /// The machine.
        machine: String,
        /// The state waited for, as named (`"started"`, `a settled state`).
        wanted: String,
        /// ` within 5m` when the wait ran out, empty when it was given up.
        within: String,
        /// Its state at the end.
        state: String,
    },

    /// A console's connection ended before its command did.
    #[error("the console on machine {machine} was cut off before its command ended: {detail}")]
    ConsoleCut {
        /// The machine.
        machine: String,
        /// What the connection said.
        detail: String,
    },

    /// A command needs an app name and none was given.
    #[error("no app name: {}", match config {
        Some(path) => format!("{} sets no `app`, and no -a APP was given", path.display()),
        None => "pass -a APP, or run in a directory whose fly.toml sets `app`".to_string(),
    })]
    NoApp {
        /// The config file that was read and names none, if one was.
        config: Option<PathBuf>,
    },

    /// A link in the app directory points out of it, so no release could hold it.
    #[error("link {} points outside the app directory {} (to {})", link.display(), dir.display(), target.display())]
    LinkOutside {
        /// The app directory.
        dir: PathBuf,
        /// The link, relative to it.
        link: PathBuf,
        /// Where it points.
        target: PathBuf,
    },

    /// A file system operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`...).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },

    /// Writing to stdout or stderr failed (other than a closed pipe, which is success).
    #[error("could not write output: {0}")]
    Output(std::io::Error),
}

impl Error {
    /// An I/O error on `path` while doing `action`.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A stable, machine-readable code (for daemon errors, the daemon's own code).
    pub fn code(&self) -> std::borrow::Cow<'static, str> {
        use crate::api::client::ClientError;
        std::borrow::Cow::Borrowed(match self {
            Error::Api(ClientError::Api { error, .. }) => {
                return std::borrow::Cow::Owned(error.code.clone())
            }
            Error::Api(ClientError::Unreachable { .. }) => "daemon_unreachable",
            Error::Api(ClientError::Timeout { .. }) => "daemon_timeout",
            Error::Api(ClientError::Stalled { .. }) => "upload_stalled",
            Error::Api(ClientError::BadResponse { .. }) => "bad_response",
            Error::Api(ClientError::EdgeNotApi { .. }) => "edge_not_api",
            Error::Api(ClientError::UnknownRequest { .. }) => "unknown_request",
            Error::DeployFailed { .. } => "deploy_failed",
            Error::WentLive { .. } => "went_live",
            Error::AppTaken { .. } => "app_exists",
            Error::Detached { .. } => "detached",
            Error::LostDaemon { .. } => "daemon_lost",
            Error::ExecFailed {
                timed_out: true, ..
            } => "exec_timed_out",
            Error::ExecFailed { .. } => "exec_failed",
            Error::EmbeddedDaemon { .. } => "daemon_start_failed",
            Error::DaemonNotRunning { .. } => "daemon_not_running",
            Error::BadScale { .. } => "invalid_scale",
            Error::BadSecretInput { .. } => "invalid_secret_input",
            Error::BadFlag { .. } | Error::ServiceOption { .. } => "invalid_flag",
            Error::FlyctlOnly { .. } => "usage",
            Error::StdinTooLarge { .. } => "stdin_too_large",
            Error::NeedsConfirmation { .. } => "needs_confirmation",
            Error::SelectNeedsTerminal => "select_needs_terminal",
            Error::NotListed { .. } => "not_listed",
            Error::Cancelled(_) => "cancelled",
            Error::NoApp { .. } => "no_app",
            Error::NoStartedMachine { .. } => "no_started_machine",
            Error::NotReached { .. } => "not_reached",
            Error::MachineNotNamed { .. } => "machine_not_named",
            Error::NoMachines { .. } => "no_machines",
            Error::NoRelease { .. } => "no_release",
            Error::NotServed { .. } => "not_served",
            Error::ConsoleCut { .. } => "console_cut",
            Error::JobNotFound { .. } => "job_not_found",
            Error::InvalidConfig(_) | Error::EditRefused(_) => "config_invalid",
            Error::ConfigNotFound { .. } => "config_not_found",
            Error::NothingToRun { .. } => "config_invalid",
            Error::InvalidKey { .. } => "invalid_key",
            Error::NotAnAssignment { .. } => "invalid_argument",
            Error::KeyNotSet { .. } => "key_not_set",
            Error::Edit { .. } => "edit_conflict",
            Error::AlreadyExists { .. } => "already_exists",
            Error::InvalidAppName { .. } => crate::api::codes::INVALID_APP_NAME,
            Error::InvalidHostname { .. } => crate::api::codes::INVALID_HOSTNAME,
            Error::StateLocked { .. } => "state_locked",
            Error::Bind { .. } => "bind_failed",
            Error::Inherited(_) => "inherited_socket",
            Error::NoStateDir => "no_state_dir",
            Error::NoHome { .. } => "no_home",
            Error::Store(_) => "state_database",
            Error::Backup(_) => "backup",
            Error::MasterKey(_) => "master_key",
            Error::InsecureApi { .. } => "insecure_api",
            Error::TokenFile(_) => "token_file",
            Error::LocalGroup(_) => "unknown_local_group",
            Error::ServerTls(_) => "tls_certificate",
            Error::Token(_) => "credentials",
            Error::Remote(RemoteError::Unknown { .. }) => "remote_not_found",
            Error::Remote(RemoteError::Exists { .. }) => "remote_exists",
            Error::Remote(RemoteError::Parse { .. }) => "remotes_file_invalid",
            Error::Remote(_) => "remote_invalid",
            Error::LinkOutside { .. } => "link_outside",
            Error::Io { .. } => "io",
            Error::Output(_) => "output",
        })
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        use crate::api::client::ClientError;
        match self {
            Error::Api(
                ClientError::Unreachable { .. }
                | ClientError::Timeout { .. }
                | ClientError::Stalled { .. }
                | ClientError::EdgeNotApi { .. },
            ) => exit::UNREACHABLE,
            // A value the user typed that the daemon refuses is a usage error, as the
            // same refusal made by the client (`launch --name Bad_Name`) is.
            Error::Api(ClientError::Api { status: 400, error })
                if crate::api::codes::ARGUMENT_REFUSALS.contains(&error.code.as_str()) =>
            {
                exit::USAGE
            }
            Error::Api(ClientError::Api { status, .. }) => match status {
                401 | 403 => exit::AUTH,
                404 => exit::NOT_FOUND,
                409 => exit::CONFLICT,
                // The daemon is stopping: as unreachable, it is worth asking again later.
                503 => exit::UNREACHABLE,
                _ => exit::ERROR,
            },
            Error::Api(ClientError::BadResponse { .. })
            | Error::Api(ClientError::UnknownRequest { .. }) => exit::ERROR,
            Error::DeployFailed { .. } => exit::DEPLOY_FAILED,
            Error::Detached { .. } => exit::INTERRUPTED,
            Error::LostDaemon { .. } => exit::UNREACHABLE,
            Error::ExecFailed { code, .. } => *code,
            Error::EmbeddedDaemon { .. } | Error::DaemonNotRunning { .. } => exit::UNREACHABLE,
            Error::NeedsConfirmation { .. }
            | Error::SelectNeedsTerminal
            | Error::MachineNotNamed { .. }
            | Error::NotListed { .. }
            | Error::NoApp { .. }
            | Error::BadScale { .. }
            | Error::StdinTooLarge { .. }
            | Error::BadSecretInput { .. }
            | Error::BadFlag { .. }
            | Error::FlyctlOnly { .. }
            | Error::ServiceOption { .. } => exit::USAGE,
            Error::Cancelled(_) => exit::INTERRUPTED,
            Error::InvalidConfig(_) | Error::EditRefused(_) | Error::NothingToRun { .. } => {
                exit::INVALID_CONFIG
            }
            Error::ConfigNotFound { .. }
            | Error::KeyNotSet { .. }
            | Error::JobNotFound { .. }
            | Error::NoStartedMachine { .. }
            | Error::NoMachines { .. }
            | Error::NoRelease { .. }
            | Error::NotServed { .. } => exit::NOT_FOUND,
            Error::ConsoleCut { .. } | Error::NotReached { .. } => exit::ERROR,
            Error::InvalidKey { .. }
            | Error::NotAnAssignment { .. }
            | Error::InvalidAppName { .. }
            | Error::InvalidHostname { .. } => exit::USAGE,
            Error::Edit { .. }
            | Error::AlreadyExists { .. }
            | Error::StateLocked { .. }
            | Error::WentLive { .. }
            | Error::AppTaken { .. } => exit::CONFLICT,
            Error::Bind { .. }
            | Error::NoStateDir
            | Error::NoHome { .. }
            | Error::Store(_)
            | Error::MasterKey(_) => exit::ERROR,
            Error::InsecureApi { .. }
            | Error::TokenFile(_)
            | Error::LocalGroup(_)
            | Error::ServerTls(_)
            | Error::Inherited(_) => exit::USAGE,
            Error::Token(_) => exit::ERROR,
            Error::Remote(RemoteError::Unknown { .. }) => exit::NOT_FOUND,
            Error::Remote(RemoteError::Exists { .. }) => exit::CONFLICT,
            Error::Remote(RemoteError::Parse { .. }) => exit::INVALID_CONFIG,
            Error::Remote(RemoteError::Io { .. } | RemoteError::NoConfigDir) => exit::ERROR,
            Error::Remote(_) => exit::USAGE,
            Error::Io { .. } | Error::Output(_) | Error::LinkOutside { .. } => exit::ERROR,
            Error::Backup(crate::daemon::backup::BackupError::NotEmpty(_)) => exit::CONFLICT,
            Error::Backup(_) => exit::ERROR,
        }
    }
}

/// Result with lakefly's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
