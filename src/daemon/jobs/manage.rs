//! Changing jobs: API jobs created and deleted, fly.toml jobs synced from a release,
//! jobs started and stopped. Each change and its `job.*` event commit together, and the
//! call returns once the schedule reflects it.

use super::spec::check_spec;
use super::Scheduler;
use crate::api::jobs::JobSpec;
use crate::api::types::kind;
use crate::daemon::events::{now, NewEvent};
use crate::daemon::store::jobs::{self as store_jobs, JobRecord};
use crate::daemon::store::StoreError;
use crate::daemon::store::{apps, releases};

/// Why a job change was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No job by that id.
    #[error("job {0} does not exist")]
    NotFound(u64),
    /// The app has a job of that name.
    #[error("app {app} already has a job named {name:?}")]
    Exists {
        /// The app.
        app: String,
        /// The name.
        name: String,
    },
    /// The definition is not valid.
    #[error("{0}")]
    Invalid(String),
    /// A cancel for a job with no run going.
    #[error("job {0} has no run going")]
    NotRunning(u64),
    /// Jobs from fly.toml change with a deploy, not through the API.
    #[error("job {0} comes from fly.toml [[jobs]]; remove it there and deploy")]
    FromConfig(u64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Scheduler {
    /// Adds a job through the API.
    pub async fn create(&self, app: &str, spec: JobSpec) -> Result<u64, JobError> {
        check_spec(&spec).map_err(JobError::Invalid)?;
        let a = app.to_string();
        let created = self
            .hub
            .change(move |tx, path| {
                if store_jobs::of_app(tx, path, &a)?
                    .iter()
                    .any(|j| j.spec.name == spec.name)
                {
                    let exists = JobError::Exists {
                        app: a,
                        name: spec.name,
                    };
                    return Ok((Err(exists), vec![]));
                }
                // A group the app's release does not have would never have a machine to
                // run beside (an app with no release yet may get it with its first).
                if let Some(group) = &spec.process_group {
                    let groups = match apps::current_release(tx, path, &a)? {
                        Some(v) => releases::specs(tx, path, &a, v)?.into_keys().collect(),
                        None => Vec::new(),
                    };
                    if !groups.is_empty() && !groups.contains(group) {
                        let problem = format!(
                            "process group {group:?} does not exist; the release has {}",
                            groups.join(", ")
                        );
                        return Ok((Err(JobError::Invalid(problem)), vec![]));
                    }
                }
                let (id, _) = store_jobs::upsert(tx, path, &a, "api", &spec, &now())?;
                let data = serde_json::json!({ "job": id, "name": spec.name, "source": "api" });
                Ok((Ok(id), vec![NewEvent::app(&a, kind::JOB_CREATED, data)]))
            })
            .await??;
        self.reload().await;
        Ok(created)
    }

    /// Makes the app's `config` jobs those of its new release: new ones are added, changed
    /// ones updated (keeping id, history and whether they are started), gone ones removed.
    pub async fn sync_config(
        &self,
        app: &str,
        jobs: &[crate::config::model::Job],
    ) -> Result<(), StoreError> {
        let specs: Vec<JobSpec> = jobs.iter().map(spec_from_config).collect();
        let a = app.to_string();
        self.hub
            .change(move |tx, path| {
                let mut events = Vec::new();
                for spec in &specs {
                    let (id, new) = store_jobs::upsert(tx, path, &a, "config", spec, &now())?;
                    if new {
                        let data =
                            serde_json::json!({ "job": id, "name": spec.name, "source": "config" });
                        events.push(NewEvent::app(&a, kind::JOB_CREATED, data));
                    }
                }
                let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
                for id in store_jobs::remove_config_jobs_except(tx, path, &a, &names)? {
                    events.push(NewEvent::app(
                        &a,
                        kind::JOB_DELETED,
                        serde_json::json!({ "job": id }),
                    ));
                }
                Ok(((), events))
            })
            .await?;
        self.reload().await;
        Ok(())
    }

    /// Starts (`true`) or stops scheduling a job; a run that is going is not interrupted.
    pub async fn set_enabled(&self, id: u64, enabled: bool) -> Result<(), JobError> {
        let job = self.get(id).await?;
        self.hub
            .change(move |tx, path| {
                store_jobs::set_enabled(tx, path, id, enabled)?;
                let data = serde_json::json!({ "job": id, "enabled": enabled });
                Ok(((), vec![NewEvent::app(&job.app, kind::JOB_UPDATED, data)]))
            })
            .await?;
        self.reload().await;
        Ok(())
    }

    /// Removes an API job and its history.
    pub async fn delete(&self, id: u64) -> Result<(), JobError> {
        let job = self.get(id).await?;
        if job.source == "config" {
            return Err(JobError::FromConfig(id));
        }
        self.hub
            .change(move |tx, path| {
                store_jobs::delete(tx, path, id)?;
                Ok((
                    (),
                    vec![NewEvent::app(
                        &job.app,
                        kind::JOB_DELETED,
                        serde_json::json!({ "job": id }),
                    )],
                ))
            })
            .await?;
        self.reload().await;
        Ok(())
    }

    /// One job's record.
    pub async fn get(&self, id: u64) -> Result<JobRecord, JobError> {
        self.store
            .run(move |conn, path| store_jobs::get(conn, path, id))
            .await?
            .ok_or(JobError::NotFound(id))
    }
}

/// A fly.toml `[[jobs]]` entry as a job spec.
fn spec_from_config(job: &crate::config::model::Job) -> JobSpec {
    JobSpec {
        name: job.name.clone(),
        command: job.command.clone(),
        method: job.method.clone(),
        path: job.path.clone(),
        schedule: job.schedule.clone(),
        time_zone: job.time_zone.clone(),
        interval: job.interval,
        timeout: job.timeout,
        retries: job.retries,
        process_group: job.processes.first().cloned(),
    }
}
