//! A machine's response body, which hands its connection back once read to the end (a
//! client's request body is `stall::Watched`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::answers::{BoxError, EdgeBody};
use super::backends::Lease;
use super::pool::Conn;

/// A response body that hands its connection back to the pool once it was read to the
/// end, and ends the request's lease when it is dropped.
pub(super) struct Tracked {
    /// A frame already read from `inner`, which comes first.
    first: Option<Frame<Bytes>>,
    inner: EdgeBody,
    done: Option<(Lease, u16, Conn)>,
}

impl Tracked {
    /// `first` (a frame already read from `inner`, if one was), then `inner`, handing
    /// `done`'s connection back once read to the end.
    pub(super) fn new(
        first: Option<Frame<Bytes>>,
        inner: EdgeBody,
        done: (Lease, u16, Conn),
    ) -> Self {
        Tracked {
            first,
            inner,
            done: Some(done),
        }
    }

    fn finish(&mut self) {
        if let Some((lease, port, conn)) = self.done.take() {
            conn.give_back(lease.backend.clone(), port);
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.take() {
            if self.inner.is_end_stream() {
                self.finish();
            }
            return Poll::Ready(Some(Ok(first)));
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finish(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.finish(),
            // A body cut off midway leaves its connection unusable: it is dropped.
            Poll::Ready(Some(Err(_))) => self.done = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        if let Some(data) = self.first.as_ref().and_then(Frame::data_ref) {
            let first = data.len() as u64;
            hint.set_lower(hint.lower() + first);
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper + first);
            }
        }
        hint
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // A body with nothing to read (HEAD, 204, 304) is never polled.
        if self.is_end_stream() {
            self.finish();
        }
    }
}
