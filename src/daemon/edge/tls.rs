//! TLS on the edge. A `[[services.ports]]` port whose handlers include `tls` (Fly's
//! `handlers = ["tls", "http"]` on 443) terminates TLS with the certificate that
//! `lakeflyd --edge-tls-cert` and `--edge-tls-key` name, then serves HTTP when `http` is
//! among its handlers (with `X-Forwarded-Proto: https`; HTTP/2 when the client offers it,
//! HTTP/1.1 otherwise, and HTTP/1.1 to the machine either way), else passes the plaintext
//! on to a machine as raw TCP. Without a certificate such a port is reported and left out.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::routes::Route;
use super::EdgeState;

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
    let _ = stream.set_nodelay(true);
    let Some(stream) = crate::daemon::server_tls::handshake(&acceptor, stream, peer, "edge").await
    else {
        return;
    };
    if http && stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        super::conn::serve_h2(state, stream, peer, (app, port)).await;
    } else if http {
        super::conn::serve_http1(state, stream, peer, Some((app, port)), super::Scheme::Https)
            .await;
    } else {
        super::tcp::splice(state, route, None, stream).await;
    }
}
