//! The machines the edge can send traffic to: registered by the supervisor while a process
//! with a port runs, marked healthy by its checks, drained before it is stopped. Picking a
//! machine prefers the least loaded under the soft limit, rotating among equals, and never
//! exceeds the hard limit.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use super::pool::{H2Sender, Pools, Sender};
use super::relay::Upstream;

/// Every registered machine, by app.
#[derive(Clone)]
pub struct Backends {
    inner: Arc<Inner>,
}

struct Inner {
    apps: RwLock<HashMap<String, Vec<Arc<Backend>>>>,
    /// Told of every change that could make a machine pickable.
    changed: Arc<Changes>,
    /// When the registry was made; `last_active` counts from here.
    epoch: Instant,
    /// Edge threads, each with its own connection pool per machine.
    threads: usize,
}

thread_local! {
    /// Rotates the start of each pick on this thread, so equals share the load (a shared
    /// counter would be one more cache line the edge threads pass back and forth).
    static ROTATION: Cell<usize> = const { Cell::new(0) };
}

/// Wakes requests waiting for a machine to become pickable. Every request's end is such
/// a change, so telling costs nothing (no lock) while nobody waits, the usual case.
#[derive(Default)]
pub struct Changes {
    notify: Notify,
    waiting: AtomicUsize,
}

/// Interest in changes, held while looking for a machine and waiting.
pub struct Watch<'a> {
    changes: &'a Changes,
}

impl Changes {
    /// Wakes whoever waits.
    fn tell(&self) {
        // Pairs with the fence in `watch`: either the waiter is counted here, or its
        // next look at the machines sees the change made before this call.
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) > 0 {
            self.notify.notify_waiters();
        }
    }

    /// Counts a waiter in; create its `notified` before looking at the machines.
    pub fn watch(&self) -> Watch<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Watch { changes: self }
    }
}

impl Watch<'_> {
    /// Completes on the next change after this call.
    pub fn notified(&self) -> Notified<'_> {
        self.changes.notify.notified()
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.changes.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the supervisor knows when it registers a machine.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    /// The machine id.
    pub machine: String,
    /// Its app.
    pub app: String,
    /// Its process group.
    pub group: String,
    /// The `$PORT` it was given (where `internal_port` really listens).
    pub port: u16,
    /// The `internal_port` its config names.
    pub internal_port: Option<u16>,
}

/// One running machine as the edge sees it.
pub struct Backend {
    /// Who it is.
    pub spec: BackendSpec,
    healthy: AtomicBool,
    draining: AtomicBool,
    in_flight: AtomicU32,
    /// Milliseconds after the registry's epoch when it last finished or began a request.
    last_active: AtomicU64,
    changed: Arc<Changes>,
    epoch: Instant,
    /// Woken when the last in-flight request ends.
    idle: Notify,
    /// The relay's kept-alive connections to it, per edge thread.
    pub(super) upstreams: Pools<Upstream>,
    /// hyper's kept-alive connections to it, per edge thread.
    pub(super) senders: Pools<Sender>,
    /// HTTP/2 connections (`h2_backend`), shared by requests.
    pub(super) h2_senders: Pools<H2Sender>,
}

impl Backend {
    /// The port to dial for a service on `internal_port` (the machine's own maps to `$PORT`).
    pub fn dial_port(&self, internal_port: Option<u16>) -> u16 {
        match internal_port {
            Some(p) if Some(p) != self.spec.internal_port => p,
            _ => self.spec.port,
        }
    }

    /// Whether its checks pass.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Requests (or connections) it is serving now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// How long since it last served anything.
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_active.load(Ordering::Acquire));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// Marks it healthy or not, as its checks say.
    pub fn set_healthy(&self, healthy: bool) {
        if self.healthy.swap(healthy, Ordering::AcqRel) != healthy {
            self.changed.tell();
        }
    }

    /// Whether it is being taken out of rotation.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Takes it out of rotation ahead of a stop.
    pub fn mark_draining(&self) {
        self.draining.store(true, Ordering::Release);
        self.changed.tell();
    }

    /// Whether it may get new traffic.
    fn pickable(&self) -> bool {
        self.is_healthy() && !self.draining.load(Ordering::Acquire)
    }

    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active.store(now, Ordering::Release);
    }
}

/// Load limits of a route, from fly.toml's `concurrency`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Above this, other machines are preferred.
    pub soft: Option<u32>,
    /// At this, a machine gets nothing more.
    pub hard: Option<u32>,
}

/// The outcome of a pick.
pub enum Pick {
    /// A machine, with the request counted against it until the lease drops.
    Leased(Lease),
    /// Healthy machines exist, but every one is at its hard limit.
    Full,
    /// No healthy machine serves the route.
    NoneHealthy,
}

