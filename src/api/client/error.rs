//! Why a request to the daemon failed, and how an answer that is not a success is read.

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::api::types::ApiError;

/// ` through the proxy P`, when a request went through one.
fn through(proxy: &Option<String>) -> String {
    proxy
        .as_ref()
        .map(|p| format!(" through the proxy {p}"))
        .unwrap_or_default()
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the address (or at the proxy in the way).
    #[error("cannot reach the lakefly daemon at {url}{}: {detail}", through(.proxy))]
    Unreachable {
        /// The daemon's address.
        url: String,
        /// The proxy from the environment the request went through, if any, without
        /// credentials.
        proxy: Option<String>,
        /// What the connection attempt said.
        detail: String,
    },
    /// The daemon took too long.
    #[error("the lakefly daemon at {url} did not answer within {timeout:?}")]
    Timeout {
        /// The request's URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// An upload stopped moving: nothing was sent, or answered, for `idle`.
    #[error("the upload to {url} stalled: nothing was sent or answered for {idle:?}")]
    Stalled {
        /// The request's URL.
        url: String,
        /// How long nothing moved.
        idle: Duration,
    },
    /// The daemon answered with an API error.
    #[error("{}", .error.error)]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error body.
        error: ApiError,
    },
    /// The daemon has no such request: it is older than this client (or not lakeflyd).
    #[error("the daemon at {url} does not know this request (HTTP {status}): it may be older than this lakefly ({})", env!("CARGO_PKG_VERSION"))]
    UnknownRequest {
        /// The request's URL.
        url: String,
        /// 404 or 405.
        status: u16,
    },
    /// The address is lakeflyd's edge, where apps are served, not its API.
    #[error("{url} is lakeflyd's edge, where apps are served, not its API")]
    EdgeNotApi {
        /// The address asked (scheme, host and port).
        url: String,
    },
    /// The answer was not what the API sends (a proxy page, a truncated body...).
    #[error("unexpected answer from {url} (HTTP {status}): {detail}")]
    BadResponse {
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        detail: String,
    },
}

/// `url`'s scheme, host and port (`url` itself when it does not parse): where a request
/// went, without its path.
pub fn origin(url: &str) -> String {
    reqwest::Url::parse(url).map_or(url.to_string(), |u| u.origin().ascii_serialization())
}

/// The innermost cause, which says what actually happened ("Connection refused").
pub fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The error a non-2xx answer is: the API's own, else a foreign body (a proxy's page).
pub(in crate::api) fn refusal(url: String, status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ApiError>(bytes) {
        // The API names apps in its paths and never answers this code; the edge does for a
        // Host that names no app.
        Ok(error) if error.code == crate::api::codes::EDGE_UNKNOWN_APP => {
            ClientError::EdgeNotApi { url: origin(&url) }
        }
        Ok(error) => ClientError::Api {
            status: status.as_u16(),
            error,
        },
        // An API error always has a body: an empty 404 or 405 is a route the daemon lacks.
        Err(_)
            if bytes.iter().all(u8::is_ascii_whitespace)
                && matches!(
                    status,
                    StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
                ) =>
        {
            ClientError::UnknownRequest {
                url,
                status: status.as_u16(),
            }
        }
        Err(_) => ClientError::BadResponse {
            url,
            status: status.as_u16(),
            detail: snippet(bytes),
        },
    }
}

/// A 2xx answer's body as the JSON it should be.
pub(in crate::api) fn decode<T: DeserializeOwned>(
    url: String,
    status: StatusCode,
    bytes: &[u8],
) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::BadResponse {
        url,
        status: status.as_u16(),
        detail: format!("the body is not the expected JSON: {e}"),
    })
}

/// The start of a body, for an error message.
pub(in crate::api) fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return "empty body".into();
    }
    let cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}
