//! The HTTP API: one handler file per resource and one router.

mod apps;
pub mod auth;
mod console;
mod cors;
pub mod local_users;
pub use cors::parse_origin;
mod bundles;
mod deploys;
mod error;
mod events;
mod exec;
mod extract;
mod hostnames;
mod jobs;
mod logs;
mod machines;
mod metrics_targets;
mod proxy;
mod secrets;
pub mod serve;
mod socket_owner;
mod stopping;
pub mod tls_listener;
mod upgrade;
mod volumes;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::watch;

use super::bundles::BundleStore;
use super::deploy::Deployer;
use super::events::EventHub;
use super::metrics::Metrics;
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
    /// Figures for `/metrics`.
    pub metrics: Metrics,
    /// Releases.
    pub deployer: Deployer,
    /// Secrets, sealed.
    pub secrets: Arc<crate::daemon::secrets::SecretStore>,
    /// Uploaded bundles.
    pub bundles: BundleStore,
    /// The job scheduler.
    pub jobs: crate::daemon::jobs::Scheduler,
    /// The edge, which forgets an app when it is destroyed.
    pub edge: super::edge::Edge,
    /// The API's own certificates, when it serves HTTPS (their expiry is in `/metrics`).
    pub api_tls: Option<Arc<super::server_tls::ServerTls>>,
    /// Flips to `true` when the daemon stops; long-lived streams end then.
    pub shutdown: watch::Receiver<bool>,
}

/// The state handle handlers receive.
pub type Shared = Arc<SharedState>;

impl SharedState {
    /// Fails with 404 unless the app exists: the first step of every `/v1/apps/{app}/...`.
    async fn require_app(&self, app: &str) -> Result<(), ServerError> {
        match self.store.app(app.to_string()).await? {
            Some(_) => Ok(()),
            None => Err(ServerError::AppNotFound(app.to_string())),
        }
    }
}

/// The API's routes, behind the token check.
pub fn router(state: Shared, access: auth::Access, cors_origins: &[String]) -> Router {
    let router = routes(state).layer(axum::middleware::from_fn_with_state(
        access,
        auth::require_token,
    ));
    // Outside the token check: a preflight carries no token and must still be answered.
    match cors::layer(cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

fn routes(state: Shared) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/metrics/targets", get(metrics_targets::list))
        .route("/events", get(events::stream))
        .route("/v1/events", get(events::stream))
        .route("/v1/apps", get(apps::list).post(apps::create))
        .route("/v1/apps/{name}", get(apps::show).delete(apps::destroy))
        .route("/v1/apps/{name}/logs", get(logs::read))
        .route("/v1/apps/{name}/jobs", get(jobs::list).post(jobs::create))
        .route("/v1/jobs/{id}", get(jobs::show).delete(jobs::delete))
        .route("/v1/jobs/{id}/runs", get(jobs::runs))
        .route("/v1/jobs/{id}/{action}", axum::routing::post(jobs::act))
        .route("/status", get(jobs::status))
        .route("/jobs", get(jobs::lsh_list).post(jobs::lsh_create))
        .route("/jobs/{id}/{action}", axum::routing::post(jobs::act))
        .route("/v1/apps/{name}/status", get(apps::status))
        .route(
            "/v1/apps/{name}/deploys",
            axum::routing::post(deploys::create),
        )
        .route("/v1/apps/{name}/releases", get(deploys::list))
        .route(
            "/v1/apps/{name}/releases/{version}/config",
            get(deploys::release_config),
        )
        .route(
            "/v1/apps/{name}/rollbacks",
            axum::routing::post(deploys::rollback),
        )
        .route(
            "/v1/apps/{name}/cancels",
            axum::routing::post(deploys::cancel),
        )
        .route(
            "/v1/apps/{name}/scale",
            get(deploys::scale_show).post(deploys::scale),
        )
        .route(
            "/v1/apps/{name}/restart",
            axum::routing::post(deploys::restart),
        )
        .route(
            "/v1/apps/{name}/scale/memory",
            axum::routing::post(deploys::scale_memory),
        )
        .route(
            "/v1/apps/{name}/scale/vm",
            axum::routing::post(deploys::scale_vm),
        )
        .route(
            "/v1/apps/{name}/certs",
            get(hostnames::list).post(hostnames::add),
        )
        .route(
            "/v1/apps/{name}/certs/{hostname}",
            get(hostnames::show).delete(hostnames::remove),
        )
        .route(
            "/v1/apps/{name}/secrets",
            get(secrets::list).post(secrets::update),
        )
        .route(
            "/v1/apps/{name}/secrets/deploy",
            axum::routing::post(secrets::deploy),
        )
        .route(
            "/v1/apps/{name}/machines",
            get(machines::list).post(machines::create),
        )
        .route("/v1/apps/{name}/checks", get(machines::checks))
        .route("/v1/volumes", get(volumes::list_all))
        .route(
            "/v1/apps/{name}/volumes",
            get(volumes::list).post(volumes::create),
        )
        .route(
            "/v1/apps/{name}/volumes/{volume}",
            axum::routing::delete(volumes::destroy),
        )
        .route(
            "/v1/apps/{name}/machines/{id}",
            get(machines::show).delete(machines::destroy),
        )
        .route("/v1/machines/{id}", get(machines::find))
        .route(
            "/v1/apps/{name}/machines/{id}/exec",
            // Room for the largest stdin, base64 (4 bytes for 3), and the rest.
            axum::routing::post(exec::exec).layer(axum::extract::DefaultBodyLimit::max(
                crate::api::types::ExecRequest::MAX_STDIN / 3 * 4 + 64 * 1024,
            )),
        )
        .route(
            "/v1/apps/{name}/machines/{id}/console",
            get(console::console),
        )
        .route("/v1/apps/{name}/machines/{id}/proxy", get(proxy::proxy))
        .route(
            "/v1/apps/{name}/machines/{id}/signal",
            axum::routing::post(machines::signal),
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
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            stopping::refuse_changes,
        ))
        .with_state(state)
}

