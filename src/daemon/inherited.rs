//! Listening sockets a service manager bound and handed over: systemd's socket activation
//! (`LISTEN_FDS`, each named by its `FileDescriptorName=` in `LISTEN_FDNAMES`). A socket
//! named `edge`, `edge-https` or `api` takes the place of the address lakeflyd would bind
//! for it, and one named `port-N` that of the `[[services]]` TCP port N. The manager keeps
//! them open while lakeflyd restarts, so a client connecting meanwhile waits in the queue
//! and is served by the next lakeflyd instead of being refused.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// The name of the host-routed edge's socket (`--edge`).
pub const EDGE: &str = "edge";
/// The name of the host-routed HTTPS socket (`--edge-https`).
pub const EDGE_HTTPS: &str = "edge-https";
/// The name of the API's socket (`--api`).
pub const API: &str = "api";
/// What the name of a `[[services]]` TCP port's socket starts with (`port-8001`).
pub const PORT_PREFIX: &str = "port-";

/// What is wrong with the sockets handed over.
#[derive(Debug, thiserror::Error)]
pub enum InheritedError {
    /// A socket lakeflyd has no use for (or no name at all).
    #[error("the service manager passed socket {index} named {name:?}; lakeflyd takes sockets named edge, edge-https, api and port-N (a [[services]] TCP port)")]
    UnknownName {
        /// Its place among the sockets passed (0 is descriptor 3).
        index: usize,
        /// Its `FileDescriptorName=` (systemd's default is the socket unit's name).
        name: String,
    },
    /// Two sockets with one name.
    #[error("the service manager passed two sockets named {0:?}")]
    Duplicate(String),
    /// Not a TCP socket, or unusable.
    #[error(
        "the socket named {name:?} the service manager passed is not a TCP listener: {source}"
    )]
    Unusable {
        /// Its name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Where a listener comes from.
#[derive(Debug, Clone)]
pub enum Listen {
    /// An address to bind.
    Bind(SocketAddr),
    /// A socket the service manager bound, and its address.
    Inherited(Arc<TcpListener>, SocketAddr),
}

impl Listen {
    /// The address it listens on (or will).
    pub fn addr(&self) -> SocketAddr {
        match self {
            Listen::Bind(addr) | Listen::Inherited(_, addr) => *addr,
        }
    }

    /// The listener, non-blocking: `bind` makes it for an address, an inherited socket is
    /// shared (its descriptor duplicated).
    pub fn open(
        &self,
        bind: impl FnOnce(SocketAddr) -> std::io::Result<TcpListener>,
    ) -> std::io::Result<TcpListener> {
        match self {
            Listen::Bind(addr) => bind(*addr),
            Listen::Inherited(socket, _) => {
                let listener = socket.try_clone()?;
                listener.set_nonblocking(true)?;
                Ok(listener)
            }
        }
    }
}

/// The sockets handed over, by what they are for.
#[derive(Debug, Default)]
pub struct Inherited {
    /// `edge`.
    pub edge: Option<Listen>,
    /// `edge-https`.
    pub edge_https: Option<Listen>,
    /// `api`.
    pub api: Option<Listen>,
    /// `port-N`: `[[services]]` TCP ports, by number.
    pub ports: BTreeMap<u16, Listen>,
}

impl Inherited {
    /// Takes the sockets this process was given. Call it before any thread starts: the
    /// variables are removed, so that nothing lakeflyd starts takes them for its own.
    pub fn from_env() -> Result<Self, InheritedError> {
        let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
        std::env::remove_var("LISTEN_FDNAMES");
        // Checks LISTEN_PID against this process, and removes it and LISTEN_FDS.
        let mut fds = listenfd::ListenFd::from_env();
        let mut names = names.split(':');
        let mut inherited = Inherited::default();
        for index in 0..fds.len() {
            let name = names.next().unwrap_or_default().to_string();
            let Some(slot) = Slot::named(&name) else {
                return Err(InheritedError::UnknownName { index, name });
            };
            if inherited.get(slot).is_some() {
                return Err(InheritedError::Duplicate(name));
            }
            let unusable = |source| InheritedError::Unusable {
                name: name.clone(),
                source,
            };
            let listener = fds
                .take_tcp_listener(index)
                .map_err(unusable)?
                .ok_or_else(|| unusable(std::io::ErrorKind::NotFound.into()))?;
            let addr = listener.local_addr().map_err(unusable)?;
            tracing::info!(name, %addr, "listening on a socket the service manager passed");
            let listen = Listen::Inherited(Arc::new(listener), addr);
            match slot {
                Slot::Edge => inherited.edge = Some(listen),
                Slot::EdgeHttps => inherited.edge_https = Some(listen),
                Slot::Api => inherited.api = Some(listen),
                Slot::Port(port) => {
                    inherited.ports.insert(port, listen);
                }
            }
        }
        Ok(inherited)
    }

    fn get(&self, slot: Slot) -> Option<&Listen> {
        match slot {
            Slot::Edge => self.edge.as_ref(),
            Slot::EdgeHttps => self.edge_https.as_ref(),
            Slot::Api => self.api.as_ref(),
            Slot::Port(port) => self.ports.get(&port),
        }
    }
}

/// What a socket passed is for, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Edge,
    EdgeHttps,
    Api,
    Port(u16),
}

impl Slot {
    fn named(name: &str) -> Option<Slot> {
        match name {
            EDGE => Some(Slot::Edge),
            EDGE_HTTPS => Some(Slot::EdgeHttps),
            API => Some(Slot::Api),
            _ => name
                .strip_prefix(PORT_PREFIX)?
                .parse::<u16>()
                .ok()
                .filter(|port| *port > 0)
                .map(Slot::Port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_for_the_edge_https_api_or_a_port_by_name() {
        assert_eq!(Slot::named("edge"), Some(Slot::Edge));
        assert_eq!(Slot::named("edge-https"), Some(Slot::EdgeHttps));
        assert_eq!(Slot::named("api"), Some(Slot::Api));
        assert_eq!(Slot::named("port-8001"), Some(Slot::Port(8001)));
        for other in [
            "lakeflyd.socket",
            "",
            "port-",
            "port-0",
            "port-70000",
            "port-x",
        ] {
            assert_eq!(Slot::named(other), None, "{other}");
        }
    }
}