/// One request (or connection) in flight on a machine; dropping it ends the count.
pub struct Lease {
    /// The machine.
    pub backend: Arc<Backend>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let backend = &self.backend;
        backend.touch();
        if backend.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            backend.idle.notify_waiters();
        }
        // Someone queued at the hard limit may go now.
        backend.changed.tell();
    }
}

/// Keeps a machine registered while its process runs; dropping it removes the machine.
pub struct Registration {
    backend: Arc<Backend>,
    backends: Backends,
}

impl Registration {
    /// The shared handle, for the health checks.
    pub fn backend(&self) -> Arc<Backend> {
        self.backend.clone()
    }

    /// Takes the machine out of rotation and waits, at most `limit`, for what it is
    /// serving to finish. Returns how many were still in flight when the wait ended.
    pub async fn drain(&self, limit: Duration) -> u32 {
        self.backend.mark_draining();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.backend.idle.notified();
            tokio::pin!(idle);
            // Registered before the check, so an end between the two is not missed.
            idle.as_mut().enable();
            let left = self.backend.in_flight();
            if left == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.backend.in_flight();
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.backend.draining.store(true, Ordering::Release);
        let mut apps = self.backends.write();
        if let Some(list) = apps.get_mut(&self.backend.spec.app) {
            list.retain(|b| !Arc::ptr_eq(b, &self.backend));
            if list.is_empty() {
                apps.remove(&self.backend.spec.app);
            }
        }
        drop(apps);
        self.backends.inner.changed.tell();
    }
}

impl Default for Backends {
    fn default() -> Self {
        Self::new(1)
    }
}

