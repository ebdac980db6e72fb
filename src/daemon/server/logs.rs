//! `GET /v1/apps/{app}/logs`: recent machine output.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;

use super::error::ServerError;
use super::extract::ApiQuery;
use super::Shared;
use crate::api::types::LogEntry;
use crate::daemon::store::logs::{self, LogQuery};
use crate::daemon::store::machines;

/// Most lines one request returns.
const MAX_LINES: usize = 10_000;

/// Query parameters.
#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    machine: Option<String>,
    process: Option<String>,
    job: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/apps/{app}/logs?machine=&process=&job=&after=&limit=` (default 100 lines).
pub async fn read(
    State(state): State<Shared>,
    Path(app): Path<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> Result<Json<Vec<LogEntry>>, ServerError> {
    state.require_app(&app).await?;
    let query = LogQuery {
        machine: q.machine.clone(),
        process_group: q.process,
        job: q.job,
        after: q.after,
        until: None,
        limit: q.limit.unwrap_or(100).min(MAX_LINES),
    };
    let lines = state
        .store
        .run(move |conn, path| {
            let lines = logs::read(conn, path, &app, &query)?;
            // No lines of a machine the app never had: a mistyped id, said as such rather
            // than an empty answer (a destroyed machine's lines are still asked for).
            if let Some(id) = q.machine.filter(|_| lines.is_empty()) {
                if !machines::ever_existed(conn, path, &app, &id)? {
                    return Ok(Err(ServerError::MachineNotFound { app, id }));
                }
            }
            Ok(Ok(lines))
        })
        .await??;
    Ok(Json(lines))
}
