//! Health checks of one running machine: the checks its spec names (http or tcp, each on
//! its own interval), or, without any, its port accepting connections (or a few seconds of
//! staying up when it has no port). Changes are recorded with the deciding check's last
//! output.
//!
//! A check runs from the machine's start, not after its grace period: within the grace
//! period a pass counts at once (an auto-started machine serves the request waiting for it
//! as soon as it can, a rollout goes on) and a failure does not count yet, so a slow start
//! is `unknown`, not `critical` (Consul's and Nomad's reading of a grace period). An HTTP
//! check then waits for its port to accept before it asks, and asks again after a failure
//! sooner than its interval, so the app's log gets no request per moment of its start.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::check_board::{CheckBoard, Entry, Recorder};
use crate::api::types::{kind, HealthState};
use crate::config::model::{Check, CheckKind};
use crate::daemon::events::{EventHub, NewEvent};
use crate::daemon::store::machines;

/// Defaults where a check leaves a setting out.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_GRACE: Duration = Duration::from_secs(1);
/// Within the grace period, how soon a failed check runs again: doubling from the first
/// to the last (never more than its interval).
const STARTING_RETRY_FIRST: Duration = Duration::from_millis(100);
const STARTING_RETRY_MAX: Duration = Duration::from_secs(1);
/// Without checks: how often the port is tried until it accepts, then how often after.
const PORT_PROBE_EVERY: Duration = Duration::from_millis(10);
const PORT_RECHECK_EVERY: Duration = Duration::from_secs(5);
/// Without checks or a port: staying up this long counts as healthy. It is as long as an
/// exit still counts as a crash in a row (and as flyctl's smoke checks watch a machine),
/// so a worker that dies a few seconds after it starts fails its deploy, and the old
/// release keeps running, rather than going live to crash-loop.
const UP_GRACE: Duration = super::backoff::STABLE_AFTER;
/// Longest check output kept in an event.
const OUTPUT_LIMIT: usize = 512;
/// The shortest time between two runs of a check.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// What the checks of one machine need to know.
pub struct Target {
    /// The machine.
    pub machine: String,
    /// Its app.
    pub app: String,
    /// The process being checked.
    pub pid: u32,
    /// The app's `internal_port`, which checks name.
    pub internal_port: Option<u16>,
    /// The `$PORT` the daemon gave it, where `internal_port` really listens.
    pub port: Option<u16>,
    /// The port is UDP only: nothing to connect to for the implicit check.
    pub udp_only: bool,
    /// The machine as the edge sees it, told of every health change first.
    pub backend: Option<std::sync::Arc<crate::daemon::edge::backends::Backend>>,
    /// It has been running since before this daemon (`--live-restore`): checks start at
    /// once, with no grace period, so the edge serves it again as soon as it answers.
    pub resumed: bool,
}

impl Target {
    /// The port to dial for a check on `port` (the internal port maps onto `$PORT`).
    fn dial(&self, port: Option<u16>) -> Option<u16> {
        match port {
            None => self.port,
            Some(p) if Some(p) == self.internal_port => self.port.or(Some(p)),
            Some(p) => Some(p),
        }
    }
}

/// Aborts the checks, and takes them off the board, when the machine's process is done.
pub struct Watch {
    task: JoinHandle<()>,
    /// Held for its drop, which takes the machine's checks off the board.
    _board: Entry,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching a machine's health, each result shown on `board`; it stops when the
/// returned guard drops.
pub fn watch(
    target: Target,
    checks: BTreeMap<String, Check>,
    hub: EventHub,
    board: &CheckBoard,
) -> Watch {
    // A check of a type lakefly does not run was reported when the config was read; it
    // is left out here, or it would hold the machine at `unknown` for ever.
    let checks: BTreeMap<String, Check> = checks
        .into_iter()
        .filter(|(_, check)| !matches!(check.kind, CheckKind::Other(_)))
        .collect();
    let names: Vec<String> = if checks.is_empty() {
        vec!["implicit".to_string()]
    } else {
        checks.keys().cloned().collect()
    };
    let entry = board.enter(&target.app, &target.machine, &names);
    let recorder = entry.recorder();
    let task = tokio::spawn(async move {
        let (tx, rx) = mpsc::channel(16);
        let target = std::sync::Arc::new(target);
        if checks.is_empty() {
            tokio::spawn(implicit(target.clone(), tx));
        } else {
            for (name, check) in checks {
                tokio::spawn(run_check(name, check, target.clone(), tx.clone()));
            }
            drop(tx);
        }
        aggregate(&target, names, rx, hub, recorder).await;
    });
    Watch {
        task,
        _board: entry,
    }
}

/// One result of one check.
struct Outcome {
    check: String,
    verdict: Verdict,
    output: String,
}

/// What one run of a check says of its machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It passed.
    Passing,
    /// It failed.
    Critical,
    /// It failed within its grace period, before it ever passed: the machine is still
    /// starting, which is not counted against it.
    Starting,
}

