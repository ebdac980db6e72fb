//! A limit on how long one read or write may make no progress. A client that stops
//! sending a body or reading an answer holds a connection to a machine (and one of its
//! workers) for as long as it likes otherwise; nginx gives up after 60 s by default
//! (`client_body_timeout`, `send_timeout`), and so do the edge and the API.
//!
//! Only an operation that has to wait arms a timer, so the usual read or write, done at
//! once, costs nothing. Time spent waiting on the other side (a machine thinking, an SSE
//! stream with nothing to say) is not counted against the client.
//!
//! [`StallLimit`] holds a connection's reads and writes to it; [`Watched`] a request
//! body's frames, and says how far the body was read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::daemon::edge::answers::{BoxError, EdgeBody};

/// How long an operation may wait, and the timer of the one waiting now.
pub struct Patience {
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

/// An operation waited its whole limit.
#[derive(Debug)]
pub struct Stalled(Duration);

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no progress for {}s", self.0.as_secs_f32())
    }
}

impl std::error::Error for Stalled {}

impl From<Stalled> for io::Error {
    fn from(stalled: Stalled) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, stalled)
    }
}

impl Patience {
    /// Operations may wait up to `limit` each.
    pub fn new(limit: Duration) -> Self {
        Patience { limit, timer: None }
    }

    /// An operation's result, given what polling it gave: ready ends the wait; pending
    /// starts it (or goes on with it), and fails as `Stalled` once it lasted the limit.
    pub fn check<T, E: From<Stalled>>(
        &mut self,
        polled: Poll<Result<T, E>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, E>> {
        if polled.is_ready() {
            self.timer = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.timer = None;
                Poll::Ready(Err(Stalled(limit).into()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// `S`, whose reads and writes fail with `TimedOut` after waiting `limit` for progress.
pub struct StallLimit<S> {
    inner: S,
    patience: Patience,
    /// Reads are limited too (not on a connection that may idle between requests).
    reads: bool,
}

impl<S> StallLimit<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, limit: Duration) -> Self {
        StallLimit {
            inner,
            patience: Patience::new(limit),
            reads: true,
        }
    }

    /// Wraps `inner`, limiting its writes only: for a whole connection, which may
    /// rightly wait between requests or carry an idle WebSocket.
    pub fn writes_only(inner: S, limit: Duration) -> Self {
        StallLimit {
            reads: false,
            ..StallLimit::new(inner, limit)
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallLimit<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.reads {
            return polled;
        }
        self.patience.check(polled, cx)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallLimit<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.patience.check(polled, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.patience.check(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.patience.check(polled, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that notes when it was read to its end, and gives up on a client that
/// stops sending it.
pub struct Watched {
    inner: EdgeBody,
    progress: Arc<Progress>,
    patience: Patience,
}

/// How far a [`Watched`] body got, for whoever sent it on.
pub struct Progress {
    ended: AtomicBool,
    stalled: AtomicBool,
}

impl Progress {
    /// Read to its end (an empty body from the start).
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Given up on because the client stopped sending it: a failed send was the
    /// client's doing, not the machine's.
    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }
}

impl Watched {
    /// `inner`, watched, each frame awaited up to `limit`.
    pub fn new(inner: EdgeBody, limit: Duration) -> (Self, Arc<Progress>) {
        let progress = Arc::new(Progress {
            ended: AtomicBool::new(inner.is_end_stream()),
            stalled: AtomicBool::new(false),
        });
        let patience = Patience::new(limit);
        (
            Watched {
                inner,
                progress: progress.clone(),
                patience,
            },
            progress,
        )
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        // A body of known length ends with its last frame, and may not be polled again.
        if matches!(polled, Poll::Ready(None))
            || matches!(polled, Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream())
        {
            self.progress.ended.store(true, Ordering::Release);
        }
        // The limit applies between frames: `Option` is turned inside out around it.
        let waited = match polled {
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(frame)) => Poll::Ready(frame),
            Poll::Pending => Poll::Pending,
        };
        let was_waiting = waited.is_pending();
        let checked = self.patience.check(waited, cx);
        if was_waiting && matches!(checked, Poll::Ready(Err(_))) {
            self.progress.stalled.store(true, Ordering::Release);
        }
        checked.map(Some)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_read_that_waits_too_long_fails_and_one_that_gets_bytes_does_not() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut limited = StallLimit::new(near, Duration::from_secs(60));
        let mut byte = [0u8; 1];
        // Bytes that come within the limit are read, however long the wait altogether.
        for _ in 0..3 {
            let reading = limited.read(&mut byte);
            let sending = async {
                tokio::time::sleep(Duration::from_secs(59)).await;
                far.write_all(b"x").await
            };
            let (read, sent) = tokio::join!(reading, sending);
            assert_eq!(read.unwrap(), 1);
            sent.unwrap();
        }
        // Nothing for the whole limit: the read gives up.
        let e = limited.read(&mut byte).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_limit() {
        let (near, _far) = tokio::io::duplex(4);
        let mut limited = StallLimit::new(near, Duration::from_secs(60));
        // The first bytes fill the pipe at once; the rest wait on a reader that never comes.
        let e = limited.write_all(b"more than four").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
