//! Releases made from an earlier one: a rollback (an earlier release's config and bundle)
//! and a redeploy (the current one's again, after a secrets change).

use super::{Current, DeployError, Deployer};
use crate::api::types::DeployRequest;
use crate::config::model::Strategy;
use crate::daemon::store::releases;

impl Deployer {
    /// Starts a release that reuses release `target`'s config and bundle (default: the last
    /// complete release before the current one).
    pub async fn rollback(&self, app: &str, target: Option<u64>) -> Result<u64, DeployError> {
        let a = app.to_string();
        let current = self
            .store
            .app(a.clone())
            .await?
            .and_then(|x| x.current_release);
        let releases = self
            .store
            .run(move |conn, path| releases::list(conn, path, &a, 1000))
            .await?;
        let version = match target {
            Some(v) => {
                // `complete`, or `rolled_back` (it ran until a rollback replaced it).
                let status = releases.iter().find(|r| r.version == v).map(|r| &r.status);
                if let Some(status) =
                    status.filter(|s| !matches!(s.as_str(), "complete" | "rolled_back"))
                {
                    return Err(DeployError::NotRollbackable {
                        version: v,
                        status: status.clone(),
                    });
                }
                v
            }
            None => releases
                .iter()
                .filter(|r| r.status == "complete" && Some(r.version) != current)
                .map(|r| r.version)
                .find(|v| current.is_none_or(|c| *v < c))
                .ok_or_else(|| {
                    DeployError::NoRollbackTarget(
                        "there is no complete release before the current one".into(),
                    )
                })?,
        };
        let a = app.to_string();
        let source = self
            .store
            .run(move |conn, path| releases::source(conn, path, &a, version))
            .await?
            .ok_or_else(|| {
                DeployError::NoRollbackTarget(format!("release v{version} does not exist"))
            })?;
        self.start(
            app,
            DeployRequest {
                config: source.config,
                bundle: source.bundle,
                strategy: None,
                wait_timeout: None,
                description: Some(format!("rollback to v{version}")),
                rebuild: false,
                skip_smoke_checks: false,
            },
        )
        .await
    }

    /// Starts a release that runs the current one's config and files again (after a secrets
    /// change), so every machine restarts with the rolling strategy. `None` when the app has
    /// no release yet.
    pub async fn redeploy(
        &self,
        app: &str,
        description: String,
    ) -> Result<Option<u64>, DeployError> {
        let Some(Current { config, bundle, .. }) = self.current_source(app).await? else {
            return Ok(None);
        };
        let request = DeployRequest {
            config,
            bundle,
            strategy: Some(Strategy::Rolling),
            wait_timeout: None,
            description: Some(description),
            rebuild: false,
            skip_smoke_checks: false,
        };
        self.start(app, request).await.map(Some)
    }
}
