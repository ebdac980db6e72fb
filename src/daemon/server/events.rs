//! `GET /v1/events` and `GET /events`: the live Server-Sent Events stream, or with
//! `follow=false` the stored events as one JSON array.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::error::ServerError;
use super::extract::ApiQuery;
use super::Shared;
use crate::api::types::MAX_EVENTS_PAGE;
use crate::daemon::events::Start;
use crate::daemon::store::{machines, EventFilter};

/// How often an idle stream gets a comment line, so proxies keep it open.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Query parameters of the stream.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Only this app's events.
    app: Option<String>,
    /// Only kinds with this prefix (`machine.`).
    kind: Option<String>,
    /// Only events about this machine.
    machine: Option<String>,
    /// Resume after this id (like `Last-Event-ID`).
    since: Option<u64>,
    /// Replay the last N events first.
    tail: Option<usize>,
    /// `false`: answer the stored events as JSON instead of following (default `true`).
    follow: Option<bool>,
    /// With `follow=false`: most events in the answer (and at most [`MAX_EVENTS_PAGE`]).
    limit: Option<usize>,
}

/// `GET /v1/events?app=&kind=&machine=&since=&tail=`, honouring `Last-Event-ID`; with
/// `follow=false&limit=N`, the stored events from that start as a JSON array, oldest
/// first (every retained one when no start is given).
pub async fn stream(
    State(state): State<Shared>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ServerError> {
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
        machine: q.machine.filter(|m| !m.is_empty()),
    };
    if let (Some(app), Some(id)) = (&filter.app, &filter.machine) {
        // Ids are random and never reused: no event can ever come for one the app never
        // had, so a mistyped id is said rather than followed in silence.
        let (app, id) = (app.clone(), id.clone());
        state
            .store
            .run(move |conn, path| {
                Ok(match machines::ever_existed(conn, path, &app, &id)? {
                    true => Ok(()),
                    false => Err(ServerError::MachineNotFound { app, id }),
                })
            })
            .await??;
    }
    if q.follow == Some(false) {
        let limit = q.limit.unwrap_or(MAX_EVENTS_PAGE).clamp(1, MAX_EVENTS_PAGE);
        let events = state.hub.stored(filter, start, limit).await?;
        return Ok(Json(events).into_response());
    }
    Ok(live(&state, filter, start).into_response())
}

/// The SSE stream of a subscription.
fn live(
    state: &Shared,
    filter: EventFilter,
    start: Start,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let events = state.hub.subscribe(filter, start, state.shutdown.clone());
    let stream = ReceiverStream::new(events).map(|event| {
        let data = serde_json::to_string(&*event).unwrap_or_else(|_| "{}".into());
        Ok(SseEvent::default()
            .id(event.id.to_string())
            .event(event.kind.clone())
            .data(data))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
}
