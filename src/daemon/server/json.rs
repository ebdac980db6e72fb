//! A JSON body extractor whose rejections are [`ServerError`]s, so a malformed body gets
//! the same `{"error","code","hint"}` answer as every other bad request.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
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
            Err(rejection) => Err(ServerError::BadRequest(match rejection {
                JsonRejection::MissingJsonContentType(_) => {
                    "the body must be JSON (Content-Type: application/json)".into()
                }
                other => format!("invalid JSON body: {}", other.body_text()),
            })),
        }
    }
}
