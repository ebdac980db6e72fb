//! Signals by name, as `fly.toml`'s `kill_signal` and `lakefly machines kill --signal`
//! write them (`SIGHUP`, `HUP`, `hup`), and the request that sends one to a machine.

use serde::{Deserialize, Serialize};

pub use nix::sys::signal::Signal;

use super::client::{decode, Client, ClientError, MACHINES_TIMEOUT};
use super::types::Machine;

/// The signal `name` names, with or without its `SIG` prefix, in any case.
pub fn parse(name: &str) -> Option<Signal> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse().ok()
}

/// `POST /v1/apps/{app}/machines/{id}/signal`: a signal for the machine's main process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalRequest {
    /// Its name (`SIGHUP`; the prefix may be left out).
    pub signal: String,
}

/// `POST /v1/apps/{app}/machines/{id}/stop` (or `restart`), with another signal or timeout
/// than the machine's `kill_signal` and `kill_timeout` (`machines stop --signal`,
/// `--timeout`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRequest {
    /// The signal that asks it to stop (`SIGTERM`; the prefix may be left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// How long it has before SIGKILL (`30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<crate::config::units::Duration>,
}

/// What a signal request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signaled {
    /// The machine.
    pub machine: String,
    /// The signal sent, by its full name (`SIGHUP`).
    pub signal: String,
    /// The process it went to: the machine's main process.
    pub pid: u32,
}

impl Client {
    /// `POST /v1/apps/{app}/machines/{id}/signal`.
    pub async fn signal_machine(
        &self,
        app: &str,
        id: &str,
        signal: Signal,
    ) -> Result<Signaled, ClientError> {
        let path = format!("/v1/apps/{app}/machines/{id}/signal");
        let request = SignalRequest {
            signal: signal.as_str().to_string(),
        };
        let (url, status, bytes) = self
            .send(reqwest::Method::POST, &path, Some(&request), self.timeout)
            .await?;
        decode(url, status, &bytes)
    }

    /// `POST /v1/apps/{app}/machines/{id}/{stop|restart}` (`action`) the way `request`
    /// says: answers once it is done.
    pub async fn stop_machine(
        &self,
        app: &str,
        id: &str,
        action: &str,
        request: &StopRequest,
    ) -> Result<Machine, ClientError> {
        let path = format!("/v1/apps/{app}/machines/{id}/{action}");
        let (url, status, bytes) = self
            .send(
                reqwest::Method::POST,
                &path,
                Some(request),
                MACHINES_TIMEOUT,
            )
            .await?;
        decode(url, status, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_with_or_without_prefix_in_any_case() {
        assert_eq!(parse("SIGINT"), Some(Signal::SIGINT));
        assert_eq!(parse("term"), Some(Signal::SIGTERM));
        assert_eq!(parse(" Hup "), Some(Signal::SIGHUP));
        assert_eq!(parse("SIGNOPE"), None);
        assert_eq!(parse(""), None);
    }
}
