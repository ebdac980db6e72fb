//! Reaching the daemon: the `--remote` address, a client for it, and an async runtime for
//! commands that talk to it.

use std::future::Future;

use super::GlobalArgs;
use crate::api::client::Client;
use crate::error::Error;

/// A client of the daemon the flags name; with none named, of the current remote
/// (`lakefly remote use`), else of the local daemon, started in the background when it is
/// not running.
pub fn client(global: &GlobalArgs) -> Result<Client, Error> {
    let target = resolve(global.remote().as_deref())?;
    let token = token_for(&target)?;
    let url = base_url(&target, global.output())?;
    if token.is_some()
        && !crate::api::client::is_https(&url)
        && !crate::proxy_env::is_loopback(&url)
    {
        global.output().note(&format!(
            "warning: the API token goes to {url} unencrypted; serve the API with `lakeflyd --api-tls-cert` and use an https:// remote"
        ));
    }
    Ok(Client::with_token(&url, token)?)
}

/// The token commands present to `target` (daemons started with --token-file):
/// `LAKEFLY_API_TOKEN`, else the one `lakefly auth login` stored; none for most local use.
pub fn token_for(target: &Target) -> Result<Option<crate::secret::Secret>, Error> {
    match std::env::var("LAKEFLY_API_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        Some(token) => Ok(Some(crate::secret::Secret::from(token.trim().to_string()))),
        None => Ok(crate::credentials::tokens::get(&target.key)?),
    }
}

/// `target`'s API URL; for the local daemon, started in the background when it is not
/// running.
pub fn base_url(target: &Target, out: crate::output::Output) -> Result<String, Error> {
    match &target.url {
        Some(url) => Ok(url.clone()),
        None => super::local::ensure_running(out),
    }
}

/// The daemon a command talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What its token is stored under: the remote's name, else its URL.
    pub key: String,
    /// Its API; `None` is the local daemon.
    pub url: Option<String>,
}

/// What `--remote` (or `LAKEFLY_REMOTE`) means: a URL as it is, `host:port` over HTTP, a
/// remote's name through the remotes file; without one, the current remote, else the
/// local daemon.
pub fn resolve(remote: Option<&str>) -> Result<Target, Error> {
    use crate::credentials::remotes::{self, Remotes};
    let named = |name: &str, remotes: &Remotes| -> Result<Target, Error> {
        Ok(Target {
            key: name.to_string(),
            url: remotes.url(name)?,
        })
    };
    match remote {
        // Checked here, so a typo is named as such rather than failing as a request.
        Some(url) if url.contains("://") => Ok(Target {
            key: remotes::check_url(url)?,
            url: Some(url.to_string()),
        }),
        Some(name) if name == remotes::LOCAL || remotes::check_name(name).is_ok() => {
            named(name, &Remotes::load()?)
        }
        Some(host_port) => {
            let url = format!("http://{host_port}");
            remotes::check_url(&url).map_err(|e| match e {
                remotes::RemoteError::Credentials { .. } => e,
                _ => remotes::RemoteError::BadUrl {
                    url: host_port.to_string(),
                },
            })?;
            Ok(Target {
                key: url.clone(),
                url: Some(url),
            })
        }
        None => {
            let remotes = Remotes::load()?;
            let name = remotes
                .current()
                .unwrap_or_else(|| remotes::LOCAL.to_string());
            named(&name, &remotes)
        }
    }
}

/// Runs a command's async body on a small runtime of its own.
pub fn block_on<T>(future: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Error::io(
                "start the async runtime for",
                std::path::Path::new("lakefly"),
                e,
            )
        })?
        .block_on(future)
}

/// The app a command is about: `-a`, else the config file's `app`.
pub fn app_name(global: &GlobalArgs) -> Result<String, Error> {
    if let Some(app) = &global.app {
        return Ok(app.clone());
    }
    let path = &global.config_path();
    if !path.exists() {
        return Err(Error::NoApp { config: None });
    }
    let loaded = crate::config::load(path)?;
    loaded.config.app.ok_or_else(|| Error::NoApp {
        config: Some(path.to_path_buf()),
    })
}

/// Asks `question` on a terminal; without one, `--yes` is required.
pub fn confirm(question: &str, yes: bool) -> Result<(), Error> {
    use std::io::IsTerminal;
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::NeedsConfirmation {
            what: question.to_string(),
        });
    }
    let answer = ask(&format!("{question} [y/N] "))?;
    if matches!(answer.as_str(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::Cancelled(question.to_string()))
    }
}

/// Writes `prompt` on stderr and reads one line of stdin, trimmed (callers check that it
/// is a terminal).
pub fn ask(prompt: &str) -> Result<String, Error> {
    use std::io::{BufRead, Write};
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{prompt}");
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::io("read", std::path::Path::new("<stdin>"), e))?;
    Ok(answer.trim().to_string())
}
