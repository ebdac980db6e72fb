//! The public ports `[[services]]` ask for: each bound (TCP or UDP) before a release
//! changes anything, then served by a task of its own as its route says at the time a
//! connection or datagram arrives. A socket a service manager passed for a port no app
//! holds resets its connections, as a closed port would.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
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
struct PortListener {
    app: String,
    task: JoinHandle<()>,
}

/// The public ports apps hold, and the sockets a service manager passed for ports
/// (`port-N`): one lock, so which app holds a port and who answers on it agree.
pub(super) struct ServicePorts {
    held: Mutex<Held>,
}

/// What [`ServicePorts`] guards.
pub(super) struct Held {
    /// Where ports are bound: the edge's address.
    ip: IpAddr,
    listeners: HashMap<PublicPort, PortListener>,
    /// Passed TCP sockets, by port number; they stay open as long as lakeflyd runs.
    passed: BTreeMap<u16, Listen>,
    /// The tasks resetting connections to passed ports no app holds, by number.
    refusing: HashMap<u16, JoinHandle<()>>,
    /// Whether such connections are reset: from when the edge opens (before, an app yet
    /// to be configured may claim the port, and its clients wait) until it stops (the
    /// next lakeflyd serves them).
    refuse: bool,
}

impl ServicePorts {
    /// No port held yet; `passed` are the sockets a service manager passed.
    pub(super) fn new(ip: IpAddr, passed: BTreeMap<u16, Listen>) -> Self {
        let held = Held {
            ip,
            listeners: HashMap::new(),
            passed,
            refusing: HashMap::new(),
            refuse: false,
        };
        ServicePorts {
            held: Mutex::new(held),
        }
    }

    /// The ports, held while an app's are changed.
    pub(super) fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The edge is open: passed ports no app holds reset their connections from now on.
    pub(super) fn open(&self) {
        let mut held = self.lock();
        held.refuse = true;
        held.refuse_unclaimed();
    }

    /// The edge stops accepting: no port is served any more, and connections to passed
    /// ones wait for the next lakeflyd instead of being reset.
    pub(super) fn stop(&self) {
        let mut held = self.lock();
        held.refuse = false;
        for (_, listener) in held.listeners.drain() {
            listener.task.abort();
        }
        for (_, task) in held.refusing.drain() {
            task.abort();
        }
    }
}

impl Held {
    /// The app holding `port`, if one does.
    pub(super) fn holder(&self, port: PublicPort) -> Option<&str> {
        self.listeners.get(&port).map(|l| l.app.as_str())
    }

    /// Binds `port` on the edge's address, or takes the socket passed for it.
    pub(super) fn bind(&self, port: PublicPort) -> std::io::Result<Bound> {
        bind(self.ip, port, self.passed.get(&port.number))
    }

    /// Closes the ports `app` holds and does not `keep` (a passed one is left to reset
    /// its connections); the ones kept go on answering, straight through a redeploy.
    pub(super) fn release(&mut self, app: &str, keep: &[PublicPort]) {
        self.listeners.retain(|port, listener| {
            let kept = listener.app != app || keep.contains(port);
            if !kept {
                listener.task.abort();
            }
            kept
        });
        self.refuse_unclaimed();
    }

    /// Starts serving a port bound for `app`, which holds it from now on.
    pub(super) fn serve(
        &mut self,
        port: PublicPort,
        socket: Bound,
        state: Arc<EdgeState>,
        app: &str,
    ) {
        if !port.udp {
            if let Some(refusing) = self.refusing.remove(&port.number) {
                refusing.abort();
            }
        }
        let task = match socket {
            Bound::Tcp(listener) => {
                tokio::spawn(accept_port(listener, state, app.to_string(), port.number))
            }
            Bound::Udp(socket) => {
                tokio::spawn(udp::serve(state, socket, app.to_string(), port.number))
            }
        };
        let app = app.to_string();
        self.listeners.insert(port, PortListener { app, task });
    }

    /// Resets the connections of each passed port no app holds, when the edge is open.
    fn refuse_unclaimed(&mut self) {
        if !self.refuse {
            return;
        }
        for (&number, passed) in &self.passed {
            let held = self
                .listeners
                .contains_key(&PublicPort { number, udp: false });
            if held || self.refusing.contains_key(&number) {
                continue;
            }
            match refuse(passed, number) {
                Ok(task) => {
                    self.refusing.insert(number, task);
                }
                Err(e) => tracing::warn!(
                    port = number,
                    error = %e,
                    "edge: could not reset connections to port {number}, which no app serves; they wait unanswered"
                ),
            }
        }
    }
}

/// Binds `port` on `ip`, or takes the TCP socket a service manager `passed` for it
/// (which stays open while lakeflyd restarts).
fn bind(ip: IpAddr, port: PublicPort, passed: Option<&Listen>) -> std::io::Result<Bound> {
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

/// Resets every connection to a passed service port no app serves (its app was destroyed,
/// or no longer lists the port). lakeflyd cannot close such a socket for good: the
/// service manager holds it open, and the kernel would go on completing connections
/// that then wait, unanswered, until their clients give up. Reset, they fail at once, as
/// a connection to a closed port does.
fn refuse(passed: &Listen, port: u16) -> std::io::Result<JoinHandle<()>> {
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
