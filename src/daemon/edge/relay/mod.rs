//! The edge's HTTP/1.1 relay: the path almost every request takes. It reads a request
//! head, rewrites it for the machine and passes head and body bytes through in their
//! own framing over a kept-alive connection, in one task and with one buffer a side, as
//! nginx's proxy does (an answer worth compressing for its client goes out compressed
//! and chunked instead). Anything else on a connection (HTTP/1.0, upgrades, `Expect`,
//! static files, unknown apps, malformed heads) hands the connection, with the bytes
//! read so far, to the full hyper server in `http.rs`: over HTTP/2 when it opened with
//! HTTP/2's preface (h2c with prior knowledge, as gRPC clients without TLS speak).

mod body;
mod message;
mod rewind;
mod upstream;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use self::body::{fill, Tracker};
pub use self::message::MAX_HEAD;
use self::message::{parse_request, ParsedRequest, RequestHead};
pub use self::upstream::Upstream;
use super::access_log::Entry;
use super::acquire::{acquire, Refusal, MAX_ATTEMPTS};
use super::answers::error_page;
use super::backends::Lease;
use super::forwarding::{ClientHop, HopFields};
use super::http::is_idempotent;
use super::pool;
use super::routes::Route;
use super::{statics, EdgeState};
use crate::daemon::metrics::EdgeSeries;

/// The status counted for a request whose client went away before it was answered
/// (nginx's 499).
const CLIENT_CLOSED: u16 = 499;
/// What a client connection starts with room for.
const CLIENT_BUFFER: usize = 8 * 1024;
/// After an error answer to a request whose body was not read: how long, and how much
/// of the body, is read and dropped so the client sees the answer.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;
/// How far a connection's head deadline may lag behind the idle timeout before it is
/// re-armed (at most; a sixth of a short timeout). Re-arming a timer wakes the event loop
/// through its eventfd; doing it for every request cost a syscall and a loop turn on
/// about one request in ten.
const HEADER_DEADLINE_SLACK: Duration = Duration::from_secs(5);

/// How an HTTP/2 connection without TLS begins (RFC 9113 3.4): its first line, which no
/// HTTP/1 server takes for a request.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// Whether a connection's first bytes are HTTP/2's preface, or as much of it as came: its
/// first line is refused as HTTP/1 as soon as `HTTP/2` is read, which may be before the
/// line has all arrived.
fn opens_h2(buf: &[u8]) -> bool {
    !buf.is_empty() && H2_PREFACE.starts_with(&buf[..buf.len().min(H2_PREFACE.len())])
}

/// The client side of a connection being served.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
    peer: SocketAddr,
    /// The forwarding header lines its requests get.
    fields: HopFields,
    /// When the head being read must have arrived.
    head_deadline: Pin<Box<Sleep>>,
    /// How long the connection may wait for a request: `--edge-idle-timeout`.
    idle: Duration,
    /// How long a body or an answer may wait for its reader or writer.
    stall: Duration,
    /// The `/metrics` series its last request was counted in, and the route it went to.
    counted: Option<(Arc<Route>, EdgeSeries)>,
}

impl Client {
    /// Counts a request to `route` answered `status` in `/metrics`. A connection's
    /// requests mostly go to one route and get one status, so the series of the last are
    /// kept: the route is matched by identity, as a destroyed app's series are dropped
    /// and one made again under its name gets a new route.
    fn count(&mut self, state: &EdgeState, route: &Arc<Route>, status: u16, started: Instant) {
        let series = match &self.counted {
            Some((last, series)) if Arc::ptr_eq(last, route) && series.status() == status => series,
            _ => {
                let series = state.metrics.edge_series(&route.app, status);
                &self.counted.insert((route.clone(), series)).1
            }
        };
        series.record(started.elapsed());
    }
}

/// What the next request on a connection is.
enum Next {
    /// One for the relay, to this route.
    Relay(RequestHead, Arc<Route>),
    /// The connection goes to the full server from here.
    HandOver,
    /// The client closed, or was too slow sending a head.
    Closed,
}

/// Whether a connection can carry another request.
#[derive(Debug, PartialEq, Eq)]
enum After {
    KeepAlive,
    Close,
}

