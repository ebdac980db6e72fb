//! `lakefly machines list [-q] | status ID | start ID... | stop ID... | restart ID... | kill ID
//! [-s SIG] | wait ID | exec ID -- CMD | destroy ID...` (also `machine` and `m`, as flyctl
//! spells them); a command given no ID asks for one on a terminal.

use clap::{Args, Subcommand};

use super::machine_pick::Offer;
use super::machine_wait::Reached;
use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::api::restart::RestartRequest;
use crate::api::signal::{Signal, StopRequest};
use crate::api::types::{ExecEnd, ExecEvent, ExecRequest, Machine};
use crate::config::units::Duration;
use crate::error::Error;
use crate::output::table::Table;

/// List and control an app's machines.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lakefly machines list -a hello\n  lakefly machines status 3779b97f4a7c15\n  lakefly machines restart 3779b97f4a7c15\n  lakefly machines stop 3779b97f4a7c15 --json\n  lakefly machines list -q | xargs lakefly machines restart\n  lakefly machines kill 3779b97f4a7c15 --signal SIGHUP\n  lakefly machines exec 3779b97f4a7c15 -- python3 manage.py migrate\n  lakefly machines exec -i 3779b97f4a7c15 -- python3 - < fix_orders.py"
)]
pub struct MachinesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: MachinesCommand,
    /// flyctl's: a command given no machine asks which on a terminal anyway.
    #[arg(long, global = true, hide = true)]
    pub select: bool,
}

