//! `GET /v1/apps/{app}/machines/{id}/console` with `Upgrade: lakefly-console`: a terminal
//! in a machine's environment (`lakefly console`), relayed as console frames on the
//! upgraded connection (`api::console`). Everything that can fail before the terminal
//! exists (no such machine, a wrong request) is an ordinary HTTP error.

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;

use super::error::ServerError;
use super::Shared;
use crate::api::console::{ConsoleRequest, PROTOCOL};
use crate::api::types::ExecRequest;

/// Opens the terminal, then answers `101 Switching Protocols` and relays it.
pub async fn console(
    State(state): State<Shared>,
    Path((app, id)): Path<(String, String)>,
    Query(request): Query<ConsoleRequest>,
    mut req: Request,
) -> Result<Response, ServerError> {
    let upgrade_asked = (req.headers().get(header::UPGRADE))
        .and_then(|value| value.to_str().ok())
        .is_some_and(|protocol| protocol.eq_ignore_ascii_case(PROTOCOL));
    if !upgrade_asked {
        return Err(ServerError::BadRequest(format!(
            "a console is a terminal on an upgraded connection (`Upgrade: {PROTOCOL}`): use `lakefly console`"
        )));
    }
    state.require_app(&app).await?;
    let command = (request.command)
        .filter(|command| !command.trim().is_empty())
        .unwrap_or_else(|| ConsoleRequest::DEFAULT_COMMAND.to_string());
    let exec = ExecRequest {
        command,
        timeout: None,
        stdin: None,
    };
    let prepared = state.runtime.prepare_exec(&app, &id, &exec).await?;
    let console =
        (state.runtime).open_console(prepared, request.cols, request.rows, request.term)?;
    let upgrade = hyper::upgrade::on(&mut req);
    let (hub, stopping) = (state.hub.clone(), state.shutdown.clone());
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                console.relay(TokioIo::new(upgraded), hub, stopping).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "a console's client did not take the upgrade");
                console.close().await;
            }
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static(PROTOCOL));
    Ok(response)
}
