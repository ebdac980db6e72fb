//! The end of a release: recorded `complete` or `failed` (asked again until the store
//! takes it), the edge put back to the release that keeps serving when it failed, the
//! failing machine's last log lines in the failure's event, and once it is live, no
//! machine of an earlier release left.

use std::time::Duration;

use super::rollout::Failure;
use super::Deployer;
use crate::api::types::kind;
use crate::daemon::events::{now, NewEvent};
use crate::daemon::runtime::Action;
use crate::daemon::store::{self, releases};

/// How soon, then at most how often, the end of a release is recorded again while the
/// store takes no write.
const RECORD_END_RETRY_FIRST: Duration = Duration::from_millis(500);
const RECORD_END_RETRY_MAX: Duration = Duration::from_secs(10);

impl Deployer {
    /// Records the release's end and what follows from it.
    pub(super) async fn finish(&self, app: &str, version: u64, outcome: Result<(), Failure>) {
        // A rollout the shutdown cut short is undone by the next start, from what the store
        // says it changed (`interrupted.rs`): recorded `failed` now, the old machines it
        // stopped would stay stopped.
        if outcome.is_err() && self.runtime.is_stopping() {
            tracing::info!(
                app,
                version,
                "release v{version} is left rolling out: lakeflyd is stopping, and its next start undoes the rollout"
            );
            return;
        }
        let (status, kind, data) = match outcome {
            Ok(()) => (
                "complete",
                kind::DEPLOY_COMPLETE,
                serde_json::json!({ "version": version }),
            ),
            Err(failure) => {
                let logs = match &failure.machine {
                    Some(machine) => self.last_lines(app, machine, &failure.seen_at).await,
                    None => Vec::new(),
                };
                (
                    "failed",
                    kind::DEPLOY_FAILED,
                    serde_json::json!({
                        "version": version,
                        "reason": failure.reason,
                        "machine": failure.machine,
                        "check_output": failure.check_output,
                        "logs": logs,
                    }),
                )
            }
        };
        if status == "failed" {
            // The edge goes back to the release that keeps serving.
            if let Err(e) = self.apply_edge(app).await {
                tracing::warn!(app, error = %e, "could not restore the edge settings");
            }
        }
        self.finished
            .get_or_create(&crate::daemon::metrics::DeployLabels {
                outcome: status.to_string(),
            })
            .inc();
        // Until its end is recorded the release counts as rolling out, and the app takes
        // no deploy, scale or restart: a store that cannot take it (a full disk) is asked
        // again until it does, rather than leave the app locked until lakeflyd restarts
        // (whose start would record it failed).
        let mut retry = RECORD_END_RETRY_FIRST;
        let mut shutdown = self.shutdown.clone();
        loop {
            let (app_name, data) = (app.to_string(), data.clone());
            let recorded = self
                .hub
                .change(move |tx, path| {
                    releases::finish(tx, path, &app_name, version, status, &now())?;
                    let mut data = data;
                    if status == "failed" {
                        // The release that keeps running, if one ever did.
                        data["running"] = store::apps::current_release(tx, path, &app_name)?.into();
                    }
                    Ok(((), vec![NewEvent::app(&app_name, kind, data)]))
                })
                .await;
            let Err(e) = recorded else {
                if retry > RECORD_END_RETRY_FIRST {
                    tracing::info!(
                        app,
                        version,
                        status,
                        "the end of the release is recorded now"
                    );
                }
                break;
            };
            if retry == RECORD_END_RETRY_FIRST {
                tracing::error!(app, version, status, error = %e, "could not record the end of a release; trying again until the store takes it (the app takes no deploy meanwhile)");
            }
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                _ = shutdown.wait_for(|stopping| *stopping) => return,
            }
            retry = (retry * 2).min(RECORD_END_RETRY_MAX);
        }
        if status == "complete" {
            self.remove_strays(app, version).await;
        }
        self.remove_unused_release_files(app).await;
    }

    /// Destroys the app's machines of earlier releases once release `version` is current.
    /// The rollout replaced every machine there was when it began; one of an earlier
    /// release now was made while it rolled out (the edge starts one for a request to a
    /// group scaled to zero, of the release then current) and would serve old code until
    /// the next deploy. From here on the edge makes machines of `version`.
    async fn remove_strays(&self, app: &str, version: u64) {
        let machines = match self.runtime.list(app).await {
            Ok(machines) => machines,
            Err(e) => {
                tracing::warn!(app, error = %e, "could not look for machines of earlier releases");
                return;
            }
        };
        let strays = machines
            .iter()
            .filter(|m| m.release_version.is_some_and(|v| v < version));
        for machine in strays {
            let id = &machine.id;
            tracing::info!(app, machine = %id, version, "destroying a machine of an earlier release, made while release v{version} rolled out");
            if let Err(e) = self.runtime.act(app, id, Action::Destroy).await {
                tracing::warn!(app, machine = %id, error = %e, "could not destroy a machine of an earlier release");
            }
        }
    }

    /// The machine's last log lines up to its failure, not its shutdown's noise after it
    /// (a Python traceback for the SIGINT that stopped it would hide why it failed).
    async fn last_lines(&self, app: &str, machine: &str, until: &str) -> Vec<String> {
        let query = store::logs::LogQuery {
            machine: Some(machine.to_string()),
            until: Some(until.to_string()),
            limit: 10,
            ..Default::default()
        };
        let app = app.to_string();
        self.store
            .run(move |conn, path| store::logs::read(conn, path, &app, &query))
            .await
            .map(|lines| lines.into_iter().map(|l| l.line).collect())
            .unwrap_or_default()
    }
}
