//! Jobs: `/v1/apps/{app}/jobs`, `/v1/jobs/{id}...`, and the LSH job-daemon endpoints
//! (`/status`, `/jobs`, `/jobs/{id}/{trigger|start|stop}`), answered from the same scheduler.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::error::ServerError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::Shared;
use crate::api::jobs::{DaemonStatus, Job, JobRun, JobSpec, NewJob};

/// `GET /v1/apps/{app}/jobs`
pub async fn list(
    State(state): State<Shared>,
    Path(app): Path<String>,
) -> Result<Json<Vec<Job>>, ServerError> {
    state.require_app(&app).await?;
    Ok(Json(state.jobs.list(Some(&app)).await?))
}

/// `POST /v1/apps/{app}/jobs`
pub async fn create(
    State(state): State<Shared>,
    Path(app): Path<String>,
    ApiJson(spec): ApiJson<JobSpec>,
) -> Result<(StatusCode, Json<Job>), ServerError> {
    state.require_app(&app).await?;
    let id = state.jobs.create(&app, spec).await?;
    Ok((StatusCode::CREATED, Json(show_job(&state, id).await?)))
}

/// `GET /v1/jobs/{id}`
pub async fn show(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Job>, ServerError> {
    Ok(Json(show_job(&state, id).await?))
}

/// `DELETE /v1/jobs/{id}` (jobs made through the API; fly.toml's go with a deploy)
pub async fn delete(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ServerError> {
    state.jobs.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the runs list.
#[derive(Debug, serde::Deserialize)]
pub struct RunsQuery {
    /// Most runs returned (default 20).
    pub limit: Option<u32>,
}

/// `GET /v1/jobs/{id}/runs`, newest first.
pub async fn runs(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<u64>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<Vec<JobRun>>, ServerError> {
    Ok(Json(
        state.jobs.runs(id, q.limit.unwrap_or(20).min(1000)).await?,
    ))
}

/// `POST /v1/jobs/{id}/{trigger|start|stop|cancel}` and LSH's `POST /jobs/{id}/...`
pub async fn act(
    State(state): State<Shared>,
    ApiPath((id, action)): ApiPath<(u64, String)>,
) -> Result<(StatusCode, Json<Job>), ServerError> {
    match action.as_str() {
        "trigger" => {
            state.jobs.get(id).await?;
            state.jobs.trigger(id);
        }
        "start" => state.jobs.set_enabled(id, true).await?,
        "stop" => state.jobs.set_enabled(id, false).await?,
        "cancel" => {
            state.jobs.get(id).await?;
            state.jobs.cancel_run(id)?;
        }
        other => {
            return Err(ServerError::BadRequest(format!(
                "unknown job action {other:?}; use trigger, start, stop or cancel"
            )))
        }
    }
    let status = if matches!(action.as_str(), "trigger" | "cancel") {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(show_job(&state, id).await?)))
}

/// Query of LSH's jobs list.
#[derive(Debug, serde::Deserialize)]
pub struct JobsQuery {
    /// Only jobs in this status: `idle`, `running` or `stopped`.
    pub status: Option<String>,
}

/// `GET /jobs?status=` (LSH): every app's jobs.
pub async fn lsh_list(
    State(state): State<Shared>,
    ApiQuery(q): ApiQuery<JobsQuery>,
) -> Result<Json<Vec<Job>>, ServerError> {
    let mut jobs = state.jobs.list(None).await?;
    if let Some(status) = &q.status {
        if !["idle", "running", "stopped"].contains(&status.as_str()) {
            return Err(ServerError::BadRequest(format!(
                "unknown status {status:?}; use idle, running or stopped"
            )));
        }
        jobs.retain(|j| &j.status == status);
    }
    Ok(Json(jobs))
}

/// `POST /jobs` (LSH): a job for the app the body names.
pub async fn lsh_create(
    State(state): State<Shared>,
    ApiJson(new): ApiJson<NewJob>,
) -> Result<(StatusCode, Json<Job>), ServerError> {
    state.require_app(&new.app).await?;
    let id = state.jobs.create(&new.app, new.spec).await?;
    Ok((StatusCode::CREATED, Json(show_job(&state, id).await?)))
}

/// `GET /status` (LSH): the daemon at a glance.
pub async fn status(State(state): State<Shared>) -> Result<Json<DaemonStatus>, ServerError> {
    let apps = state.store.list_apps().await?.len() as u64;
    let machines = state
        .store
        .run(|conn, path| crate::daemon::store::machines::counts(conn, path))
        .await?
        .iter()
        .map(|(_, _, n)| *n as u64)
        .sum();
    let jobs = state.jobs.list(None).await?.len() as u64;
    Ok(Json(DaemonStatus {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        apps,
        machines,
        jobs,
        jobs_running: state.jobs.running_count() as u64,
    }))
}

async fn show_job(state: &Shared, id: u64) -> Result<Job, ServerError> {
    let record = state.jobs.get(id).await?;
    let last = state.jobs.runs(id, 1).await?.pop();
    Ok(state.jobs.describe(record, last))
}
