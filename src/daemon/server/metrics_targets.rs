//! `GET /v1/metrics/targets`: the apps' `[[metrics]]` endpoints as Prometheus HTTP service
//! discovery (`http_sd_configs`). Machines listen on ports lakeflyd hands out, which change
//! with every deploy, restart and scale; Prometheus asks here (every minute by default)
//! and scrapes each started machine where it listens now, its series labelled with the
//! app, process group and machine, as Fly's own scraping labels them. A metrics port the
//! app binds itself (not its `$PORT`) is one per host: it is listed for the machine that
//! listens on it, so no machine's figures are taken for another's.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::error::ServerError;
use super::extract::ApiQuery;
use super::Shared;
use crate::api::types::{Machine, MachineState, MetricsTarget};
use crate::config::{plan, AppConfig};
use crate::daemon::runtime::listening;
use crate::daemon::store::{machines, releases};

/// Query parameters.
#[derive(Debug, Deserialize)]
pub struct TargetsQuery {
    /// Only this app's machines.
    app: Option<String>,
}

/// `GET /v1/metrics/targets?app=`: one target per started machine and `[[metrics]]`
/// endpoint of its release.
pub async fn list(
    State(state): State<Shared>,
    ApiQuery(query): ApiQuery<TargetsQuery>,
) -> Result<Json<Vec<MetricsTarget>>, ServerError> {
    if let Some(app) = &query.app {
        state.require_app(app).await?;
    }
    let candidates = state
        .store
        .run(move |conn, path| {
            let started = machines::all_live(conn, path)?
                .into_iter()
                .filter(|record| {
                    record.machine.state == MachineState::Started
                        && query
                            .app
                            .as_ref()
                            .is_none_or(|app| *app == record.machine.app)
                });
            // Each release's config is read once, however many machines run it.
            let mut configs: HashMap<(String, u64), Option<AppConfig>> = HashMap::new();
            let mut targets = Vec::new();
            for record in started {
                let machine = &record.machine;
                let Some(version) = machine.release_version else {
                    continue;
                };
                let key = (machine.app.clone(), version);
                let config = match configs.get(&key) {
                    Some(config) => config,
                    None => {
                        let source = releases::source(conn, path, &machine.app, version)?;
                        configs
                            .entry(key)
                            .or_insert(source.map(|source| source.config))
                    }
                };
                let Some(config) = config else { continue };
                for metrics in plan::metrics_for(config, &machine.process_group) {
                    // The internal port is the machine's `$PORT`; another is bound as is.
                    let own = Some(metrics.port) != machine.spec.internal_port;
                    let port = if own {
                        Some(metrics.port)
                    } else {
                        machine.port
                    };
                    let Some(port) = port else { continue };
                    let https = metrics.extra.get("https") == Some(&serde_json::Value::Bool(true));
                    // Whose the port is, for a port the app binds itself.
                    let listener = own.then_some((machine.pid, port));
                    targets.push((target(machine, port, &metrics.path, https), listener));
                }
            }
            Ok(targets)
        })
        .await?;
    let targets = tokio::task::spawn_blocking(move || {
        candidates
            .into_iter()
            .filter(|(_, listener)| match listener {
                Some((pid, port)) => pid.is_some_and(|pid| listens_on(pid, *port)),
                None => true,
            })
            .map(|(target, _)| target)
            .collect()
    })
    .await
    .unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not read which machines listen on their metrics ports");
        Vec::new()
    });
    Ok(Json(targets))
}

/// Whether the processes of the machine led by `pid` listen on TCP `port`.
fn listens_on(pid: u32, port: u16) -> bool {
    listening::sockets(pid).iter().any(|at| at.port() == port)
}

/// The target for `machine`'s endpoint at `port` and `path` (over HTTPS: fly.toml's
/// `https = true`).
fn target(machine: &Machine, port: u16, path: &str, https: bool) -> MetricsTarget {
    let mut labels = BTreeMap::from([
        ("__metrics_path__".to_string(), path.to_string()),
        ("app".to_string(), machine.app.clone()),
        ("process_group".to_string(), machine.process_group.clone()),
        ("instance".to_string(), machine.id.clone()),
    ]);
    if https {
        labels.insert("__scheme__".to_string(), "https".to_string());
    }
    MetricsTarget {
        // Machines listen on the host's loopback, where the edge reaches them too.
        targets: vec![format!("127.0.0.1:{port}")],
        labels,
    }
}
