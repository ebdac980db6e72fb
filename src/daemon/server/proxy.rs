//! `GET /v1/apps/{app}/machines/{id}/proxy?port=N` (`lakefly proxy`): without `Upgrade`,
//! where a connection would go; with `Upgrade: lakefly-proxy`, the daemon connects to the
//! machine's port first (a refusal is an ordinary HTTP error), then answers `101` and
//! carries the bytes both ways until either side closes.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::error::ServerError;
use super::extract::ApiQuery;
use super::upgrade::{asked_for, switching_to};
use super::Shared;
use crate::api::proxy::{ProxyQuery, PROTOCOL};

/// How long connecting to a machine's port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Says where a connection goes, or makes one and relays it.
pub async fn proxy(
    State(state): State<Shared>,
    Path((app, id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<ProxyQuery>,
    mut req: Request,
) -> Result<Response, ServerError> {
    state.require_app(&app).await?;
    let target = state.runtime.proxy_target(&app, &id, query.port).await?;
    if !asked_for(&req, PROTOCOL) {
        return Ok(Json(target).into_response());
    }
    let mut upstream = connect(target.host_port).await.map_err(|e| {
        ServerError::ProxyConnect(format!(
            "could not connect to port {} of machine {} (at port {} of the host): {e}",
            target.port, target.machine, target.host_port
        ))
    })?;
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                // Either side closing ends it; an error is a connection reset, no news.
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Err(e) => tracing::warn!(error = %e, "a proxy's client did not take the upgrade"),
        }
    });
    Ok(switching_to(PROTOCOL))
}

/// Connects to `port` on loopback, IPv4 first, as machines listen there.
async fn connect(port: u16) -> std::io::Result<TcpStream> {
    let mut last = None;
    for ip in [Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()] {
        let addr = SocketAddr::new(ip, port);
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {CONNECT_TIMEOUT:?}"),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address to connect to")))
}