/// A request no route takes: a client newer than this daemon, or a typo in a script.
async fn no_route(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> impl axum::response::IntoResponse {
    unknown(axum::http::StatusCode::NOT_FOUND, &method, &uri)
}

/// A known path with a method it does not take.
async fn no_method(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> impl axum::response::IntoResponse {
    unknown(axum::http::StatusCode::METHOD_NOT_ALLOWED, &method, &uri)
}

/// The JSON error for a request the API does not have, saying which daemon version answered.
fn unknown(
    status: axum::http::StatusCode,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
) -> (axum::http::StatusCode, Json<crate::api::types::ApiError>) {
    let version = env!("CARGO_PKG_VERSION");
    (
        status,
        Json(crate::api::types::ApiError {
            error: format!("lakeflyd {version} has no request {method} {}", uri.path()),
            code: "no_route".into(),
            hint: Some(format!(
                "a lakefly newer than lakeflyd {version} may ask for it: use the same version of both"
            )),
        }),
    )
}

/// `GET /metrics`: Prometheus text, machine gauges read from the store now.
async fn metrics(
    axum::extract::State(state): axum::extract::State<Shared>,
) -> Result<impl axum::response::IntoResponse, ServerError> {
    let (machines, jobs) = state
        .store
        .run(|conn, path| {
            Ok((
                super::store::machines::counts(conn, path)?,
                super::store::jobs::runs_so_far(conn, path)?,
            ))
        })
        .await?;
    // Read now, so a certificate reloaded by SIGHUP shows at once.
    let api_certificates = (state.api_tls.iter())
        .flat_map(|tls| tls.expiries())
        .filter_map(|(files, expires)| Some((files.cert.display().to_string(), expires?)))
        .collect();
    let scraped = super::metrics::Scraped {
        machines,
        jobs,
        edge_certificates: state.edge.certificate_expiries(),
        api_certificates,
        subscribers: state.hub.subscribers() as i64,
    };
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.scrape(scraped),
    ))
}

async fn health(axum::extract::State(state): axum::extract::State<Shared>) -> Json<Health> {
    // Machines and the edge run on a full disk; what the daemon cannot record, and the
    // deploys it cannot take, are for its operator to know about.
    let mut problems = Vec::new();
    if state.store.disk_full_now().await {
        problems.push(format!(
            "the disk is full: {} takes no writes, so changes go unrecorded and deploys are refused; free space there",
            state.store.dir().display()
        ));
    }
    for thread in state.edge.heartbeats().silent(Duration::ZERO) {
        problems.push(format!(
            "edge thread {} has not run its event loop for {}s: connections it took hang; restart lakeflyd (under systemd its watchdog does)",
            thread.slot,
            thread.for_.as_secs()
        ));
    }
    let stopping = state.runtime.is_stopping();
    if stopping {
        problems.push(
            "its machines are being stopped, and it takes no change until it is started again"
                .into(),
        );
    }
    Json(Health {
        status: match (stopping, problems.is_empty()) {
            (true, _) => "stopping",
            (false, true) => "ok",
            (false, false) => "degraded",
        }
        .into(),
        problems,
        version: env!("CARGO_PKG_VERSION").into(),
        edge: Some(state.edge.addr.to_string()),
        domain: Some(state.edge.domain().to_string()),
    })
}
