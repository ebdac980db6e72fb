//! A `[[services.ports]]` port without a handler: each connection is spliced to a healthy
//! machine, counted against its `concurrency` while open. A machine that refuses is
//! skipped for the next one; nothing was sent yet.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::backends::Pick;
use super::routes::Route;
use super::EdgeState;

/// Machines tried for one connection.
const MAX_ATTEMPTS: usize = 3;
/// How long a connection waits for a healthy machine (or for auto-start).
const HOLD: Duration = Duration::from_secs(10);

/// Splices one accepted connection (plain, or TLS the edge terminated) to a machine of
/// `route`, after `header` (a PROXY protocol header) when there is one.
pub async fn splice<S>(
    state: Arc<EdgeState>,
    route: Arc<Route>,
    header: Option<Vec<u8>>,
    mut client: S,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut tried: Vec<String> = Vec::new();
    let wait = if route.auto_start {
        state.auto_start_wait
    } else {
        HOLD
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut woke = false;
    let watch = state.backends.changes().watch();
    while tried.len() < MAX_ATTEMPTS {
        // Made before looking, so a change in between is not missed.
        let notified = watch.notified();
        let lease = match state
            .backends
            .pick(&route.app, &route.groups, route.limits, &tried)
        {
            Pick::Leased(lease) => lease,
            Pick::NoneHealthy if !tried.is_empty() => break,
            Pick::NoneHealthy | Pick::Full => {
                if route.auto_start && !woke {
                    woke = true;
                    super::autostart::wake(&state, &route.app, &route.groups).await;
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let port = lease.backend.dial_port(route.internal_port);
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(mut upstream) => {
                let _ = upstream.set_nodelay(true);
                if let Some(header) = &header {
                    if upstream.write_all(header).await.is_err() {
                        return;
                    }
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                return;
            }
            Err(e) => {
                tracing::debug!(machine = %lease.backend.spec.machine, error = %e, "edge: machine refused a TCP connection; trying another");
                tried.push(lease.backend.spec.machine.clone());
            }
        }
    }
    tracing::debug!(app = %route.app, "edge: no machine took a TCP connection; closing it");
}
