//! HTTP through the edge with hyper's full server, for the connections the relay
//! (`relay/`) hands over: HTTP/1.0, upgrades (WebSocket, spliced), `Expect`, statics,
//! unknown apps. It finds the app (by `Host`, or by the port for a `[[services]]`
//! listener with the `http` handler), serves its statics, else picks a healthy machine and
//! streams the request to it and its response back. A request that never reached a
//! machine is tried on another. Machine picking (`acquire.rs`) and the edge's own answers
//! (`answers.rs`) are shared with the relay.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::access_log::Entry;
use super::acquire::{acquire, Refusal, MAX_ATTEMPTS};
use super::answers::{empty, error, full, wants_html, BoxError, EdgeBody, STALLED_BODY};
use super::backends::Lease;
use super::bodies::Tracked;
use super::forwarding::{is_upgrade, prepare_headers, strip_hop_by_hop, ClientHop};
use super::pool::Conn;
use super::routes::{Route, UpstreamHttp};
use super::{statics, EdgeState, Scheme};
use crate::daemon::stall::Watched;

/// Responses with a known length below this are read whole before they are sent on.
const BUFFER_SMALLER_THAN: u64 = 64 * 1024;

/// Answers one request that arrived on the edge over the client connection `hop`;
/// `fixed` is set on a service port, which belongs to one app whatever the `Host`.
pub(super) async fn handle(
    state: Arc<EdgeState>,
    mut req: Request<Incoming>,
    hop: ClientHop,
    fixed: Option<(String, u16)>,
) -> Result<Response<EdgeBody>, std::convert::Infallible> {
    let started = Instant::now();
    let refused = refusal(&mut req);
    // What the access log needs of the request, taken before the request is passed on.
    let logged = state.access_log.as_ref().map(|_| {
        let host = host_of(&req).unwrap_or("").to_string();
        let target = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        (req.method().clone(), host, target)
    });
    let (app, resp) = match refused {
        None => answer(&state, req, hop, fixed).await,
        Some((status, message)) => {
            let html = wants_html(req.headers());
            (String::new(), error(status, "bad_request", message, html))
        }
    };
    let status = resp.status().as_u16();
    state.count(&app, status, started);
    if let Some((method, host, target)) = &logged {
        state.log_access(
            &Entry {
                app: &app,
                client: hop.peer.ip(),
                scheme: hop.scheme.as_str(),
                method: method.as_str(),
                host,
                target,
                status,
            },
            started,
        );
    }
    Ok(resp)
}

/// The app a request is for and the answer to it. The app is empty when the request
/// names none that is served here: a name any client may make up must not become a
/// series in `/metrics` (nor pass for an app in the access log, which has the host).
async fn answer(
    state: &EdgeState,
    req: Request<Incoming>,
    hop: ClientHop,
    fixed: Option<(String, u16)>,
) -> (String, Response<EdgeBody>) {
    let html = wants_html(req.headers());
    let (app, route) = match &fixed {
        Some((app, port)) => (app.clone(), state.service_http_route(app, *port)),
        None => match app_from_host(&req, &state.hosts) {
            Some(app) => {
                let route = state.http_route(&app);
                (app, route)
            }
            None => {
                let resp = error(
                    StatusCode::NOT_FOUND,
                    crate::api::codes::EDGE_UNKNOWN_APP,
                    &format!(
                        "no app named in the Host header; ask for <app>.{}",
                        state.hosts.domain()
                    ),
                    html,
                );
                return (String::new(), resp);
            }
        },
    };
    let Some(route) = route else {
        let resp = error(
            StatusCode::NOT_FOUND,
            crate::api::codes::EDGE_UNKNOWN_APP,
            &format!("no app {app:?} is served here"),
            html,
        );
        return (String::new(), resp);
    };
    if route.force_https && hop.scheme == Scheme::Http {
        if let Some(resp) = redirect_to_https(state, &app, &req) {
            return (app, resp);
        }
    }
    // What the client takes, asked before the request is passed on.
    let coding = route
        .upstream
        .compress
        .then(|| super::compress::asked(req.headers()))
        .flatten();
    let head = req.method() == http::Method::HEAD;
    let resp = match statics::serve(&route.statics, &req).await {
        Some(resp) => resp,
        None => forward(state, &route, req, &hop, html).await,
    };
    match coding {
        Some(coding) => (app, super::compress::response(resp, coding, head)),
        None => (app, resp),
    }
}

