//! A minimal Server-Sent Events reader over reqwest, for asserting on the raw stream.

use std::time::Duration;

use futures_util::StreamExt;

/// One message of the stream.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: Option<u64>,
    pub event: String,
    pub data: serde_json::Value,
}

pub struct Sse {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Sse {
    /// Opens `url`, sending `Last-Event-ID` when given.
    pub async fn connect(url: &str, last_event_id: Option<u64>) -> Self {
        let mut req = super::http_client().get(url);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.expect("connect to the event stream");
        assert_eq!(resp.status(), 200, "event stream status");
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Sse {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next message, or `None` when the stream ends; panics after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Message> {
        tokio::time::timeout(timeout, self.next_message())
            .await
            .unwrap_or_else(|_| panic!("no event within {timeout:?}"))
    }

    async fn next_message(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(message) = parse(&block) {
                    return Some(message);
                }
                continue; // a comment (heartbeat)
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                Some(Err(_)) | None => return None,
            }
        }
    }
}

fn parse(block: &str) -> Option<Message> {
    let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
    let mut any = false;
    for line in block.lines() {
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = value.parse().ok(),
            "event" => event = value.to_string(),
            "data" => data.push_str(value),
            _ => continue,
        }
        any = true;
    }
    any.then(|| Message {
        id,
        event,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
    })
}
