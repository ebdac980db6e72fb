//! `/v1/apps/{app}/certs`: host names routed to the app besides `<app>.<domain>`, as
//! `fly certs` has them (here the edge's own certificates serve them over HTTPS).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::error::ServerError;
use super::extract::ApiJson;
use super::Shared;
use crate::api::types::{kind, AddHostname, Hostname};
use crate::config::names::{canonical_hostname, check_hostname};
use crate::daemon::events::{now, NewEvent};
use crate::daemon::store::hostnames::{self, Added, HostnameRecord};

/// `GET /v1/apps/{app}/certs`: the app's host names, by name.
pub async fn list(
    State(state): State<Shared>,
    Path(app): Path<String>,
) -> Result<Json<Vec<Hostname>>, ServerError> {
    state.require_app(&app).await?;
    let records = state.store.hostnames(Some(app)).await?;
    Ok(Json(
        records.into_iter().map(|r| described(&state, r)).collect(),
    ))
}

/// `GET /v1/apps/{app}/certs/{hostname}`.
pub async fn show(
    State(state): State<Shared>,
    Path((app, hostname)): Path<(String, String)>,
) -> Result<Json<Hostname>, ServerError> {
    state.require_app(&app).await?;
    let hostname = canonical_hostname(&hostname);
    let name = hostname.clone();
    let record = state
        .store
        .run(move |conn, path| hostnames::get(conn, path, &name))
        .await?;
    match record {
        Some(record) if record.app == app => Ok(Json(described(&state, record))),
        _ => Err(ServerError::HostnameNotFound { hostname, app }),
    }
}

/// `POST /v1/apps/{app}/certs`: routes a host name to the app (201), or says it already
/// does (200); a name another app has is a conflict.
pub async fn add(
    State(state): State<Shared>,
    Path(app): Path<String>,
    ApiJson(req): ApiJson<AddHostname>,
) -> Result<(StatusCode, Json<Hostname>), ServerError> {
    state.require_app(&app).await?;
    let hostname = canonical_hostname(&req.hostname);
    let invalid = |problem: String| ServerError::InvalidHostname {
        hostname: req.hostname.clone(),
        problem,
    };
    check_hostname(&hostname).map_err(|p| invalid(p.to_string()))?;
    // A path under one app's own name may go to another app; the name itself, or every
    // name under the domain (`*.`), may not.
    let (host, path) = crate::config::names::split_route(&hostname);
    if state.edge.hosts().is_reserved(host) && (path.is_none() || host.starts_with("*.")) {
        return Err(invalid(format!(
            "is under the edge's domain {0:?}, where every app already has <app>.{0}",
            state.edge.domain()
        )));
    }
    let (a, name) = (app.clone(), hostname.clone());
    let added = state
        .hub
        .change(move |tx, path| {
            let added = hostnames::insert(tx, path, &name, &a, &now())?;
            let events = match &added {
                Added::New(_) => vec![NewEvent::app(
                    &a,
                    kind::HOSTNAME_ADDED,
                    serde_json::json!({ "hostname": name }),
                )],
                Added::Already(_) | Added::Taken(_) => vec![],
            };
            Ok((added, events))
        })
        .await?;
    let (status, record) = match added {
        Added::New(record) => {
            state.edge.reload_hostnames().await?;
            (StatusCode::CREATED, record)
        }
        Added::Already(record) => (StatusCode::OK, record),
        Added::Taken(record) => {
            return Err(ServerError::HostnameTaken {
                hostname,
                app: record.app,
            })
        }
    };
    Ok((status, Json(described(&state, record))))
}

/// `DELETE /v1/apps/{app}/certs/{hostname}`: the name no longer routes to the app.
pub async fn remove(
    State(state): State<Shared>,
    Path((app, hostname)): Path<(String, String)>,
) -> Result<StatusCode, ServerError> {
    state.require_app(&app).await?;
    let hostname = canonical_hostname(&hostname);
    let (a, name) = (app.clone(), hostname.clone());
    let removed = state
        .hub
        .change(move |tx, path| {
            if !hostnames::delete(tx, path, &name, &a)? {
                return Ok((false, vec![]));
            }
            let event = NewEvent::app(
                &a,
                kind::HOSTNAME_REMOVED,
                serde_json::json!({ "hostname": name }),
            );
            Ok((true, vec![event]))
        })
        .await?;
    if !removed {
        return Err(ServerError::HostnameNotFound { hostname, app });
    }
    state.edge.reload_hostnames().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A stored host name with the edge certificate that serves it.
fn described(state: &Shared, record: HostnameRecord) -> Hostname {
    let (host, _) = crate::config::names::split_route(&record.hostname);
    let (certificate, certificate_expires) = match state.edge.certificate_for(host) {
        Some((file, expires)) => (Some(file), expires),
        None => (None, None),
    };
    Hostname {
        certificate,
        certificate_expires,
        hostname: record.hostname,
        app: record.app,
        created_at: record.created_at,
    }
}