impl EdgeState {
    /// Writes a request begun at `started` and answered to the access log, when there is
    /// one.
    pub(super) fn log_access(&self, entry: &Entry<'_>, started: Instant) {
        if let Some(log) = &self.access_log {
            log.record(entry, started);
        }
    }

    /// Counts an answered request in `/metrics`.
    pub(super) fn count(&self, app: &str, status: u16, started: Instant) {
        self.metrics
            .edge_series(app, status)
            .record(started.elapsed());
    }
}

/// Why a request is refused before any app is looked for, if it is: the status and
/// what to tell the client. Settles the host a request names on the way: the URI's
/// authority (HTTP/2's `:authority`, an HTTP/1.1 absolute-form target) wins over `Host`
/// and becomes the `Host` the machine sees (RFC 9112 3.2.2), so the app always reads
/// the host the edge routed by.
fn refusal<B>(req: &mut Request<B>) -> Option<(StatusCode, &'static str)> {
    if req.method() == Method::CONNECT {
        // A 2xx would make hyper hand over a tunnel nobody serves.
        return Some((
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT is not served here: the edge is a reverse proxy, not a forward one",
        ));
    }
    // hyper's own limit is its read buffer's, which a head that came in large reads
    // (or whole, handed over by the relay) can pass by half as much again.
    if req.version() <= http::Version::HTTP_11 && head_len(req) > super::relay::MAX_HEAD {
        return Some((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "the request head is over 64 KiB; send fewer or smaller header fields (large cookies are the usual cause)",
        ));
    }
    if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
        // The edge would route by one and the app might read the other (RFC 9112 3.2).
        return Some((
            StatusCode::BAD_REQUEST,
            "more than one Host header; send one",
        ));
    }
    let authority = req.uri().authority().map(|a| a.as_str());
    if authority.is_none()
        && req.version() == http::Version::HTTP_11
        && !req.headers().contains_key(header::HOST)
    {
        return Some((
            StatusCode::BAD_REQUEST,
            "no Host header; an HTTP/1.1 request names its host in one",
        ));
    }
    // User info is no part of the host (`http://user@app.localhost/`).
    let named = authority.and_then(|a| a.rsplit('@').next());
    if let Some(host) = named.and_then(|h| HeaderValue::from_str(h).ok()) {
        req.headers_mut().insert(header::HOST, host);
    }
    None
}

/// The length of an HTTP/1 request's head as sent, give or take the spaces around its
/// field values.
fn head_len<B>(req: &Request<B>) -> usize {
    let uri = req.uri();
    let target = uri
        .authority()
        .map_or(0, |a| a.as_str().len() + "http://".len())
        + uri.path_and_query().map_or(1, |p| p.as_str().len());
    let fields: usize = (req.headers().iter())
        .map(|(name, value)| name.as_str().len() + ": ".len() + value.len() + "\r\n".len())
        .sum();
    req.method().as_str().len() + " ".len() + target + " HTTP/1.1\r\n".len() + fields + "\r\n".len()
}

/// The app the request's host and path are for.
fn app_from_host<B>(req: &Request<B>, hosts: &super::hosts::Hosts) -> Option<String> {
    hosts.app_for(host_of(req)?, Some(req.uri().path()))
}

/// The host a request names, once `refusal` has settled it into `Host`.
fn host_of<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
}

