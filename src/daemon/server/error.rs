//! Errors a handler returns, each mapped to a status and an [`ApiError`] body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::types::ApiError;
use crate::daemon::store::StoreError;

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
    /// A query parameter or header is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServerError {
    fn status(&self) -> StatusCode {
        match self {
            ServerError::AppNotFound(_) => StatusCode::NOT_FOUND,
            ServerError::AppExists(_) => StatusCode::CONFLICT,
            ServerError::InvalidAppName { .. } | ServerError::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            ServerError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ServerError::AppNotFound(_) => "app_not_found",
            ServerError::AppExists(_) => "app_exists",
            ServerError::InvalidAppName { .. } => "invalid_app_name",
            ServerError::BadRequest(_) => "bad_request",
            ServerError::Store(_) => "internal",
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ServerError::AppNotFound(_) => Some("`lakefly apps list` shows the apps".into()),
            ServerError::AppExists(_) => {
                Some("pick another name, or deploy to the existing app".into())
            }
            ServerError::InvalidAppName { .. } => Some(crate::config::names::APP_NAME_HINT.into()),
            ServerError::BadRequest(_) => None,
            ServerError::Store(_) => Some("see the daemon's log".into()),
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        if let ServerError::Store(e) = &self {
            tracing::error!(error = %e, "request failed");
        }
        let body = ApiError {
            // Internal details stay in the daemon's log.
            error: match &self {
                ServerError::Store(_) => "internal error in the daemon's state database".into(),
                other => other.to_string(),
            },
            code: self.code().into(),
            hint: self.hint(),
        };
        (self.status(), Json(body)).into_response()
    }
}
