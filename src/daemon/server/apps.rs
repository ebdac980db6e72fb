//! `/v1/apps`: create, list, show, destroy.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::error::ServerError;
use super::extract::ApiJson;
use super::Shared;
use crate::api::types::{kind, App, AppStatus, CreateApp, MachineCounts, ReleaseSummary};
use crate::config::names;
use crate::daemon::events::{now, NewEvent};
use crate::daemon::store::apps;

/// `POST /v1/apps`
pub async fn create(
    State(state): State<Shared>,
    ApiJson(req): ApiJson<CreateApp>,
) -> Result<(StatusCode, Json<App>), ServerError> {
    names::check_app_name(&req.name).map_err(|problem| ServerError::InvalidAppName {
        name: req.name.clone(),
        problem,
    })?;
    let name = req.name.clone();
    let created = state
        .hub
        .change(move |tx, path| {
            let time = now();
            if !apps::insert_app(tx, path, &name, &time)? {
                return Ok((None, vec![]));
            }
            let app = App {
                name: name.clone(),
                created_at: time,
                current_release: None,
                machines: Some(MachineCounts {
                    total: 0,
                    started: 0,
                }),
            };
            Ok((
                Some(app),
                vec![NewEvent::app(
                    &name,
                    kind::APP_CREATED,
                    serde_json::json!({}),
                )],
            ))
        })
        .await?;
    match created {
        Some(app) => Ok((StatusCode::CREATED, Json(app))),
        None => Err(ServerError::AppExists(req.name)),
    }
}

/// `GET /v1/apps`
pub async fn list(State(state): State<Shared>) -> Result<Json<Vec<App>>, ServerError> {
    let mut apps = state.store.list_apps().await?;
    for app in &mut apps {
        app.machines = Some(machine_counts(&state, &app.name).await?);
    }
    Ok(Json(apps))
}

/// How many machines `app` has, and how many run.
async fn machine_counts(state: &Shared, app: &str) -> Result<MachineCounts, ServerError> {
    let machines = state.runtime.list(app).await?;
    let started = machines
        .iter()
        .filter(|m| m.state == crate::api::types::MachineState::Started)
        .count();
    Ok(MachineCounts {
        total: machines.len() as u32,
        started: started as u32,
    })
}

/// `GET /v1/apps/{name}`
pub async fn show(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<App>, ServerError> {
    match state.store.app(name.clone()).await? {
        Some(mut app) => {
            app.machines = Some(machine_counts(&state, &app.name).await?);
            Ok(Json(app))
        }
        None => Err(ServerError::AppNotFound(name)),
    }
}

/// `GET /v1/apps/{name}/status`
pub async fn status(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<AppStatus>, ServerError> {
    let Some(app) = state.store.app(name.clone()).await? else {
        return Err(ServerError::AppNotFound(name));
    };
    let machines = state.runtime.list(&app.name).await?;
    // The current release, or the one rolling out when none is current yet.
    let name = app.name.clone();
    let latest = state
        .store
        .run(move |conn, path| crate::daemon::store::releases::list(conn, path, &name, 1))
        .await?;
    let release = match app.current_release {
        Some(version) => Some(ReleaseSummary {
            version,
            status: "complete".into(),
        }),
        None => latest.first().map(|r| ReleaseSummary {
            version: r.version,
            status: r.status.clone(),
        }),
    };
    // A release rolling out beside the current one (without one, it is `release`).
    let rolling_out = latest
        .first()
        .filter(|r| r.status == "running" && app.current_release.is_some())
        .map(|r| r.version);
    Ok(Json(AppStatus {
        urls: state.edge.urls(&app.name),
        app: app.name,
        release,
        rolling_out,
        machines,
    }))
}

/// How long `apps destroy` waits for a release it cancelled, or a scale or restart, to
/// end; one still going then is a conflict.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// `DELETE /v1/apps/{name}`: cancels a release rolling out, stops and destroys its
/// machines (each with its kill signal and timeout), then forgets the app, its releases,
/// secrets and jobs.
pub async fn destroy(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<StatusCode, ServerError> {
    state.require_app(&name).await?;
    // From here no release or other change starts (and none that started is missed below).
    let _closing = state.deployer.in_flight.close(&name);
    let running = state.deployer.running(&name).await?;
    if let Some(version) = running {
        // A release rolling out is cancelled first (what it replaced is restored, and
        // goes with the rest): its machines must not be created after the app is gone.
        match state
            .deployer
            .cancel(&name, Some(version), "the app is being destroyed")
            .await
        {
            // It ended on its own meanwhile: nothing to cancel.
            Ok(_) | Err(crate::daemon::deploy::DeployError::NotRolling { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // That release, and a scale or restart begun before: their machines are recorded once
    // they end.
    if !state
        .deployer
        .in_flight
        .wait_changes_ended(&name, CANCEL_WAIT)
        .await
    {
        return Err(ServerError::Deploy(match running {
            Some(version) => crate::daemon::deploy::DeployError::Running(version),
            None => crate::daemon::deploy::DeployError::ChangeGoing,
        }));
    }
    // The rows go with the app; the processes must go first, or they would run untracked.
    state.runtime.destroy_all(&name).await?;
    let target = name.clone();
    let deleted = state
        .hub
        .change(move |tx, path| {
            if !apps::delete_app(tx, path, &target)? {
                return Ok((false, vec![]));
            }
            Ok((
                true,
                vec![NewEvent::app(
                    &target,
                    kind::APP_DESTROYED,
                    serde_json::json!({}),
                )],
            ))
        })
        .await?;
    if deleted {
        state.deployer.remove_app_files(&name).await;
        state.deployer.remove_unused_bundles().await;
        state.edge.remove(&name);
        state.metrics.forget_app(&name);
        // Its host names went with its rows.
        state.edge.reload_hostnames().await?;
        state.jobs.reload().await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ServerError::AppNotFound(name))
    }
}
