//! The HTTP API: one handler file per resource and one router.

mod apps;
mod bundles;
mod error;
mod events;
mod json;
mod machines;

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::watch;

use super::bundles::BundleStore;
use super::events::EventHub;
use super::runtime::Runtime;
use super::store::Store;
use crate::api::types::Health;

pub use error::ServerError;

/// What every handler can reach.
pub struct SharedState {
    /// The state database.
    pub store: Store,
    /// The event log.
    pub hub: EventHub,
    /// The machines.
    pub runtime: Runtime,
    /// Uploaded bundles.
    pub bundles: BundleStore,
    /// Flips to `true` when the daemon stops; long-lived streams end then.
    pub shutdown: watch::Receiver<bool>,
}

/// The state handle handlers receive.
pub type Shared = Arc<SharedState>;

/// The API's routes.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/health", get(health))
        .route("/events", get(events::stream))
        .route("/v1/events", get(events::stream))
        .route("/v1/apps", get(apps::list).post(apps::create))
        .route("/v1/apps/{name}", get(apps::show).delete(apps::destroy))
        .route(
            "/v1/apps/{name}/machines",
            get(machines::list).post(machines::create),
        )
        .route(
            "/v1/apps/{name}/machines/{id}",
            get(machines::show).delete(machines::destroy),
        )
        .route(
            "/v1/apps/{name}/machines/{id}/{action}",
            axum::routing::post(machines::act),
        )
        // Uploads stream to disk under the bundle store's own size limit.
        .route(
            "/v1/bundles/{digest}",
            axum::routing::head(bundles::head)
                .put(bundles::put)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .with_state(state)
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}