impl Verdict {
    /// What `checks list` shows.
    pub fn status(self) -> HealthState {
        match self {
            Verdict::Passing => HealthState::Passing,
            Verdict::Critical => HealthState::Critical,
            Verdict::Starting => HealthState::Unknown,
        }
    }

    fn of(passing: bool) -> Self {
        if passing {
            Verdict::Passing
        } else {
            Verdict::Critical
        }
    }
}

async fn aggregate(
    target: &Target,
    names: Vec<String>,
    mut rx: mpsc::Receiver<Outcome>,
    hub: EventHub,
    board: Recorder,
) {
    let mut latest: BTreeMap<String, bool> = BTreeMap::new();
    let mut health = HealthState::Unknown;
    let mut last_output: Option<String> = None;
    while let Some(outcome) = rx.recv().await {
        board.record(&outcome.check, outcome.verdict, &outcome.output);
        let passing = match outcome.verdict {
            Verdict::Passing => true,
            Verdict::Critical => false,
            Verdict::Starting => continue,
        };
        latest.insert(outcome.check.clone(), passing);
        let now = if latest.values().any(|ok| !ok) {
            HealthState::Critical
        } else if names.iter().all(|n| latest.get(n) == Some(&true)) {
            HealthState::Passing
        } else {
            HealthState::Unknown
        };
        // A change of health is recorded; so is a failing check whose output changed (a
        // refused connection that became a 404), so the last output shown is the latest.
        let failing_differently = now == HealthState::Critical
            && !passing
            && last_output.as_deref() != Some(outcome.output.as_str());
        // The edge learns first: a rollout waiting on the event finds traffic flowing.
        if let Some(backend) = &target.backend {
            backend.set_healthy(now == HealthState::Passing);
        }
        if now == health && !failing_differently {
            continue;
        }
        let (was, output_was) = (health, last_output.take());
        health = now;
        last_output = Some(outcome.output.clone());
        let (id, app, pid) = (target.machine.clone(), target.app.clone(), target.pid);
        let data = serde_json::json!({
            "machine": id,
            "health": now,
            "check": outcome.check,
            "output": outcome.output,
        });
        let recorded = hub
            .change(move |tx, path| {
                let current = machines::set_health(tx, path, &id, pid, now)?;
                let events = current.then(|| NewEvent::app(&app, kind::MACHINE_HEALTH, data));
                Ok(((), events.into_iter().collect()))
            })
            .await;
        if let Err(e) = recorded {
            tracing::warn!(machine = %target.machine, error = %e, "could not record health");
            // Not recorded: the next result records it (a full disk frees up; the machine's
            // status must not stay at the health before).
            health = was;
            last_output = output_was;
        }
    }
}

async fn run_check(
    name: String,
    check: Check,
    target: std::sync::Arc<Target>,
    tx: mpsc::Sender<Outcome>,
) {
    let grace = if target.resumed {
        Duration::ZERO
    } else {
        check.grace_period.map_or(DEFAULT_GRACE, |d| d.to_std())
    };
    let grace_ends = tokio::time::Instant::now() + grace;
    // fly.toml refuses a zero interval; a spec from the API gets a floor, so a check
    // never runs in a loop without pause.
    let interval = check
        .interval
        .map_or(DEFAULT_INTERVAL, |d| d.to_std())
        .max(MIN_INTERVAL);
    let timeout = check.timeout.map_or(DEFAULT_TIMEOUT, |d| d.to_std());
    let client = match crate::proxy_env::loopback_client(timeout) {
        Ok(client) => client,
        Err(e) => {
            let _ = tx
                .send(Outcome {
                    check: name,
                    verdict: Verdict::Critical,
                    output: format!("cannot build an HTTP client: {e}"),
                })
                .await;
            return;
        }
    };
    let mut passed = false;
    let mut retry = STARTING_RETRY_FIRST.min(interval);
    loop {
        let port = target.dial(check.port);
        let starting = !passed && tokio::time::Instant::now() < grace_ends;
        if let (true, Some(port), CheckKind::Http) = (starting, port, &check.kind) {
            wait_listening(port, grace_ends).await;
        }
        let (passing, output) = match port {
            None => (
                false,
                "no port to check: set the check's port or the service's internal_port".to_string(),
            ),
            Some(port) => match check.kind {
                CheckKind::Http => http(&client, &check, port, timeout).await,
                _ => tcp(port, timeout).await,
            },
        };
        passed |= passing;
        let starting = !passed && tokio::time::Instant::now() < grace_ends;
        let verdict = if starting {
            Verdict::Starting
        } else {
            Verdict::of(passing)
        };
        if tx
            .send(Outcome {
                check: name.clone(),
                verdict,
                output,
            })
            .await
            .is_err()
        {
            return;
        }
        if starting {
            // The run at the grace period's end is the first that counts.
            let pause =
                retry.min(grace_ends.saturating_duration_since(tokio::time::Instant::now()));
            retry = (retry * 2).min(STARTING_RETRY_MAX).min(interval);
            tokio::time::sleep(pause).await;
        } else {
            tokio::time::sleep(interval).await;
        }
    }
}

