//! Following the daemon's `/v1/events` stream with eventsource-client: it reconnects after a
//! dropped connection or a daemon restart and resends `Last-Event-ID`, so nothing is missed;
//! ids already seen are dropped, so nothing is shown twice.

use std::time::Duration;

use es::Client as _;
use eventsource_client as es;
use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;

use super::client::{refusal, ClientError};
use super::types::Event;

/// Which events to follow.
#[derive(Debug, Clone, Default)]
pub struct Follow {
    /// Only this app's.
    pub app: Option<String>,
    /// Only kinds with this prefix.
    pub kind: Option<String>,
    /// Only events about this machine.
    pub machine: Option<String>,
    /// Start after this id (replaying the stored log first).
    pub since: Option<u64>,
    /// Replay the last N first (when `since` is not given).
    pub tail: Option<usize>,
}

/// What the stream yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An event, each id once, in order.
    Event(Event),
    /// The connection dropped; the client is reconnecting after the last id.
    Reconnecting {
        /// Why it dropped.
        reason: String,
    },
    /// Connected again after [`Item::Reconnecting`]; what was missed follows.
    Reconnected,
}

/// The stream's URL: the daemon's `base` and [`path`].
pub fn url(base: &str, follow: &Follow) -> String {
    format!("{}{}", base.trim_end_matches('/'), path(follow))
}

/// `/v1/events` with the follow's filters, and its tail when it has no `since` (which goes
/// in `Last-Event-ID`, so a reconnect resumes after the last event instead).
pub fn path(follow: &Follow) -> String {
    let tail = follow.since.is_none().then_some(follow.tail).flatten();
    super::client::with_query(
        "/v1/events",
        &[
            ("app", follow.app.clone()),
            ("kind", follow.kind.clone()),
            ("machine", follow.machine.clone()),
            ("tail", tail.map(|tail| tail.to_string())),
        ],
    )
}

impl super::client::Client {
    /// `GET /v1/events?follow=false`: one page of the stored events `follow` selects
    /// (every retained one when it names no start), oldest first. A page of
    /// [`MAX_EVENTS_PAGE`](crate::api::types::MAX_EVENTS_PAGE) or more may have a next one,
    /// after its last id.
    pub async fn stored_events(
        &self,
        follow: &Follow,
    ) -> Result<Vec<Event>, super::client::ClientError> {
        let path = path(follow);
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut path = format!(
            "{path}{separator}follow=false&limit={}",
            crate::api::types::MAX_EVENTS_PAGE
        );
        if let Some(since) = follow.since {
            path.push_str(&format!("&since={since}"));
        }
        self.call(reqwest::Method::GET, &path, None::<&()>).await
    }
}

