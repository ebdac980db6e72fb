//! How the edge is set up (`EdgeOptions`), and what it says when an app's settings
//! cannot be applied.

use std::net::IpAddr;
use std::time::Duration;

use super::public_ports::PublicPort;
use crate::daemon::inherited::Listen;

/// Why an app's edge settings could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// Another app has the port.
    #[error("port {port} of app {app} is already served for app {other}; pick another port in [[services.ports]]{}", share_hint(*shared_by, *port))]
    PortTaken {
        /// The port.
        port: PublicPort,
        /// The app that asked.
        app: String,
        /// The app that has it.
        other: String,
        /// The flag that makes the port the edge's own, which serves every app there by
        /// Host: `--edge` for HTTP, `--edge-https` for HTTPS; none for other kinds.
        shared_by: Option<&'static str>,
    },
    /// A service port that is the edge's own, of a kind the edge cannot serve there by Host.
    #[error("port {port} of app {app} ([[services.ports]]) is the edge's own {listener} port, which serves apps by Host; only handlers = [{}] can share it: pick another port for this service", if *listener == "HTTP" { "\"http\"" } else { "\"tls\", \"http\"" })]
    EdgesOwnPort {
        /// The port.
        port: u16,
        /// The app.
        app: String,
        /// `HTTP` or `HTTPS`: which of the edge's listeners has it.
        listener: &'static str,
    },
    /// lakeflyd's own API listens there.
    #[error("port {port} of app {app} ([[services.ports]]) is lakeflyd's own API port (--api); pick another port for this service")]
    ApiPort {
        /// The port.
        port: u16,
        /// The app.
        app: String,
    },
    /// Something else on the host listens there.
    #[error("port {port} of app {app} ([[services.ports]]) cannot be bound on {ip}: {source}; stop what uses it or pick another port")]
    PortInUse {
        /// The port.
        port: PublicPort,
        /// The app.
        app: String,
        /// The edge's address.
        ip: IpAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// How apps share an HTTP or HTTPS port: as the edge's own, which serves every app by Host.
fn share_hint(shared_by: Option<&str>, port: PublicPort) -> String {
    match shared_by {
        Some(flag) => format!(
            ", or make it the edge's own (lakeflyd {flag} ADDRESS:{port}), which serves every app there by Host"
        ),
        None => String::new(),
    }
}

/// What to do when a service port cannot be bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// Fail, changing nothing (a deploy: the release fails, the old one keeps serving).
    Required,
    /// Serve the rest and report it (a daemon start, or restoring the release that runs:
    /// its host route must not go because a port is taken).
    BestEffort,
}

/// How the edge is set up.
#[derive(Debug, Clone)]
pub struct EdgeOptions {
    /// Where host-routed HTTP is served; its IP is where service ports are bound.
    pub addr: Listen,
    /// Apps are `<app>.<domain>`.
    pub domain: String,
    /// `auto_stop_machines` stops a machine idle this long.
    pub auto_stop_after: Duration,
    /// How long a request waits for an auto-started machine.
    pub auto_start_wait: Duration,
    /// How long a body or an answer may wait for its reader or writer.
    pub stall_timeout: Duration,
    /// How long a client connection may carry no request before it is closed (and how
    /// long a request's head may take to arrive).
    pub idle_timeout: Duration,
    /// Where host-routed HTTPS is served (with `tls`).
    pub https: Option<Listen>,
    /// Where a JSON line per HTTP request goes, when anywhere.
    pub access_log: Option<std::path::PathBuf>,
    /// The certificates for `https` and for ports with the `tls` handler, the one a
    /// client asks for by name (SNI), else the first; none: no TLS.
    pub tls: Vec<crate::daemon::server_tls::TlsFiles>,
    /// How many threads (event loops) serve host-routed HTTP.
    pub threads: usize,
    /// `[[services]]` TCP ports whose sockets a service manager passed (`port-N`),
    /// served in place of binding them.
    pub ports: std::collections::BTreeMap<u16, Listen>,
    /// The API's port, once bound: a service port that cannot be bound is said to be
    /// the API's when it is that one.
    pub api_port: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_taken_says_which_flag_would_share_it() {
        let taken = |shared_by| EdgeError::PortTaken {
            port: PublicPort {
                number: 443,
                udp: false,
            },
            app: "b".into(),
            other: "a".into(),
            shared_by,
        };
        assert_eq!(
            taken(Some("--edge-https")).to_string(),
            "port 443 of app b is already served for app a; pick another port in [[services.ports]], \
             or make it the edge's own (lakeflyd --edge-https ADDRESS:443), which serves every app \
             there by Host"
        );
        assert_eq!(
            taken(None).to_string(),
            "port 443 of app b is already served for app a; pick another port in [[services.ports]]"
        );
    }
}
