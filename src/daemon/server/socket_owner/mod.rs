//! Which user owns the far end of a loopback TCP connection. TCP has no `SO_PEERCRED`, but
//! both ends of a loopback connection live in this host's kernel, which knows each
//! socket's owner. It is asked for the one socket by its addresses over netlink
//! (`sock_diag`, as `ss` does), whatever the number of sockets; where netlink is not
//! allowed (a unit's `RestrictAddressFamilies=`), the socket is looked for in
//! `/proc/net/tcp{,6}`. The client's socket is the one whose local address is the
//! connection's peer and whose remote address is the server's end.

#[cfg(target_os = "linux")]
mod proc_net;
#[cfg(target_os = "linux")]
mod sock_diag;

use std::io;
use std::net::SocketAddr;

/// Why the owner of a connection's far end is not known.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    /// The kernel's socket table could not be read.
    #[error("cannot read {file}: {source}")]
    Table {
        /// The table.
        file: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// No socket of this host is the connection's far end: it is not on this host, or it
    /// closed already.
    #[error("no socket of this host is the far end of {peer} -> {local}")]
    NotFound {
        /// The far end.
        peer: SocketAddr,
        /// This end.
        local: SocketAddr,
    },
    /// The system does not tell lakeflyd its sockets' owners.
    // Made only off Linux.
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    #[error("this system does not tell lakeflyd which user a connection comes from")]
    Unsupported,
}

/// The uid that owns the socket at `peer` connected to `local`, both on this host.
#[cfg(target_os = "linux")]
pub fn owner(local: SocketAddr, peer: SocketAddr) -> Result<u32, OwnerError> {
    match sock_diag::owner(local, peer) {
        Ok(found) => found.ok_or(OwnerError::NotFound { peer, local }),
        Err(e) => {
            tracing::debug!(error = %e, "netlink sock_diag is not available: looking in /proc/net/tcp");
            proc_net::owner(local, peer)
        }
    }
}

/// The uid that owns the socket at `peer` connected to `local`: unknown on this system.
#[cfg(not(target_os = "linux"))]
pub fn owner(_local: SocketAddr, _peer: SocketAddr) -> Result<u32, OwnerError> {
    Err(OwnerError::Unsupported)
}

#[cfg(all(test, target_os = "linux"))]
pub(super) mod tests {
    use super::*;

    /// Calls `check(server's address, client's address)` for an open connection on each
    /// loopback address this host has (IPv4, and IPv6 where it is there).
    pub fn each_loopback_connection(check: impl Fn(SocketAddr, SocketAddr)) {
        for at in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(server) = std::net::TcpListener::bind(at) else {
                assert!(at.starts_with('['), "no IPv4 loopback");
                continue;
            };
            let local = server.local_addr().unwrap();
            let client = std::net::TcpStream::connect(local).expect("connect");
            let (_accepted, peer) = server.accept().expect("accept");
            assert_eq!(peer, client.local_addr().unwrap());
            check(local, peer);
        }
    }

    #[test]
    fn a_connection_of_this_process_is_owned_by_its_user() {
        each_loopback_connection(|local, peer| {
            let uid = owner(local, peer).expect("the client's socket is found");
            assert_eq!(uid, nix::unistd::geteuid().as_raw(), "{peer} -> {local}");
        });
    }

    #[test]
    fn a_closed_clients_lingering_socket_is_no_ones() {
        use std::io::Read;
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = server.local_addr().unwrap();
        let client = std::net::TcpStream::connect(local).unwrap();
        let (mut accepted, peer) = server.accept().unwrap();
        // The client closes first, so its socket waits out TIME_WAIT once the server's
        // end closes too: the kernel still lists it, as root's.
        drop(client);
        let _ = accepted.read_to_end(&mut Vec::new());
        drop(accepted);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match owner(local, peer) {
                Err(OwnerError::NotFound { .. }) => break,
                Ok(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                other => panic!("the closed socket is not let go: {other:?}"),
            }
        }
    }
}
