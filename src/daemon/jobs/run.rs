//! One run of a job: its attempts (one, plus `retries` after failures), each bounded by the
//! job's timeout, recorded with its outcome and the tail of its output. A command runs like
//! a release command of the app's current release (its directory, env and secrets); an
//! HTTP job calls a machine of the job's group that the edge picks, as for a request (a
//! stopped one started when the app auto-starts, and counted busy during the call).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Transaction;

use super::Context;
use crate::api::types::{kind, MachineSpec};
use crate::daemon::cancel::Cancel;
use crate::daemon::events::{now, NewEvent};
use crate::daemon::excerpt;
use crate::daemon::runtime::logs::LogLine;
use crate::daemon::runtime::{environment, mounts, oneoff};
use crate::daemon::store::jobs::{self as store_jobs, JobRecord, RunEnd};
use crate::daemon::store::{apps, releases, StoreError};

/// Fly-like default limit on one attempt.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Pause before a retry.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Output kept per run.
const OUTPUT_LIMIT: usize = 4096;
/// The status of a run stopped before it ended (`jobs cancel`, or its job deleted).
const CANCELLED: &str = "cancelled";

/// Runs `job` once (with its retries) and records it from start to end; `cancel` stops it
/// (a command: SIGTERM, then SIGKILL).
pub async fn run(ctx: &Context, job: &JobRecord, trigger: &'static str, mut cancel: Cancel) {
    let (id, app, name) = (job.id, job.app.clone(), job.spec.name.clone());
    let started = ctx
        .hub
        .change(move |tx, path| {
            let run = store_jobs::insert_run(tx, path, id, trigger, "running", &now())?;
            let data =
                serde_json::json!({ "job": id, "name": name, "run": run, "trigger": trigger });
            Ok((run, vec![NewEvent::app(&app, kind::JOB_RUN_STARTED, data)]))
        })
        .await;
    // A run the store cannot record (a full disk) runs all the same, as cron's would: the
    // job may be the one that frees the space. It has no run id and no history.
    let run_id = match started {
        Ok(run) => Some(run),
        Err(e) => {
            tracing::error!(job = id, error = %e, "could not record the start of a run; it runs unrecorded");
            None
        }
    };
    let retries = job.spec.retries.unwrap_or(0);
    let timeout = job.spec.timeout.map_or(DEFAULT_TIMEOUT, |t| t.to_std());
    let mut end = RunEnd::default();
    for attempt in 1..=retries + 1 {
        if attempt > 1 {
            // A cancel meanwhile ends the run here, rather than in a new attempt.
            tokio::select! {
                () = tokio::time::sleep(RETRY_DELAY) => {}
                why = cancel.requested() => {
                    end.status = CANCELLED.into();
                    let said = format!("{}\nstopped before attempt {attempt}, {why}", end.output);
                    end.output = excerpt::tail(said, OUTPUT_LIMIT);
                    break;
                }
            }
            record_retry(ctx, job, run_id, attempt, retries + 1, &end).await;
        }
        end = attempt_once(ctx, job, run_id, timeout, &mut cancel).await;
        end.attempts = attempt;
        if end.status == "succeeded" || end.status == CANCELLED {
            break;
        }
    }
    let Some(run_id) = run_id else {
        tracing::warn!(job = id, status = %end.status, attempts = end.attempts, "an unrecorded run ended");
        return;
    };
    let data = serde_json::json!({
        "job": id,
        "name": job.spec.name,
        "run": run_id,
        "status": end.status,
        "attempts": end.attempts,
        "exit_code": end.exit_code,
        "http_status": end.http_status,
    });
    let change =
        move |tx: &Transaction, path: &Path| store_jobs::finish_run(tx, path, run_id, &end, &now());
    record(ctx, job, kind::JOB_RUN_FINISHED, data, change).await;
}

/// Records that run `run` of `job` begins attempt `attempt` of `attempts` after `failed`,
/// with its event, so a run retrying shows as such while it goes on.
async fn record_retry(
    ctx: &Context,
    job: &JobRecord,
    run: Option<u64>,
    attempt: u32,
    attempts: u32,
    failed: &RunEnd,
) {
    let id = job.id;
    let Some(run) = run else {
        // No event to log it: the log says it all the same.
        tracing::warn!(job = id, attempt, status = %failed.status, "an unrecorded run's attempt failed; retrying");
        return;
    };
    let data = serde_json::json!({
        "job": id,
        "name": job.spec.name,
        "run": run,
        "attempt": attempt,
        "attempts": attempts,
        "status": failed.status,
        "exit_code": failed.exit_code,
        "http_status": failed.http_status,
    });
    let change = move |tx: &Transaction, path: &Path| store_jobs::retry_run(tx, path, run, attempt);
    record(ctx, job, kind::JOB_RUN_RETRYING, data, change).await;
}

