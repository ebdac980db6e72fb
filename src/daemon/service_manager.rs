//! What lakeflyd tells systemd (`sd_notify`) under `Type=notify`: ready once it serves,
//! reloading around a SIGHUP, stopping at shutdown, and, under `WatchdogSec=`, alive for
//! as long as its runtime, its state database and its edge threads answer, so that a
//! daemon that hangs is restarted as one that crashes is. Without `NOTIFY_SOCKET` (not
//! run by systemd, or `Type=simple`) each is a no-op. Machines never see the variables:
//! their environment is built from scratch (`runtime::process`).

use std::sync::Arc;

use sd_notify::NotifyState;
use tokio::sync::watch;

use super::edge::heartbeat::Heartbeats;
use super::store::Store;

/// Tells systemd the daemon serves; `status` is what `systemctl status` shows.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Asks systemd for `by` more time to start than `TimeoutStartSec=` gives: stopping what a
/// crashed run left takes up to the longest `kill_timeout` among them.
pub fn extend_start(by: std::time::Duration) {
    let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
    send(&[NotifyState::ExtendTimeoutUsec(usec)]);
}

/// Tells systemd a reload (SIGHUP) begins; [`reloaded`] ends it. The monotonic time is
/// what `Type=notify-reload` needs to match the message to its signal.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Tells systemd the reload is over.
pub fn reloaded() {
    send(&[NotifyState::Ready]);
}

/// Tells systemd the daemon is stopping (its machines stop first, which takes time).
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping its machines"),
    ]);
}

/// Under `WatchdogSec=`, pings systemd at half its interval while a read of the state
/// database goes through within that half and every edge thread still runs its loop; a
/// daemon whose runtime, store or edge is stuck misses the pings and systemd restarts it.
/// Returns at shutdown, or at once without a watchdog.
pub async fn watchdog(store: Store, edge: Arc<Heartbeats>, mut shutdown: watch::Receiver<bool>) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = interval / 2;
    tracing::info!(
        ?interval,
        "systemd watchdog on: pinging while the store answers and the edge runs"
    );
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let read = store.run(|conn, path| {
                    conn.query_row("SELECT 1", [], |_| Ok(()))
                        .map_err(super::store::sqlite(path))
                });
                match tokio::time::timeout(every, read).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "the state database does not answer; not pinging systemd's watchdog");
                        continue;
                    }
                    Err(_) => {
                        tracing::error!(?every, "the state database did not answer in time; not pinging systemd's watchdog");
                        continue;
                    }
                }
                let silent = edge.silent(every);
                if silent.is_empty() {
                    send(&[NotifyState::Watchdog]);
                }
                for thread in silent {
                    tracing::error!(thread = thread.slot, silent_for = ?thread.for_, "an edge thread's event loop is stuck; not pinging systemd's watchdog");
                }
            }
            // The only change ever sent is to `true`.
            _ = shutdown.changed() => return,
        }
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "could not notify systemd (NOTIFY_SOCKET)");
    }
}
