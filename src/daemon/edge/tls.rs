//! TLS on the edge, with the certificate `lakeflyd --edge-tls-cert` and `--edge-tls-key`
//! name. `--edge-https` serves every app by host name over TLS. A `[[services.ports]]`
//! port whose handlers include `tls` (Fly's `handlers = ["tls", "http"]` on 443) serves
//! HTTP when `http` is among its handlers, else passes the plaintext on to a machine as
//! raw TCP. HTTP in TLS is HTTP/2 when the client offers it, HTTP/1.1 otherwise, with
//! `X-Forwarded-Proto: https`; machines get HTTP/1.1 unless `h2_backend`. Without a
//! certificate a `tls` port is reported and left out.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::forwarding::ClientHop;
use super::routes::Route;
use super::{EdgeState, Scheme};

/// Serves one connection accepted on a TLS port of `app`: HTTP when `http`, else the
/// plaintext spliced to a machine of `route`.
pub async fn serve(
    state: Arc<EdgeState>,
    stream: TcpStream,
    peer: SocketAddr,
    (app, port): (String, u16),
    route: Arc<Route>,
    http: bool,
) {
    // Routes with TLS ports are only applied when the edge has a certificate.
    let Some(tls) = &state.tls else {
        return;
    };
    let acceptor = if http { tls.web() } else { tls.raw() };
    let _open = state.open_connection();
    let Some(stream) = end_tls(&acceptor, stream, peer).await else {
        return;
    };
    let idle = state.idle_timeout_of(Some(&route));
    let hop = ClientHop {
        peer,
        port,
        scheme: Scheme::Https,
    };
    let fixed = Some((app, port));
    if http && stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        super::conn::serve_h2(state, stream, hop, fixed, idle).await;
    } else if http {
        super::conn::serve_http1(state, stream, hop, fixed, idle).await;
    } else {
        super::tcp::splice(state, route, None, stream).await;
    }
}

/// Serves one connection accepted on `--edge-https` (on `port`): HTTP/2 or HTTP/1.1 in
/// TLS, each request routed by its host name as on the plain edge address.
pub async fn serve_routed(state: Arc<EdgeState>, stream: TcpStream, peer: SocketAddr, port: u16) {
    let Some(tls) = &state.tls else {
        return;
    };
    let _open = state.open_connection();
    let Some(stream) = end_tls(&tls.web(), stream, peer).await else {
        return;
    };
    // Each request is routed by its own host name, but the name the client asked for in
    // the handshake (SNI) says whose connection it is: that app's idle timeout holds (the
    // edge's own without a name, or for a name no app has).
    let sni_route = stream
        .get_ref()
        .1
        .server_name()
        .and_then(|name| state.host_route(name, None));
    let idle = state.idle_timeout_of(sni_route.as_deref());
    let hop = ClientHop {
        peer,
        port,
        scheme: Scheme::Https,
    };
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        super::conn::serve_h2(state, stream, hop, None, idle).await;
    } else {
        super::conn::serve_http1(state, stream, hop, None, idle).await;
    }
}

/// The TLS handshake of an accepted connection, within the handshake timeout.
async fn end_tls(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let _ = stream.set_nodelay(true);
    crate::daemon::server_tls::handshake(acceptor, stream, peer, "edge").await
}
