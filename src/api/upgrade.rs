//! Requests that take the connection over (`Upgrade:`): a console's terminal, a proxied
//! TCP connection. Only the handshake has the client's timeout; what follows lasts as long
//! as its use.

use super::client::{refusal, Client, ClientError};

impl Client {
    /// `GET path?query` with `Upgrade: protocol`; the connection once the daemon answers
    /// `101 Switching Protocols`, else its refusal. `what` names the use in errors ("a
    /// console").
    pub(super) async fn upgrade(
        &self,
        path: &str,
        query: &[(&str, String)],
        protocol: &'static str,
        what: &str,
    ) -> Result<reqwest::Upgraded, ClientError> {
        let url = format!("{}{path}", self.base);
        let target =
            reqwest::Url::parse_with_params(&url, query).map_err(|e| ClientError::BadResponse {
                url: url.clone(),
                status: 0,
                detail: e.to_string(),
            })?;
        let response = self
            .http
            .get(target)
            .header(reqwest::header::CONNECTION, "upgrade")
            .header(reqwest::header::UPGRADE, protocol)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(&url, e, self.timeout))?;
        let status = response.status();
        if status != reqwest::StatusCode::SWITCHING_PROTOCOLS {
            let bytes = (response.bytes().await)
                .map_err(|e| self.transport_error(&url, e, self.timeout))?;
            return Err(match status.is_success() {
                true => ClientError::BadResponse {
                    url,
                    status: status.as_u16(),
                    detail: format!(
                        "the daemon did not open {what} (is it older than this lakefly?)"
                    ),
                },
                false => refusal(url, status, &bytes),
            });
        }
        response
            .upgrade()
            .await
            .map_err(|e| ClientError::BadResponse {
                url,
                status: status.as_u16(),
                detail: format!("{what}'s connection could not be taken over: {e}"),
            })
    }
}
