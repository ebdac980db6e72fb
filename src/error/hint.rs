//! What to do about each [`Error`]: the hint line under the message, kept apart from the
//! error type because it is most of what is said about failures.

use super::Error;
use crate::credentials::remotes::RemoteError;

/// How a user runs a local daemon of their own where another answers on the address.
const LOCAL_ADDRESS_TAKEN: &str = "commands without --remote go to the daemon that answers there; for a local daemon of your own, set LAKEFLY_LOCAL_ADDR and LAKEFLY_LOCAL_EDGE to free addresses (127.0.0.1:4290, 127.0.0.1:4291)";

impl Error {
    /// What to do about it, when there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        const UNTRUSTED_CERTIFICATE: &str = "the daemon's certificate is not one this machine trusts: add its CA to the system's store, or point SSL_CERT_FILE at the CA's PEM file";
        use crate::api::client::ClientError;
        match self {
            // The daemon's own hint is for any client (a variable to set); this one has a
            // command that keeps the token.
            Error::Api(ClientError::Api { status: 401, .. }) => Some(
                "give it a token from the daemon's --token-file: `lakefly auth login` with the same --remote stores one (or set LAKEFLY_API_TOKEN)".into(),
            ),
            Error::Api(ClientError::Api { status: 403, error, .. }) if error.code == crate::api::codes::LOCAL_USER_REFUSED => Some(
                format!("run lakefly as the daemon's user, or ask for --local-group GROUP (a group you are in) or a token (`lakefly auth login`); {LOCAL_ADDRESS_TAKEN}"),
            ),
            Error::Api(ClientError::Api { error, .. }) => error.hint.clone(),
            Error::Api(ClientError::Unreachable { detail, .. }) if detail.contains("certificate") => {
                Some(UNTRUSTED_CERTIFICATE.into())
            }
            // rustls reading a plain-HTTP answer as a TLS record.
            Error::Api(ClientError::Unreachable { url, detail, .. })
                if detail.contains("InvalidContentType") || detail.contains("corrupt message") =>
            {
                Some(format!(
                    "it answers without TLS there: use {} (the API is HTTPS only with lakeflyd --api-tls-cert)",
                    url.replacen("https://", "http://", 1)
                ))
            }
            Error::Api(ClientError::Unreachable {
                url,
                proxy: Some(proxy),
                ..
            }) => Some(format!(
                "check that the proxy {proxy} is up and lets the daemon through, or connect directly: add the daemon's host to NO_PROXY (`NO_PROXY={}`)",
                host_of(url)
            )),
            Error::Api(ClientError::Unreachable { .. }) => Some(
                "start it with `lakeflyd` (or `lakefly daemon run`), or point at another with --remote URL".into(),
            ),
            Error::Api(ClientError::EdgeNotApi { .. }) => Some(
                "point --remote (or LAKEFLY_REMOTE) at the API's address, lakeflyd --api: 127.0.0.1:4280 unless set".into(),
            ),
            Error::Api(ClientError::Timeout { .. }) => Some("the daemon may be overloaded; try again".into()),
            Error::LinkOutside { link, .. } => Some(format!(
                "a release holds only what is in the app directory: copy what the link points at into it, or leave the link out with a line `{}` in .lakeflyignore",
                link.display()
            )),
            Error::Api(ClientError::Stalled { .. }) => Some(
                "the network or the daemon stopped taking data; check the connection to the daemon, then deploy again".into(),
            ),
            // hyper reading a TLS server's alert as an HTTP answer.
            Error::Api(ClientError::BadResponse { url, status: 0, detail })
                if url.starts_with("http://") && detail.contains("invalid HTTP version") =>
            {
                Some(format!(
                    "it answers with TLS there: use {} (lakeflyd --api-tls-cert serves the API over HTTPS only)",
                    crate::api::client::origin(url).replacen("http://", "https://", 1)
                ))
            }
            Error::Api(ClientError::BadResponse { .. }) => {
                Some("is --remote pointing at a lakefly daemon (and not a proxy)?".into())
            }
            Error::Api(ClientError::UnknownRequest { .. }) => Some(format!(
                "upgrade lakeflyd to this lakefly's version ({}); the daemon's /health says which it runs",
                env!("CARGO_PKG_VERSION")
            )),
            Error::DeployFailed { app, running: Some(running), .. } => Some(format!(
                "release v{running} keeps running; see `lakefly logs -a {app}` and `lakefly releases -a {app}`"
            )),
            Error::DeployFailed { app, running: None, app_said: true, .. } => Some(format!(
                "no release of {app} has run yet, so nothing runs; `lakefly logs -a {app}` shows what it said"
            )),
            Error::DeployFailed { app, running: None, app_said: false, .. } => Some(format!(
                "no release of {app} has run yet, so nothing runs; it failed before any of it started: fix what the error says, then deploy again"
            )),
            Error::LostDaemon { app, version, .. } => Some(format!(
                "release v{version} goes on if lakeflyd comes back (a rollout its stop cut short is undone by its next start); then `lakefly releases -a {app}` shows how it ended"
            )),
            Error::Detached { app, .. } => Some(format!(
                "follow it again with `lakefly events -a {app}`, or stop it: `lakefly releases cancel -a {app}`"
            )),
            Error::AppTaken { app, .. } => Some(format!(
                "`lakefly deploy -a {app}` deploys this directory to it; to launch a new app, pick another name with --name"
            )),
            Error::WentLive { app, .. } => Some(format!(
                "`lakefly rollback -a {app}` goes back to the release before it"
            )),
            Error::ExecFailed { timed_out: true, .. } => Some(format!(
                "give it longer with --timeout (at most {}), or run it as a job (`lakefly jobs create`)",
                crate::api::types::ExecRequest::MAX_TIMEOUT
            )),
            Error::ExecFailed { .. } => None,
            Error::EmbeddedDaemon { log, .. } => Some(format!(
                "see its log: {}; or run one yourself with `lakeflyd` and pass --remote",
                log.display()
            )),
            Error::BadScale { hint, .. }
            | Error::BadSecretInput { hint, .. }
            | Error::BadFlag { hint, .. }
            | Error::ServiceOption { hint, .. } => Some(hint.clone()),
            Error::FlyctlOnly { instead, .. } => Some((*instead).to_string()),
            Error::StdinTooLarge { .. } => Some(
                "ship larger files with the release (they are in its directory), or have the command fetch them".into(),
            ),
            Error::NeedsConfirmation { .. } => Some("pass --yes to confirm without a prompt".into()),
            Error::SelectNeedsTerminal => Some(
                "name the machine with --machine ID (`lakefly machines list -q` lists them)".into(),
            ),
            Error::NotListed { .. } => {
                Some("type the number in front of a machine, or its id (several, where a command takes them, as 1,3 or 1-3 or all)".into())
            }
            Error::Cancelled(_) => None,
            Error::NoApp { config: Some(_) } => Some(
                "name it with `lakefly config set app=NAME`, or pass -a APP".into(),
            ),
            Error::NoApp { config: None } => {
                Some("or create one with `lakefly apps create NAME`".into())
            }
            Error::NoRelease { .. } => Some("`lakefly deploy` makes the first release".into()),
            Error::NotServed { app } => Some(format!(
                "give it an [http_service] (or [[services]] with handlers = [\"http\"]) and deploy; `lakefly status -a {app}` shows where it is served"
            )),
            Error::NoStartedMachine { .. } => Some(
                "`lakefly machines list` shows its machines: start one (`lakefly machines start ID`), or name one with --machine".into(),
            ),
            Error::MachineNotNamed { command } => Some(format!(
                "name it: `lakefly machines {command} ID` (`lakefly machines list -q` lists the ids)"
            )),
            Error::NoMachines { app } => Some(format!(
                "`lakefly deploy` or `lakefly scale count 1 -a {app}` makes one"
            )),
            Error::NotReached { state, .. } if state == "destroyed" => Some(
                "`lakefly events --kind machine.destroyed` says when it went".into(),
            ),
            Error::NotReached { machine, .. } => Some(format!(
                "`lakefly machines status {machine}` shows its state and what happened to it"
            )),
            Error::ConsoleCut { .. } => Some(
                "lakeflyd stopped or the network dropped the connection; what the command was running was hung up".into(),
            ),
            Error::JobNotFound { app, .. } => Some(format!(
                "`lakefly jobs list -a {app}` shows its jobs, by id and name"
            )),
            Error::InvalidConfig(report) => {
                let n = report.errors().count();
                Some(if n == 1 {
                    "fix the line above, then run `lakefly config validate`".into()
                } else {
                    format!("fix the {n} problems above, then run `lakefly config validate`")
                })
            }
            Error::EditRefused(report) => {
                let shown = match report.errors().count() {
                    1 => "the line above is",
                    _ => "the lines above are",
                };
                Some(format!(
                    "{} is unchanged: the edit would make it invalid ({shown} what it would have written); give a valid value",
                    report.file.display()
                ))
            }
            Error::ConfigNotFound { .. } => Some(
                "run `lakefly launch` to write one, or point at it with -c PATH".into(),
            ),
            Error::NothingToRun { group, config, why } => {
                Some(crate::config::plan::runnable_hint(group, config, why))
            }
            Error::InvalidKey { .. } => Some(
                "keys are dotted paths such as http_service.internal_port or services[0].ports[0].port".into(),
            ),
            Error::NotAnAssignment { .. } => {
                Some("write KEY=VALUE, e.g. `lakefly config set http_service.internal_port=8080`".into())
            }
            Error::KeyNotSet { .. } => Some("`lakefly config show` prints every key that is set".into()),
            Error::Edit { .. } => Some("use an index for lists, e.g. services[0].internal_port".into()),
            Error::AlreadyExists { flag, .. } => Some(format!("pass {flag} to overwrite it")),
            Error::InvalidAppName { .. } => Some(crate::config::names::APP_NAME_HINT.into()),
            Error::InvalidHostname { .. } => Some(crate::config::names::HOSTNAME_HINT.into()),
            Error::StateLocked { .. } => Some("stop it first (`lakefly daemon stop`), or pass another --state".into()),
            Error::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse => {
                Some("another program listens there; pick another address".into())
            }
            Error::Bind { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                Some(
                    "ports below 1024 take CAP_NET_BIND_SERVICE: `lakefly daemon install --systemd` \
                     grants it for the addresses it is given (or `--socket`: systemd binds the \
                     edge); by hand, `sudo setcap cap_net_bind_service=+ep` on lakeflyd"
                        .into(),
                )
            }
            Error::Bind { .. } => None,
            Error::Inherited(_) => Some(
                "name each ListenStream= socket with FileDescriptorName= (edge, edge-https, api, or port-N for a [[services]] TCP port N), one socket unit a name".into(),
            ),
            Error::NoStateDir => Some("pass --state DIR".into()),
            Error::DaemonNotRunning { taken: None, .. } => Some(
                "`lakefly daemon start` starts it; so does any command that needs it".into(),
            ),
            Error::DaemonNotRunning { taken: Some(_), .. } => Some(LOCAL_ADDRESS_TAKEN.into()),
            Error::NoHome { .. } => Some("set HOME to the home directory of the user the agent runs as".into()),
            Error::Store(e) if e.is_damaged() => Some(
                "the database is damaged: restore the state directory from a backup (`lakeflyd restore --state DIR BACKUP`, into an empty directory); without one, `sqlite3 state.db .recover` saves what it can".into(),
            ),
            Error::Store(crate::daemon::store::StoreError::TooNew { .. }) => Some(
                "a newer lakeflyd wrote it: run that version (or newer), or restore a backup this one wrote".into(),
            ),
            Error::Store(_) => Some("check the state directory's disk space and permissions".into()),
            Error::Backup(e) => {
                use crate::daemon::backup::BackupError;
                match e {
                    BackupError::NotEmpty(_) => Some(
                        "a backup goes to a new directory; a restore into an empty state directory (stop lakeflyd and move the old one aside first)".into(),
                    ),
                    BackupError::WrongKey { .. } => Some(
                        "restore with the master key that was in use when the backup was taken (put it in the backup as master.key)".into(),
                    ),
                    _ => None,
                }
            }
            Error::MasterKey(crate::daemon::secrets::KeyError::TooOpen { path, .. }) => {
                Some(format!("chmod 600 {}", path.display()))
            }
            Error::InsecureApi { .. } => Some(
                "pass --token-file FILE (one token per line, 16+ characters), or bind the API to 127.0.0.1".into(),
            ),
            Error::LocalGroup(e) => Some(format!(
                "create it (`groupadd {0}`, then `usermod -aG {0} USER` for each user who deploys) or name another",
                e.0
            )),
            Error::TokenFile(_) => Some(
                "list one token per line (primary first, then secondary); `openssl rand -hex 32` makes one".into(),
            ),
            Error::Remote(RemoteError::Unknown { .. }) => Some(
                "add it with `lakefly remote add NAME URL`, or pass a URL to --remote".into(),
            ),
            Error::Remote(RemoteError::Exists { name, .. }) => Some(format!(
                "remove it first with `lakefly remote remove {name}`, or pick another name"
            )),
            Error::Remote(RemoteError::Parse { .. }) => {
                Some("fix the line above, or remove the file to start over".into())
            }
            Error::Remote(RemoteError::Credentials { .. }) => Some(
                "give the daemon an API token instead: `lakefly auth login` stores one for the remote".into(),
            ),
            Error::Remote(RemoteError::BadUrl { .. }) => Some(
                "a daemon is an http:// or https:// URL, or HOST:PORT; --remote and LAKEFLY_REMOTE also take a remote's name (`lakefly remote list`)".into(),
            ),
            Error::ServerTls(e) => {
                let flag = e.role().to_ascii_lowercase();
                Some(format!(
                    "--{flag}-tls-cert takes the PEM certificate chain (leaf first) and --{flag}-tls-key its PEM private key"
                ))
            }
            Error::MasterKey(crate::daemon::secrets::KeyError::Missing(path)) => Some(format!(
                "put the key file this state directory was used with back at {} (a `lakeflyd backup` holds a copy); without it the secrets cannot be read",
                path.display()
            )),
            Error::MasterKey(crate::daemon::secrets::KeyError::WrongKey(_)) => Some(
                "restore the key file this state directory was used with; without it the secrets cannot be read".into(),
            ),
            Error::MasterKey(crate::daemon::secrets::KeyError::FromCredentials(_)) => Some(
                "make a new credential with `systemd-creds encrypt`, stop lakeflyd, run `lakeflyd secrets rotate-key` without CREDENTIALS_DIRECTORY, then point LoadCredentialEncrypted= at the new key".into(),
            ),
            Error::MasterKey(_) => Some(
                "the key is 32 bytes in $CREDENTIALS_DIRECTORY/lakefly-master-key or <state>/master.key".into(),
            ),
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied => Some("check the file's permissions".into()),
                std::io::ErrorKind::NotFound => Some("check that the path exists".into()),
                _ => None,
            },
            Error::Output(_) | Error::Remote(_) => None,
            Error::Token(_) => Some(
                "fix or remove the file, then `lakefly auth login` again; LAKEFLY_API_TOKEN works meanwhile".into(),
            ),
        }
    }
}

/// The host of a daemon's URL, as NO_PROXY lists it (no scheme, no port).
fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| url.to_string())
}