/// Records a change of one of `job`'s runs with its event (of kind `event`, with `data`);
/// one the store cannot take is logged, and the run goes on all the same.
async fn record<F>(
    ctx: &Context,
    job: &JobRecord,
    event: &'static str,
    data: serde_json::Value,
    change: F,
) where
    F: FnOnce(&Transaction, &Path) -> Result<(), StoreError> + Send + 'static,
{
    let app = job.app.clone();
    let recorded = ctx
        .hub
        .change(move |tx, path| {
            change(tx, path)?;
            Ok(((), vec![NewEvent::app(&app, event, data)]))
        })
        .await;
    if let Err(e) = recorded {
        tracing::error!(job = job.id, error = %e, event, "could not record a change of a run");
    }
}

async fn attempt_once(
    ctx: &Context,
    job: &JobRecord,
    run: Option<u64>,
    timeout: Duration,
    cancel: &mut Cancel,
) -> RunEnd {
    let release = match current_release(ctx, job).await {
        Ok(release) => release,
        Err(reason) => return failed(reason),
    };
    let stop = cancel.requested();
    match (&job.spec.command, &job.spec.path) {
        (Some(command), _) => run_command(ctx, job, run, command, release, timeout, stop).await,
        (None, Some(path)) => call(ctx, job, &release.group, path, timeout, stop).await,
        (None, None) => failed("the job has neither a command nor a path".into()),
    }
}

/// The group a job uses in the app's current release, with its machine spec.
struct Release {
    version: u64,
    group: String,
    spec: MachineSpec,
}

async fn current_release(ctx: &Context, job: &JobRecord) -> Result<Release, String> {
    let (app, wanted) = (job.app.clone(), job.spec.process_group.clone());
    let found = ctx
        .store
        .run(move |conn, path| {
            let Some(version) = apps::current_release(conn, path, &app)? else {
                return Ok(None);
            };
            let config = releases::source(conn, path, &app, version)?.map(|s| s.config);
            let specs = releases::specs(conn, path, &app, version)?;
            Ok(Some((version, config, specs)))
        })
        .await
        .map_err(|e| e.to_string())?;
    let Some((version, config, mut specs)) = found else {
        return Err(format!(
            "app {} has no release yet; deploy it first",
            job.app
        ));
    };
    let group = wanted
        .or_else(|| config.map(|c| c.default_group().to_string()))
        .unwrap_or_else(|| crate::config::model::DEFAULT_GROUP.to_string());
    match specs.remove(&group) {
        Some(spec) => Ok(Release {
            version,
            group,
            spec,
        }),
        None => Err(format!(
            "process group {group:?} is not in release v{version}; it has {}",
            specs.keys().cloned().collect::<Vec<_>>().join(", ")
        )),
    }
}

