//! What is going on per app, so a destroy does not race it: releases rolling out, each
//! with its cancel; other changes that create machines (`scale count`, `apps restart`,
//! `machines create`); and apps being destroyed, for which none of these starts.
//!
//! Cancelling a release (`lakefly releases cancel`, and `apps destroy` of an app with
//! one) does not cut it short at any point: its rollout stops waiting for new machines
//! and fails the release, so the machines it replaced are restored, as for any failed
//! release. A build or release command running is stopped (SIGTERM, then SIGKILL); the
//! release then fails before any machine changes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::{DeployError, Deployer};
pub use crate::daemon::cancel::Cancel;
use crate::daemon::cancel::{self, Canceller};
use crate::daemon::store::releases;

impl Deployer {
    /// Cancels the release of `app` rolling out (`version`, when given; `why` says who
    /// asked): it fails as soon as its rollout can stop, and the release before keeps
    /// running. Returns its version.
    pub async fn cancel(
        &self,
        app: &str,
        version: Option<u64>,
        why: &str,
    ) -> Result<u64, DeployError> {
        let running = self.running(app).await?;
        match version.or(running) {
            Some(version) if Some(version) == running => {
                match self.in_flight.cancel(app, Some(version), why) {
                    Asked::Cancelling => Ok(version),
                    // Recorded as rolling out, but not by this daemon: a rollout a crash
                    // cut short, undone when the daemon next starts with room to.
                    Asked::NotRunning => Err(DeployError::Interrupted(version)),
                }
            }
            Some(version) => {
                let a = app.to_string();
                let status = self
                    .store
                    .run(move |conn, path| releases::status(conn, path, &a, version))
                    .await?;
                Err(DeployError::NotRolling {
                    version: Some(version),
                    status,
                })
            }
            None => Err(DeployError::NotRolling {
                version: None,
                status: None,
            }),
        }
    }
}

/// What [`DeployError::NotRolling`] says.
pub(super) fn not_rolling(version: Option<u64>, status: Option<&str>) -> String {
    match (version, status) {
        (None, _) => "no release of this app is rolling out".into(),
        (Some(v), None) => format!("release v{v} does not exist"),
        (Some(v), Some(status)) => format!("release v{v} is {status}, not rolling out"),
    }
}

/// What is going on per app: releases rolling out (one per app, each with its cancel),
/// other changes that create machines, and apps being destroyed.
#[derive(Clone, Default)]
pub struct InFlight {
    inner: Arc<Mutex<Inner>>,
    /// Told whenever a change ends, for [`InFlight::wait_changes_ended`].
    change_ended: Arc<Notify>,
}

#[derive(Default)]
struct Inner {
    running: HashMap<String, Entry>,
    closing: HashSet<String>,
    /// How many changes each app has going (releases included).
    changes: HashMap<String, usize>,
}

struct Entry {
    version: u64,
    /// Asks the release to fail.
    cancel: Canceller,
    /// Its rollout has begun: machines are being replaced.
    replacing: bool,
}

/// What asking for a cancel found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// The release will fail as soon as its rollout can stop.
    Cancelling,
    /// No release of the app is rolling out in this daemon (or not that version).
    NotRunning,
}

impl InFlight {
    /// Notes release `version` of `app` as rolling out, and as one of its changes, until
    /// the registration is dropped. Whether the app is being destroyed is the caller's to
    /// check, in the transaction that records the release.
    pub fn register(&self, app: &str, version: u64) -> Registration {
        let (cancel, requested) = cancel::pair();
        let change = {
            let mut inner = self.lock();
            inner.running.insert(
                app.to_string(),
                Entry {
                    version,
                    cancel,
                    replacing: false,
                },
            );
            self.count_change(&mut inner, app)
        };
        Registration {
            in_flight: self.clone(),
            app: app.to_string(),
            version,
            cancel: requested,
            _change: change,
        }
    }

    /// Asks release `version` of `app` (any version when `None`) to fail, saying `why`.
    pub fn cancel(&self, app: &str, version: Option<u64>, why: &str) -> Asked {
        match self.lock().running.get(app) {
            Some(entry) if version.is_none_or(|v| v == entry.version) => {
                entry.cancel.cancel(why);
                Asked::Cancelling
            }
            _ => Asked::NotRunning,
        }
    }

    /// Marks `app` as being destroyed until the guard is dropped: a release that would
    /// start meanwhile is refused ([`InFlight::is_closing`], checked in the transaction
    /// that records it), as is any other change ([`InFlight::begin_change`]), so none
    /// creates machines behind the destroy.
    pub fn close(&self, app: &str) -> Closing {
        self.lock().closing.insert(app.to_string());
        Closing {
            in_flight: self.clone(),
            app: app.to_string(),
        }
    }

    /// Whether `app` is being destroyed.
    pub fn is_closing(&self, app: &str) -> bool {
        self.lock().closing.contains(app)
    }

    /// Notes that release `version` of `app` has begun replacing machines (its build and
    /// release command are done), until the release ends.
    pub fn begin_replacing(&self, app: &str, version: u64) {
        if let Some(entry) = self.lock().running.get_mut(app) {
            entry.replacing |= entry.version == version;
        }
    }

    /// Whether a release of `app` is replacing its machines (and the app is not being
    /// destroyed): one may be on its way up, or about to be.
    pub fn is_replacing(&self, app: &str) -> bool {
        let inner = self.lock();
        let replacing = inner.running.get(app).is_some_and(|entry| entry.replacing);
        replacing && !inner.closing.contains(app)
    }

