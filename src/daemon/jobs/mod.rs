//! The job scheduler: one task that knows when each enabled job is due (a cron schedule, or
//! an interval since its last start), starts runs (`run.rs`), and takes manual triggers. A
//! job never overlaps itself: a run due while the previous one goes on is recorded as
//! `skipped`. Jobs come from fly.toml `[[jobs]]` (synced when a release completes) or the API.

mod manage;
mod run;
mod spec;

pub use self::manage::JobError;
pub use self::spec::{check_spec, next_after};

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::jobs::Job;
use crate::api::types::kind;
use crate::daemon::cancel::{self, Canceller};
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
    /// The edge, which picks (and wakes) the machine an HTTP job calls.
    pub edge: crate::daemon::edge::Edge,
    /// `<state>/apps`, where machines without a release directory work.
    pub apps_dir: PathBuf,
    /// `<state>/volumes`: a command job sees the app's mounts as its machines do.
    pub volumes_dir: PathBuf,
    /// Where a running command is noted, so a crash does not leave it behind.
    pub oneoff_pids: crate::daemon::runtime::oneoff_pids::OneOffPids,
    /// The app's log, which a command's output joins as it is written.
    pub logs: crate::daemon::runtime::logs::LogSink,
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
    /// The jobs with a run going, each with what stops it.
    running: Mutex<HashMap<u64, Canceller>>,
    next: Mutex<HashMap<u64, DateTime<Utc>>>,
}

impl Scheduler {
    /// Marks runs a crash interrupted as failed, then starts scheduling.
    pub async fn start(ctx: Context, shutdown: watch::Receiver<bool>) -> Result<Self, StoreError> {
        // Not fatal (a full disk): those runs only show as running a while longer, and a
        // daemon that will not start runs nothing at all.
        let marked = ctx
            .store
            .run(|conn, path| store_jobs::fail_interrupted(conn, path, &now()))
            .await;
        if let Err(e) = marked {
            tracing::error!(error = %e, "could not mark job runs a crash interrupted as failed");
        }
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

    /// Stops job `id`'s run that is going (a command: SIGTERM, then SIGKILL; a call:
    /// dropped); it ends `cancelled`, and the job stays scheduled.
    pub fn cancel_run(&self, id: u64) -> Result<(), JobError> {
        match self.lock_running().get(&id) {
            Some(run) => {
                run.cancel("cancelled by `lakefly jobs cancel`");
                Ok(())
            }
            None => Err(JobError::NotRunning(id)),
        }
    }

    /// A job as the API shows it, with its status, next run and last run.
    pub fn describe(&self, record: JobRecord, last_run: Option<crate::api::jobs::JobRun>) -> Job {
        let running = self.lock_running().contains_key(&record.id);
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

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Canceller>> {
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
                    self.publish(&next);
                }
                msg = rx.recv() => match msg {
                    Some(Msg::Reload(done)) => {
                        self.load(&ctx, &mut jobs, &mut next).await;
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
        // Deleted jobs are forgotten, and a run of one that is going is stopped: its app
        // may be gone, and its secrets with it.
        for (id, run) in self.lock_running().iter() {
            if !fresh_jobs.contains_key(id) {
                run.cancel("its job was deleted");
            }
        }
        *jobs = fresh_jobs;
        *next = fresh_next;
        self.publish(next);
    }

    /// Makes the due times visible to the API (`next_run`); called where they change.
    fn publish(&self, next: &HashMap<u64, DateTime<Utc>>) {
        *self.shared.next.lock().unwrap_or_else(|p| p.into_inner()) = next.clone();
    }

    /// Records a skipped run when the job is still running, else starts one.
    async fn start_run(&self, ctx: &Context, job: &JobRecord, trigger: &'static str) {
        let cancel = match self.lock_running().entry(job.id) {
            Entry::Occupied(_) => None,
            Entry::Vacant(slot) => {
                let (canceller, cancel) = cancel::pair();
                slot.insert(canceller);
                Some(cancel)
            }
        };
        let Some(cancel) = cancel else {
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
        };
        let (ctx, job, tx) = (ctx.clone(), job.clone(), self.tx.clone());
        tokio::spawn(async move {
            run::run(&ctx, &job, trigger, cancel).await;
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