/// Machine commands.
#[derive(Debug, Subcommand)]
pub enum MachinesCommand {
    /// List the app's machines.
    #[command(visible_alias = "ls")]
    List {
        /// Only their ids, one a line (for scripts, as `fly machines list -q`).
        #[arg(short, long, conflicts_with = "json")]
        quiet: bool,
    },
    /// Show one machine: state, process, command, checks and recent events.
    Status {
        /// Machine id (asked for on a terminal when not given).
        id: Option<String>,
    },
    /// Start stopped machines.
    Start {
        /// Machine ids (`machines list -q` lists them; asked for on a terminal when none
        /// is given, several as `1,2`, `1-3` or `all`).
        #[arg(value_name = "ID")]
        ids: Vec<String>,
    },
    /// Stop machines (kill signal, then SIGKILL after the kill timeout).
    Stop {
        /// Machine ids (`machines list -q` lists them; asked for on a terminal when none
        /// is given, several as `1,2`, `1-3` or `all`).
        #[arg(value_name = "ID")]
        ids: Vec<String>,
        /// The signal that asks each to stop, over fly.toml's `kill_signal` (as flyctl's).
        #[arg(short, long, value_name = "SIGNAL", value_parser = signal_name)]
        signal: Option<Signal>,
        /// How long each has before SIGKILL, over `kill_timeout` (`30s`; a bare number is
        /// seconds, as flyctl's).
        #[arg(long, value_name = "DURATION", value_parser = stop_timeout)]
        timeout: Option<Duration>,
        /// flyctl's limit on waiting for the stop: lakefly waits until each has stopped,
        /// which its kill timeout bounds (noted as changing nothing).
        #[arg(long, hide = true, value_name = "DURATION")]
        wait_timeout: Option<String>,
    },
    /// Stop and start machines one at a time, each healthy again before the next (as
    /// flyctl's).
    Restart {
        /// Machine ids (`machines list -q` lists them; asked for on a terminal when none
        /// is given, several as `1,2`, `1-3` or `all`).
        #[arg(value_name = "ID")]
        ids: Vec<String>,
        /// The signal that asks each to stop, over fly.toml's `kill_signal` (as flyctl's).
        #[arg(short, long, value_name = "SIGNAL", value_parser = signal_name)]
        signal: Option<Signal>,
        /// How long each has before SIGKILL, over `kill_timeout` (flyctl's `--time`; a bare
        /// number is seconds).
        #[arg(long, alias = "timeout", value_name = "DURATION", value_parser = stop_timeout)]
        time: Option<Duration>,
        /// Kill each at once (SIGKILL), as flyctl's.
        #[arg(long, conflicts_with_all = ["signal", "time"])]
        force: bool,
        /// Do not wait for each to pass its checks: restart the next once this one has
        /// started.
        #[arg(long)]
        skip_health_checks: bool,
    },
    /// Wait until a machine reaches a state (as flyctl's): `started` after a start,
    /// `stopped` after a stop; by default any it stays in until asked (`settled`).
    #[command(
        after_help = "States: settled (started, stopped, failed or destroyed), created, starting, started,\nstopping, stopped, failed, destroyed. A machine destroyed meanwhile ends the wait at once,\nas does the time running out: exit 1, saying the state it is in.\n\nExamples:\n  lakefly machines start 3d8d9e1b && lakefly machines wait 3d8d9e1b --state started\n  lakefly machines wait 3d8d9e1b --json | jq -r .state"
    )]
    Wait {
        /// Machine id (asked for on a terminal when not given).
        id: Option<String>,
        /// The state to wait for.
        #[arg(long, value_name = "STATE", default_value = "settled", value_parser = super::machine_wait::Wanted::parse)]
        state: super::machine_wait::Wanted,
        /// How long to wait at most (`30s`, `5m`; a bare number is seconds; 0 waits for as
        /// long as it takes).
        #[arg(short, long, value_name = "DURATION", default_value = "5m", value_parser = stop_timeout)]
        wait_timeout: Duration,
    },
    /// Send a signal to a machine's main process: SIGKILL (the default) for one that
    /// hangs, or one the app handles, such as SIGHUP to reload.
    #[command(
        after_help = "The signal goes to the machine's main process alone (the app itself when its command is\none simple command; else the shell running it), as `kill -HUP $(cat app.pid)` would.\nWhat follows is the app's: a reload, or an exit that the restart policy answers\n(`on-failure`, the default, starts it again)."
    )]
    Kill {
        /// Machine id (asked for on a terminal when not given).
        id: Option<String>,
        /// The signal, by name (`SIGHUP`, `HUP`, `usr1`).
        #[arg(short, long, value_name = "SIGNAL", default_value = "SIGKILL", value_parser = signal_name)]
        signal: Signal,
    },
    /// Run a command once in a machine's environment (its directory, env, secrets and
    /// $PORT), beside its process; print its output and exit with its exit code.
    #[command(
        after_help = "One COMMAND argument is a shell command line ('echo $PORT'); several are the words\nof one command, each passed as it is (-- sh -c 'echo \"$X\"'). It runs with /bin/sh -c,\nits input closed; its output is printed as it is written (with --json: one object once\nit ended, up to 1 MiB of each stream). lakefly exits with the command's exit code,\n128 + the signal that ended it, or 124 when it ran out of time and was killed.\nInterrupting lakefly kills the command."
    )]
    Exec {
        /// Machine id.
        id: String,
        /// How long it may run before it and what it started are killed (at most 1h; a
        /// bare number is seconds, as flyctl's `--timeout 30`).
        #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = exec_timeout)]
        timeout: Duration,
        /// Give the command lakefly's standard input, read to its end first (a script,
        /// a small dump: at most 16 MiB). Without it the command reads nothing, so a
        /// loop reading a file can call exec without losing its lines.
        #[arg(short = 'i', long)]
        stdin: bool,
        /// A shell command line, or the words of a command (after `--` when it has flags
        /// of its own).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<String>,
    },
    /// Remove machines; one that runs is stopped first (kill signal, then SIGKILL after its
    /// kill timeout).
    #[command(visible_alias = "remove", alias = "rm")]
    Destroy {
        /// Machine ids (asked for on a terminal when none is given, several as `1,2`,
        /// `1-3` or `all`).
        #[arg(value_name = "ID")]
        ids: Vec<String>,
        /// flyctl's, which destroys a machine that runs only with it: lakefly's destroy
        /// stops one first, as DESIGN's `machines destroy ID` has it.
        #[arg(short, long, hide = true)]
        force: bool,
    },
}