/// Sends the request to a healthy machine of the route and streams its answer back.
async fn forward(
    state: &EdgeState,
    route: &Route,
    req: Request<Incoming>,
    hop: &ClientHop,
    html: bool,
) -> Response<EdgeBody> {
    let (mut parts, body) = req.into_parts();
    let client_upgrade = if is_upgrade(&parts.headers) {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    // `refusal` put the host an HTTP/2 client names in the URI into `Host`, which
    // HTTP/1.1 machines need and `X-Forwarded-Host` is made from.
    let client_version = parts.version;
    let client_h2 = client_version == http::Version::HTTP_2;
    // gRPC clients ask for trailers; only an HTTP/2 machine can be told so.
    let wants_trailers = parts
        .headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    parts.version = http::Version::HTTP_11;
    prepare_headers(
        &mut parts.headers,
        hop,
        client_version,
        client_upgrade.is_some(),
    );
    parts.uri = match parts.uri.path_and_query() {
        Some(pq) => pq
            .as_str()
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("/")),
        None => http::Uri::from_static("/"),
    };
    if route.upstream.h2 {
        to_h2(&mut parts, wants_trailers);
    }
    // An idempotent request without a body can be sent again even after a machine took
    // it and failed; anything else only when it never left.
    let replayable = is_idempotent(&parts.method) && body.is_end_stream();
    let replay = replayable.then(|| {
        (
            parts.method.clone(),
            parts.uri.clone(),
            parts.headers.clone(),
        )
    });
    // Whether the client's body was all sent by the time the answer came.
    let limit = state.stall_timeout;
    let (body, sent) = Watched::new(body.map_err(BoxError::from).boxed_unsync(), limit);
    let mut req = Request::from_parts(parts, body.boxed_unsync());
    let mut tried: Vec<String> = Vec::new();
    let mut last_error = String::new();
    let bad_gateway =
        |detail: &str| error(StatusCode::BAD_GATEWAY, "upstream_failed", detail, html);
    loop {
        let lease = match acquire(state, route, &tried).await {
            Ok(lease) => lease,
            Err(Refusal::NoneHealthy) if !tried.is_empty() => {
                return bad_gateway(&format!(
                    "no machine of {} could be reached: {last_error}",
                    route.app
                ));
            }
            Err(refusal) => return refusal.response(&route.app, html),
        };
        let backend = lease.backend.clone();
        let port = backend.dial_port(route.internal_port);
        let mut conn = match Conn::to(&backend, port, route.upstream.h2, state.stall_timeout).await
        {
            Ok(conn) => conn,
            Err(e) => {
                last_error = e.to_string();
                tracing::debug!(machine = %backend.spec.machine, error = %e, "edge: machine unreachable; trying another");
                tried.push(backend.spec.machine.clone());
                if tried.len() >= MAX_ATTEMPTS {
                    return bad_gateway(&last_error);
                }
                continue;
            }
        };
        match conn.try_send_request(req).await {
            Ok(resp) => {
                let answer = Answer {
                    lease,
                    port,
                    conn,
                    upstream: &route.upstream,
                };
                let mut resp = respond(resp, answer, client_upgrade, html).await;
                if !sent.ended() && !client_h2 {
                    // The machine answered before the body was all sent (a 413 to an
                    // upload): the rest will not be read, so the connection ends here.
                    // (HTTP/2 ends just the stream, which hyper does on its own.)
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                return resp;
            }
            Err(_) if sent.stalled() => {
                let (status, code, message) = STALLED_BODY;
                let mut resp = error(status, code, message, html);
                if !client_h2 {
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                return resp;
            }
            Err(mut e) => {
                let unsent = e.take_message();
                last_error = format!(
                    "machine {}: {}",
                    backend.spec.machine,
                    with_causes(&e.into_error())
                );
                tried.push(backend.spec.machine.clone());
                req = match (unsent, &replay) {
                    (Some(unsent), _) => unsent,
                    (None, Some((method, uri, headers))) => {
                        let mut again = Request::new(empty());
                        *again.method_mut() = method.clone();
                        *again.uri_mut() = uri.clone();
                        *again.headers_mut() = headers.clone();
                        again
                    }
                    (None, None) => return bad_gateway(&last_error),
                };
                if tried.len() >= MAX_ATTEMPTS {
                    return bad_gateway(&last_error);
                }
            }
        }
    }
}

/// Makes a request bound for an HTTP/1.1 machine one for an HTTP/2 machine: the host
/// goes into the URI (`:authority`, with `:scheme` http) instead of `Host`, and `TE:
/// trailers` (the one `TE` HTTP/2 allows) is kept when the client sent it.
fn to_h2(parts: &mut http::request::Parts, wants_trailers: bool) {
    let authority = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok());
    if let Some(authority) = authority {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(http::uri::Scheme::HTTP);
        uri.authority = Some(authority);
        uri.path_and_query = parts.uri.path_and_query().cloned();
        if let Ok(uri) = http::Uri::from_parts(uri) {
            parts.uri = uri;
            parts.headers.remove(header::HOST);
            parts.version = http::Version::HTTP_2;
        }
    }
    // Without a usable host the request stays as it is: the HTTP/2 client then sends it
    // with `:scheme` http and the `Host` header, as it does for forwarded HTTP/1.1.
    if wants_trailers {
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// `force_https`: the same URL on the app's HTTPS port, 301 for reads and 308 for the
/// rest (which keeps the method and body). None when the app serves no HTTPS (the deploy
/// said so) or the request names no host.
fn redirect_to_https(
    state: &EdgeState,
    app: &str,
    req: &Request<Incoming>,
) -> Option<Response<EdgeBody>> {
    let port = state.https_port(app)?;
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    let authority: http::uri::Authority = host.parse().ok()?;
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = match port {
        443 => format!("https://{}{target}", authority.host()),
        port => format!("https://{}:{port}{target}", authority.host()),
    };
    let status = if matches!(*req.method(), Method::GET | Method::HEAD) {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    let mut resp = Response::new(empty());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_str(&location).ok()?);
    Some(resp)
}

/// An error and its causes, `: `-separated: hyper's own text ("error writing a body to
/// connection") does not say what went wrong.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Refusal {
    fn response(&self, app: &str, html: bool) -> Response<EdgeBody> {
        let (code, message) = self.reason(app);
        let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, code, &message, html);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        resp
    }
}

/// A machine's answer on its way: what goes back when its body has been sent.
struct Answer<'a> {
    lease: Lease,
    port: u16,
    conn: Conn,
    upstream: &'a UpstreamHttp,
}

