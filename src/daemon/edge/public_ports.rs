//! The public ports `[[services]]` ask for: each bound (TCP or UDP) before a release
//! changes anything, then served by a task of its own as its route says at the time a
//! connection or datagram arrives.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::routes::PortRoute;
use super::{accept_failed, relay, tcp, tls, udp, EdgeState};

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

/// Binds `port` on the edge's address.
pub(super) fn bind(ip: IpAddr, port: PublicPort) -> std::io::Result<Bound> {
    if port.udp {
        let socket = std::net::UdpSocket::bind((ip, port.number))?;
        socket.set_nonblocking(true)?;
        return tokio::net::UdpSocket::from_std(socket).map(Bound::Udp);
    }
    let listener = listen(SocketAddr::new(ip, port.number))?;
    tokio::net::TcpListener::from_std(listener).map(Bound::Tcp)
}

/// TCP keepalive for the edge's client connections: probed after a minute of silence,
/// every ten seconds, closed after six unanswered probes. A client that vanished without
/// a FIN (a phone out of coverage, a NAT that dropped its state) is found within two
/// minutes, instead of holding its connection, and the machine's `concurrency` slot it
/// counts against, for as long as the daemon runs: upgraded (WebSocket) and raw TCP
/// connections have no idle timeout, as quiet ones may be alive. A live peer answers the
/// probes in its kernel, whatever its application does.
const CLIENT_KEEPALIVE: socket2::TcpKeepalive = socket2::TcpKeepalive::new()
    .with_time(Duration::from_secs(60))
    .with_interval(Duration::from_secs(10))
    .with_retries(6);

/// How long data sent to a client may go unacknowledged before its connection is
/// dropped (`TCP_USER_TIMEOUT`). Keepalive probes only a silent connection; one with
/// data in flight to a vanished client (an event stream) would otherwise retransmit for
/// about a quarter of an hour. Two minutes, as keepalive.
#[cfg(any(target_os = "linux", target_os = "android"))]
const CLIENT_USER_TIMEOUT: Duration = Duration::from_secs(120);

/// A non-blocking TCP listener on `addr`, for an event loop to take. Its connections
/// keep alive by [`CLIENT_KEEPALIVE`] and give up on unacknowledged data after
/// `CLIENT_USER_TIMEOUT` (Linux): set on the listener, the kernel gives both to every
/// accepted connection, so no connection pays a system call for them.
pub(super) fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    let socket = socket2::SockRef::from(&listener);
    socket.set_tcp_keepalive(&CLIENT_KEEPALIVE)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    socket.set_tcp_user_timeout(Some(CLIENT_USER_TIMEOUT))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Starts serving a bound port of `app`.
pub(super) fn serve(socket: Bound, state: Arc<EdgeState>, app: &str, port: u16) -> JoinHandle<()> {
    match socket {
        Bound::Tcp(listener) => tokio::spawn(accept_port(listener, state, app.to_string(), port)),
        Bound::Udp(socket) => tokio::spawn(udp::serve(state, socket, app.to_string(), port)),
    }
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
                    tokio::spawn(relay::serve(
                        state.clone(),
                        stream,
                        peer,
                        Some((app.clone(), port)),
                    ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_connections_inherit_the_listeners_keepalive_and_user_timeout() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let socket = socket2::SockRef::from(&accepted);
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(60)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 6);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert_eq!(
            socket.tcp_user_timeout().unwrap(),
            Some(CLIENT_USER_TIMEOUT)
        );
    }
}