/// Runs a machines command.
pub fn run(global: &GlobalArgs, args: MachinesArgs) -> Result<(), Error> {
    let out = global.output();
    // The app first: without one, and no machine id to find it by, no daemon is asked
    // (nor the local one started).
    let (app, api) = match app_name(global) {
        Ok(app) => (app, client(global)?),
        Err(no_app @ Error::NoApp { .. }) => {
            let Some(id) = args.command.first_id() else {
                return Err(no_app);
            };
            // As flyctl's: a machine's id says whose it is.
            let api = client(global)?;
            (block_on(app_of_machine(&api, id, no_app))?, api)
        }
        Err(e) => return Err(e),
    };
    let mut command = args.command;
    // No machine named: asked for on a terminal, as flyctl's.
    if let Some((name, offer)) = command.unnamed() {
        let unasked = || Error::MachineNotNamed { command: name };
        let chosen = match command.takes_several() {
            true => block_on(super::machine_pick::select_many(&api, &app, offer, unasked))?,
            false => vec![block_on(super::machine_pick::select(
                &api, &app, offer, unasked,
            ))?],
        };
        command.name(chosen.into_iter().map(|m| m.id).collect());
    }
    let (ids, action) = match command {
        MachinesCommand::List { quiet } => {
            let machines = block_on(async { Ok(api.machines(&app).await?) })?;
            if out.json {
                return out.json(&machines);
            }
            if quiet {
                // None at all prints nothing, so `| xargs` runs nothing.
                return machines.iter().try_for_each(|m| out.text(&m.id));
            }
            return out.text(&machine_table(&machines));
        }
        MachinesCommand::Status { id } => {
            let id = named(id, "status")?;
            return super::machine_status::run(&out, &api, &app, &id);
        }
        MachinesCommand::Destroy { ids, .. } => {
            // One at a time, stopping at the first that fails.
            for id in ids {
                block_on(async { Ok(api.destroy_machine(&app, &id).await?) })?;
                if out.json {
                    out.ndjson(&serde_json::json!({ "destroyed": id }))?;
                } else {
                    out.note(&format!("destroyed machine {id}"));
                }
            }
            return Ok(());
        }
        MachinesCommand::Exec {
            id,
            timeout,
            stdin,
            command,
        } => {
            // One argument is a shell command line (`'echo $PORT'`); several are the words
            // of a command, each passed as it is, as `docker exec` and `kubectl exec` pass
            // them (`-- sh -c 'echo "$X"'` would otherwise lose its quotes).
            let command = match command.as_slice() {
                [line] => line.clone(),
                words => crate::shell_words::join(words),
            };
            let request = ExecRequest {
                command,
                timeout: Some(timeout),
                stdin: if stdin { Some(read_stdin()?) } else { None },
            };
            return exec(&out, &api, &app, &id, &request);
        }
        MachinesCommand::Wait {
            id,
            state,
            wait_timeout,
        } => {
            let id = named(id, "wait")?;
            let limit = (wait_timeout.as_millis() > 0).then_some(wait_timeout);
            if !out.json {
                let within = limit.map_or_else(String::new, |limit| format!(" up to {limit}"));
                out.note(&format!(
                    "waiting{within} for machine {id} to reach {}",
                    state.shown()
                ));
            }
            let progress = crate::output::progress::Progress::new(out);
            let waited = block_on(super::machine_wait::wait(
                &api, &app, &id, state, limit, &progress,
            ));
            progress.finish();
            return match waited? {
                Reached::Machine(machine) => said(&out, &machine),
                Reached::Gone if out.json => {
                    out.json(&serde_json::json!({ "id": id, "app": app, "state": "destroyed" }))
                }
                Reached::Gone => {
                    out.note(&format!("machine {id} is destroyed"));
                    Ok(())
                }
            };
        }
        MachinesCommand::Kill { id, signal } => {
            let id = named(id, "kill")?;
            let sent = block_on(async { Ok(api.signal_machine(&app, &id, signal).await?) })?;
            if out.json {
                return out.json(&sent);
            }
            out.note(&format!(
                "sent {} to machine {} (pid {})",
                sent.signal, sent.machine, sent.pid
            ));
            return Ok(());
        }
        MachinesCommand::Start { ids } => (ids, Act::Start),
        MachinesCommand::Stop {
            ids,
            signal,
            timeout,
            wait_timeout,
        } => {
            if wait_timeout.is_some() && !out.json {
                out.note("    note: --wait-timeout changes nothing: lakefly waits until each has stopped, which its kill timeout bounds");
            }
            (ids, Act::Stop(stop_request(signal, timeout)))
        }
        MachinesCommand::Restart {
            ids,
            signal,
            time,
            force,
            skip_health_checks,
        } => {
            let signal = match force {
                true => signal_name("SIGKILL").ok(),
                false => signal,
            };
            let request = RestartRequest {
                machines: ids,
                stop: stop_request(signal, time),
                skip_health_checks,
            };
            let machines = block_on(super::restarting::restart(&api, &app, &request, out))?;
            return machines.iter().try_for_each(|m| said(&out, m));
        }
    };
    // One after the other, each answered before the next is asked, stopping at the first
    // that fails.
    for id in ids {
        let machine = block_on(async {
            Ok(match &action {
                Act::Stop(request) => api.stop_machine(&app, &id, "stop", request).await?,
                Act::Start => api.machine_action(&app, &id, "start").await?,
            })
        })?;
        said(&out, &machine)?;
    }
    Ok(())
}