/// Passes the machine's response on; the lease and the connection go back when its body
/// has been sent (or the upgraded connection closes).
async fn respond(
    mut resp: Response<Incoming>,
    answer: Answer<'_>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    html: bool,
) -> Response<EdgeBody> {
    let Answer {
        lease,
        port,
        conn,
        upstream,
    } = answer;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client) = client_upgrade {
            let upstream = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                // Counted as in flight until either side closes, so a drain waits for it.
                let _lease = lease;
                let _conn = conn;
                match tokio::try_join!(client, upstream) {
                    Ok((client, upstream)) => {
                        let mut client = TokioIo::new(client);
                        let mut upstream = TokioIo::new(upstream);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "edge: upgrade failed"),
                }
            });
            return resp.map(|_| empty());
        }
    }
    strip_hop_by_hop(resp.headers_mut());
    if resp.status() == StatusCode::NO_CONTENT {
        // It has no body and must not claim one (hyper read past any 1xx): an HTTP/2
        // client takes the length for a stream that broke off.
        resp.headers_mut().remove(header::CONTENT_LENGTH);
    }
    let version = resp.version();
    upstream.apply(resp.headers_mut(), version);
    // A small body of known length is read whole first, as nginx buffers: the client gets
    // head and body in one write and the connection is free again sooner. Streams (no
    // length, such as SSE) and large bodies pass through as they come, and so does
    // anything over HTTP/2, whose trailers (gRPC's status) must not be lost.
    let small = !conn.is_h2()
        && resp
            .body()
            .size_hint()
            .exact()
            .is_some_and(|n| n <= BUFFER_SMALLER_THAN);
    if small {
        let (parts, body) = resp.into_parts();
        return match body.collect().await {
            Ok(collected) => {
                conn.give_back(lease.backend.clone(), port);
                drop(lease);
                Response::from_parts(parts, full(collected.to_bytes()))
            }
            Err(e) => error(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                &format!(
                    "machine {}: response cut off: {e}",
                    lease.backend.spec.machine
                ),
                html,
            ),
        };
    }
    // One look at the body, without waiting: broken in what came with the head, the
    // client can still be told (502), as the relay tells its own; not here yet, it
    // streams as it comes (an event stream's head must not wait for its first event).
    let (parts, mut body) = resp.into_parts();
    let first = std::future::poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
        Poll::Ready(Some(frame)) => Poll::Ready(Some(frame)),
        Poll::Ready(None) | Poll::Pending => Poll::Ready(None),
    })
    .await;
    let first = match first.transpose() {
        Ok(first) => first,
        Err(e) => {
            let machine = &lease.backend.spec.machine;
            let message = format!("machine {machine}: answer broken: {}", with_causes(&e));
            return error(StatusCode::BAD_GATEWAY, "upstream_failed", &message, html);
        }
    };
    let rest = body.map_err(BoxError::from).boxed_unsync();
    let body = Tracked::new(first, rest, (lease, port, conn));
    Response::from_parts(parts, body.boxed_unsync())
}

