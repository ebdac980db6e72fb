//! `/v1/apps/{app}/machines`: create, list, show, start, stop, restart, signal, destroy (exec is
//! `exec.rs`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::error::ServerError;
use super::extract::ApiJson;
use super::Shared;
use crate::api::signal::{SignalRequest, Signaled, StopRequest};
use crate::api::types::{Machine, MachineSpec};
use crate::config::names;
use crate::daemon::runtime::{Action, StopHow};

/// `GET /v1/apps/{app}/machines`
pub async fn list(
    State(state): State<Shared>,
    Path(app): Path<String>,
) -> Result<Json<Vec<Machine>>, ServerError> {
    state.require_app(&app).await?;
    Ok(Json(state.runtime.list(&app).await?))
}

/// `GET /v1/apps/{app}/checks`: the latest result of each check of its running machines.
pub async fn checks(
    State(state): State<Shared>,
    Path(app): Path<String>,
) -> Result<Json<Vec<crate::api::checks::CheckStatus>>, ServerError> {
    state.require_app(&app).await?;
    Ok(Json(state.runtime.checks(&app)))
}

/// `POST /v1/apps/{app}/machines`: records a machine and starts it.
pub async fn create(
    State(state): State<Shared>,
    Path(app): Path<String>,
    ApiJson(spec): ApiJson<MachineSpec>,
) -> Result<(StatusCode, Json<Machine>), ServerError> {
    state.require_app(&app).await?;
    if let Err(problem) = names::check_group_name(&spec.process_group) {
        return Err(ServerError::BadRequest(format!(
            "process group {:?} {problem}",
            spec.process_group
        )));
    }
    for mount in &spec.mounts {
        crate::daemon::runtime::mounts::check(mount)
            .map_err(|e| ServerError::BadRequest(e.to_string()))?;
    }
    if spec.command.trim().is_empty() {
        return Err(ServerError::BadRequest(
            "the machine's command is empty".into(),
        ));
    }
    // A destroy waits for the machine to be recorded, and refuses it once begun.
    let _change = state.deployer.in_flight.begin_change(&app)?;
    Ok((
        StatusCode::CREATED,
        Json(state.runtime.create(&app, spec).await?),
    ))
}

/// `GET /v1/apps/{app}/machines/{id}`
pub async fn show(
    State(state): State<Shared>,
    Path((app, id)): Path<(String, String)>,
) -> Result<Json<Machine>, ServerError> {
    state.require_app(&app).await?;
    Ok(Json(state.runtime.get(&app, &id).await?))
}

/// `GET /v1/machines/{id}`: a machine by its id alone (its `app` says whose), for a
/// command given a machine id and no app, as flyctl finds the app.
pub async fn find(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Machine>, ServerError> {
    match state.runtime.find(&id).await? {
        Some(machine) => Ok(Json(machine)),
        None => Err(ServerError::UnknownMachine { id }),
    }
}

/// `POST /v1/apps/{app}/machines/{id}/{start|stop|restart}`: returns once it is done.
/// A stop's or restart's body (a [`StopRequest`]) may give another signal or timeout than
/// the machine's own.
pub async fn act(
    State(state): State<Shared>,
    Path((app, id, action)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Machine>, ServerError> {
    let action = match action.as_str() {
        "start" => Action::Start,
        "stop" => Action::StopWith(stop_how(&body)?),
        "restart" => Action::RestartWith(stop_how(&body)?),
        other => {
            return Err(ServerError::BadRequest(format!(
                "{other:?} is not a machine action; use start, stop or restart"
            )))
        }
    };
    state.require_app(&app).await?;
    // Nothing starts a process of an app being destroyed (and a destroy waits for a start
    // that began before it).
    let _change = match action {
        Action::Start | Action::RestartWith(_) => {
            Some(state.deployer.in_flight.begin_change(&app)?)
        }
        _ => None,
    };
    Ok(Json(state.runtime.act(&app, &id, action).await?))
}

/// A stop's signal and timeout from a [`StopRequest`] body; none given (or no body): the
/// machine's own.
fn stop_how(body: &[u8]) -> Result<StopHow, ServerError> {
    stop_how_of(&super::extract::optional_body::<StopRequest>(body)?)
}

/// What a [`StopRequest`] asks: its signal by name, its timeout.
pub(super) fn stop_how_of(request: &StopRequest) -> Result<StopHow, ServerError> {
    let signal = match request.signal.as_deref() {
        None => None,
        Some(name) => Some(crate::api::signal::parse(name).ok_or_else(|| {
            ServerError::BadRequest(format!(
                "field `signal`: {name:?} is not a signal; use a name such as SIGTERM or SIGINT"
            ))
        })?),
    };
    Ok(StopHow {
        signal,
        timeout: request.timeout.map(|t| t.to_std()),
    })
}

/// `POST /v1/apps/{app}/machines/{id}/signal`: a signal for the machine's main process.
pub async fn signal(
    State(state): State<Shared>,
    Path((app, id)): Path<(String, String)>,
    ApiJson(request): ApiJson<SignalRequest>,
) -> Result<Json<Signaled>, ServerError> {
    let Some(signal) = crate::api::signal::parse(&request.signal) else {
        return Err(ServerError::BadRequest(format!(
            "field `signal`: {:?} is not a signal; use a name such as SIGHUP, SIGUSR1 or SIGKILL",
            request.signal
        )));
    };
    state.require_app(&app).await?;
    Ok(Json(state.runtime.signal(&app, &id, signal).await?))
}

/// `DELETE /v1/apps/{app}/machines/{id}`: stops the machine (its kill signal, then SIGKILL
/// after its kill timeout) and forgets it. Fly's `?force=true` is taken and changes nothing.
pub async fn destroy(
    State(state): State<Shared>,
    Path((app, id)): Path<(String, String)>,
) -> Result<StatusCode, ServerError> {
    state.require_app(&app).await?;
    state.runtime.act(&app, &id, Action::Destroy).await?;
    Ok(StatusCode::NO_CONTENT)
}
