//! `lakefly jobs list | create NAME ... | trigger JOB | start JOB | stop JOB | delete JOB |
//! runs JOB`,
//! where JOB is a job's id or its name in the app.

use clap::{Args, Subcommand};

use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::api::jobs::{parse_schedule, Job, JobRun, JobSpec, MIN_INTERVAL};
use crate::config::units::Duration;
use crate::error::Error;
use crate::output::table::Table;

/// Scheduled and manual jobs of an app.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lakefly jobs list\n  lakefly jobs create vacuum --command 'python3 manage.py vacuum' --schedule '0 3 * * *'\n  lakefly jobs create ping --path /maintenance --method POST --interval 10m --retries 2\n  lakefly jobs trigger vacuum\n  lakefly jobs runs 4 --json"
)]
pub struct JobsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: JobsCommand,
}

/// Job commands.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List the app's jobs with their status, next run and last run.
    #[command(visible_alias = "ls")]
    List,
    /// Add a job (jobs in fly.toml `[[jobs]]` come with each deploy).
    Create {
        /// Unique within the app.
        name: String,
        /// Shell command, run in the release's directory with the app's env and secrets.
        #[arg(long, conflicts_with = "path", required_unless_present = "path")]
        command: Option<String>,
        /// HTTP path called on a healthy machine instead.
        #[arg(long)]
        path: Option<String>,
        /// HTTP method for --path (default GET).
        #[arg(long, requires = "path")]
        method: Option<String>,
        /// Cron expression: 5 fields, 6 with seconds first, or 7 with a year last.
        #[arg(long, conflicts_with = "interval", value_parser = schedule_arg)]
        schedule: Option<String>,
        /// The zone --schedule is read in: an IANA name (`Europe/Berlin`) or `local` (the
        /// daemon host's); UTC when not given.
        #[arg(long, requires = "schedule", value_name = "ZONE")]
        time_zone: Option<String>,
        /// Time between runs (`10m`, `6h`), at least 1s.
        #[arg(long, value_parser = interval_arg)]
        interval: Option<Duration>,
        /// Limit on one attempt (default 1h).
        #[arg(long)]
        timeout: Option<Duration>,
        /// Extra attempts after a failure.
        #[arg(long)]
        retries: Option<u32>,
        /// Process group whose release, env and machines it uses.
        #[arg(short = 'g', long = "process-group", value_name = "GROUP")]
        group: Option<String>,
    },
    /// Run a job now (skipped if a run is going).
    Trigger {
        /// Job id, or its name in the app.
        job: JobRef,
    },
    /// Schedule a stopped job again.
    Start {
        /// Job id, or its name in the app.
        job: JobRef,
    },
    /// Stop scheduling a job (a run that is going finishes; `jobs cancel` stops it).
    Stop {
        /// Job id, or its name in the app.
        job: JobRef,
    },
    /// Stop the job's run that is going (a command gets SIGTERM, then SIGKILL 5 s later);
    /// it ends `cancelled`, without retries, and the job stays scheduled.
    Cancel {
        /// Job id, or its name in the app.
        job: JobRef,
    },
    /// Remove a job made with `jobs create` or the API, with its runs (a run that is going
    /// is stopped: SIGTERM, then SIGKILL 5 s later); a fly.toml `[[jobs]]` entry goes when
    /// it is removed there and deployed.
    #[command(visible_aliases = ["rm", "destroy"])]
    Delete {
        /// Job id, or its name in the app.
        job: JobRef,
    },
    /// A job's runs, newest first.
    Runs {
        /// Job id, or its name in the app.
        job: JobRef,
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: u32,
    },
}