/// Serves one accepted plain-HTTP edge connection; `fixed` is the app and port of a
/// service port, which belongs to one app whatever the `Host`.
pub async fn serve(
    state: Arc<EdgeState>,
    stream: TcpStream,
    hop: ClientHop,
    fixed: Option<(String, u16)>,
) {
    let _ = stream.set_nodelay(true);
    let _open = state.open_connection();
    let mut client = Client {
        stream,
        buf: BytesMut::with_capacity(CLIENT_BUFFER),
        peer: hop.peer,
        fields: HopFields::of(&hop),
        head_deadline: Box::pin(tokio::time::sleep(state.idle_timeout)),
        idle: state.idle_timeout,
        stall: state.stall_timeout,
        counted: None,
    };
    // Only a connection's first bytes may be HTTP/2's preface.
    let mut first = true;
    loop {
        match next_request(&state, &mut client, fixed.as_ref()).await {
            Next::Relay(head, route) => {
                first = false;
                if exchange(&state, &route, &mut client, head).await == After::Close {
                    break;
                }
            }
            Next::HandOver => {
                let h2 = first && opens_h2(&client.buf);
                let io = rewind::Rewind::new(client.buf.freeze(), client.stream);
                let idle = client.idle;
                if h2 {
                    super::conn::serve_h2(state, io, hop, fixed, idle).await;
                } else {
                    super::conn::serve_http1(state, io, hop, fixed, idle).await;
                }
                break;
            }
            Next::Closed => break,
        }
    }
}

/// Reads the next request head and decides who serves it.
async fn next_request(
    state: &EdgeState,
    client: &mut Client,
    fixed: Option<&(String, u16)>,
) -> Next {
    // The whole head must arrive in time (an idle kept-alive connection closes then too),
    // however slowly its bytes trickle in: within the idle timeout, less the slack.
    let deadline = tokio::time::Instant::now() + client.idle;
    let slack = HEADER_DEADLINE_SLACK.min(client.idle / 6);
    let armed = client.head_deadline.deadline();
    // Late by more than the slack, or later than it may be (the app's own idle timeout
    // is shorter than the one the connection started with).
    if armed + slack < deadline || armed > deadline {
        client.head_deadline.as_mut().reset(deadline);
    }
    // The app whose connection it is: a service port's, else the one `host` names.
    let route_of = |host: Option<&str>, path: Option<&str>| match fixed {
        Some((app, port)) => state.service_http_route(app, *port),
        None => host.and_then(|host| state.host_route(host, path)),
    };
    loop {
        match parse_request(&client.buf, &client.fields) {
            ParsedRequest::Head(mut head) => {
                let path = head.target.split('?').next().unwrap_or("/");
                let route = route_of(head.host.as_deref(), Some(path));
                if route.is_some() {
                    // From here on the connection is the app's: its idle timeout holds.
                    client.idle = state.idle_timeout_of(route.as_deref());
                }
                return match route {
                    Some(route)
                        if !route.force_https
                            && !route.upstream.needs_full_server()
                            && !statics::claims(&route.statics, &head.method, path) =>
                    {
                        if !route.upstream.compress {
                            head.coding = None;
                        }
                        Next::Relay(head, route)
                    }
                    // Unknown apps get hyper's error answer; files are served there,
                    // HTTPS redirects made, and HTTP/2 or rewritten answers exchanged.
                    _ => Next::HandOver,
                };
            }
            ParsedRequest::HandOver => {
                // The full server answers it (HTTP/1.0, `Expect`, an upgrade...), but
                // the connection is still its app's, and keeps that app's idle timeout.
                if let Some(route) = route_of(message::host_of(&client.buf).as_deref(), None) {
                    client.idle = state.idle_timeout_of(Some(&route));
                }
                return Next::HandOver;
            }
            ParsedRequest::Partial if client.buf.len() >= MAX_HEAD => return Next::HandOver,
            ParsedRequest::Partial => {}
        }
        let read = tokio::select! {
            biased;
            read = fill(&mut client.stream, &mut client.buf) => read,
            () = client.head_deadline.as_mut() => return Next::Closed,
        };
        match read {
            Ok(n) if n > 0 => {}
            _ => return Next::Closed,
        }
    }
}

/// Relays one request and its response, counting it in `/metrics`.
async fn exchange(
    state: &EdgeState,
    route: &Arc<Route>,
    client: &mut Client,
    head: RequestHead,
) -> After {
    let started = Instant::now();
    // What the access log needs of the request, kept before the head is passed on.
    let logged = state
        .access_log
        .as_ref()
        .map(|_| (head.method.clone(), head.host.clone(), head.target.clone()));
    let (status, after) = proxy(state, route, client, head).await;
    client.count(state, route, status, started);
    if let Some((method, host, target)) = &logged {
        let entry = Entry {
            app: &route.app,
            client: client.peer.ip(),
            scheme: "http",
            method: method.as_str(),
            host: host.as_deref().unwrap_or(""),
            target,
            status,
        };
        state.log_access(&entry, started);
    }
    after
}

/// Why one try at a machine failed.
enum Failed {
    /// Nothing came back, and the request may be sent again: try another machine.
    Retry(String),
    /// The request may have reached the machine; answer 502 with this.
    GiveUp(String),
}

