//! `auto_start_machines` and `auto_stop_machines`: traffic for an app with no healthy
//! machine starts a stopped one (or, scaled to zero, creates one of the current release);
//! machines idle past the configured time stop, down to `min_machines_running`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::EdgeState;
use crate::api::types::{kind, Event, HealthState, MachineState};
use crate::daemon::events::Start;
use crate::daemon::runtime::exits::{how_it_ended, CRASHES_BEFORE_FAILING};
use crate::daemon::runtime::Action;
use crate::daemon::store::{releases, EventFilter};

/// How the start of a machine for waiting requests goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Being started, and not serving yet.
    Starting,
    /// Serving, or no longer followed: requests wait for a healthy machine as they do
    /// for any.
    Settled,
    /// Could not be started, or crashes before it is healthy (why, for the 503): the
    /// requests waiting are answered now, and new ones at once until it is healthy, gives
    /// up or is stopped, instead of each waiting out `--auto-start-wait`.
    Failed(&'static str),
}

/// Starts a machine of `app` in `groups` in the background, unless one is being started
/// already; requests wait for it to become healthy through the backends' change signal,
/// and on the returned watch for a start that failed.
pub async fn wake(state: &EdgeState, app: &str, groups: &[String]) -> watch::Receiver<Wake> {
    let (told, wake) = {
        let mut waking = state.waking.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(going) = waking.get(app) {
            return going.clone();
        }
        let (told, wake) = watch::channel(Wake::Starting);
        waking.insert(app.to_string(), wake.clone());
        (told, wake)
    };
    // Subscribed before the start, so no exit of the machine is missed.
    let events = state.runtime.hub().subscribe(
        EventFilter::machines_of(app),
        Start::Now,
        state.shutdown.clone(),
    );
    let (runtime, store, wait) = (
        state.runtime.clone(),
        state.store.clone(),
        state.auto_start_wait,
    );
    let (waking, in_flight) = (state.waking.clone(), state.in_flight.clone());
    let (app, groups) = (app.to_string(), groups.to_vec());
    tokio::spawn(async move {
        // Nothing starts behind an app's destroy, which would leave the machine running
        // with no record once the app is gone (the destroy waits for one begun before it).
        let started = match in_flight.begin_change(&app) {
            Ok(_change) => start_one(&runtime, &store, &app, &groups).await,
            Err(e) => Err(e.to_string()),
        };
        let end = match started {
            Ok(machine) => {
                follow(&app, &machine, events, &told, wait).await;
                Wake::Settled
            }
            Err(e) => {
                tracing::warn!(app, error = %e, "edge: could not auto-start a machine");
                Wake::Failed("could not be started")
            }
        };
        waking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&app);
        // After a crash `Failed` stays (its requests were answered); otherwise the ones
        // still waiting wait for a healthy machine until their own deadline.
        told.send_if_modified(|wake| match wake {
            Wake::Failed(_) => false,
            _ => {
                *wake = end;
                true
            }
        });
    });
    wake
}

/// Follows `machine`, started for waiting requests, on its events until it is healthy,
/// is stopped, destroyed or gives up, or `wait` (the requests' own) is over while it was
/// not seen crashing. A crash before it is healthy is told on `told` at once.
///
/// Its events alone, not the edge's machines: every request's end is a change there, and
/// the follow of a machine that crash-loops may last. While any machine of the app is
/// healthy, requests go to it without asking how a start goes.
async fn follow(
    app: &str,
    machine: &str,
    mut events: mpsc::Receiver<Arc<Event>>,
    told: &watch::Sender<Wake>,
    wait: Duration,
) {
    let deadline = tokio::time::Instant::now() + wait;
    let mut exits = 0u32;
    loop {
        // Crashing, it stays followed past the wait: new requests are answered at once.
        let crashing = matches!(*told.borrow(), Wake::Failed(_));
        let event = tokio::select! {
            () = tokio::time::sleep_until(deadline), if !crashing => return,
            event = events.recv() => match event {
                Some(event) => event,
                // The daemon is stopping.
                None => return,
            },
        };
        if event.data["machine"] != machine {
            continue;
        }
        let crashed = match event.kind.as_str() {
            kind::MACHINE_HEALTH if event.data["health"] == HealthState::Passing.as_str() => return,
            kind::MACHINE_EXITED => {
                exits += 1;
                let gave_up = event.data["restarting"] == false;
                (gave_up || exits >= CRASHES_BEFORE_FAILING)
                    .then(|| (how_it_ended(&event.data), gave_up))
            }
            kind::MACHINE_FAILED => Some(("failed".to_string(), true)),
            // Stopped or destroyed on request: a new request starts one again.
            kind::MACHINE_STOPPED | kind::MACHINE_DESTROYED => return,
            _ => None,
        };
        let Some((how, gave_up)) = crashed else {
            continue;
        };
        if !crashing {
            tracing::warn!(app, machine, exits, "edge: the machine started for requests {how} before it was healthy; they are answered 503 until it is (`lakefly logs -a {app}`)");
            told.send_replace(Wake::Failed(if gave_up {
                "exited before it was healthy"
            } else {
                "crashes before it is healthy"
            }));
        }
        if gave_up {
            return;
        }
    }
}