impl Backends {
    /// A registry for an edge of `threads` threads.
    pub fn new(threads: usize) -> Self {
        Backends {
            inner: Arc::new(Inner {
                apps: RwLock::default(),
                changed: Arc::default(),
                epoch: Instant::now(),
                threads,
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Vec<Arc<Backend>>>> {
        self.inner.apps.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Vec<Arc<Backend>>>> {
        self.inner.apps.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a machine that just started; it takes traffic once marked healthy.
    pub fn register(&self, spec: BackendSpec) -> Registration {
        let backend = Arc::new(Backend {
            healthy: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            last_active: AtomicU64::new(0),
            changed: self.inner.changed.clone(),
            epoch: self.inner.epoch,
            idle: Notify::new(),
            upstreams: Pools::new(self.inner.threads),
            senders: Pools::new(self.inner.threads),
            h2_senders: Pools::new(self.inner.threads),
            spec,
        });
        backend.touch();
        self.write()
            .entry(backend.spec.app.clone())
            .or_default()
            .push(backend.clone());
        Registration {
            backend,
            backends: self.clone(),
        }
    }

    /// The machines of `app` in `groups`, registered now.
    pub fn of(&self, app: &str, groups: &[String]) -> Vec<Arc<Backend>> {
        self.read()
            .get(app)
            .map(|list| {
                list.iter()
                    .filter(|b| groups.contains(&b.spec.group))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Picks a machine of `app` in `groups` for one request, skipping `exclude`.
    pub fn pick(&self, app: &str, groups: &[String], limits: Limits, exclude: &[String]) -> Pick {
        let apps = self.read();
        let candidates = || {
            apps.get(app).into_iter().flatten().filter(|b| {
                groups.contains(&b.spec.group) && b.pickable() && !exclude.contains(&b.spec.machine)
            })
        };
        let n = candidates().count();
        if n == 0 {
            return Pick::NoneHealthy;
        }
        let start = ROTATION.with(|r| {
            let start = r.get();
            r.set(start.wrapping_add(1));
            start % n
        });
        // Least loaded wins; under the soft limit beats over it; ties go to the rotation.
        let mut best: Option<(&Arc<Backend>, (bool, u32))> = None;
        for backend in candidates().skip(start).chain(candidates().take(start)) {
            let load = backend.in_flight();
            if limits.hard.is_some_and(|hard| load >= hard) {
                continue;
            }
            let key = (limits.soft.is_some_and(|soft| load >= soft), load);
            if best.as_ref().is_none_or(|(_, k)| key < *k) {
                best = Some((backend, key));
            }
        }
        let Some((backend, _)) = best else {
            return Pick::Full;
        };
        backend.in_flight.fetch_add(1, Ordering::AcqRel);
        backend.touch();
        Pick::Leased(Lease {
            backend: backend.clone(),
        })
    }

    /// Changes that could make a machine pickable, for a request that has to wait.
    pub fn changes(&self) -> &Changes {
        &self.inner.changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(machine: &str) -> BackendSpec {
        BackendSpec {
            machine: machine.into(),
            app: "a".into(),
            group: "app".into(),
            port: 1,
            internal_port: Some(8080),
        }
    }

    fn groups() -> Vec<String> {
        vec!["app".into()]
    }

    fn leased(pick: Pick) -> Lease {
        match pick {
            Pick::Leased(lease) => lease,
            Pick::Full => panic!("expected a machine, got Full"),
            Pick::NoneHealthy => panic!("expected a machine, got NoneHealthy"),
        }
    }

    #[test]
    fn only_healthy_undrained_machines_are_picked() {
        let backends = Backends::default();
        let one = backends.register(spec("one"));
        assert!(matches!(
            backends.pick("a", &groups(), Limits::default(), &[]),
            Pick::NoneHealthy
        ));
        one.backend().set_healthy(true);
        let lease = leased(backends.pick("a", &groups(), Limits::default(), &[]));
        assert_eq!(lease.backend.spec.machine, "one");
        assert!(matches!(
            backends.pick("a", &["worker".into()], Limits::default(), &[]),
            Pick::NoneHealthy
        ));
        drop(lease);
        drop(one);
        assert!(backends.of("a", &groups()).is_empty());
    }

    #[test]
    fn equal_machines_share_requests_and_the_least_loaded_wins() {
        let backends = Backends::default();
        let regs: Vec<_> = ["x", "y"]
            .iter()
            .map(|m| backends.register(spec(m)))
            .collect();
        regs.iter().for_each(|r| r.backend().set_healthy(true));
        let first = leased(backends.pick("a", &groups(), Limits::default(), &[]));
        let second = leased(backends.pick("a", &groups(), Limits::default(), &[]));
        assert_ne!(first.backend.spec.machine, second.backend.spec.machine);
        drop(second);
        // `first` is busy, so the other one wins however the rotation stands.
        for _ in 0..4 {
            let next = leased(backends.pick("a", &groups(), Limits::default(), &[]));
            assert_ne!(next.backend.spec.machine, first.backend.spec.machine);
        }
    }

    #[test]
    fn the_hard_limit_is_never_exceeded() {
        let backends = Backends::default();
        let reg = backends.register(spec("x"));
        reg.backend().set_healthy(true);
        let limits = Limits {
            soft: Some(1),
            hard: Some(2),
        };
        let a = leased(backends.pick("a", &groups(), limits, &[]));
        let _b = leased(backends.pick("a", &groups(), limits, &[]));
        assert!(matches!(
            backends.pick("a", &groups(), limits, &[]),
            Pick::Full
        ));
        drop(a);
        let _c = leased(backends.pick("a", &groups(), limits, &[]));
    }

    #[tokio::test]
    async fn a_request_waiting_at_the_hard_limit_is_woken_when_one_ends() {
        let backends = Backends::default();
        let reg = backends.register(spec("x"));
        reg.backend().set_healthy(true);
        let limits = Limits {
            soft: None,
            hard: Some(1),
        };
        let first = leased(backends.pick("a", &groups(), limits, &[]));
        let watch = backends.changes().watch();
        let notified = watch.notified();
        assert!(matches!(
            backends.pick("a", &groups(), limits, &[]),
            Pick::Full
        ));
        drop(first);
        tokio::time::timeout(Duration::from_secs(10), notified)
            .await
            .expect("woken when the lease ended");
        leased(backends.pick("a", &groups(), limits, &[]));
    }

    #[tokio::test]
    async fn drain_waits_for_in_flight_requests_and_stops_new_ones() {
        let backends = Backends::default();
        let reg = backends.register(spec("x"));
        reg.backend().set_healthy(true);
        let lease = leased(backends.pick("a", &groups(), Limits::default(), &[]));
        let drained = {
            let reg = &reg;
            async move { reg.drain(Duration::from_secs(10)).await }
        };
        let release = async {
            // The drain has begun once the machine is no longer picked.
            while matches!(
                backends.pick("a", &groups(), Limits::default(), &[]),
                Pick::Leased(_)
            ) {
                tokio::task::yield_now().await;
            }
            drop(lease);
        };
        let (left, ()) = tokio::join!(drained, release);
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn drain_gives_up_at_its_limit() {
        let backends = Backends::default();
        let reg = backends.register(spec("x"));
        reg.backend().set_healthy(true);
        let _lease = leased(backends.pick("a", &groups(), Limits::default(), &[]));
        assert_eq!(reg.drain(Duration::from_millis(20)).await, 1);
    }
}
