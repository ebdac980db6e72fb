//! Extractors of a request's body, query string and path whose rejections are
//! [`ServerError`]s, so `?limit=abc`, `/v1/jobs/abc` or a malformed body get the same
//! `{"error","code","hint"}` answer as every other bad request (axum's own are plain
//! text).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ServerError;

/// Like `axum::Json`, with errors in the API's shape.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ServerError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ServerError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ServerError::BodyTooLarge)
            }
            Err(rejection) => Err(ServerError::BadRequest(match rejection {
                JsonRejection::MissingJsonContentType(_) => {
                    "the body must be JSON (Content-Type: application/json)".into()
                }
                other => format!("invalid JSON body: {}", other.body_text()),
            })),
        }
    }
}

/// A JSON body that may be left out (an empty body is `T`'s default), read from the bytes
/// a handler took whole.
pub fn optional_body<T: Default + DeserializeOwned>(body: &[u8]) -> Result<T, ServerError> {
    if body.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ServerError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Like `axum::extract::Query`, with errors in the API's shape.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ServerError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ServerError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ServerError::BadRequest(format!(
                "invalid query string: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// Like `axum::extract::Path`, with errors in the API's shape.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ServerError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ServerError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ServerError::BadRequest(format!(
                "invalid path: {}",
                rejection.body_text()
            ))),
        }
    }
}
