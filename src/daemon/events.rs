//! The event hub: every state change is committed with its events in one transaction,
//! then published live. Subscribers replay from the store and join the live feed with no
//! gap and no duplicate.

use std::path::Path;
use std::sync::Arc;

use rusqlite::Transaction;
use tokio::sync::{broadcast, mpsc, watch};

use super::store::{self, EventFilter, Store, StoreError};
use crate::api::types::{kind, Event};

/// How many live events a subscriber may fall behind before it is disconnected (it then
/// resumes from its last id, from the store).
const LIVE_BUFFER: usize = 4096;
/// Events read from the store per query while replaying.
const REPLAY_BATCH: usize = 512;
/// Events queued for one subscriber's connection.
const SUBSCRIBER_QUEUE: usize = 64;

/// An event about to be recorded.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The app it is about.
    pub app: Option<String>,
    /// Its kind (`app.created`).
    pub kind: &'static str,
    /// Details.
    pub data: serde_json::Value,
}

impl NewEvent {
    /// An event about `app`.
    pub fn app(app: &str, kind: &'static str, data: serde_json::Value) -> Self {
        NewEvent {
            app: Some(app.to_string()),
            kind,
            data,
        }
    }

    /// An event about the daemon itself.
    pub fn daemon(kind: &'static str, data: serde_json::Value) -> Self {
        NewEvent {
            app: None,
            kind,
            data,
        }
    }
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Only events from now on.
    Now,
    /// Every retained event with an id above this one, then live.
    After(u64),
    /// The last `n` matching events, then live.
    Tail(usize),
}

/// Records and publishes events.
#[derive(Clone)]
pub struct EventHub {
    store: Store,
    live: broadcast::Sender<Arc<Event>>,
    recorded: prometheus_client::metrics::counter::Counter,
}

impl EventHub {
    /// A hub over `store`, counting recorded events in `recorded`.
    pub fn new(store: Store, recorded: prometheus_client::metrics::counter::Counter) -> Self {
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        EventHub {
            store,
            live,
            recorded,
        }
    }

    /// Runs a state change and records the events it returns, in one transaction; then
    /// publishes them. Nothing is published if the change fails.
    pub async fn change<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Transaction, &Path) -> Result<(T, Vec<NewEvent>), StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let live = self.live.clone();
        let recorded = self.recorded.clone();
        let (value, published) = self
            .store
            .run(move |conn, path| {
                let tx = conn.transaction().map_err(store::sqlite(path))?;
                let (value, new_events) = f(&tx, path)?;
                let time = now();
                let events = new_events
                    .iter()
                    .map(|e| {
                        store::events::insert(&tx, path, &time, e.app.as_deref(), e.kind, &e.data)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                tx.commit().map_err(store::sqlite(path))?;
                // Still holding the connection: events reach subscribers in id order.
                recorded.inc_by(events.len() as u64);
                let published: Vec<Arc<Event>> = events.into_iter().map(Arc::new).collect();
                for event in &published {
                    // No subscriber is not an error.
                    let _ = live.send(event.clone());
                }
                Ok((value, published))
            })
            .await?;
        // Once the connection is free: a slow stderr (a stalled journal) holds up this
        // change alone, not every other one waiting for the store.
        for event in &published {
            super::journal::log(event);
        }
        Ok(value)
    }

    /// Records one event that goes with no other state change.
    pub async fn emit(&self, event: NewEvent) -> Result<(), StoreError> {
        self.change(move |_, _| Ok(((), vec![event]))).await
    }

    /// How many connections follow the live feed.
    pub fn subscribers(&self) -> usize {
        self.live.receiver_count()
    }

    /// Starts a subscription; events arrive on the returned channel, which closes when the
    /// subscriber falls too far behind, on shutdown, or on a store error.
    pub fn subscribe(
        &self,
        filter: EventFilter,
        start: Start,
        shutdown: watch::Receiver<bool>,
    ) -> mpsc::Receiver<Arc<Event>> {
        // Subscribe to the live feed before reading the store, so every event committed
        // after the read is in the feed; ids already sent are skipped.
        let live = self.live.subscribe();
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = forward(store, live, filter, start, tx, shutdown).await {
                tracing::warn!(error = %e, "event stream ended by a store error");
            }
        });
        rx
    }

    /// Up to `limit` stored events from `start` on, oldest first, as a subscription
    /// would replay them (a `gap` event first when `start` is before the oldest retained
    /// event), without going live. `Start::Now` means every retained event. The next page
    /// starts after the last id returned.
    pub async fn stored(
        &self,
        filter: EventFilter,
        start: Start,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let (since, gap) = match start {
            Start::Now => (0, None),
            Start::After(since) => (since, gap_since(&self.store, since).await?),
            Start::Tail(n) => {
                let f = filter.clone();
                let since = self
                    .store
                    .run(move |conn, path| store::events::before_tail(conn, path, n, &f))
                    .await?;
                (since, None)
            }
        };
        let mut events: Vec<Event> = gap.into_iter().collect();
        let page = self
            .store
            .run(move |conn, path| store::events::after(conn, path, since, &filter, limit))
            .await?;
        events.extend(page);
        Ok(events)
    }
}

