//! `POST /v1/apps/{app}/restart`: machines restarted in place one at a time, each healthy
//! again before the next unless asked not to wait (`apps restart`, `machines restart
//! ID...`).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::{decode, Client, ClientError, MACHINES_TIMEOUT};
use super::signal::StopRequest;
use super::types::Machine;

/// Which machines to restart and how each stops; the default (or no body) restarts the
/// app's started machines, each its own way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartRequest {
    /// Machine ids, restarted in this order; none: the app's started machines, group by
    /// group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<String>,
    /// Another signal or timeout than each machine's `kill_signal` and `kill_timeout`.
    #[serde(flatten)]
    pub stop: StopRequest,
    /// Restart the next as soon as one has started, not once it passes its checks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_health_checks: bool,
}

impl Client {
    /// `POST /v1/apps/{app}/restart`: answers once every machine asked for was restarted,
    /// one at a time, and (unless the request skips health checks) is healthy again.
    pub async fn restart_app(
        &self,
        app: &str,
        request: &RestartRequest,
    ) -> Result<Vec<Machine>, ClientError> {
        let path = format!("/v1/apps/{app}/restart");
        let (url, status, bytes) = self
            .send(Method::POST, &path, Some(request), MACHINES_TIMEOUT)
            .await?;
        decode(url, status, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_request_is_an_empty_object_and_reads_back() {
        let plain = RestartRequest::default();
        assert_eq!(serde_json::to_string(&plain).unwrap(), "{}");
        let asked = RestartRequest {
            machines: vec!["a1".into()],
            stop: StopRequest {
                signal: Some("SIGTERM".into()),
                timeout: None,
            },
            skip_health_checks: false,
        };
        let wire = serde_json::to_string(&asked).unwrap();
        assert_eq!(wire, r#"{"machines":["a1"],"signal":"SIGTERM"}"#);
        assert_eq!(
            serde_json::from_str::<RestartRequest>(&wire).unwrap(),
            asked
        );
    }
}