/// What a start, stop or restart left `machine` as: its line, or with `--json` its object
/// (one per line).
fn said(out: &crate::output::Output, machine: &Machine) -> Result<(), Error> {
    if out.json {
        return out.ndjson(machine);
    }
    out.note(&format!(
        "machine {} is {}",
        machine.id,
        machine.state.as_str()
    ));
    Ok(())
}

impl MachinesCommand {
    /// The first machine the command names, if it names one.
    fn first_id(&self) -> Option<&str> {
        match self {
            MachinesCommand::List { .. } => None,
            MachinesCommand::Status { id }
            | MachinesCommand::Kill { id, .. }
            | MachinesCommand::Wait { id, .. } => id.as_deref(),
            MachinesCommand::Exec { id, .. } => Some(id),
            MachinesCommand::Start { ids }
            | MachinesCommand::Stop { ids, .. }
            | MachinesCommand::Restart { ids, .. }
            | MachinesCommand::Destroy { ids, .. } => ids.first().map(String::as_str),
        }
    }

    /// A command that takes machines and was given none: its name, and which machines to
    /// offer first when asking.
    fn unnamed(&self) -> Option<(&'static str, Offer)> {
        match self {
            MachinesCommand::Status { id: None } => Some(("status", Offer::All)),
            MachinesCommand::Wait { id: None, .. } => Some(("wait", Offer::All)),
            MachinesCommand::Kill { id: None, .. } => Some(("kill", Offer::Started)),
            MachinesCommand::Start { ids } if ids.is_empty() => Some(("start", Offer::NotRunning)),
            MachinesCommand::Stop { ids, .. } if ids.is_empty() => Some(("stop", Offer::Started)),
            MachinesCommand::Restart { ids, .. } if ids.is_empty() => {
                Some(("restart", Offer::Started))
            }
            MachinesCommand::Destroy { ids, .. } if ids.is_empty() => Some(("destroy", Offer::All)),
            _ => None,
        }
    }

    /// Whether the command takes several machines at once.
    fn takes_several(&self) -> bool {
        matches!(
            self,
            MachinesCommand::Start { .. }
                | MachinesCommand::Stop { .. }
                | MachinesCommand::Restart { .. }
                | MachinesCommand::Destroy { .. }
        )
    }

