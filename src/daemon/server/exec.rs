//! `POST /v1/apps/{app}/machines/{id}/exec`: a command run once in a machine's
//! environment. Answered once it ended (`ExecResult`), or, asked with
//! `Accept: application/x-ndjson`, as it runs: a line per piece of output, then its end
//! (`ExecEvent`). A client that hangs up on the stream has the command killed.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::error::ServerError;
use super::extract::ApiJson;
use super::Shared;
use crate::api::types::{ExecEvent, ExecRequest, NDJSON};
use crate::daemon::runtime::exec::PreparedExec;
use crate::daemon::runtime::oneoff::Output;
use crate::daemon::runtime::output_lines::whole_characters;

/// What a client is told of a command lakeflyd killed as it stopped.
const STOPPING: &str = "lakeflyd is stopping: the command was killed";

/// Runs the command; see the module's doc for the two kinds of answer.
pub async fn exec(
    State(state): State<Shared>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ExecRequest>,
) -> Result<Response, ServerError> {
    if request.command.trim().is_empty() {
        return Err(ServerError::BadRequest("the command is empty".into()));
    }
    if let Some(timeout) = request.timeout {
        if timeout.as_millis() == 0 || timeout > ExecRequest::MAX_TIMEOUT {
            return Err(ServerError::BadRequest(format!(
                "timeout {timeout} is out of range: give one above zero and at most {}",
                ExecRequest::MAX_TIMEOUT
            )));
        }
    }
    if let Some(stdin) = &request.stdin {
        if stdin.len() > ExecRequest::MAX_STDIN {
            return Err(ServerError::BadRequest(format!(
                "stdin is {} bytes, over the {} a command is given",
                stdin.len(),
                ExecRequest::MAX_STDIN
            )));
        }
    }
    state.require_app(&app).await?;
    let streamed = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains(NDJSON));
    if !streamed {
        // lakeflyd stopping does not wait for the command (up to its time limit): it is
        // killed (dropped mid-run, its group goes), and the client told.
        let mut shutdown = state.shutdown.clone();
        let result = tokio::select! {
            result = state.runtime.exec(&app, &id, &request) => result?,
            _ = shutdown.wait_for(|stopping| *stopping) => {
                return Err(ServerError::ExecFailed(STOPPING.to_string()));
            }
        };
        return Ok(Json(result).into_response());
    }
    // Found and prepared before the answer starts: no such machine is still a 404.
    let prepared = state.runtime.prepare_exec(&app, &id, &request).await?;
    let (lines, body) = mpsc::channel::<Bytes>(16);
    tokio::spawn(run_streamed(state, prepared, lines));
    let body = Body::from_stream(ReceiverStream::new(body).map(Ok::<_, std::convert::Infallible>));
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    Ok(response)
}

/// Runs a prepared command, its output and then its end sent to `lines` as they come.
/// lakeflyd stopping kills it, and says so.
async fn run_streamed(state: Shared, prepared: PreparedExec, lines: mpsc::Sender<Bytes>) {
    let (output, written) = mpsc::channel(16);
    let mut shutdown = state.shutdown.clone();
    let run = state.runtime.run_exec(prepared, output);
    let last = tokio::select! {
        (end, client_there) = async { tokio::join!(run, pass_on(written, lines.clone())) } => {
            if !client_there {
                return;
            }
            match end {
                Ok(end) => ExecEvent::End(end),
                Err(e) => ExecEvent::Error(e.to_string()),
            }
        }
        _ = shutdown.wait_for(|stopping| *stopping) => {
            ExecEvent::Error(STOPPING.to_string())
        }
    };
    let _ = lines.send(line(&last)).await;
}

/// Sends the command's output on as lines until its pipes close; false when the client
/// went away (its answer dropped, or its lines unread). Returning drops `written`, which
/// kills the command, quiet or not.
async fn pass_on(mut written: mpsc::Receiver<Output>, lines: mpsc::Sender<Bytes>) -> bool {
    let (mut stdout, mut stderr) = (Utf8Pieces::default(), Utf8Pieces::default());
    loop {
        let piece = tokio::select! {
            piece = written.recv() => piece,
            () = lines.closed() => return false,
        };
        let event = match piece {
            Some(Output::Stdout(bytes)) => ExecEvent::Stdout(stdout.push(&bytes)),
            Some(Output::Stderr(bytes)) => ExecEvent::Stderr(stderr.push(&bytes)),
            None => break,
        };
        // Only the start of a character so far: nothing to send yet.
        if matches!(&event, ExecEvent::Stdout(t) | ExecEvent::Stderr(t) if t.is_empty()) {
            continue;
        }
        if lines.send(line(&event)).await.is_err() {
            return false;
        }
    }
    // A character begun and never finished, at the very end of a stream.
    let rest = [
        (
            stdout.finish(),
            ExecEvent::Stdout as fn(String) -> ExecEvent,
        ),
        (stderr.finish(), ExecEvent::Stderr),
    ];
    for (text, event) in rest {
        if !text.is_empty() && lines.send(line(&event(text))).await.is_err() {
            return false;
        }
    }
    true
}

/// One NDJSON line.
fn line(event: &ExecEvent) -> Bytes {
    let mut text = serde_json::to_vec(event).unwrap_or_else(|_| b"{}".to_vec());
    text.push(b'\n');
    Bytes::from(text)
}

/// Turns one stream's pieces of output into text without splitting a character: the
/// bytes of one begun at the end of a piece wait for the next.
#[derive(Debug, Default)]
struct Utf8Pieces {
    pending: Vec<u8>,
}

impl Utf8Pieces {
    /// The text of `bytes` after what was pending, up to the last whole character
    /// (invalid bytes become U+FFFD).
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let whole = whole_characters(&self.pending);
        let text = String::from_utf8_lossy(&self.pending[..whole]).into_owned();
        self.pending.drain(..whole);
        text
    }

    /// What is left at the end of the stream.
    fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_between_pieces_is_passed_on_whole() {
        let mut text = Utf8Pieces::default();
        let snowman = "é☃😀".as_bytes();
        // Every split of the bytes gives the same text, never a replacement character.
        for cut in 0..=snowman.len() {
            let mut joined = text.push(&snowman[..cut]);
            joined.push_str(&text.push(&snowman[cut..]));
            joined.push_str(&text.finish());
            assert_eq!(joined, "é☃😀", "cut at {cut}");
        }
        // Bytes that are no UTF-8 at all are not held back.
        assert_eq!(text.push(b"a\xffb"), "a\u{fffd}b");
        // A sequence begun at the very end and never finished shows as one replacement.
        assert_eq!(text.push(b"x\xe2\x98"), "x");
        assert_eq!(text.finish(), "\u{fffd}");
    }
}