/// Runs a jobs command.
pub fn run(global: &GlobalArgs, args: JobsArgs) -> Result<(), Error> {
    let out = global.output();
    // The app before the client: a command that cannot name one starts no local daemon.
    match args.command {
        JobsCommand::List => {
            let app = app_name(global)?;
            let api = client(global)?;
            let jobs = block_on(async { Ok(api.jobs(&app).await?) })?;
            if out.json {
                return out.json(&jobs);
            }
            out.text(&job_table(&jobs))
        }
        JobsCommand::Create {
            name,
            command,
            path,
            method,
            schedule,
            time_zone,
            interval,
            timeout,
            retries,
            group,
        } => {
            let app = app_name(global)?;
            let api = client(global)?;
            let spec = JobSpec {
                name,
                command,
                method,
                path,
                schedule,
                time_zone,
                interval,
                timeout,
                retries,
                process_group: group,
            };
            let job = block_on(async { Ok(api.create_job(&app, &spec).await?) })?;
            if out.json {
                return out.json(&job);
            }
            out.note(&format!(
                "created job {} ({}) for {app}",
                job.id, job.spec.name
            ));
            Ok(())
        }
        JobsCommand::Trigger { job } => act(global, job, "trigger", "triggered"),
        JobsCommand::Start { job } => act(global, job, "start", "started"),
        JobsCommand::Stop { job } => act(global, job, "stop", "stopped"),
        JobsCommand::Cancel { job } => act(global, job, "cancel", "cancelled the run of"),
        JobsCommand::Delete { job } => {
            let api = client(global)?;
            let id = block_on(async {
                let id = job.resolve(global, &api).await?;
                api.delete_job(id).await?;
                Ok(id)
            })?;
            if out.json {
                return out.json(&serde_json::json!({ "deleted": id }));
            }
            out.note(&format!("deleted job {id}"));
            Ok(())
        }
        JobsCommand::Runs { job, limit } => {
            let api = client(global)?;
            let runs = block_on(async {
                let id = job.resolve(global, &api).await?;
                Ok(api.job_runs(id, limit).await?)
            })?;
            if out.json {
                return out.json(&runs);
            }
            out.text(&run_table(&runs, chrono::Utc::now()))
        }
    }
}

fn act(global: &GlobalArgs, job: JobRef, action: &str, done: &str) -> Result<(), Error> {
    let out = global.output();
    let api = client(global)?;
    let job = block_on(async {
        let id = job.resolve(global, &api).await?;
        Ok(api.job_action(id, action).await?)
    })?;
    let id = job.id;
    if out.json {
        return out.json(&job);
    }
    let name = &job.spec.name;
    let logged = match job.spec.command {
        Some(_) => format!(", `lakefly logs --job {name}` their output"),
        None => String::new(),
    };
    out.note(&format!(
        "{done} job {id} ({name}); `lakefly jobs runs {id}` shows its runs{logged}"
    ));
    Ok(())
}

/// A job as named on the command line: its id (digits), or its name in the app (`-a` or
/// the config's `app`), which stays the same across deploys while ids are per daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRef {
    /// A job id.
    Id(u64),
    /// A job name.
    Name(String),
}

impl std::str::FromStr for JobRef {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text.parse() {
            Ok(id) => JobRef::Id(id),
            Err(_) => JobRef::Name(text.to_string()),
        })
    }
}

impl JobRef {
    /// The job's id, asking the daemon for the app's jobs when it was named.
    async fn resolve(
        &self,
        global: &GlobalArgs,
        api: &crate::api::client::Client,
    ) -> Result<u64, Error> {
        let name = match self {
            JobRef::Id(id) => return Ok(*id),
            JobRef::Name(name) => name,
        };
        let app = app_name(global)?;
        let jobs = api.jobs(&app).await?;
        jobs.iter()
            .find(|job| &job.spec.name == name)
            .map(|job| job.id)
            .ok_or_else(|| Error::JobNotFound {
                app,
                name: name.clone(),
            })
    }
}

/// `--schedule`, checked here so a bad one is a usage error naming the flag.
fn schedule_arg(expr: &str) -> Result<String, String> {
    parse_schedule(expr).map(|_| expr.to_string()).map_err(|e| {
        format!("{e}; use 5 fields (minute hour day month weekday), e.g. \"0 3 * * *\"")
    })
}

/// `--interval`, at least [`MIN_INTERVAL`].
fn interval_arg(value: &str) -> Result<Duration, String> {
    let interval: Duration = value.parse().map_err(|e| format!("{e}"))?;
    if interval < MIN_INTERVAL {
        return Err(format!("a job's interval is at least {MIN_INTERVAL}"));
    }
    Ok(interval)
}