    /// Names the machines `chosen` for a command [`unnamed`](Self::unnamed) said named
    /// none (one, unless it [takes several](Self::takes_several)).
    fn name(&mut self, chosen: Vec<String>) {
        match self {
            MachinesCommand::Status { id }
            | MachinesCommand::Wait { id, .. }
            | MachinesCommand::Kill { id, .. } => *id = chosen.into_iter().next(),
            MachinesCommand::Start { ids }
            | MachinesCommand::Stop { ids, .. }
            | MachinesCommand::Restart { ids, .. }
            | MachinesCommand::Destroy { ids, .. } => *ids = chosen,
            MachinesCommand::List { .. } | MachinesCommand::Exec { .. } => {}
        }
    }
}

/// The machine `id` a command was given or was named after asking.
fn named(id: Option<String>, command: &'static str) -> Result<String, Error> {
    id.ok_or(Error::MachineNotNamed { command })
}

/// The app machine `id` belongs to, for a command given no app; `no_app` when the daemon
/// cannot look machines up by id alone (an older one).
async fn app_of_machine(
    api: &crate::api::client::Client,
    id: &str,
    no_app: Error,
) -> Result<String, Error> {
    match api.find_machine(id).await {
        Ok(machine) => Ok(machine.app),
        Err(crate::api::client::ClientError::UnknownRequest { .. }) => Err(no_app),
        Err(e) => Err(e.into()),
    }
}

/// Runs `request` in machine `id`, its output printed as it is written (with `--json`, one
/// object once it ended); fails with the command's exit code unless it exited 0.
pub(super) fn exec(
    out: &crate::output::Output,
    api: &crate::api::client::Client,
    app: &str,
    id: &str,
    request: &ExecRequest,
) -> Result<(), Error> {
    let timeout = request.time_limit();
    if out.json {
        let result = block_on(async { Ok(api.exec(app, id, request).await?) })?;
        out.json(&result)?;
        return exec_outcome(id, &result.end, timeout);
    }
    // Output as it is written: a migration's progress shows while it runs.
    let mut failed = None;
    let end = block_on(async {
        let pass_on = |piece: ExecEvent| {
            let written = match piece {
                ExecEvent::Stdout(text) => out.passthrough(&text, ""),
                ExecEvent::Stderr(text) => out.passthrough("", &text),
                ExecEvent::End(_) | ExecEvent::Error(_) => Ok(()),
            };
            written.map_err(|e| failed = Some(e)).is_ok()
        };
        Ok(api.exec_streamed(app, id, request, pass_on).await?)
    })?;
    match (end, failed) {
        (Some(end), _) => exec_outcome(id, &end, timeout),
        (None, Some(e)) => Err(e),
        (None, None) => Ok(()),
    }
}

/// All of standard input, refused past [`ExecRequest::MAX_STDIN`] before anything is sent.
pub(super) fn read_stdin() -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let limit = ExecRequest::MAX_STDIN;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", std::path::Path::new("stdin"), e))?;
    if bytes.len() > limit {
        return Err(Error::StdinTooLarge {
            mib: limit / (1024 * 1024),
        });
    }
    Ok(bytes)
}

/// `--timeout`: a duration (or whole seconds, as flyctl's) above zero, at most
/// [`ExecRequest::MAX_TIMEOUT`].
fn exec_timeout(text: &str) -> Result<Duration, String> {
    let timeout = Duration::parse_flag(text).map_err(|e| format!("{e}"))?;
    if timeout.as_millis() == 0 || timeout > ExecRequest::MAX_TIMEOUT {
        return Err(format!(
            "give a duration above zero and at most {}",
            ExecRequest::MAX_TIMEOUT
        ));
    }
    Ok(timeout)
}