/// Follows the events of the daemon at `base`. The first connection must succeed (a
/// refusal is the daemon's error, as any request's); after that, drops are reported as
/// [`Item::Reconnecting`] and retried without end.
pub async fn follow(
    api: &super::client::Client,
    follow: &Follow,
) -> Result<impl Stream<Item = Item>, ClientError> {
    let base = api.base();
    let url = url(base, follow);
    let unreachable = |detail: String| ClientError::Unreachable {
        url: base.to_string(),
        proxy: crate::proxy_env::proxy_for(base),
        detail,
    };
    // The API client's set-up (TLS, proxy), with no limit on the whole exchange: the
    // stream lasts as long as it is followed.
    let http = super::client::builder_for(base)
        .map_err(unreachable)?
        .connect_timeout(Duration::from_secs(5))
        // The daemon sends a heartbeat every 15 s; silence for longer means a dead link.
        .read_timeout(Duration::from_secs(45))
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let transport = super::sse_transport::ReqwestTransport::new(http);
    let mut builder = es::ClientBuilder::for_url(&url).map_err(|e| unreachable(e.to_string()))?;
    if let Some(since) = follow.since {
        builder = builder.last_event_id(since.to_string());
    }
    // As the client's own requests: a token that is no header value is not sent, and the
    // daemon's refusal says what is missing.
    if let Some(value) = api.token().and_then(super::client::bearer) {
        if let Ok(value) = value.to_str() {
            builder = builder
                .header("Authorization", value)
                .map_err(|e| unreachable(e.to_string()))?;
        }
    }
    let client = builder
        .reconnect(
            es::ReconnectOptions::reconnect(true)
                .retry_initial(false)
                .delay(Duration::from_millis(200))
                .backoff_factor(2)
                .delay_max(Duration::from_secs(5))
                .build(),
        )
        .build_with_transport(transport);
    let mut raw = client.stream();
    // Wait for the first connection, so a daemon that is not there is an error now.
    loop {
        match raw.next().await {
            Some(Ok(es::SSE::Connected(_))) => break,
            Some(Ok(_)) => continue,
            Some(Err(es::Error::UnexpectedResponse(response, body))) => {
                let status = StatusCode::from_u16(response.status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let body = read_capped(body.into_stream()).await;
                return Err(refusal(url, status, &body));
            }
            Some(Err(e)) => return Err(unreachable(describe(&e))),
            None => return Err(unreachable("the stream closed at once".into())),
        }
    }
    let mut last = follow.since.unwrap_or(0);
    let mut dropped = false;
    Ok(raw.filter_map(move |item| {
        let out = match item {
            Ok(es::SSE::Event(ev)) => match serde_json::from_str::<Event>(&ev.data) {
                // An id at or below the last one was already shown (replay after a reconnect).
                Ok(event) if event.id <= last => None,
                Ok(event) => {
                    last = event.id;
                    Some(Item::Event(event))
                }
                Err(e) => Some(Item::Reconnecting {
                    reason: format!("skipped an unreadable event: {e}"),
                }),
            },
            Ok(es::SSE::Connected(_)) if dropped => {
                dropped = false;
                Some(Item::Reconnected)
            }
            Ok(es::SSE::Connected(_)) | Ok(es::SSE::Comment(_)) => None,
            // A clean end of the stream (daemon restart) is followed by a reconnect.
            Err(e) => {
                dropped = true;
                Some(Item::Reconnecting {
                    reason: describe(&e),
                })
            }
        };
        std::future::ready(out)
    }))
}

/// The start of a refusal's body: enough for the API's JSON error, bounded for anything
/// else at that address.
async fn read_capped(mut body: launchdarkly_sdk_transport::ByteStream) -> Vec<u8> {
    const CAP: usize = 64 * 1024;
    let mut bytes = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= CAP {
            bytes.truncate(CAP);
            break;
        }
    }
    bytes
}

fn describe(e: &es::Error) -> String {
    match e {
        es::Error::Eof => "the daemon closed the stream".into(),
        es::Error::UnexpectedEof => "the daemon closed the stream mid-event".into(),
        es::Error::TimedOut => "no word from the daemon for too long".into(),
        es::Error::UnexpectedResponse(response, _) => format!("HTTP {}", response.status()),
        // Each layer repeats the one below ("transport error: transport error: ..."); the
        // deepest says what happened.
        es::Error::Transport(e) => format!("lost the daemon ({})", super::client::root_cause(e)),
        es::Error::HttpStream(e) => {
            format!(
                "lost the daemon ({})",
                super::client::root_cause(e.as_ref())
            )
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_filters_and_tail_only_without_since() {
        let f = Follow {
            app: Some("hello".into()),
            kind: Some("machine.".into()),
            machine: None,
            since: None,
            tail: Some(5),
        };
        assert_eq!(
            url("http://h:1/", &f),
            "http://h:1/v1/events?app=hello&kind=machine.&tail=5"
        );
        let resumed = Follow {
            since: Some(9),
            ..f
        };
        assert_eq!(
            url("http://h:1", &resumed),
            "http://h:1/v1/events?app=hello&kind=machine."
        );
        // A job run's log source holds '#', which would end the URL's query raw.
        let job_run = Follow {
            machine: Some("job:nightly#3".into()),
            app: None,
            kind: None,
            since: None,
            tail: None,
        };
        assert_eq!(path(&job_run), "/v1/events?machine=job%3Anightly%233");
        let nothing = Follow {
            machine: None,
            ..job_run
        };
        assert_eq!(path(&nothing), "/v1/events");
    }

    #[test]
    fn a_dropped_connection_is_told_once_by_its_cause() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset");
        let error = es::Error::Transport(launchdarkly_sdk_transport::TransportError::new(reset));
        assert_eq!(describe(&error), "lost the daemon (connection reset)");
        assert_eq!(describe(&es::Error::Eof), "the daemon closed the stream");
    }
}
