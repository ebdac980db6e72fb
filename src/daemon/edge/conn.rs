//! Client connections served with hyper's full server: HTTP/1 for what the relay hands
//! over and for HTTPS clients that chose it, HTTP/2 for HTTPS clients that offered it
//! (ALPN `h2`) and for plain connections that open with its preface (h2c). Requests are
//! answered by `http::handle` either way, and a connection with no request in progress
//! for its idle timeout is closed gracefully: HTTP/1 as nginx does at
//! `keepalive_timeout`, HTTP/2 with GOAWAY; in TLS, after `close_notify`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use super::forwarding::ClientHop;
use super::{answers, http, relay, EdgeState};
use crate::daemon::in_flight::{serve_until, InFlight};
use crate::daemon::stall;

/// Streams one HTTP/2 connection may have open at once (nginx's default is 128).
const H2_MAX_STREAMS: u32 = 128;
/// How often an HTTP/2 connection is pinged, and how long an answer may take: a client
/// that vanished without a FIN is found by its unanswered pings.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// Most bytes of one request's header fields over HTTP/2, as over HTTP/1.1.
const H2_MAX_HEADER_BYTES: u32 = 64 * 1024;

/// How far past the idle timeout hyper's own limit on waiting for a request head is set
/// (it would otherwise be 30 s): the graceful close at the idle timeout, which also ends
/// a head still arriving then, always comes first, where hyper's drops the connection
/// bare.
const HEAD_GRACE: Duration = Duration::from_secs(1);

/// Serves a connection with HTTP/1, from wherever the relay left it (or from a TLS
/// handshake). With no request in progress for `idle`, it is closed gracefully (a TLS
/// connection says `close_notify` first), as is one whose next request head has not
/// all arrived by then.
pub(super) async fn serve_http1<T>(
    state: Arc<EdgeState>,
    io: T,
    hop: ClientHop,
    fixed: Option<(String, u16)>,
    idle: Duration,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (service, requests) = counted_service(&state, hop, fixed);
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle + HEAD_GRACE)
        // The relay's limit (hyper's own is ~400 KB a connection): a longer head is a
        // 431 whichever path it takes, and a slow client holds no more memory than that.
        .max_buf_size(relay::MAX_HEAD)
        .serve_connection(
            TokioIo::new(stall::StallLimit::writes_only(io, state.stall_timeout)),
            service,
        )
        .with_upgrades();
    let served = serve_until(
        std::pin::pin!(conn),
        requests.until_idle(idle),
        http1::UpgradeableConnection::graceful_shutdown,
    )
    .await;
    if let Err(e) = served {
        tracing::debug!(peer = %hop.peer, error = %e, "edge: connection ended with an error");
    }
}

/// Serves an HTTP/2 connection (HTTPS whose client chose it, or plain h2c with prior
/// knowledge), on the service port `fixed` (or routed by host name).
/// Each stream is a request handled as over HTTP/1.1 (and sent to a machine over
/// HTTP/1.1). With no stream open for `idle`, the connection is told to go away (GOAWAY)
/// and closes.
pub(super) async fn serve_h2<T>(
    state: Arc<EdgeState>,
    io: T,
    hop: ClientHop,
    fixed: Option<(String, u16)>,
    idle: Duration,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (service, streams) = counted_service(&state, hop, fixed);
    let conn = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_BYTES)
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT)
        .serve_connection(
            TokioIo::new(stall::StallLimit::writes_only(io, state.stall_timeout)),
            service,
        );
    // Streams that start while it closes are still answered.
    let served = serve_until(
        std::pin::pin!(conn),
        streams.until_idle(idle),
        http2::Connection::graceful_shutdown,
    )
    .await;
    if let Err(e) = served {
        tracing::debug!(peer = %hop.peer, error = %e, "edge: HTTP/2 connection ended with an error");
    }
}

/// What answering one request gives.
type Answer = Result<hyper::Response<answers::EdgeBody>, Infallible>;

/// The service that answers a connection's requests with `http::handle`, and the count of
/// those in progress: a request counts from its head until its answer's body is sent or
/// dropped.
fn counted_service(
    state: &Arc<EdgeState>,
    hop: ClientHop,
    fixed: Option<(String, u16)>,
) -> (
    impl hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<answers::EdgeBody>,
            Error = Infallible,
            Future = impl Future<Output = Answer> + Send + 'static,
        > + Clone,
    InFlight,
) {
    let in_flight = InFlight::new();
    let requests = in_flight.clone();
    let state = state.clone();
    let service = hyper::service::service_fn(move |req| {
        let request = in_flight.start();
        let handled = http::handle(state.clone(), req, hop, fixed.clone());
        async move {
            let resp = handled.await?;
            Ok::<_, Infallible>(resp.map(|body| request.until_sent(body).boxed_unsync()))
        }
    });
    (service, requests)
}
