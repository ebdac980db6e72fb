//! `/v1/apps/{app}/volumes`: list an app's volumes, make one before a machine mounts it,
//! delete one that no machine mounts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::error::ServerError;
use super::extract::ApiJson;
use super::Shared;
use crate::api::types::kind;
use crate::api::volumes::{CreateVolume, Volume};
use crate::daemon::events::NewEvent;
use crate::daemon::volumes::{self, VolumeError};

/// `GET /v1/apps/{app}/volumes`: also for a destroyed app whose volumes were kept.
pub async fn list(
    State(state): State<Shared>,
    Path(app): Path<String>,
) -> Result<Json<Vec<Volume>>, ServerError> {
    require_app_or_volumes(&state, &app).await?;
    let machines = state.runtime.list(&app).await?;
    let root = state.runtime.volumes_dir().to_path_buf();
    Ok(Json(
        blocking(&root.clone(), "read", move || {
            volumes::list(&root, &app, &machines)
        })
        .await?,
    ))
}

/// `GET /v1/volumes`: the volumes of every app, and those kept from destroyed apps, which
/// no app-scoped listing finds unless its name is known.
pub async fn list_all(State(state): State<Shared>) -> Result<Json<Vec<Volume>>, ServerError> {
    let root = state.runtime.volumes_dir().to_path_buf();
    let mut apps: std::collections::BTreeSet<String> = state
        .store
        .list_apps()
        .await?
        .into_iter()
        .map(|app| app.name)
        .collect();
    let on_disk = root.clone();
    apps.extend(
        blocking(&root, "read", move || {
            Ok(volumes::apps_with_volumes(&on_disk))
        })
        .await?,
    );
    let mut all = Vec::new();
    for app in apps {
        let machines = state.runtime.list(&app).await?;
        let dir = root.clone();
        all.extend(blocking(&root, "read", move || volumes::list(&dir, &app, &machines)).await?);
    }
    Ok(Json(all))
}

/// `POST /v1/apps/{app}/volumes` with `{"name"}`: an empty volume, before a machine mounts
/// it.
pub async fn create(
    State(state): State<Shared>,
    Path(app): Path<String>,
    ApiJson(request): ApiJson<CreateVolume>,
) -> Result<(StatusCode, Json<Volume>), ServerError> {
    state.require_app(&app).await?;
    let root = state.runtime.volumes_dir().to_path_buf();
    let (a, n) = (app.clone(), request.name.clone());
    let volume = blocking(&root.clone(), "create", move || {
        volumes::create(&root, &a, &n)
    })
    .await?;
    state
        .hub
        .emit(NewEvent::app(
            &app,
            kind::VOLUME_CREATED,
            serde_json::json!({ "name": request.name }),
        ))
        .await?;
    Ok((StatusCode::CREATED, Json(volume)))
}

/// `DELETE /v1/apps/{app}/volumes/{name}`: refused while a machine of the app (stopped
/// ones included) mounts it, or while a deploy runs, which may create one that does.
pub async fn destroy(
    State(state): State<Shared>,
    Path((app, name)): Path<(String, String)>,
) -> Result<StatusCode, ServerError> {
    require_app_or_volumes(&state, &app).await?;
    if let Some(version) = state.deployer.running(&app).await? {
        return Err(ServerError::Deploy(
            crate::daemon::deploy::DeployError::Running(version),
        ));
    }
    let machines = state.runtime.list(&app).await?;
    let root = state.runtime.volumes_dir().to_path_buf();
    let (a, n) = (app.clone(), name.clone());
    blocking(&root.clone(), "delete", move || {
        volumes::destroy(&root, &a, &n, &machines)
    })
    .await?;
    state
        .hub
        .emit(NewEvent::app(
            &app,
            kind::VOLUME_DESTROYED,
            serde_json::json!({ "name": name }),
        ))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 404 unless the app exists or has volumes left from when it did.
async fn require_app_or_volumes(state: &Shared, app: &str) -> Result<(), ServerError> {
    match state.require_app(app).await {
        Err(ServerError::AppNotFound(_))
            if crate::config::names::check_app_name(app).is_ok()
                && state.runtime.volumes_dir().join(app).is_dir() =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Runs `work` on the blocking pool: walking and deleting a large tree takes a while.
async fn blocking<T: Send + 'static>(
    root: &std::path::Path,
    action: &'static str,
    work: impl FnOnce() -> Result<T, VolumeError> + Send + 'static,
) -> Result<T, VolumeError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(VolumeError::Io {
            action,
            path: root.to_path_buf(),
            source: std::io::Error::other(e),
        })
    })
}