/// Success when the command exited 0, else the error that carries its exit code on.
fn exec_outcome(machine: &str, result: &ExecEnd, timeout: Duration) -> Result<(), Error> {
    /// What `timeout(1)` exits with when the time ran out.
    const TIMED_OUT: i32 = 124;
    let (how, code) = match (result.timed_out, result.exit_code, &result.signal) {
        (true, _, _) => (
            format!("did not finish within {timeout} and was killed"),
            TIMED_OUT,
        ),
        (false, Some(0), _) => return Ok(()),
        (false, Some(code), _) => (format!("exited {code}"), code),
        (false, None, Some(signal)) => {
            let number = signal
                .parse::<nix::sys::signal::Signal>()
                .map_or(0, |s| s as i32);
            (format!("was killed by {signal}"), 128 + number)
        }
        (false, None, None) => ("ended without an exit code".to_string(), 1),
    };
    Err(Error::ExecFailed {
        machine: machine.to_string(),
        how,
        code,
        timed_out: result.timed_out,
    })
}

/// `3d4h`, `2h5m`, `4m10s`, `12s` since `started`.
pub(super) fn uptime(started: &str, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
    let started = chrono::DateTime::parse_from_rfc3339(started).ok()?;
    let secs = (now - started.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    Some(match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    })
}

/// A machine's state as people read it: one waiting to start again after its process
/// ended (a crash's backoff) is `restarting`, as systemd shows `auto-restart`, not
/// `starting` as though it had never run. `--json` gives the state as recorded.
pub fn state_shown(m: &Machine) -> &'static str {
    match m.state {
        crate::api::types::MachineState::Starting if m.pid.is_none() && m.last_exit.is_some() => {
            "restarting"
        }
        state => state.as_str(),
    }
}

/// The machines table of `machines list` and `status`; "No machines." for none.
pub fn machine_table(machines: &[Machine]) -> String {
    if machines.is_empty() {
        return "No machines.".into();
    }
    let mut table = Table::new(vec![
        "ID", "GROUP", "STATE", "HEALTH", "RELEASE", "PID", "PORT", "RESTARTS", "UPTIME",
    ]);
    let now = chrono::Utc::now();
    for m in machines {
        let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        table.row(vec![
            m.id.clone(),
            m.process_group.clone(),
            state_shown(m).to_string(),
            m.health.to_string(),
            dash(m.release_version.map(|v| format!("v{v}"))),
            dash(m.pid.map(|p| p.to_string())),
            dash(m.port.map(|p| p.to_string())),
            m.restarts.to_string(),
            dash(m.started_at.as_deref().and_then(|t| uptime(t, now))),
        ]);
    }
    table.render()
}

/// What `start` and `stop` ask of each machine: a stop may come with its own signal and
/// timeout.
enum Act {
    Start,
    Stop(StopRequest),
}

/// The stop `--signal` and `--timeout` (or `--time`) ask for.
fn stop_request(signal: Option<Signal>, timeout: Option<Duration>) -> StopRequest {
    StopRequest {
        signal: signal.map(|s| s.as_str().to_string()),
        timeout,
    }
}

/// `stop --timeout`, `restart --time`: a duration, or whole seconds.
fn stop_timeout(text: &str) -> Result<Duration, String> {
    Duration::parse_flag(text).map_err(|e| format!("{e}"))
}

/// Reads `--signal`: a signal's name, with or without `SIG`.
fn signal_name(name: &str) -> Result<Signal, String> {
    crate::api::signal::parse(name).ok_or_else(|| {
        format!("{name:?} is not a signal; use a name such as SIGHUP, SIGUSR1, SIGTERM or SIGKILL")
    })
}

#[cfg(test)]
mod tests {
    use super::uptime;

    #[test]
    fn uptime_reads_like_a_clock() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(uptime("2026-11-24T11:59:48Z", now).as_deref(), Some("12s"));
        assert_eq!(
            uptime("2026-11-24T11:55:50Z", now).as_deref(),
            Some("4m10s")
        );
        assert_eq!(uptime("2026-11-24T09:55:00Z", now).as_deref(), Some("2h5m"));
        assert_eq!(uptime("2026-11-21T08:00:00Z", now).as_deref(), Some("3d4h"));
        assert_eq!(uptime("yesterday", now), None);
    }
}
