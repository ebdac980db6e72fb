//! The requests in progress on one served connection, and the wait for it to have had none
//! for a while: how the edge and the API close a kept-alive connection that sits idle.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// The count of a connection's requests in progress (over HTTP/2, its open streams).
#[derive(Clone)]
pub struct InFlight(Arc<watch::Sender<usize>>);

impl InFlight {
    /// A connection's count, at zero.
    pub fn new() -> Self {
        InFlight(Arc::new(watch::Sender::new(0)))
    }

    /// A request that counts while the returned guard lives: from its head until its
    /// answer's body is sent or dropped, when the guard is moved into that body.
    pub fn start(&self) -> OpenRequest {
        self.0.send_modify(|n| *n += 1);
        OpenRequest(self.0.clone())
    }

    /// Returns once no request has been in progress for `limit`.
    pub async fn until_idle(&self, limit: Duration) {
        let mut open = self.0.subscribe();
        loop {
            // The sender lives in `self`, so neither wait ends in an error.
            let _ = open.wait_for(|open| *open == 0).await;
            if tokio::time::timeout(limit, open.wait_for(|open| *open > 0))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// Drives the served connection `conn` to its end; once `close` is ready first (the
/// connection idle, the daemon stopping), `close_gracefully` is called on it (hyper's
/// `graceful_shutdown`, which each connection type has with no trait to share) and the
/// requests it has in progress are let finish.
pub async fn serve_until<C: Future>(
    mut conn: Pin<&mut C>,
    close: impl Future<Output = ()>,
    close_gracefully: impl FnOnce(Pin<&mut C>),
) -> C::Output {
    tokio::select! {
        served = conn.as_mut() => served,
        () = close => {
            close_gracefully(conn.as_mut());
            conn.await
        }
    }
}

/// A request in progress, counted in its connection's [`InFlight`] while it lives.
pub struct OpenRequest(Arc<watch::Sender<usize>>);

impl OpenRequest {
    /// `body`, as the answer to this request, which counts until it is sent or dropped.
    pub fn until_sent<B: http_body::Body>(
        self,
        body: B,
    ) -> impl http_body::Body<Data = B::Data, Error = B::Error> {
        http_body_util::BodyExt::map_frame(body, move |frame| {
            let _open = &self;
            frame
        })
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_last_request_ending_not_from_the_first_starting() {
        let in_flight = InFlight::new();
        let limit = Duration::from_secs(60);
        let started = tokio::time::Instant::now();
        let request = in_flight.start();
        let ending = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(90)).await;
            drop(request);
        });
        in_flight.until_idle(limit).await;
        // 90 s in progress, then 60 s idle.
        assert_eq!(started.elapsed(), Duration::from_secs(150));
        ending.await.unwrap();
    }
}