async fn run_command(
    ctx: &Context,
    job: &JobRecord,
    run: Option<u64>,
    command: &str,
    release: Release,
    timeout: Duration,
    stop: impl std::future::Future<Output = String>,
) -> RunEnd {
    let secrets = match ctx.secrets.env_of(&job.app, Some(release.version)).await {
        Ok(secrets) => secrets,
        Err(e) => return failed(e),
    };
    let mut env: BTreeMap<String, String> = release.spec.env.clone();
    env.extend(secrets.clone());
    let platform = environment::platform(&job.app, Some(release.version), None, &release.spec);
    let run_var = run.map(|run| ("LAKEFLY_JOB_RUN", run.to_string()));
    for (name, value) in platform
        .into_iter()
        .chain([("LAKEFLY_JOB_NAME", job.spec.name.clone())])
        .chain(run_var)
    {
        env.insert(name.to_string(), value);
    }
    let dir = environment::workdir(&ctx.apps_dir, &job.app, &release.spec);
    // The app's volumes, as its machines see them: a nightly job over the app's data finds
    // it where the app keeps it (`DATA_DIR`).
    let mounts = &release.spec.mounts;
    if let Err(e) = mounts::prepare(&ctx.volumes_dir, &job.app, &dir, mounts, &mut env) {
        return failed(e.to_string());
    }
    // Its output joins the app's log as it is written (`lakefly logs` shows it as from
    // `job:NAME#RUN`), secrets hidden as in machines' lines.
    let (live, mut lines) = tokio::sync::mpsc::channel::<oneoff::LiveLine>(64);
    let logger = {
        let (sink, app) = (ctx.logs.clone(), Arc::<str>::from(job.app.as_str()));
        let source: Arc<str> = match run {
            Some(run) => format!("job:{}#{run}", job.spec.name),
            None => format!("job:{}#unrecorded", job.spec.name),
        }
        .into();
        let redactor = crate::secret::Redactor::new(secrets.values().map(String::as_str));
        tokio::spawn(async move {
            while let Some(oneoff::LiveLine { stream, line }) = lines.recv().await {
                let line = redactor.redact(&line).into_owned();
                let (app, machine) = (app.clone(), source.clone());
                (sink.push(LogLine {
                    time: now(),
                    app,
                    machine,
                    stream,
                    line,
                }))
                .await;
            }
        })
    };
    let pids = &ctx.oneoff_pids;
    let mut outcome = oneoff::run_until(pids, command, &dir, &env, timeout, Some(live), stop).await;
    let _ = logger.await;
    // Its last lines are kept in the run's history.
    outcome.redact(&secrets);
    let status = if outcome.success {
        "succeeded"
    } else if outcome.stopped.is_some() {
        CANCELLED
    } else if outcome.timed_out {
        "timed_out"
    } else {
        "failed"
    };
    let mut output = outcome.tail.join("\n");
    if !outcome.success {
        output = format!("{output}\n({})", outcome.summary)
            .trim_start()
            .to_string();
    }
    RunEnd {
        status: status.into(),
        attempts: 0,
        exit_code: outcome.exit_code,
        http_status: None,
        output: excerpt::tail(output, OUTPUT_LIMIT),
    }
}

async fn call(
    ctx: &Context,
    job: &JobRecord,
    group: &str,
    path: &str,
    timeout: Duration,
    stop: impl std::future::Future<Output = String>,
) -> RunEnd {
    // Held until the call ends: the machine counts as busy meanwhile.
    let Some(lease) = ctx.edge.lease_for_call(&job.app, group).await else {
        return failed(format!(
            "no healthy machine of group {group:?} to call {path} on"
        ));
    };
    let backend = &lease.backend;
    let port = backend.dial_port(backend.spec.internal_port);
    let method =
        reqwest::Method::from_bytes(job.spec.method.as_deref().unwrap_or("GET").as_bytes())
            .unwrap_or(reqwest::Method::GET);
    let client = match crate::proxy_env::loopback_client(timeout) {
        Ok(client) => client,
        Err(e) => return failed(format!("cannot build an HTTP client: {e}")),
    };
    let url = format!("http://127.0.0.1:{port}{path}");
    let request = client
        .request(method.clone(), &url)
        .header("X-Lakefly-Job", &job.spec.name)
        .send();
    let sent = tokio::select! {
        sent = request => sent,
        why = stop => {
            return RunEnd {
                status: CANCELLED.into(),
                output: format!("{method} {path}: stopped, {why}"),
                ..RunEnd::default()
            }
        }
    };
    match sent {
        Ok(resp) => {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            RunEnd {
                status: if status.is_success() {
                    "succeeded"
                } else {
                    "failed"
                }
                .into(),
                attempts: 0,
                exit_code: None,
                http_status: Some(status.as_u16()),
                output: excerpt::tail(
                    format!(
                        "{method} {path} on {}: {status}\n{body}",
                        backend.spec.machine
                    ),
                    OUTPUT_LIMIT,
                ),
            }
        }
        Err(e) if e.is_timeout() => RunEnd {
            status: "timed_out".into(),
            output: format!("{method} {path}: no answer within {timeout:?}"),
            ..RunEnd::default()
        },
        Err(e) => failed(format!(
            "{method} {path} on {}: {}",
            backend.spec.machine,
            crate::api::client::root_cause(&e)
        )),
    }
}

fn failed(reason: String) -> RunEnd {
    RunEnd {
        status: "failed".into(),
        output: excerpt::tail(reason, OUTPUT_LIMIT),
        ..RunEnd::default()
    }
}