    /// Notes a change of `app` that creates machines (not a release) until the guard is
    /// dropped; refused while the app is being destroyed.
    pub fn begin_change(&self, app: &str) -> Result<Change, DeployError> {
        let mut inner = self.lock();
        if inner.closing.contains(app) {
            return Err(DeployError::Destroying);
        }
        Ok(self.count_change(&mut inner, app))
    }

    fn count_change(&self, inner: &mut Inner, app: &str) -> Change {
        *inner.changes.entry(app.to_string()).or_default() += 1;
        Change {
            in_flight: self.clone(),
            app: app.to_string(),
        }
    }

    /// Waits up to `limit` for the app's changes (releases included) to end; true when
    /// none is going any more.
    pub async fn wait_changes_ended(&self, app: &str, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                // Enabled before the count is read, so an end in between is not missed.
                let ended = self.change_ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                if !self.lock().changes.contains_key(app) {
                    return;
                }
                ended.await;
            }
        })
        .await
        .is_ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The sets stay consistent whatever panicked while holding them.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A change of an app going on; dropping it notes its end.
pub struct Change {
    in_flight: InFlight,
    app: String,
}

impl Drop for Change {
    fn drop(&mut self) {
        {
            let changes = &mut self.in_flight.lock().changes;
            if let Some(n) = changes.get_mut(&self.app) {
                *n -= 1;
                if *n == 0 {
                    changes.remove(&self.app);
                }
            }
        }
        self.in_flight.change_ended.notify_waiters();
    }
}

/// An app marked as being destroyed; dropping it ends that.
pub struct Closing {
    in_flight: InFlight,
    app: String,
}

impl Drop for Closing {
    fn drop(&mut self) {
        self.in_flight.lock().closing.remove(&self.app);
    }
}

/// A release noted as rolling out; dropping it notes its end.
pub struct Registration {
    in_flight: InFlight,
    app: String,
    version: u64,
    /// Resolves when the release is cancelled.
    pub cancel: Cancel,
    /// Counts the release among the app's changes; dropped after [`Registration`]'s own
    /// drop, so one waiting for the changes to end finds it no longer rolling out.
    _change: Change,
}

impl Registration {
    /// The release's version.
    pub fn version(&self) -> u64 {
        self.version
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let running = &mut self.in_flight.lock().running;
        if running
            .get(&self.app)
            .is_some_and(|e| e.version == self.version)
        {
            running.remove(&self.app);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `app`'s changes go on while `guard` lives, and that a wait for their
    /// end sees it once `guard` is dropped.
    async fn changes_end_with<T>(in_flight: &InFlight, app: &'static str, guard: T) {
        assert!(
            !in_flight
                .wait_changes_ended(app, Duration::from_millis(10))
                .await
        );
        let waiting = tokio::spawn({
            let in_flight = in_flight.clone();
            async move {
                in_flight
                    .wait_changes_ended(app, Duration::from_secs(30))
                    .await
            }
        });
        drop(guard);
        assert!(waiting.await.expect("task"), "its end is seen");
    }

    #[test]
    fn a_release_replaces_machines_from_its_rollout_to_its_end() {
        let in_flight = InFlight::default();
        let release = in_flight.register("a", 4);
        // Building: the machines are not being touched yet.
        assert!(!in_flight.is_replacing("a"));
        in_flight.begin_replacing("a", 3);
        assert!(!in_flight.is_replacing("a"), "another version's");
        in_flight.begin_replacing("a", 4);
        assert!(in_flight.is_replacing("a"));
        assert!(!in_flight.is_replacing("b"));
        let closing = in_flight.close("a");
        assert!(
            !in_flight.is_replacing("a"),
            "nothing comes up behind a destroy"
        );
        drop(closing);
        drop(release);
        assert!(!in_flight.is_replacing("a"));
    }

    #[tokio::test]
    async fn a_cancel_reaches_the_running_release_only() {
        let in_flight = InFlight::default();
        assert_eq!(in_flight.cancel("a", None, "why"), Asked::NotRunning);
        let mut running = in_flight.register("a", 4);
        assert_eq!(in_flight.cancel("a", Some(3), "why"), Asked::NotRunning);
        assert_eq!(in_flight.cancel("b", None, "why"), Asked::NotRunning);
        assert_eq!(running.cancel.reason(), None);
        assert_eq!(in_flight.cancel("a", Some(4), "asked"), Asked::Cancelling);
        assert_eq!(running.cancel.requested().await, "asked");
        changes_end_with(&in_flight, "a", running).await;
        assert_eq!(in_flight.cancel("a", None, "why"), Asked::NotRunning);
    }

    #[tokio::test]
    async fn a_destroy_refuses_new_changes_and_waits_for_those_going() {
        let in_flight = InFlight::default();
        let going = in_flight.begin_change("a").expect("not closing");
        let closing = in_flight.close("a");
        assert!(in_flight.is_closing("a") && !in_flight.is_closing("b"));
        assert!(matches!(
            in_flight.begin_change("a"),
            Err(DeployError::Destroying)
        ));
        assert!(in_flight.begin_change("b").is_ok());
        changes_end_with(&in_flight, "a", going).await;
        drop(closing);
        assert!(!in_flight.is_closing("a"));
        assert!(in_flight.begin_change("a").is_ok());
    }

    #[tokio::test]
    async fn a_release_that_is_never_cancelled_never_resolves() {
        let mut never = Cancel::never();
        let waited = tokio::time::timeout(Duration::from_millis(20), never.requested()).await;
        assert!(waited.is_err());
    }
}
