//! `HEAD/PUT /v1/bundles/{sha256}`: content-addressed app bundles.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::ServerError;
use super::Shared;
use crate::api::types::{kind, BundleStored, BUNDLE_MAX_BYTES_HEADER};
use crate::bundle::Digest;
use crate::daemon::events::NewEvent;

fn parse_digest(raw: &str) -> Result<Digest, ServerError> {
    raw.parse()
        .map_err(|e: crate::bundle::BadDigest| ServerError::BadRequest(e.to_string()))
}

/// `HEAD /v1/bundles/{sha256}`: 200 with the size when stored, else 404; both with the
/// largest upload taken.
pub async fn head(
    State(state): State<Shared>,
    Path(raw): Path<String>,
) -> Result<Response, ServerError> {
    let digest = parse_digest(&raw)?;
    let limit = (BUNDLE_MAX_BYTES_HEADER, state.bundles.max_bytes.to_string());
    Ok(match state.bundles.claim(&digest).await {
        Some(size) => (
            StatusCode::OK,
            [(header::CONTENT_LENGTH.as_str(), size.to_string()), limit],
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, [limit]).into_response(),
    })
}

/// `PUT /v1/bundles/{sha256}`: streams the body to disk, verifies the digest and every
/// entry, then stores it. 201 when stored now, 200 when it already was.
pub async fn put(
    State(state): State<Shared>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<BundleStored>), ServerError> {
    let digest = parse_digest(&raw)?;
    if let Some(size) = state.bundles.claim(&digest).await {
        return Ok((
            StatusCode::OK,
            Json(BundleStored {
                digest: digest.to_string(),
                size,
                entries: None,
                unpacked_bytes: None,
            }),
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.bundles.max_bytes) {
        return Err(crate::daemon::bundles::UploadError::TooLarge {
            limit: state.bundles.max_bytes,
        }
        .into());
    }
    let (size, summary) = state
        .bundles
        .store(&digest, body.into_data_stream())
        .await?;
    let stored = BundleStored {
        digest: digest.to_string(),
        size,
        entries: Some(summary.entries),
        unpacked_bytes: Some(summary.unpacked_bytes),
    };
    state
        .hub
        .emit(NewEvent::daemon(
            kind::BUNDLE_STORED,
            serde_json::to_value(&stored).unwrap_or_default(),
        ))
        .await?;
    Ok((StatusCode::CREATED, Json(stored)))
}
