//! Requests, responses and events of the `/v1` API.

use serde::{Deserialize, Serialize};

/// The body of every error response: a message, a stable code, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong.
    pub error: String,
    /// Stable machine-readable code (`app_not_found`, `app_exists`...).
    pub code: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` when the daemon answers.
    pub status: String,
    /// The daemon's version.
    pub version: String,
}

/// An app as the daemon knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Unique name (`[a-z0-9-]{1,63}`).
    pub name: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// The release that runs, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_release: Option<u64>,
}

/// `POST /v1/apps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateApp {
    /// The new app's name.
    pub name: String,
}

/// `PUT /v1/bundles/{sha256}`: what was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleStored {
    /// The bundle's SHA-256.
    pub digest: String,
    /// Compressed size in bytes.
    pub size: u64,
    /// Entries in the archive (absent when it was already stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// Bytes once unpacked (absent when it was already stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpacked_bytes: Option<u64>,
}

/// One recorded change. `id` is strictly increasing and never reused, across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the event log.
    pub id: u64,
    /// When it happened (RFC 3339, UTC).
    pub time: String,
    /// The app it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// What happened: `app.created`, `machine.exited`... Unknown kinds pass through.
    pub kind: String,
    /// Details, shaped by `kind`.
    #[serde(default)]
    pub data: serde_json::Value,
}

/// Event kinds the daemon emits.
pub mod kind {
    /// An app was created.
    pub const APP_CREATED: &str = "app.created";
    /// An app was destroyed.
    pub const APP_DESTROYED: &str = "app.destroyed";
    /// A bundle was uploaded and stored.
    pub const BUNDLE_STORED: &str = "bundle.stored";
    /// Sent first on a resumed stream when events before the retained window were dropped.
    pub const GAP: &str = "gap";
    /// The daemon started.
    pub const DAEMON_STARTED: &str = "daemon.started";
    /// The daemon is stopping.
    pub const DAEMON_STOPPING: &str = "daemon.stopping";
}
