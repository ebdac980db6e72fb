//! `POST /v1/apps/{app}/deploys`, `GET /v1/apps/{app}/releases`, and what else starts or
//! stops a release.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::error::ServerError;
use super::extract::{optional_body, ApiJson, ApiPath, ApiQuery};
use super::Shared;
use crate::api::restart::RestartRequest;
use crate::api::types::{DeployRequest, Release};
use crate::daemon::store::releases;

/// `POST /v1/apps/{app}/deploys`: 202 with the new release's version; its progress follows
/// as `deploy.*` events.
pub async fn create(
    State(state): State<Shared>,
    Path(app): Path<String>,
    ApiJson(req): ApiJson<DeployRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ServerError> {
    state.require_app(&app).await?;
    let version = state.deployer.deploy(&app, req).await?;
    Ok(accepted(version))
}

/// 202 with the version of the release a request started (or cancels).
fn accepted(version: u64) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "version": version })),
    )
}

/// `GET /v1/apps/{app}/releases/{version}/config`: the normalized config a release runs
/// (with what `deploy -e`, `scale` and kept sizes made of the file).
pub async fn release_config(
    State(state): State<Shared>,
    ApiPath((app, version)): ApiPath<(String, u64)>,
) -> Result<Json<crate::config::AppConfig>, ServerError> {
    state.require_app(&app).await?;
    let a = app.clone();
    let source = state
        .store
        .run(move |conn, path| releases::source(conn, path, &a, version))
        .await?;
    match source {
        Some(source) => Ok(Json(source.config)),
        None => Err(ServerError::ReleaseNotFound { app, version }),
    }
}

/// `POST /v1/apps/{app}/rollbacks`: 202 with the new release's version.
pub async fn rollback(
    State(state): State<Shared>,
    Path(app): Path<String>,
    ApiJson(req): ApiJson<crate::api::types::RollbackRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ServerError> {
    state.require_app(&app).await?;
    let version = state.deployer.rollback(&app, req.version).await?;
    Ok(accepted(version))
}

/// `POST /v1/apps/{app}/cancels`: 202 with the version of the release rolling out, which
/// fails as soon as its rollout can stop (its `deploy.failed` event says so).
pub async fn cancel(
    State(state): State<Shared>,
    Path(app): Path<String>,
    ApiJson(req): ApiJson<crate::api::types::CancelRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ServerError> {
    state.require_app(&app).await?;
    let version = state
        .deployer
        .cancel(
            &app,
            req.version,
            "asked to stop (`lakefly releases cancel`)",
        )
        .await?;
    Ok(accepted(version))
}

/// `POST /v1/apps/{app}/scale`: sets machine counts; answers once they are in place.
pub async fn scale(
    State(state): State<Shared>,
    Path(app): Path<String>,
    ApiJson(req): ApiJson<crate::api::types::ScaleRequest>,
) -> Result<Json<std::collections::BTreeMap<String, crate::api::types::ScaleChange>>, ServerError> {
    state.require_app(&app).await?;
    Ok(Json(state.deployer.scale(&app, req.counts).await?))
}

/// `POST /v1/apps/{app}/restart`: restarts the running machines (or those a
/// [`RestartRequest`] names) one at a time, each healthy before the next unless it skips
/// health checks; answers once all are. No body restarts the running machines their own
/// way, each waited on.
pub async fn restart(
    State(state): State<Shared>,
    Path(app): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Vec<crate::api::types::Machine>>, ServerError> {
    let request: RestartRequest = optional_body(&body)?;
    let how = super::machines::stop_how_of(&request.stop)?;
    state.require_app(&app).await?;
    // Each named one exists before any is touched.
    let chosen = match request.machines.is_empty() {
        true => None,
        false => {
            let mut chosen = Vec::with_capacity(request.machines.len());
            for id in &request.machines {
                chosen.push(state.runtime.get(&app, id).await?);
            }
            Some(chosen)
        }
    };
    let gate = !request.skip_health_checks;
    Ok(Json(
        state.deployer.restart_app(&app, chosen, how, gate).await?,
    ))
}

/// `POST /v1/apps/{app}/scale/memory`: a group's memory limit, applied by a new release.
pub async fn scale_memory(
    State(state): State<Shared>,
    Path(app): Path<String>,
    ApiJson(req): ApiJson<crate::api::types::MemoryRequest>,
) -> Result<Json<crate::api::types::MemoryChange>, ServerError> {
    state.require_app(&app).await?;
    Ok(Json(
        state
            .deployer
            .scale_memory(&app, req.process_group, req.memory_mb)
            .await?,
    ))
}

/// `POST /v1/apps/{app}/scale/vm`: a group's size preset, applied by a new release.
pub async fn scale_vm(
    State(state): State<Shared>,
    Path(app): Path<String>,
    ApiJson(req): ApiJson<crate::api::types::VmRequest>,
) -> Result<Json<crate::api::types::VmChange>, ServerError> {
    state.require_app(&app).await?;
    Ok(Json(state.deployer.scale_vm(&app, req).await?))
}

/// `GET /v1/apps/{app}/scale`: each group's machines, size and memory.
pub async fn scale_show(
    State(state): State<Shared>,
    Path(app): Path<String>,
) -> Result<Json<Vec<crate::api::types::GroupScale>>, ServerError> {
    state.require_app(&app).await?;
    Ok(Json(state.deployer.scale_show(&app).await?))
}

/// Query of the releases list.
#[derive(Debug, Deserialize)]
pub struct ReleasesQuery {
    limit: Option<usize>,
}

/// `GET /v1/apps/{app}/releases?limit=N`, newest first.
pub async fn list(
    State(state): State<Shared>,
    Path(app): Path<String>,
    ApiQuery(q): ApiQuery<ReleasesQuery>,
) -> Result<Json<Vec<Release>>, ServerError> {
    state.require_app(&app).await?;
    let limit = q.limit.unwrap_or(20).min(1000);
    let list = state
        .store
        .run(move |conn, path| releases::list(conn, path, &app, limit))
        .await?;
    Ok(Json(list))
}