pub(super) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str) -> Request<()> {
        Request::builder()
            .uri("/x")
            .header(header::HOST, host)
            .body(())
            .expect("request")
    }

    #[test]
    fn the_app_comes_from_the_uris_authority_else_the_host_header() {
        let hosts = crate::daemon::edge::hosts::Hosts::new("localhost");
        let mut origin_form = request("Hello.localhost:4281");
        assert_eq!(refusal(&mut origin_form), None);
        assert_eq!(
            app_from_host(&origin_form, &hosts).as_deref(),
            Some("hello")
        );
        // HTTP/2 names the host in the URI only; the machine gets it as `Host`.
        let mut h2 = Request::builder()
            .uri("https://web.localhost/x")
            .body(())
            .expect("request");
        assert_eq!(refusal(&mut h2), None);
        assert_eq!(app_from_host(&h2, &hosts).as_deref(), Some("web"));
        assert_eq!(h2.headers()[header::HOST], "web.localhost");
        // An absolute-form target wins over `Host`, user info left out.
        let mut absolute = Request::builder()
            .uri("http://me@api.localhost/x")
            .header(header::HOST, "web.localhost")
            .body(())
            .expect("request");
        assert_eq!(refusal(&mut absolute), None);
        assert_eq!(app_from_host(&absolute, &hosts).as_deref(), Some("api"));
        assert_eq!(absolute.headers()[header::HOST], "api.localhost");
    }

    #[test]
    fn no_host_two_hosts_and_connect_are_refused() {
        let mut none = Request::builder().uri("/x").body(()).expect("request");
        assert_eq!(
            refusal(&mut none).map(|r| r.0),
            Some(StatusCode::BAD_REQUEST)
        );
        // HTTP/1.0 had no `Host`: such a request is told no app is named.
        let mut old = Request::builder()
            .uri("/x")
            .version(http::Version::HTTP_10)
            .body(())
            .expect("request");
        assert_eq!(refusal(&mut old), None);
        let mut two = request("web.localhost");
        two.headers_mut()
            .append(header::HOST, HeaderValue::from_static("api.localhost"));
        assert_eq!(
            refusal(&mut two).map(|r| r.0),
            Some(StatusCode::BAD_REQUEST)
        );
        let mut connect = Request::builder()
            .method(Method::CONNECT)
            .uri("web.localhost:443")
            .body(())
            .expect("request");
        assert_eq!(
            refusal(&mut connect).map(|r| r.0),
            Some(StatusCode::NOT_IMPLEMENTED)
        );
    }

    #[test]
    fn a_head_over_64_kib_is_refused_by_its_length_as_sent() {
        // `GET /x HTTP/1.1\r\n` (17), `host: web.localhost\r\n` (21), the field, `\r\n`.
        let with_field = |value_len: usize| {
            let value = "a".repeat(value_len);
            let mut req = request("web.localhost");
            req.headers_mut()
                .insert("x-big", HeaderValue::from_str(&value).expect("a value"));
            req
        };
        let at_limit = super::super::relay::MAX_HEAD - 17 - 21 - "x-big: \r\n".len() - 2;
        assert_eq!(
            head_len(&with_field(at_limit)),
            super::super::relay::MAX_HEAD
        );
        assert_eq!(refusal(&mut with_field(at_limit)), None);
        assert_eq!(
            refusal(&mut with_field(at_limit + 1)).map(|r| r.0),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }
}
