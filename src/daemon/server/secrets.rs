//! `/v1/apps/{app}/secrets`: write-only. Values come in, sealed; only names, digests and
//! status go out.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;

use super::error::ServerError;
use super::extract::ApiJson;
use super::Shared;
use crate::api::types::{kind, SecretInfo, SecretsChanged, SecretsRequest};
use crate::daemon::events::{now, NewEvent};
use crate::daemon::secrets::Change;
use crate::secret::check_name;
use crate::secret::Secret;

/// `GET /v1/apps/{app}/secrets`: names, digests, status; never values.
pub async fn list(
    State(state): State<Shared>,
    Path(app): Path<String>,
) -> Result<Json<Vec<SecretInfo>>, ServerError> {
    state.require_app(&app).await?;
    Ok(Json(state.secrets.list(&app).await?))
}

/// `POST /v1/apps/{app}/secrets`: sets and unsets; unless staged, a changed secret starts a
/// release that restarts the machines with the rolling strategy.
pub async fn update(
    State(state): State<Shared>,
    Path(app): Path<String>,
    ApiJson(req): ApiJson<SecretsRequest>,
) -> Result<Json<SecretsChanged>, ServerError> {
    state.require_app(&app).await?;
    for name in req.set.keys().chain(&req.unset) {
        check_name(name).map_err(ServerError::BadRequest)?;
    }
    if !req.stage {
        if let Some(v) = state.deployer.running(&app).await? {
            return Err(crate::daemon::deploy::DeployError::Running(v).into());
        }
    }
    let set: BTreeMap<String, Secret> = req.set.into_iter().map(|(k, v)| (k, v.0)).collect();
    let (unset, stage) = (req.unset, req.stage);
    let (secrets, a) = (state.secrets.clone(), app.clone());
    let applied = state
        .hub
        .change(move |tx, path| {
            let change = Change {
                app: &a,
                set: &set,
                unset: &unset,
                stage,
                now: &now(),
            };
            let applied = secrets.apply(tx, path, &change)?;
            let events = if applied.changed.is_empty() {
                vec![]
            } else {
                let (was_set, was_unset): (Vec<&String>, Vec<&String>) =
                    applied.changed.iter().partition(|n| set.contains_key(*n));
                let data =
                    serde_json::json!({ "set": was_set, "unset": was_unset, "staged": stage });
                vec![NewEvent::app(&a, kind::SECRETS_UPDATED, data)]
            };
            Ok((applied, events))
        })
        .await?;
    let release = if !stage && !applied.changed.is_empty() {
        state
            .deployer
            .redeploy(&app, format!("secrets {}", applied.changed.join(", ")))
            .await?
    } else {
        None
    };
    Ok(Json(SecretsChanged {
        changed: applied.changed,
        unchanged: applied.unchanged,
        release,
    }))
}

/// `POST /v1/apps/{app}/secrets/deploy`: applies staged changes in a new release.
pub async fn deploy(
    State(state): State<Shared>,
    Path(app): Path<String>,
) -> Result<Json<SecretsChanged>, ServerError> {
    state.require_app(&app).await?;
    if let Some(v) = state.deployer.running(&app).await? {
        return Err(crate::daemon::deploy::DeployError::Running(v).into());
    }
    let (secrets, a) = (state.secrets.clone(), app.clone());
    let names = state
        .hub
        .change(move |tx, path| {
            let names = secrets.deploy_staged(tx, path, &a, &now())?;
            let events = if names.is_empty() {
                vec![]
            } else {
                vec![NewEvent::app(
                    &a,
                    kind::SECRETS_UPDATED,
                    serde_json::json!({ "deployed": names, "staged": false }),
                )]
            };
            Ok((names, events))
        })
        .await?;
    let release = if names.is_empty() {
        None
    } else {
        state
            .deployer
            .redeploy(&app, format!("secrets deploy {}", names.join(", ")))
            .await?
    };
    Ok(Json(SecretsChanged {
        changed: names,
        unchanged: vec![],
        release,
    }))
}
