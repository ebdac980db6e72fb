//! The public ports `[[services]]` ask for: each bound (TCP or UDP) before a release
//! changes anything, then served by a task of its own as its route says at the time a
//! connection or datagram arrives.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::forwarding::ClientHop;
use super::listeners::{accept_failed, listen, open};
use super::routes::PortRoute;
use super::{relay, tcp, tls, udp, EdgeState, Listen, Scheme};

/// A public port of a `[[services]]` entry: a number and a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicPort {
    /// The port number.
    pub number: u16,
    /// UDP, else TCP.
    pub udp: bool,
}

impl std::fmt::Display for PublicPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.udp {
            true => write!(f, "{}/udp", self.number),
            false => write!(f, "{}", self.number),
        }
    }
}

/// A public port's socket, bound before anything changes.
pub(super) enum Bound {
    Tcp(tokio::net::TcpListener),
    Udp(tokio::net::UdpSocket),
}

/// A bound public port of an app, served by `task`.
pub(super) struct PortListener {
    pub(super) app: String,
    pub(super) task: JoinHandle<()>,
}

/// Binds `port` on the edge's address, or takes the TCP socket a service manager
/// `passed` for it (which stays open while lakeflyd restarts).
pub(super) fn bind(
    ip: IpAddr,
    port: PublicPort,
    passed: Option<&Listen>,
) -> std::io::Result<Bound> {
    if port.udp {
        let socket = std::net::UdpSocket::bind((ip, port.number))?;
        socket.set_nonblocking(true)?;
        return tokio::net::UdpSocket::from_std(socket).map(Bound::Udp);
    }
    let listener = match passed {
        Some(passed) => open(passed)?,
        None => listen(SocketAddr::new(ip, port.number))?,
    };
    tokio::net::TcpListener::from_std(listener).map(Bound::Tcp)
}

/// Starts serving a bound port of `app`.
pub(super) fn serve(socket: Bound, state: Arc<EdgeState>, app: &str, port: u16) -> JoinHandle<()> {
    match socket {
        Bound::Tcp(listener) => tokio::spawn(accept_port(listener, state, app.to_string(), port)),
        Bound::Udp(socket) => tokio::spawn(udp::serve(state, socket, app.to_string(), port)),
    }
}

/// Resets every connection to a passed service port no app serves (its app was destroyed,
/// or no longer lists the port). lakeflyd cannot close such a socket for good: the
/// service manager holds it open, and the kernel would go on completing connections
/// that then wait, unanswered, until their clients give up. Reset, they fail at once, as
/// a connection to a closed port does.
pub(super) fn refuse(passed: &Listen, port: u16) -> std::io::Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::from_std(open(passed)?)?;
    tracing::info!(
        port,
        "edge: no app serves port {port}, whose socket the service manager passed; its connections are reset until one does"
    );
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    // Closing with a zero linger sends a reset, not a FIN: the client
                    // sees its connection refused rather than an empty answer.
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                }
                Err(e) => accept_failed(e).await,
            }
        }
    }))
}

/// A service port: each connection is served as its route says at the time it arrives.
async fn accept_port(
    listener: tokio::net::TcpListener,
    state: Arc<EdgeState>,
    app: String,
    port: u16,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => match state.port_route(&app, port) {
                Some(PortRoute::Http(_)) => {
                    let hop = ClientHop {
                        peer,
                        port,
                        scheme: Scheme::Http,
                    };
                    let fixed = Some((app.clone(), port));
                    tokio::spawn(relay::serve(state.clone(), stream, hop, fixed));
                }
                Some(PortRoute::Tcp(route, proxy)) => {
                    let _ = stream.set_nodelay(true);
                    let header = match (proxy, stream.local_addr()) {
                        (Some(proxy), Ok(local)) => Some(proxy.header(peer, local)),
                        _ => None,
                    };
                    let state = state.clone();
                    tokio::spawn(async move {
                        let _open = state.open_connection();
                        tcp::splice(state, route, header, stream).await;
                    });
                }
                Some(PortRoute::Https(route)) => {
                    let at = (app.clone(), port);
                    tokio::spawn(tls::serve(state.clone(), stream, peer, at, route, true));
                }
                Some(PortRoute::TlsTcp(route)) => {
                    let at = (app.clone(), port);
                    tokio::spawn(tls::serve(state.clone(), stream, peer, at, route, false));
                }
                None => drop(stream),
            },
            Err(e) => accept_failed(e).await,
        }
    }
}
