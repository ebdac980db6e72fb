//! The signals lakeflyd acts on while it serves: SIGTERM and SIGINT stop it, SIGHUP
//! reloads (each reload told to systemd as one).

use super::{service_manager, Daemon};

/// The signals lakeflyd acts on: SIGTERM and SIGINT stop it, SIGHUP reloads.
pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Takes the signals over; `None` (logged) when that fails, and the default actions
    /// (exit) stay.
    pub(super) fn install() -> Option<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(term), Ok(int), Ok(hup)) => Some(Signals { term, int, hup }),
            _ => {
                tracing::warn!("could not install signal handlers");
                None
            }
        }
    }
}

/// Waits for SIGTERM or SIGINT; each SIGHUP in between reloads the edge's certificate.
pub(super) async fn serve_until_stopped(signals: Option<Signals>, daemon: &Daemon) {
    let Some(mut signals) = signals else {
        // The default actions stop the daemon.
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = signals.term.recv() => return tracing::info!("SIGTERM received"),
            _ = signals.int.recv() => return tracing::info!("SIGINT received"),
            _ = signals.hup.recv() => {
                service_manager::reloading();
                daemon.reload().await;
                service_manager::reloaded();
            }
        }
    }
}
