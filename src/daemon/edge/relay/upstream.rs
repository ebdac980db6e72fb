//! The machine's side of an exchange: the request sent over a kept-alive or a new
//! connection, and the machine's answer passed on to the client.
//!
//! A body that streams from the client is sent while the machine is listened to: an app
//! may answer before it has read all of it (413 for an upload too large, 401) and stop
//! reading, and an edge that waited for the body to go first would wait forever. Once
//! such an answer's head is in, it is passed on while the rest of the body still goes
//! (so an app that answers as it reads keeps working), and the connection closes after.

use std::task::{Context, Waker};

use bytes::{Buf, BytesMut};
use http::Method;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::body::{fill, relay, relay_compressed, RelayError, Source};
use super::message::{parse_response, RequestHead};
use super::{answer, linger, After, Client, Failed, Outgoing, CLIENT_CLOSED};
use crate::daemon::edge::answers::STALLED_BODY;
use crate::daemon::edge::backends::Backend;
use crate::daemon::edge::pool::Reusable;
use crate::daemon::stall::StallLimit;

/// A kept-alive connection to a machine, with what was read from it and not used yet.
pub struct Upstream {
    stream: TcpStream,
    buf: BytesMut,
    /// The machine's port it goes to.
    port: u16,
}

impl Upstream {
    /// A new connection to the machine's `port`.
    pub(super) fn new(stream: TcpStream, port: u16) -> Self {
        Upstream {
            stream,
            buf: BytesMut::new(),
            port,
        }
    }
}

impl Reusable for Upstream {
    /// Still idle: nothing arrived since its last response, and the machine did not close
    /// it (the event loop has seen no read event for it; no syscall is made).
    fn usable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.buf.is_empty() && self.stream.poll_read_ready(&mut cx).is_pending()
    }
}

/// A response passed on to the client.
struct Passed {
    status: u16,
    /// It went whole, and the machine's connection can carry another request.
    reusable: bool,
    /// The client's connection ends after it.
    close: bool,
}

/// Sends the request over `upstream` (`reused` from the pool) and passes the response
/// on; the connection goes back to the pool when it can carry another.
pub(super) async fn send(
    mut upstream: Upstream,
    reused: bool,
    client: &mut Client,
    request: &Outgoing<'_>,
    backend: &Backend,
) -> Result<(u16, After), Failed> {
    let head = request.head;
    let machine = backend.spec.machine.as_str();
    match request.whole {
        Some(bytes) => {
            if let Err(e) = upstream.stream.write_all(bytes).await {
                // A request that may be sent twice is sent again; any other only when it
                // could not even be written to a kept-alive connection (the machine had
                // closed it): once written, the machine may have acted on it.
                let why = format!("sending the request: {e}");
                return Err(if reused || request.replayable {
                    Failed::Retry(why)
                } else {
                    Failed::GiveUp(why)
                });
            }
        }
        None => match stream_body(&mut upstream, client, head, machine).await? {
            Streamed::Sent => {}
            Streamed::AnsweredEarly(status) => {
                // The client may still be sending the body nobody reads any more.
                linger(&mut client.stream).await;
                return Ok((status, After::Close));
            }
            Streamed::ClientGone => return Ok((CLIENT_CLOSED, After::Close)),
            Streamed::ClientStalled => {
                let (status, code, message) = STALLED_BODY;
                return Ok(answer(client, status, code, message, head, true).await);
            }
        },
    }
    let Upstream { stream, buf, .. } = &mut upstream;
    let to = &mut StallLimit::new(&mut client.stream, client.stall);
    let replayable = request.replayable;
    let passed = respond(stream, buf, to, head, head.close, replayable, machine).await?;
    if passed.reusable {
        backend.upstreams.here().put(upstream.port, upstream);
    }
    let after = if passed.close {
        After::Close
    } else {
        After::KeepAlive
    };
    Ok((passed.status, after))
}

/// How sending a body that streams from the client ended.
enum Streamed {
    /// All of it went to the machine; the answer is still to be read.
    Sent,
    /// The machine answered before it had all of it; the answer, with this status, was
    /// passed on.
    AnsweredEarly(u16),
    /// The client went away mid-body: nobody is left to answer.
    ClientGone,
    /// The client stopped sending the body; it is told so (408).
    ClientStalled,
}