/// The jobs as a table: what each does, when, and how its last run went.
pub fn job_table(jobs: &[Job]) -> String {
    let mut table = Table::new(vec!["ID", "NAME", "DOES", "WHEN", "STATUS", "NEXT", "LAST"]);
    for job in jobs {
        let does = match (&job.spec.command, &job.spec.path) {
            (Some(command), _) => command.clone(),
            (None, Some(path)) => format!("{} {path}", job.spec.method.as_deref().unwrap_or("GET")),
            (None, None) => "-".into(),
        };
        let when = match (&job.spec.schedule, &job.spec.interval) {
            (Some(cron), _) => match &job.spec.time_zone {
                Some(zone) => format!("{cron} ({zone})"),
                None => cron.clone(),
            },
            (None, Some(every)) => format!("every {every}"),
            (None, None) => "manual".into(),
        };
        let last = job.last_run.as_ref().map_or("-".into(), |r| {
            format!(
                "{} {}",
                r.status,
                r.finished_at.as_deref().unwrap_or(&r.started_at)
            )
        });
        table.row(vec![
            job.id.to_string(),
            job.spec.name.clone(),
            does,
            when,
            job.status.clone(),
            job.next_run.clone().unwrap_or_else(|| "-".into()),
            last,
        ]);
    }
    table.render()
}

/// The runs of `jobs runs`, newest first as the daemon gives them; `now` times the ones
/// still running.
fn run_table(runs: &[JobRun], now: chrono::DateTime<chrono::Utc>) -> String {
    let mut table = Table::new(vec![
        "RUN", "TRIGGER", "STATUS", "ATTEMPTS", "STARTED", "TOOK", "RESULT", "OUTPUT",
    ]);
    for run in runs {
        let result = match (run.exit_code, run.http_status) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => "-".into(),
        };
        let output = run
            .output
            .as_deref()
            .and_then(|o| o.lines().last())
            .unwrap_or("")
            .to_string();
        table.row(vec![
            run.id.to_string(),
            run.trigger.clone(),
            run.status.clone(),
            run.attempts.to_string(),
            run.started_at.clone(),
            took(run, now).unwrap_or_else(|| "-".into()),
            result,
            output,
        ]);
    }
    table.render()
}

/// How long a run took (`40ms`, `2.5s`, `4m10s`), or has been running for.
fn took(run: &JobRun, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
    let until = match &run.finished_at {
        Some(finished) => chrono::DateTime::parse_from_rfc3339(finished)
            .ok()?
            .with_timezone(&chrono::Utc),
        None => now,
    };
    let started = chrono::DateTime::parse_from_rfc3339(&run.started_at).ok()?;
    let ms = (until - started.with_timezone(&chrono::Utc))
        .num_milliseconds()
        .max(0);
    Some(match ms {
        // A job's run is often short: its first minute is told to the tenth of a second.
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => super::machines::uptime(&run.started_at, until)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: u64, started: &str, finished: Option<&str>) -> JobRun {
        JobRun {
            id,
            job_id: 1,
            trigger: "schedule".into(),
            status: if finished.is_some() {
                "succeeded"
            } else {
                "running"
            }
            .into(),
            attempts: 1,
            started_at: started.into(),
            finished_at: finished.map(str::to_string),
            exit_code: finished.map(|_| 0),
            http_status: None,
            output: finished.map(|_| "first line\ncleaned".to_string()),
        }
    }

    #[test]
    fn runs_say_how_long_each_took_or_has_been_running() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-06T03:10:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let runs = [
            run(4, "2026-12-06T03:09:48.000Z", None),
            run(
                3,
                "2026-12-06T03:00:00.000Z",
                Some("2026-12-06T03:04:10.000Z"),
            ),
            run(
                2,
                "2026-12-05T03:00:00.000Z",
                Some("2026-12-05T03:00:02.470Z"),
            ),
            run(
                1,
                "2026-12-04T03:00:00.000Z",
                Some("2026-12-04T03:00:00.040Z"),
            ),
        ];
        let shown: Vec<Option<String>> = runs.iter().map(|r| took(r, now)).collect();
        assert_eq!(
            shown,
            [Some("12.0s"), Some("4m10s"), Some("2.5s"), Some("40ms")].map(|t| t.map(String::from))
        );
        let table = run_table(&runs, now);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].contains("STARTED                   TOOK   RESULT"),
            "{table}"
        );
        assert!(lines[2].contains("4m10s  exit 0  cleaned"), "{table}");
        assert!(lines[1].ends_with(" 12.0s  -"), "{table}");
        let mut unreadable = run(5, "not a time", None);
        assert_eq!(took(&unreadable, now), None);
        unreadable.started_at = "2026-12-06T03:09:48Z".into();
        unreadable.finished_at = Some("later".into());
        assert_eq!(took(&unreadable, now), None);
    }
}
