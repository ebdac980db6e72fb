//! The job scheduler: one task that knows when each enabled job is due (a cron schedule, or
//! an interval since its last start), starts runs (`run.rs`), and takes manual triggers. A
//! job never overlaps itself: a run due while the previous one goes on is recorded as
//! `skipped`. Jobs come from fly.toml `[[jobs]]` (synced when a release completes) or the API.

mod run;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::jobs::{Job, JobSpec};
use crate::api::types::kind;
use crate::daemon::edge::backends::Backends;
use crate::daemon::events::{now, EventHub, NewEvent};
use crate::daemon::secrets::SecretStore;
use crate::daemon::store::jobs::{self as store_jobs, JobRecord};
use crate::daemon::store::{Store, StoreError};

/// What the scheduler is asked.
enum Msg {
    /// Jobs changed in the store; answered once the schedule reflects it.
    Reload(oneshot::Sender<()>),
    /// Run this job now.
    Trigger(u64),
    /// A run of this job ended.
    Finished(u64),
}

/// What runs need from the daemon.
#[derive(Clone)]
pub struct Context {
    /// The state.
    pub store: Store,
    /// The event log.
    pub hub: EventHub,
    /// Secrets, opened into a command's environment.
    pub secrets: Arc<SecretStore>,
    /// Healthy machines, for HTTP jobs.
    pub backends: Backends,
    /// `<state>/apps`, where machines without a release directory work.
    pub apps_dir: PathBuf,
}

/// The handle handlers use; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    tx: mpsc::UnboundedSender<Msg>,
    shared: Arc<Shared>,
    hub: EventHub,
    store: Store,
}

/// What the scheduler task publishes for the API.
#[derive(Default)]
struct Shared {
    running: Mutex<HashSet<u64>>,
    next: Mutex<HashMap<u64, DateTime<Utc>>>,
}

impl Scheduler {
    /// Marks runs a crash interrupted as failed, then starts scheduling.
    pub async fn start(ctx: Context, shutdown: watch::Receiver<bool>) -> Result<Self, StoreError> {
        ctx.store
            .run(|conn, path| store_jobs::fail_interrupted(conn, path, &now()))
            .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let scheduler = Scheduler {
            tx,
            shared: Arc::default(),
            hub: ctx.hub.clone(),
            store: ctx.store.clone(),
        };
        tokio::spawn(scheduler.clone().run(ctx, rx, shutdown));
        Ok(scheduler)
    }