/// Sends the request to a healthy machine and its response back: the status sent (or
/// that would have been) and whether the connection goes on.
async fn proxy(
    state: &EdgeState,
    route: &Route,
    client: &mut Client,
    mut head: RequestHead,
) -> (u16, After) {
    client.buf.advance(head.len);
    // A body that is all here already (the usual small one) is kept with the head, so the
    // whole request can go to another machine if the first one fails it.
    let mut probe = Tracker::new(head.framing);
    let Ok(here) = probe.advance(&client.buf) else {
        let reason = "malformed chunked request body";
        return answer(
            client,
            StatusCode::BAD_REQUEST,
            "bad_request",
            reason,
            &head,
            true,
        )
        .await;
    };
    let whole = probe.is_done().then(|| {
        let mut request = std::mem::take(&mut head.upstream);
        request.extend_from_slice(&client.buf[..here]);
        client.buf.advance(here);
        request
    });
    let request = Outgoing {
        head: &head,
        whole: whole.as_deref(),
        replayable: whole.is_some() && is_idempotent(&head.method),
    };
    let mut tried: Vec<String> = Vec::new();
    let mut last_error = String::new();
    loop {
        let lease = match acquire(state, route, &tried).await {
            Ok(lease) => lease,
            Err(refusal) => {
                let (status, code, message) = match refusal {
                    Refusal::NoneHealthy if !tried.is_empty() => (
                        StatusCode::BAD_GATEWAY,
                        "upstream_failed",
                        format!("no machine of {} could be reached: {last_error}", route.app),
                    ),
                    _ => {
                        let (code, message) = refusal.reason(&route.app);
                        (StatusCode::SERVICE_UNAVAILABLE, code, message)
                    }
                };
                return answer(client, status, code, &message, &head, whole.is_none()).await;
            }
        };
        let failed = match attempt(route, client, &request, &lease).await {
            Ok(done) => return done,
            Err(failed) => failed,
        };
        // The lease ends here, before another machine is looked for.
        let machine = lease.backend.spec.machine.clone();
        drop(lease);
        match failed {
            Failed::Retry(why) if tried.len() + 1 < MAX_ATTEMPTS => {
                tracing::debug!(%machine, error = %why, "edge: machine failed a request that may be sent again; trying another");
                last_error = format!("machine {machine}: {why}");
                tried.push(machine);
            }
            Failed::Retry(why) | Failed::GiveUp(why) => {
                let message = format!("machine {machine}: {why}");
                return answer(
                    client,
                    StatusCode::BAD_GATEWAY,
                    "upstream_failed",
                    &message,
                    &head,
                    whole.is_none(),
                )
                .await;
            }
        }
    }
}

/// The request as it goes to a machine.
struct Outgoing<'a> {
    head: &'a RequestHead,
    /// The entire request when it was all read already; else its body streams from the
    /// client (over a new connection, and is not retried).
    whole: Option<&'a [u8]>,
    /// Safe to send again even when a machine may have seen it.
    replayable: bool,
}

/// One try at the machine of `lease` (held by the caller, so the request counts against
/// the machine until its response has been passed on).
async fn attempt(
    route: &Route,
    client: &mut Client,
    request: &Outgoing<'_>,
    lease: &Lease,
) -> Result<(u16, After), Failed> {
    let backend = &lease.backend;
    let port = backend.dial_port(route.internal_port);
    if request.whole.is_some() {
        if let Some(upstream) = backend.upstreams.here().take(port) {
            match upstream::send(upstream, true, client, request, backend).await {
                // The kept-alive connection failed before any answer, most likely closed
                // by the machine a moment ago: the same machine is asked on a new one.
                Err(Failed::Retry(why)) => {
                    tracing::debug!(machine = %backend.spec.machine, error = %why, "edge: kept-alive connection gone; dialling again");
                }
                done => return done,
            }
        }
    }
    let stream = pool::dial(port)
        .await
        .map_err(|e| Failed::Retry(e.to_string()))?;
    upstream::send(Upstream::new(stream, port), false, client, request, backend).await
}

/// Sends the edge's own error answer; `unread_body` closes the connection after it
/// (the rest of the request was never read).
async fn answer(
    client: &mut Client,
    status: StatusCode,
    code: &str,
    message: &str,
    head: &RequestHead,
    unread_body: bool,
) -> (u16, After) {
    let (content_type, body) = error_page(status, code, message, head.html);
    let close = head.close || unread_body;
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        out.push_str("retry-after: 1\r\n");
    }
    if close {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    if head.method != Method::HEAD {
        out.push_str(&body);
    }
    let sent = client.stream.write_all(out.as_bytes()).await;
    if unread_body && sent.is_ok() {
        linger(&mut client.stream).await;
    }
    let after = if close || sent.is_err() {
        After::Close
    } else {
        After::KeepAlive
    };
    (status.as_u16(), after)
}

/// Ends the sending side and reads what the client still sends, for a little while,
/// before the connection is dropped: closing with unread bytes resets the connection,
/// and the reset can destroy the answer before the client has read it.
async fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown().await;
    let drain = async {
        let mut scratch = [0u8; 8 * 1024];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}
