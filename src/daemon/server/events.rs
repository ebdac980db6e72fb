//! `GET /v1/events` and `GET /events`: the live Server-Sent Events stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::error::ServerError;
use super::Shared;
use crate::daemon::events::Start;
use crate::daemon::store::EventFilter;

/// How often an idle stream gets a comment line, so proxies keep it open.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Query parameters of the stream.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Only this app's events.
    app: Option<String>,
    /// Only kinds with this prefix (`machine.`).
    kind: Option<String>,
    /// Resume after this id (like `Last-Event-ID`).
    since: Option<u64>,
    /// Replay the last N events first.
    tail: Option<usize>,
}

/// `GET /v1/events?app=&kind=&since=&tail=`, honouring `Last-Event-ID`.
pub async fn stream(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ServerError> {
    let last_event_id = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ServerError::BadRequest(
                        "Last-Event-ID must be an event id (a whole number)".into(),
                    )
                })?,
        ),
        None => None,
    };
    let start = match (last_event_id.or(q.since), q.tail) {
        (Some(since), _) => Start::After(since),
        (None, Some(n)) => Start::Tail(n),
        (None, None) => Start::Now,
    };
    let filter = EventFilter {
        app: q.app.filter(|a| !a.is_empty()),
        kind_prefix: q.kind.filter(|k| !k.is_empty()),
    };
    let events = state.hub.subscribe(filter, start, state.shutdown.clone());
    let stream = ReceiverStream::new(events).map(|event| {
        let data = serde_json::to_string(&*event).unwrap_or_else(|_| "{}".into());
        Ok(SseEvent::default()
            .id(event.id.to_string())
            .event(event.kind.clone())
            .data(data))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat")))
}