/// Sends the body that follows `head` from the client to the machine, listening to the
/// machine meanwhile (see the module's doc).
async fn stream_body(
    upstream: &mut Upstream,
    client: &mut Client,
    head: &RequestHead,
    machine: &str,
) -> Result<Streamed, Failed> {
    let (mut from_machine, to_machine) = upstream.stream.split();
    let (from_client, to_client) = client.stream.split();
    // Only the machine's answer may take its time: it may be thinking, or streaming.
    let mut to_machine = StallLimit::new(to_machine, client.stall);
    let mut from_client = StallLimit::new(from_client, client.stall);
    let mut to_client = StallLimit::new(to_client, client.stall);
    let src = Source {
        stream: &mut from_client,
        buf: &mut client.buf,
    };
    let body = relay(head.upstream.clone(), head.framing, src, &mut to_machine);
    tokio::pin!(body);
    // Until the body is sent, or the machine's final answer (past any interim one) has
    // its head in.
    loop {
        tokio::select! {
            biased;
            sent = &mut body => return match sent {
                Ok(()) => Ok(Streamed::Sent),
                Err(RelayError::Read(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                    Ok(Streamed::ClientStalled)
                }
                // (Never `Unsent`: `proxy` refused a body broken in the bytes it had,
                // which are the ones looked at first here.)
                Err(e @ (RelayError::Read(_) | RelayError::Unsent(_))) => {
                    tracing::debug!(peer = %client.peer, error = %e, "edge: request body cut off");
                    Ok(Streamed::ClientGone)
                }
                Err(RelayError::Write(e)) => {
                    Err(Failed::GiveUp(format!("sending the request body: {e}")))
                }
            },
            read = fill(&mut from_machine, &mut upstream.buf) => match read {
                Ok(n) if n > 0 => {
                    if final_head_in(&upstream.buf, head) {
                        break;
                    }
                }
                // It hung up: what it sent before, if anything, is its answer.
                _ if !upstream.buf.is_empty() => break,
                Ok(_) => {
                    return Err(Failed::GiveUp(
                        "closed the connection while the request body was sent".into(),
                    ))
                }
                Err(e) => {
                    return Err(Failed::GiveUp(format!(
                        "while the request body was sent: {e}"
                    )))
                }
            },
        }
    }
    // The answer goes to the client while the body goes on; whatever becomes of the
    // body now, the answer decides the exchange, and the connection closes after it.
    let answer = respond(
        &mut from_machine,
        &mut upstream.buf,
        &mut to_client,
        head,
        true,
        false,
        machine,
    );
    tokio::pin!(answer);
    let mut body_ended = false;
    loop {
        tokio::select! {
            biased;
            passed = &mut answer => return passed.map(|p| Streamed::AnsweredEarly(p.status)),
            _ = &mut body, if !body_ended => body_ended = true,
        }
    }
}

/// Whether `buf` holds, past any interim answers, the head of the machine's final answer
/// to `head` (or bytes that are no answer, which `respond` reports).
fn final_head_in(buf: &[u8], head: &RequestHead) -> bool {
    let head_request = head.method == Method::HEAD;
    let mut at = 0;
    loop {
        match parse_response(&buf[at..], head_request, true, None) {
            Ok(Some(resp)) if is_interim(resp.status) => at += resp.len,
            Ok(None) => return false,
            Ok(Some(_)) | Err(_) => return true,
        }
    }
}

/// An interim answer (103 Early Hints): passed on, and the real one follows.
fn is_interim(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
}

/// Reads the machine's answer to `head` from `from` (after what `buf` holds) and passes
/// it on to `to`, interim answers first; `close` says the client's connection ends after
/// it. An `Err` means nothing of the final answer reached the client; it asks for a retry
/// only when nothing came back and the request is `replayable`.
async fn respond<R, W>(
    from: &mut R,
    buf: &mut BytesMut,
    to: &mut W,
    head: &RequestHead,
    close: bool,
    replayable: bool,
    machine: &str,
) -> Result<Passed, Failed>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let no_answer = |why: String| {
        if replayable {
            Failed::Retry(why)
        } else {
            Failed::GiveUp(why)
        }
    };
    let broken = |status| Passed {
        status,
        reusable: false,
        close: true,
    };
    let head_request = head.method == Method::HEAD;
    let resp = loop {
        match parse_response(buf, head_request, close, head.coding) {
            Ok(Some(resp)) if is_interim(resp.status) => {
                buf.advance(resp.len);
                if to.write_all(&resp.client).await.is_err() {
                    return Ok(broken(resp.status));
                }
                continue;
            }
            Ok(Some(resp)) if resp.status == 101 => {
                return Err(Failed::GiveUp("switched protocols unasked".to_string()))
            }
            Ok(Some(resp)) => break resp,
            Ok(None) => {}
            Err(e) => return Err(Failed::GiveUp(e.to_string())),
        }
        let nothing_yet = buf.is_empty();
        match fill(from, buf).await {
            Ok(n) if n > 0 => {}
            Ok(_) if nothing_yet => {
                return Err(no_answer("closed the connection without answering".into()))
            }
            Err(e) if nothing_yet => return Err(no_answer(format!("no answer: {e}"))),
            Ok(_) => return Err(Failed::GiveUp("closed the connection mid-answer".into())),
            Err(e) => return Err(Failed::GiveUp(format!("reading the answer: {e}"))),
        }
    };
    buf.advance(resp.len);
    let src = Source { stream: from, buf };
    let relayed = match resp.coding {
        Some(coding) => relay_compressed(resp.client, resp.framing, src, to, coding).await,
        None => relay(resp.client, resp.framing, src, to).await,
    };
    match relayed {
        Ok(()) => Ok(Passed {
            status: resp.status,
            reusable: resp.reusable,
            close: resp.close,
        }),
        // Nothing went out yet: the client can still be told (502).
        Err(RelayError::Unsent(e)) => Err(Failed::GiveUp(format!("{e} in the response"))),
        Err(e) => {
            // Too late for an error answer: the client has part of the response.
            tracing::debug!(%machine, error = %e, "edge: response cut off");
            Ok(broken(resp.status))
        }
    }
}
