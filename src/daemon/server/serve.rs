//! Serves the API's router over HTTP/1 with the limits `axum::serve` leaves out: a
//! connection with no request in progress for [`IDLE`] is closed gracefully, and one whose
//! request head has not all arrived a second later is dropped, so a client that opens
//! connections and sends nothing (or a byte a minute) holds none for long, as nginx's
//! `keepalive_timeout` and `client_header_timeout` see to. A client that stops sending a
//! request body, or reading an answer, is given up on after [`STALL`] without progress
//! (`client_body_timeout`, `send_timeout`). When the daemon stops, each connection closes
//! once its request is answered, and serving ends when all have.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::serve::Listener;
use axum::{BoxError, Router};
use http_body_util::BodyExt;
use hyper::server::conn::http1::{self, UpgradeableConnection};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tower_service::Service;

use super::local_users::Peer;
use crate::daemon::in_flight::{serve_until, InFlight};
use crate::daemon::stall::{Progress, StallLimit, Watched};

/// How long a connection may go without a request in progress (nginx's
/// `keepalive_timeout` is 75 s). lakefly's own client lets a pooled connection go well
/// before, so it never sends a request into this close.
pub const IDLE: Duration = Duration::from_secs(75);

/// How long a read of a request's body, or a write of its answer, may wait for progress.
pub const STALL: Duration = Duration::from_secs(60);

/// How far past [`IDLE`] hyper's own limit on waiting for a request head is set (it would
/// otherwise be 30 s, and cut an idle kept-alive connection short): an idle connection
/// gets the graceful close at `IDLE` first; hyper's drops one whose head is still
/// arriving (a graceful close waits for that request).
const HEAD_GRACE: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `stopping` turns true (or its sender is gone),
/// then waits for the connections to finish.
pub async fn serve<L>(mut listener: L, router: Router, mut stopping: watch::Receiver<bool>)
where
    L: Listener<Addr = SocketAddr>,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Each connection holds a sender; `recv` ends when the last is dropped.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    // An API that serves local users without a token is bound to one loopback address,
    // so this is each connection's own end too.
    let local = listener.local_addr().ok();
    loop {
        let (io, remote) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|stopping| *stopping) => break,
        };
        let peer = local.map(|local| Peer::new(remote, local));
        let (router, stopping, open) = (router.clone(), stopping.clone(), open.clone());
        tokio::spawn(async move {
            connection(io, peer, router, stopping).await;
            drop(open);
        });
    }
    // The port closes now; answers in progress finish.
    drop(listener);
    drop(open);
    let _ = all_closed.recv().await;
}

/// `req` with its body's frames each awaited up to [`STALL`], and how far it was read.
fn watched(req: hyper::Request<hyper::body::Incoming>) -> (hyper::Request<Body>, Arc<Progress>) {
    let (parts, body) = req.into_parts();
    let (body, read) = Watched::new(body.map_err(BoxError::from).boxed_unsync(), STALL);
    (hyper::Request::from_parts(parts, Body::new(body)), read)
}

