//! Picking a machine for a request or a connection: at once when one is free, else after
//! waiting a little for one to become healthy (starting it when the app auto-starts) or
//! to fall under its hard limit. Shared by every kind of port.

use std::time::Duration;

use super::autostart::Wake;
use super::backends::{Lease, Pick};
use super::routes::Route;
use super::EdgeState;

/// Machines tried for one request or connection before giving up.
pub(super) const MAX_ATTEMPTS: usize = 3;
/// How long a request waits for a healthy machine while some are starting, or a release
/// replaces the app's machines.
const HOLD_FOR_HEALTHY: Duration = Duration::from_secs(10);
/// How long a request waits when every machine is at its hard limit.
const QUEUE_AT_HARD_LIMIT: Duration = Duration::from_secs(2);

/// Why no machine took a request or connection.
pub(super) enum Refusal {
    /// No healthy machine, even after waiting.
    NoneHealthy,
    /// Every machine stayed at its hard limit.
    Full,
    /// The machine started for it could not start, or crashes before it is healthy.
    StartFailed(&'static str),
}

impl Refusal {
    /// The error code and message of the 503 it is answered with.
    pub(super) fn reason(&self, app: &str) -> (&'static str, String) {
        match self {
            Refusal::NoneHealthy => (
                "no_healthy_machine",
                format!("app {app} has no healthy machine right now"),
            ),
            Refusal::Full => (
                "over_capacity",
                format!("every machine of {app} is at its concurrency hard_limit"),
            ),
            // How it failed is for the app's operator (the daemon's log), not its clients.
            Refusal::StartFailed(why) => (
                "no_healthy_machine",
                format!("app {app} has no healthy machine right now: the one started for this request {why}"),
            ),
        }
    }
}

/// A machine for one request or connection, not one of `tried`.
pub(super) async fn acquire(
    state: &EdgeState,
    route: &Route,
    tried: &[String],
) -> Result<Lease, Refusal> {
    // The usual case: a machine is free, nothing to wait for.
    if let Pick::Leased(lease) = state
        .backends
        .pick(&route.app, &route.groups, route.limits, tried)
    {
        return Ok(lease);
    }
    let watch = state.backends.changes().watch();
    let mut hold = None;
    let mut queue = None;
    let mut wake = None;
    loop {
        // Made before looking, so a change in between is not missed.
        let notified = watch.notified();
        let (refusal, deadline) =
            match state
                .backends
                .pick(&route.app, &route.groups, route.limits, tried)
            {
                Pick::Leased(lease) => return Ok(lease),
                Pick::Full => (
                    Refusal::Full,
                    *queue.get_or_insert_with(|| tokio::time::Instant::now() + QUEUE_AT_HARD_LIMIT),
                ),
                Pick::NoneHealthy => {
                    if !tried.is_empty() {
                        return Err(Refusal::NoneHealthy);
                    }
                    if route.auto_start && wake.is_none() {
                        wake = Some(super::autostart::wake(state, &route.app, &route.groups).await);
                    }
                    let woke = wake.is_some();
                    // A machine is on its way up, or a rollout is between an old machine
                    // and its replacement (one that binds its own ports stops first).
                    let starting = !state.backends.of(&route.app, &route.groups).is_empty()
                        || state.in_flight.is_replacing(&route.app);
                    if !starting && !woke {
                        return Err(Refusal::NoneHealthy);
                    }
                    let wait = if woke {
                        state.auto_start_wait
                    } else {
                        HOLD_FOR_HEALTHY
                    };
                    (
                        Refusal::NoneHealthy,
                        *hold.get_or_insert_with(|| tokio::time::Instant::now() + wait),
                    )
                }
            };
        tokio::select! {
            _ = notified => {}
            why = failed(wake.as_mut()) => return Err(Refusal::StartFailed(why)),
            () = tokio::time::sleep_until(deadline) => return Err(refusal),
        }
    }
}

/// Resolves, with why, once the start asked for this request has failed (nothing is
/// coming to wait for); never otherwise.
async fn failed(wake: Option<&mut tokio::sync::watch::Receiver<Wake>>) -> &'static str {
    if let Some(wake) = wake {
        if let Ok(state) = wake.wait_for(|w| matches!(w, Wake::Failed(_))).await {
            if let Wake::Failed(why) = *state {
                return why;
            }
        }
    }
    std::future::pending().await
}
