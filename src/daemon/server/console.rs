//! `GET /v1/apps/{app}/machines/{id}/console` with `Upgrade: lakefly-console`: a terminal
//! in a machine's environment (`lakefly console`), relayed as console frames on the
//! upgraded connection (`api::console`). Everything that can fail before the terminal
//! exists (no such machine, a wrong request) is an ordinary HTTP error.

use axum::extract::{Path, Request, State};
use axum::response::Response;
use hyper_util::rt::TokioIo;

use super::error::ServerError;
use super::extract::ApiQuery;
use super::upgrade::{asked_for, switching_to};
use super::Shared;
use crate::api::console::{ConsoleRequest, PROTOCOL};
use crate::api::types::ExecRequest;

/// Opens the terminal, then answers `101 Switching Protocols` and relays it.
pub async fn console(
    State(state): State<Shared>,
    Path((app, id)): Path<(String, String)>,
    ApiQuery(request): ApiQuery<ConsoleRequest>,
    mut req: Request,
) -> Result<Response, ServerError> {
    if !asked_for(&req, PROTOCOL) {
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
    Ok(switching_to(PROTOCOL))
}