/// Serves one connection until the client closes it, it idles for [`IDLE`], or the
/// daemon stops.
async fn connection<I>(
    io: I,
    peer: Option<Peer>,
    router: Router,
    mut stopping: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let in_flight = InFlight::new();
    let requests = in_flight.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let request = in_flight.start();
        let (mut req, read) = watched(req);
        if let Some(peer) = &peer {
            // Who is asking, for the token check.
            req.extensions_mut().insert(peer.clone());
        }
        let answered = router.clone().call(req);
        async move {
            let mut resp = answered.await?;
            if !read.ended() {
                // Answered before the body was all read (a 413, a 401 to an upload):
                // hyper closes the connection after this answer, and saying so keeps the
                // client from sending its next request into that close.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            // The request counts until its answer's body is sent or dropped (an event
            // stream's, for as long as it runs).
            Ok::<_, Infallible>(resp.map(|body| Body::new(request.until_sent(body))))
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(IDLE + HEAD_GRACE)
        .serve_connection(TokioIo::new(StallLimit::writes_only(io, STALL)), service)
        // `console` and `proxy` take the connection over.
        .with_upgrades();
    let close = async {
        tokio::select! {
            () = requests.until_idle(IDLE) => {}
            // The guard it returns is dropped here, not held across the close.
            _ = stopping.wait_for(|stopping| *stopping) => {}
        }
    };
    let served = serve_until(
        std::pin::pin!(conn),
        close,
        UpgradeableConnection::graceful_shutdown,
    )
    .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "API: connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::time::Instant;

    #[test]
    fn lakeflys_client_lets_an_idle_connection_go_before_the_daemon_closes_it() {
        assert!(crate::api::client::POOL_IDLE < IDLE);
    }

    /// A connection served by a router with `/ok` and a `/stream` that never ends, and
    /// the client's end of it.
    fn serving(stopping: watch::Receiver<bool>) -> (DuplexStream, tokio::task::JoinHandle<()>) {
        let router = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route(
                "/echo",
                axum::routing::post(|body: String| async move { body }),
            )
            .route("/big", get(|| async { vec![b'x'; 4 << 20] }))
            .route(
                "/refuse",
                axum::routing::put(|| async { axum::http::StatusCode::PAYLOAD_TOO_LARGE }),
            )
            .route(
                "/stream",
                get(|| async {
                    let first = futures_util::stream::once(async {
                        Ok::<_, Infallible>(bytes::Bytes::from_static(b"data: 1\n\n"))
                    });
                    Body::from_stream(futures_util::StreamExt::chain(
                        first,
                        futures_util::stream::pending(),
                    ))
                }),
            );
        let (client, server) = tokio::io::duplex(64 * 1024);
        (
            client,
            tokio::spawn(connection(server, None, router, stopping)),
        )
    }

    /// A connection served as `serving` does, with `request` sent on it: the daemon's
    /// stop switch, the client's end and the serving task.
    async fn sent(
        request: &[u8],
    ) -> (
        watch::Sender<bool>,
        DuplexStream,
        tokio::task::JoinHandle<()>,
    ) {
        let (stop, stopping) = watch::channel(false);
        let (mut client, served) = serving(stopping);
        client.write_all(request).await.unwrap();
        (stop, client, served)
    }

    /// Longer than any limit here: a close that does not come fails the test rather than
    /// hanging it.
    const NEVER: Duration = Duration::from_secs(3600);

    /// Reads until the daemon closes the connection; what it sent.
    async fn until_closed(client: &mut DuplexStream) -> String {
        let mut seen = Vec::new();
        tokio::time::timeout(NEVER, client.read_to_end(&mut seen))
            .await
            .expect("the daemon closes the connection")
            .unwrap();
        String::from_utf8_lossy(&seen).into_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_never_completes_is_dropped_just_after_the_idle_limit() {
        let start = Instant::now();
        let (_stop, mut client, served) = sent(b"GET /ok HTTP/1.1\r\nHost: x\r\n").await;
        assert_eq!(until_closed(&mut client).await, "");
        assert_eq!(start.elapsed(), IDLE + HEAD_GRACE);
        served.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_closes_after_idling_but_not_while_a_stream_runs() {
        let (_stop, mut client, served) = sent(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut head = [0u8; 512];
        let n = client.read(&mut head).await.unwrap();
        assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(IDLE * 4).await;
        assert!(
            !served.is_finished(),
            "an event stream outlives the idle limit"
        );

        let (_stop, mut client, served) = sent(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let start = Instant::now();
        let answer = until_closed(&mut client).await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"),
            "{answer}"
        );
        assert_eq!(start.elapsed(), IDLE);
        served.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_fails_its_request_after_the_stall_limit() {
        let (_stop, mut client, served) =
            sent(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc").await;
        let start = Instant::now();
        let answer = until_closed(&mut client).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert_eq!(start.elapsed(), STALL);
        served.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_let_go_after_the_stall_limit() {
        let (_stop, client, served) = sent(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let start = Instant::now();
        // Never read: the 4 MiB answer fills the pipe, and the writes wait.
        tokio::time::timeout(NEVER, served)
            .await
            .expect("the daemon lets the connection go")
            .unwrap();
        assert_eq!(start.elapsed(), STALL);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_given_before_the_body_was_read_says_the_connection_closes() {
        let (_stop, mut client, served) =
            sent(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi").await;
        let mut answer = [0u8; 512];
        let n = client.read(&mut answer).await.unwrap();
        let read = String::from_utf8_lossy(&answer[..n]).to_ascii_lowercase();
        assert!(
            read.starts_with("http/1.1 200") && !read.contains("connection: close"),
            "{read}"
        );
        // The same connection goes on; this body is refused unread.
        client
            .write_all(b"PUT /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc")
            .await
            .unwrap();
        let refused = until_closed(&mut client).await.to_ascii_lowercase();
        assert!(
            refused.starts_with("http/1.1 413") && refused.contains("connection: close\r\n"),
            "{refused}"
        );
        served.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_daemon_stopping_closes_an_idle_connection_at_once() {
        let (stop, mut client, served) = sent(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut answer = [0u8; 512];
        let _ = client.read(&mut answer).await.unwrap();
        let start = Instant::now();
        stop.send_replace(true);
        until_closed(&mut client).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        served.await.unwrap();
    }
}
