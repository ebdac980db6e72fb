//! A `[[services.ports]]` port without a handler: each connection is spliced to a healthy
//! machine, counted against its `concurrency` while open. A machine that refuses, or does
//! not accept within the connect timeout, is skipped for the next one; nothing was sent
//! yet.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::acquire::{acquire, MAX_ATTEMPTS};
use super::routes::Route;
use super::EdgeState;

/// Splices one accepted connection (plain, or TLS the edge terminated) to a machine of
/// `route`, after `header` (a PROXY protocol header) when there is one. Machines are
/// picked, waited for and auto-started as for an HTTP request; a connection no machine
/// takes is closed.
pub async fn splice<S>(
    state: Arc<EdgeState>,
    route: Arc<Route>,
    header: Option<Vec<u8>>,
    mut client: S,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut tried: Vec<String> = Vec::new();
    while tried.len() < MAX_ATTEMPTS {
        let lease = match acquire(&state, &route, &tried).await {
            Ok(lease) => lease,
            Err(refusal) => {
                let (_, why) = refusal.reason(&route.app);
                tracing::debug!(app = %route.app, "edge: closing a TCP connection: {why}");
                return;
            }
        };
        let port = lease.backend.dial_port(route.internal_port);
        // Within the connect timeout: a machine that stopped accepting (its queue full)
        // drops the handshake, which the kernel would retry for two minutes.
        match super::pool::dial(port).await {
            Ok(mut upstream) => {
                if let Some(header) = &header {
                    if upstream.write_all(header).await.is_err() {
                        return;
                    }
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                return;
            }
            Err(e) => {
                tracing::debug!(machine = %lease.backend.spec.machine, error = %e, "edge: machine did not take a TCP connection; trying another");
                tried.push(lease.backend.spec.machine.clone());
            }
        }
    }
    tracing::debug!(app = %route.app, "edge: no machine took a TCP connection; closing it");
}