async fn forward(
    store: Store,
    mut live: broadcast::Receiver<Arc<Event>>,
    filter: EventFilter,
    start: Start,
    out: mpsc::Sender<Arc<Event>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let mut last = 0u64;
    match start {
        Start::Now => {}
        Start::Tail(n) => {
            let f = filter.clone();
            let events = store
                .run(move |conn, path| store::events::tail(conn, path, n, &f))
                .await?;
            for event in events {
                last = event.id;
                if out.send(Arc::new(event)).await.is_err() {
                    return Ok(());
                }
            }
        }
        Start::After(since) => {
            last = since;
            if let Some(gap) = gap_since(&store, since).await? {
                if out.send(Arc::new(gap)).await.is_err() {
                    return Ok(());
                }
            }
            loop {
                let f = filter.clone();
                let batch = store
                    .run(move |conn, path| store::events::after(conn, path, last, &f, REPLAY_BATCH))
                    .await?;
                let done = batch.len() < REPLAY_BATCH;
                for event in batch {
                    last = event.id;
                    if out.send(Arc::new(event)).await.is_err() {
                        return Ok(());
                    }
                }
                if done {
                    break;
                }
            }
        }
    }
    loop {
        tokio::select! {
            // Events already published (such as `daemon.stopping`) go out before a
            // shutdown ends the stream.
            biased;
            received = live.recv() => match received {
                Ok(event) => {
                    if event.id <= last || !filter.matches(&event) {
                        continue;
                    }
                    last = event.id;
                    if out.send(event).await.is_err() {
                        return Ok(());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(missed, last, "disconnecting a subscriber that fell behind");
                    return Ok(());
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// The `gap` event for a resume from before the retained window, if events were lost.
async fn gap_since(store: &Store, since: u64) -> Result<Option<Event>, StoreError> {
    let (first, last) = store
        .run(|conn, path| {
            Ok((
                store::events::first_id(conn, path)?,
                store::events::last_id(conn, path)?,
            ))
        })
        .await?;
    // With nothing retained, everything up to the last id ever assigned is gone.
    let first_available = first.unwrap_or(last + 1);
    if since + 1 >= first_available {
        return Ok(None);
    }
    let lost = first_available - since - 1;
    Ok(Some(Event {
        // Carrying an id lets a client that reconnects after the gap resume past it.
        id: first_available - 1,
        time: now(),
        app: None,
        kind: kind::GAP.to_string(),
        data: serde_json::json!({ "lost": lost, "first_available": first_available }),
    }))
}

/// The current time, as events record it (RFC 3339, UTC, milliseconds).
pub fn now() -> String {
    stamp(chrono::Utc::now())
}

/// `at` as events and log lines record times, so the stored ones compare with it.
pub fn stamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> (EventHub, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (EventHub::new(store, Default::default()), dir)
    }

    #[tokio::test]
    async fn a_subscriber_that_stops_reading_is_disconnected_not_buffered() {
        let (hub, _dir) = hub();
        let (_stop, stopped) = watch::channel(false);
        let mut rx = hub.subscribe(EventFilter::default(), Start::Now, stopped);
        // More than the subscriber's queue plus the live buffer, with nobody reading.
        let total = LIVE_BUFFER + SUBSCRIBER_QUEUE + 100;
        for i in 0..total {
            hub.emit(NewEvent::daemon("test.tick", serde_json::json!({ "i": i })))
                .await
                .unwrap();
        }
        let mut received = 0;
        while let Some(event) = rx.recv().await {
            received += 1;
            assert_eq!(event.data["i"], received - 1, "what arrives is in order");
        }
        assert!(
            received < total,
            "the stream ended early instead of holding {total} events"
        );
        assert_eq!(hub.subscribers(), 0, "the live feed forgot the subscriber");
    }

    /// The ids of `events`.
    fn ids(events: &[Event]) -> Vec<u64> {
        events.iter().map(|e| e.id).collect()
    }

    #[tokio::test]
    async fn stored_events_page_from_a_start_without_going_live() {
        let (hub, _dir) = hub();
        for i in 0..10 {
            let app = if i % 2 == 0 { "even" } else { "odd" };
            hub.emit(NewEvent::app(
                app,
                "test.tick",
                serde_json::json!({ "i": i, "machine": format!("m{}", i % 3) }),
            ))
            .await
            .unwrap();
        }
        let all = EventFilter::default();
        // One machine's, stored and as the live filter sees them.
        let m0 = EventFilter {
            machine: Some("m0".into()),
            ..EventFilter::default()
        };
        let m0_events = hub.stored(m0.clone(), Start::Now, 100).await.unwrap();
        assert_eq!(ids(&m0_events), [1, 4, 7, 10]);
        assert!(m0_events.iter().all(|e| m0.matches(e)));
        let last_two = hub.stored(m0.clone(), Start::Tail(2), 100).await.unwrap();
        assert_eq!(ids(&last_two), [7, 10]);
        let others = hub.stored(all.clone(), Start::Now, 100).await.unwrap();
        assert_eq!(others.iter().filter(|e| m0.matches(e)).count(), 4);
        let even = EventFilter {
            app: Some("even".into()),
            kind_prefix: None,
            machine: None,
        };
        let stored = |filter: &EventFilter, start, limit| hub.stored(filter.clone(), start, limit);
        assert_eq!(
            ids(&stored(&all, Start::Now, 100).await.unwrap()),
            (1..=10).collect::<Vec<_>>()
        );
        assert_eq!(ids(&stored(&all, Start::Now, 3).await.unwrap()), [1, 2, 3]);
        assert_eq!(
            ids(&stored(&all, Start::After(3), 3).await.unwrap()),
            [4, 5, 6]
        );
        assert_eq!(
            ids(&stored(&all, Start::After(10), 3).await.unwrap()),
            Vec::<u64>::new()
        );
        // The last three of one app's, then the page after them: nothing.
        assert_eq!(
            ids(&stored(&even, Start::Tail(3), 100).await.unwrap()),
            [5, 7, 9]
        );
        assert_eq!(
            ids(&stored(&even, Start::Tail(3), 2).await.unwrap()),
            [5, 7]
        );
        assert_eq!(
            ids(&stored(&even, Start::Tail(50), 100).await.unwrap()),
            [1, 3, 5, 7, 9]
        );
        assert_eq!(
            ids(&stored(&even, Start::Tail(0), 100).await.unwrap()),
            Vec::<u64>::new()
        );
    }

    #[tokio::test]
    async fn stored_events_from_before_the_retained_window_start_with_a_gap() {
        let (hub, _dir) = hub();
        for i in 0..6 {
            hub.emit(NewEvent::daemon("test.tick", serde_json::json!({ "i": i })))
                .await
                .unwrap();
        }
        hub.store
            .run(|conn, path| store::events::prune(conn, path, 3, "1970-01-01T00:00:00Z"))
            .await
            .unwrap();
        let events = hub
            .stored(EventFilter::default(), Start::After(1), 100)
            .await
            .unwrap();
        assert_eq!(events[0].kind, kind::GAP);
        assert_eq!(events[0].data["lost"], 2, "{events:?}");
        assert_eq!(ids(&events[1..]), [4, 5, 6]);
        // Every retained event, from the oldest: no gap to report.
        let events = hub
            .stored(EventFilter::default(), Start::Now, 100)
            .await
            .unwrap();
        assert_eq!(ids(&events), [4, 5, 6]);
    }

    #[tokio::test]
    async fn changes_that_fail_publish_nothing() {
        let (hub, _dir) = hub();
        let (_stop, stopped) = watch::channel(false);
        let mut rx = hub.subscribe(EventFilter::default(), Start::Now, stopped);
        let failed: Result<(), _> = hub
            .change(|_, path| {
                Err::<((), Vec<NewEvent>), _>(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    what: "test",
                    id: 0,
                })
            })
            .await;
        assert!(failed.is_err());
        hub.emit(NewEvent::daemon("test.after", serde_json::json!({})))
            .await
            .unwrap();
        let first = rx.recv().await.unwrap();
        assert_eq!((first.id, first.kind.as_str()), (1, "test.after"));
    }
}