/// Returns once `port` accepts a connection, or at `until`: tried often at first, when a
/// start usually ends, then less (a check on a port nothing opens may wait out a long
/// grace period).
async fn wait_listening(port: u16, until: tokio::time::Instant) {
    let mut every = PORT_PROBE_EVERY;
    while tokio::time::Instant::now() < until {
        if tcp(port, DEFAULT_TIMEOUT).await.0 {
            return;
        }
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        tokio::time::sleep(every.min(left)).await;
        every = (every * 2).min(STARTING_RETRY_MAX / 4);
    }
}

async fn implicit(target: std::sync::Arc<Target>, tx: mpsc::Sender<Outcome>) {
    let check = "implicit".to_string();
    let Some(port) = target.port.filter(|_| !target.udp_only) else {
        if !target.resumed {
            tokio::time::sleep(UP_GRACE).await;
        }
        let output = format!("no checks and no TCP port; up for {UP_GRACE:?}");
        let _ = tx
            .send(Outcome {
                check,
                verdict: Verdict::Passing,
                output,
            })
            .await;
        return;
    };
    let mut every = PORT_PROBE_EVERY;
    let mut was = None;
    loop {
        let (passing, output) = tcp(port, DEFAULT_TIMEOUT).await;
        // Until the port first accepts, the machine is starting: unknown, not critical.
        if was != Some(passing) && (passing || was.is_some()) {
            was = Some(passing);
            if tx
                .send(Outcome {
                    check: check.clone(),
                    verdict: Verdict::of(passing),
                    output,
                })
                .await
                .is_err()
            {
                return;
            }
        }
        if passing {
            every = PORT_RECHECK_EVERY;
        }
        tokio::time::sleep(every).await;
    }
}

async fn tcp(port: u16, timeout: Duration) -> (bool, String) {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(("127.0.0.1", port))).await {
        Ok(Ok(_)) => (true, format!("port {port} accepts connections")),
        Ok(Err(e)) => (false, format!("port {port}: {e}")),
        Err(_) => (false, format!("port {port}: no answer within {timeout:?}")),
    }
}

async fn http(
    client: &reqwest::Client,
    check: &Check,
    port: u16,
    timeout: Duration,
) -> (bool, String) {
    if check.protocol.as_deref() == Some("https") {
        let (passing, mut output) = super::https_check::check(check, port, timeout).await;
        crate::daemon::excerpt::head(&mut output, OUTPUT_LIMIT);
        return (passing, output);
    }
    let url = format!("http://127.0.0.1:{port}{}", target(check));
    let mut request = client.request(method(check), &url);
    for (name, value) in &check.headers {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(resp) => {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            let mut output = format!("{} {url}: {}", status.as_u16(), body.trim());
            crate::daemon::excerpt::head(&mut output, OUTPUT_LIMIT);
            (status.is_success(), output)
        }
        Err(e) if e.is_timeout() => (false, format!("{url}: no answer within {timeout:?}")),
        Err(e) => {
            // reqwest's own message only repeats the URL; the cause says what happened.
            let mut output = format!("{url}: {}", crate::api::client::root_cause(&e));
            crate::daemon::excerpt::head(&mut output, OUTPUT_LIMIT);
            (false, output)
        }
    }
}

/// The path an HTTP check asks for, with its leading `/` (`/` when it names none).
pub(super) fn target(check: &Check) -> String {
    match check.path.as_deref().unwrap_or("/") {
        path if path.starts_with('/') => path.to_string(),
        path => format!("/{path}"),
    }
}

/// The method an HTTP check sends (GET when it names none, or none HTTP knows).
pub(super) fn method(check: &Check) -> http::Method {
    http::Method::from_bytes(check.method.as_deref().unwrap_or("GET").as_bytes())
        .unwrap_or(http::Method::GET)
}
