//! `auto_start_machines` and `auto_stop_machines`: traffic for an app with no healthy
//! machine starts a stopped one (or, scaled to zero, creates one of the current release);
//! machines idle past the configured time stop, down to `min_machines_running`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::EdgeState;
use crate::api::types::MachineState;
use crate::daemon::runtime::Action;
use crate::daemon::store::releases;

/// How the start of a machine for waiting requests goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Being asked for.
    Starting,
    /// Started (or one was on its way up already): requests wait for it to be healthy.
    Started,
    /// Could not be started: requests waiting for it are answered now.
    Failed,
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
    let (runtime, store, app, groups) = (
        state.runtime.clone(),
        state.store.clone(),
        app.to_string(),
        groups.to_vec(),
    );
    let (waking, in_flight) = (state.waking.clone(), state.in_flight.clone());
    tokio::spawn(async move {
        // Nothing starts behind an app's destroy, which would leave the machine running
        // with no record once the app is gone (the destroy waits for one begun before it).
        let started = match in_flight.begin_change(&app) {
            Ok(_change) => start_one(&runtime, &store, &app, &groups).await,
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &started {
            tracing::warn!(app, error = %e, "edge: could not auto-start a machine");
        }
        waking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&app);
        let _ = told.send(match started {
            Ok(()) => Wake::Started,
            Err(_) => Wake::Failed,
        });
    });
    wake
}

async fn start_one(
    runtime: &crate::daemon::runtime::Runtime,
    store: &crate::daemon::store::Store,
    app: &str,
    groups: &[String],
) -> Result<(), String> {
    let machines = runtime.list(app).await.map_err(|e| e.to_string())?;
    let ours: Vec<_> = machines
        .iter()
        .filter(|m| groups.contains(&m.process_group))
        .collect();
    if ours
        .iter()
        .any(|m| matches!(m.state, MachineState::Starting | MachineState::Started))
    {
        // One is on its way up already.
        return Ok(());
    }
    // A stopped machine, else one still stopping (it starts again once stopped): a new
    // one is made only for an app scaled to zero.
    let stopped = (ours.iter().find(|m| m.state == MachineState::Stopped))
        .or_else(|| ours.iter().find(|m| m.state == MachineState::Stopping));
    if let Some(stopped) = stopped {
        tracing::info!(app, machine = %stopped.id, "edge: auto-starting a stopped machine for a request");
        runtime
            .act(app, &stopped.id, Action::Start)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(());
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
    Ok(())
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