    /// Jobs changed: recompute what is due; returns once the schedule shows it, so an
    /// answer given after it is up to date.
    pub async fn reload(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Reload(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Starts a run of `id` now (skipped if one is going).
    pub fn trigger(&self, id: u64) {
        let _ = self.tx.send(Msg::Trigger(id));
    }

    /// A job as the API shows it, with its status, next run and last run.
    pub fn describe(&self, record: JobRecord, last_run: Option<crate::api::jobs::JobRun>) -> Job {
        let running = self.lock_running().contains(&record.id);
        let next = self
            .shared
            .next
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&record.id)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        Job {
            id: record.id,
            app: record.app,
            source: record.source,
            status: if running {
                "running"
            } else if record.enabled {
                "idle"
            } else {
                "stopped"
            }
            .to_string(),
            spec: record.spec,
            next_run: next,
            last_run,
        }
    }

    /// Every job of `app` (or of every app), as the API shows them.
    pub async fn list(&self, app: Option<&str>) -> Result<Vec<Job>, StoreError> {
        let app = app.map(str::to_string);
        let records = self
            .store
            .run(move |conn, path| {
                let jobs = match &app {
                    Some(app) => store_jobs::of_app(conn, path, app)?,
                    None => store_jobs::all(conn, path)?,
                };
                jobs.into_iter()
                    .map(|job| {
                        let last = store_jobs::runs(conn, path, job.id, 1)?.pop();
                        Ok((job, last))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .await?;
        Ok(records
            .into_iter()
            .map(|(job, last)| self.describe(job, last))
            .collect())
    }

    /// A job's runs, newest first.
    pub async fn runs(
        &self,
        id: u64,
        limit: u32,
    ) -> Result<Vec<crate::api::jobs::JobRun>, JobError> {
        self.get(id).await?;
        Ok(self
            .store
            .run(move |conn, path| store_jobs::runs(conn, path, id, limit))
            .await?)
    }

    /// How many jobs run now.
    pub fn running_count(&self) -> usize {
        self.lock_running().len()
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    async fn run(
        self,
        ctx: Context,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut jobs: HashMap<u64, JobRecord> = HashMap::new();
        let mut next: HashMap<u64, DateTime<Utc>> = HashMap::new();
        self.load(&ctx, &mut jobs, &mut next).await;
        loop {
            *self.shared.next.lock().unwrap_or_else(|p| p.into_inner()) = next.clone();
            let wake = next.values().min().copied();
            let sleep = match wake {
                Some(at) => (at - Utc::now()).to_std().unwrap_or_default(),
                None => std::time::Duration::from_secs(3600),
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {
                    let now_utc = Utc::now();
                    let due: Vec<u64> = next
                        .iter()
                        .filter(|(_, at)| **at <= now_utc)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in due {
                        let Some(job) = jobs.get(&id) else { continue };
                        self.start_run(&ctx, job, "schedule").await;
                        match next_after(&job.spec, now_utc) {
                            Some(at) => next.insert(id, at),
                            None => next.remove(&id),
                        };
                    }
                }
                msg = rx.recv() => match msg {
                    Some(Msg::Reload(done)) => {
                        self.load(&ctx, &mut jobs, &mut next).await;
                        *self.shared.next.lock().unwrap_or_else(|p| p.into_inner()) = next.clone();
                        let _ = done.send(());
                    }
                    Some(Msg::Trigger(id)) => {
                        if let Some(job) = jobs.get(&id) {
                            self.start_run(&ctx, job, "manual").await;
                        }
                    }
                    Some(Msg::Finished(id)) => {
                        self.lock_running().remove(&id);
                    }
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Reads every job; keeps the due time of jobs whose timing did not change.
    async fn load(
        &self,
        ctx: &Context,
        jobs: &mut HashMap<u64, JobRecord>,
        next: &mut HashMap<u64, DateTime<Utc>>,
    ) {
        let loaded = match ctx
            .store
            .run(|conn, path| store_jobs::all(conn, path))
            .await
        {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(error = %e, "could not load jobs");
                return;
            }
        };
        let mut fresh_jobs = HashMap::new();
        let mut fresh_next = HashMap::new();
        for job in loaded {
            let same_timing = jobs.get(&job.id).is_some_and(|old| {
                old.enabled == job.enabled
                    && old.spec.schedule == job.spec.schedule
                    && old.spec.interval == job.spec.interval
            });
            let kept = same_timing.then(|| next.get(&job.id).copied()).flatten();
            let due = match (job.enabled, kept) {
                (false, _) => None,
                (true, Some(at)) => Some(at),
                (true, None) => first_due(ctx, &job).await,
            };
            if let Some(at) = due {
                fresh_next.insert(job.id, at);
            }
            fresh_jobs.insert(job.id, job);
        }
        // Deleted jobs are forgotten; a run of one that is going still ends normally.
        *jobs = fresh_jobs;
        *next = fresh_next;
    }

    /// Records a skipped run when the job is still running, else starts one.
    async fn start_run(&self, ctx: &Context, job: &JobRecord, trigger: &'static str) {
        let busy = !self.lock_running().insert(job.id);
        if busy {
            let (id, app, name) = (job.id, job.app.clone(), job.spec.name.clone());
            let recorded = ctx
                .hub
                .change(move |tx, path| {
                    let run = store_jobs::insert_run(tx, path, id, trigger, "skipped", &now())?;
                    let data = serde_json::json!({ "job": id, "name": name, "run": run, "status": "skipped", "reason": "the previous run is still going" });
                    Ok(((), vec![NewEvent::app(&app, kind::JOB_RUN_FINISHED, data)]))
                })
                .await;
            if let Err(e) = recorded {
                tracing::warn!(job = id, error = %e, "could not record a skipped run");
            }
            return;
        }
        let (ctx, job, tx) = (ctx.clone(), job.clone(), self.tx.clone());
        tokio::spawn(async move {
            run::run(&ctx, &job, trigger).await;
            let _ = tx.send(Msg::Finished(job.id));
        });
    }
}

/// When a job first runs after the daemon (re)loads it: an interval counts from its last
/// start (or its creation), and one missed while the daemon was down runs at once.
async fn first_due(ctx: &Context, job: &JobRecord) -> Option<DateTime<Utc>> {
    let now_utc = Utc::now();
    if let Some(interval) = job.spec.interval {
        let id = job.id;
        let last = ctx
            .store
            .run(move |conn, path| store_jobs::last_start(conn, path, id))
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| job.created_at.clone());
        let base = DateTime::parse_from_rfc3339(&last)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now_utc);
        let at = base + chrono::Duration::milliseconds(interval.as_millis() as i64);
        return Some(at.max(now_utc));
    }
    next_after(&job.spec, now_utc)
}

/// The next time a job is due after `after`; `None` for a job that only runs when
/// triggered.
pub fn next_after(spec: &JobSpec, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Some(interval) = spec.interval {
        return Some(after + chrono::Duration::milliseconds(interval.as_millis() as i64));
    }
    let cron: croner::Cron = spec.schedule.as_deref()?.parse().ok()?;
    cron.find_next_occurrence(&after, false).ok()
}

/// Why a job definition is refused.
pub fn check_spec(spec: &JobSpec) -> Result<(), String> {
    let valid_name = !spec.name.is_empty()
        && spec.name.len() <= 63
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(format!(
            "job name {:?} must be 1-63 letters, digits, '-' or '_'",
            spec.name
        ));
    }
    match (&spec.command, &spec.path) {
        (Some(_), Some(_)) => return Err("a job runs a command or calls a path, not both".into()),
        (None, None) => return Err("a job needs a command or a path".into()),
        (None, Some(path)) if !path.starts_with('/') => {
            return Err(format!("path {path:?} must start with '/'"))
        }
        _ => {}
    }
    if spec.schedule.is_some() && spec.interval.is_some() {
        return Err("a job has a schedule or an interval, not both".into());
    }
    if let Some(schedule) = &spec.schedule {
        schedule
            .parse::<croner::Cron>()
            .map_err(|e| format!("schedule {schedule:?} is not a cron expression: {e}"))?;
    }
    if spec.interval.is_some_and(|i| i.as_millis() < 1000) {
        return Err("interval must be at least 1s".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            name: "cleanup".into(),
            command: Some("true".into()),
            method: None,
            path: None,
            schedule: None,
            interval: None,
            timeout: None,
            retries: None,
            process_group: None,
        }
    }

    #[test]
    fn intervals_and_cron_schedules_give_the_next_time() {
        let at = DateTime::parse_from_rfc3339("2026-11-24T10:07:30Z")
            .expect("time")
            .with_timezone(&Utc);
        let every = JobSpec {
            interval: Some("10m".parse().expect("duration")),
            ..spec()
        };
        assert_eq!(
            next_after(&every, at).expect("due").to_rfc3339(),
            "2026-11-24T10:17:30+00:00"
        );
        let nightly = JobSpec {
            schedule: Some("0 3 * * *".into()),
            ..spec()
        };
        assert_eq!(
            next_after(&nightly, at).expect("due").to_rfc3339(),
            "2026-11-25T03:00:00+00:00"
        );
        assert_eq!(next_after(&spec(), at), None, "manual jobs are never due");
    }

    #[test]
    fn bad_definitions_are_refused_with_the_reason() {
        assert!(check_spec(&spec()).is_ok());
        let both = JobSpec {
            path: Some("/x".into()),
            ..spec()
        };
        assert!(check_spec(&both).unwrap_err().contains("not both"));
        let bad_cron = JobSpec {
            schedule: Some("every day".into()),
            ..spec()
        };
        assert!(check_spec(&bad_cron)
            .unwrap_err()
            .contains("not a cron expression"));
        let bad_name = JobSpec {
            name: "no spaces".into(),
            ..spec()
        };
        assert!(check_spec(&bad_name).unwrap_err().contains("job name"));
    }
}

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
                    return Ok((Err(spec.name), vec![]));
                }
                let (id, _) = store_jobs::upsert(tx, path, &a, "api", &spec, &now())?;
                let data = serde_json::json!({ "job": id, "name": spec.name, "source": "api" });
                Ok((Ok(id), vec![NewEvent::app(&a, kind::JOB_CREATED, data)]))
            })
            .await?
            .map_err(|name| JobError::Exists {
                app: app.to_string(),
                name,
            })?;
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
        interval: job.interval,
        timeout: job.timeout,
        retries: job.retries,
        process_group: job.processes.first().cloned(),
    }
}