/// Starts a machine of `app` in `groups` (or finds one on its way up) and returns its id.
async fn start_one(
    runtime: &crate::daemon::runtime::Runtime,
    store: &crate::daemon::store::Store,
    app: &str,
    groups: &[String],
) -> Result<String, String> {
    let machines = runtime.list(app).await.map_err(|e| e.to_string())?;
    let ours: Vec<_> = machines
        .iter()
        .filter(|m| groups.contains(&m.process_group))
        .collect();
    let with_state = |state| ours.iter().find(|m| m.state == state);
    // Recorded to start (a rollout's new machine), starting, or started and not healthy.
    let going = [
        MachineState::Created,
        MachineState::Starting,
        MachineState::Started,
    ]
    .into_iter()
    .find_map(with_state);
    if let Some(going) = going {
        return Ok(going.id.clone());
    }
    // A stopped machine, else one still stopping (it starts again once stopped), else one
    // that gave up restarting: a new one is made only for an app scaled to zero.
    let stopped = with_state(MachineState::Stopped)
        .or_else(|| with_state(MachineState::Stopping))
        .or_else(|| with_state(MachineState::Failed));
    if let Some(stopped) = stopped {
        tracing::info!(app, machine = %stopped.id, "edge: auto-starting a stopped machine for a request");
        runtime
            .act(app, &stopped.id, Action::Start)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(stopped.id.clone());
    }
    // Scaled to zero: a machine of the current release's first serving group.
    let a = app.to_string();
    let specs = store
        .run(
            move |conn, path| match crate::daemon::store::apps::current_release(conn, path, &a)? {
                Some(version) => releases::specs(conn, path, &a, version),
                None => Ok(Default::default()),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let Some(spec) = groups.iter().find_map(|g| specs.get(g)) else {
        return Err("the app has no complete release to start a machine of".into());
    };
    let machine = runtime
        .create(app, spec.clone())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(app, machine = %machine.id, "edge: auto-created a machine for a request (the app was scaled to zero)");
    Ok(machine.id)
}

/// Stops machines that served nothing for `after`, as each app's rules allow; checks a
/// few times per `after` until the daemon stops.
pub async fn stop_idle(
    state: Arc<EdgeState>,
    after: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = (after / 4).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let rules: Vec<(String, super::routes::AutoStopRule)> = state
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flat_map(|(app, routes)| {
                routes
                    .auto_stop
                    .iter()
                    .map(move |r| (app.clone(), r.clone()))
            })
            .collect();
        for (app, rule) in rules {
            let running: Vec<_> = state
                .backends
                .of(&app, &rule.groups)
                .into_iter()
                .filter(|b| !b.is_draining())
                .collect();
            let floor = rule.min_running as usize;
            let idle: Vec<_> = running
                .iter()
                .filter(|b| b.is_healthy() && b.in_flight() == 0 && b.idle_for() >= after)
                .collect();
            let stoppable = running.len().saturating_sub(floor).min(idle.len());
            for backend in idle.into_iter().take(stoppable) {
                let (runtime, app, id) = (
                    state.runtime.clone(),
                    app.clone(),
                    backend.spec.machine.clone(),
                );
                tracing::info!(app, machine = %id, idle = ?backend.idle_for(), "edge: auto-stopping an idle machine");
                backend.mark_draining();
                tokio::spawn(async move {
                    if let Err(e) = runtime.act(&app, &id, Action::Stop).await {
                        tracing::warn!(app, machine = %id, error = %e, "edge: auto-stop failed");
                    }
                });
            }
        }
    }
}
