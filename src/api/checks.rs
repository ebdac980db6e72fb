//! `GET /v1/apps/{app}/checks`: the latest result of each health check of each running
//! machine, as `fly checks list` shows them.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::{Client, ClientError};
use super::types::HealthState;

/// One check of one machine, as last run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// The machine.
    pub machine: String,
    /// The check, as the config names it (`http_service.checks[0]`, `checks.db`), or
    /// `implicit` for a machine without checks (its port accepting connections).
    pub name: String,
    /// `unknown` when not run yet, or failing within its grace period (a start not over
    /// yet; `output` then says what it saw).
    pub status: HealthState,
    /// What the last run saw (`200 http://127.0.0.1:28129/health: ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// When it last ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl Client {
    /// `GET /v1/apps/{app}/checks`.
    pub async fn checks(&self, app: &str) -> Result<Vec<CheckStatus>, ClientError> {
        self.call(Method::GET, &format!("/v1/apps/{app}/checks"), None::<&()>)
            .await
    }
}
