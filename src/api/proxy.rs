//! `lakefly proxy`: a local port that reaches a port of a machine, as `fly proxy` does.
//! `GET /v1/apps/{app}/machines/{id}/proxy?port=N` says where a connection would go (or
//! why none can); with `Upgrade: lakefly-proxy`, the daemon connects there, answers `101
//! Switching Protocols`, and the connection carries the bytes both ways from then on.

use serde::{Deserialize, Serialize};

use super::client::{decode, Client, ClientError};

/// The `Upgrade` protocol name.
pub const PROTOCOL: &str = "lakefly-proxy";

/// What `GET .../proxy` takes (as its query).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyQuery {
    /// The port as the app knows it: its `internal_port` (which reaches the machine's
    /// `$PORT`) or another port the machine listens on.
    pub port: u16,
}

/// Where a proxied connection to a machine goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyTarget {
    /// The machine.
    pub machine: String,
    /// The port asked for.
    pub port: u16,
    /// The port on the daemon's host it is at (`$PORT` for the `internal_port`).
    pub host_port: u16,
}

impl Client {
    /// `GET /v1/apps/{app}/machines/{id}/proxy?port=N`: where a connection would go, or
    /// why none can (the machine is stopped, or listens on no such port).
    pub async fn proxy_target(
        &self,
        app: &str,
        id: &str,
        port: u16,
    ) -> Result<ProxyTarget, ClientError> {
        let path = format!("/v1/apps/{app}/machines/{id}/proxy?port={port}");
        let (url, status, bytes) = self
            .send(reqwest::Method::GET, &path, None::<&()>, self.timeout)
            .await?;
        decode(url, status, &bytes)
    }

    /// The same, upgraded: a connection to the machine's port.
    pub async fn proxy_connect(
        &self,
        app: &str,
        id: &str,
        port: u16,
    ) -> Result<reqwest::Upgraded, ClientError> {
        let path = format!("/v1/apps/{app}/machines/{id}/proxy");
        let query = [("port", port.to_string())];
        self.upgrade(&path, &query, PROTOCOL, "a proxied connection")
            .await
    }
}
