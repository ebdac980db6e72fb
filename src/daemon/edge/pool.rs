//! Kept-alive connections to one machine, per edge thread: the relay's own HTTP/1.1
//! (`Upstream`), and hyper's (`Conn`, for what the full server forwards: HTTP/1.1, or
//! HTTP/2 shared by many requests for `h2_backend`). A connection
//! goes back to the pool once its response has been read to the end; a closed one is
//! dropped when found, and so is one idle for longer than an app may keep it open.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::client::conn::{http2, TrySendError};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

/// Idle connections kept per machine; more are closed when they come back.
const MAX_IDLE: usize = 128;
/// How long a connection may sit idle and still be used. Apps close idle connections
/// on their own clock (gunicorn after 2 s, Node.js and uvicorn after 5 s); a request sent
/// on one just as the app closes it fails, and only an idempotent one may be sent again.
/// Staying under those timeouts avoids the race; reconnecting after a second of quiet
/// costs nothing that matters.
const MAX_IDLE_TIME: Duration = Duration::from_secs(1);
/// How long a connect to a machine on loopback may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The sending half of one upstream connection.
pub type Sender = SendRequest<super::answers::EdgeBody>;
/// The sending half of an HTTP/2 connection to a machine (h2c), shared by the requests
/// it multiplexes.
pub type H2Sender = http2::SendRequest<super::answers::EdgeBody>;

/// A connection a request goes to a machine on.
pub enum Conn {
    /// HTTP/1.1: one request at a time, back to the pool when its response was read.
    Http1(Sender),
    /// HTTP/2 (`h2_backend`): stays in the pool while requests use it.
    Http2(H2Sender),
}

impl Conn {
    /// A kept-alive connection to `port` of `backend`, else a new one: HTTP/2 when `h2`.
    /// Writes give up after waiting `stall` for the machine to read.
    pub async fn to(
        backend: &super::backends::Backend,
        port: u16,
        h2: bool,
        stall: Duration,
    ) -> Result<Conn, ConnectError> {
        if !h2 {
            return match backend.senders.here().take(port) {
                Some(sender) => Ok(Conn::Http1(sender)),
                None => connect(port, stall).await.map(Conn::Http1),
            };
        }
        let pool = backend.h2_senders.here();
        let sender = match pool.take(port) {
            Some(sender) => sender,
            None => connect_h2(port, stall).await?,
        };
        // Back at once: the next request multiplexes onto it.
        pool.put(port, sender.clone());
        Ok(Conn::Http2(sender))
    }

    /// Sends `req`; when it could not be sent at all, it comes back in the error.
    pub async fn try_send_request(
        &mut self,
        req: Request<super::answers::EdgeBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<super::answers::EdgeBody>>> {
        match self {
            Conn::Http1(sender) => sender.try_send_request(req).await,
            Conn::Http2(sender) => sender.try_send_request(req).await,
        }
    }

    /// Whether it is HTTP/2.
    pub fn is_h2(&self) -> bool {
        matches!(self, Conn::Http2(_))
    }

    /// Hands the connection to `port` back once it can take another request (an HTTP/2
    /// one never left the pool).
    pub fn give_back(self, backend: std::sync::Arc<super::backends::Backend>, port: u16) {
        let Conn::Http1(mut sender) = self else {
            return;
        };
        if sender.is_ready() {
            backend.senders.here().put(port, sender);
            return;
        }
        // The connection task marks it ready a moment after the body ends.
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                backend.senders.here().put(port, sender);
            }
        });
    }
}

thread_local! {
    /// Which edge thread this is (0: any other thread), so each keeps its own connections.
    static SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the current thread as edge thread `slot` (1-based).
pub fn set_thread_slot(slot: usize) {
    SLOT.with(|s| s.set(slot));
}

/// A kept-alive connection that can say whether it is still good to use.
pub trait Reusable {
    /// Whether it can take a request now (not closed by the machine, not busy).
    fn usable(&mut self) -> bool;
}

impl Reusable for Sender {
    fn usable(&mut self) -> bool {
        self.is_ready()
    }
}

impl Reusable for H2Sender {
    fn usable(&mut self) -> bool {
        self.is_ready()
    }
}

/// Idle connections to one machine, one pool per edge thread: a connection is driven by
/// the thread that opened it, so using it there costs no wakeup of another thread.
pub struct Pools<T>(Box<[Pool<T>]>);

impl<T> Pools<T> {
    /// Pools for `threads` edge threads and one for everything else.
    pub fn new(threads: usize) -> Self {
        Pools((0..=threads).map(|_| Pool::default()).collect())
    }

    /// The pool of the current thread.
    pub fn here(&self) -> &Pool<T> {
        let slot = SLOT.with(|s| s.get());
        &self.0[slot.min(self.0.len() - 1)]
    }
}

/// Idle connections to one machine, with the port each goes to (a machine can serve
/// several: `http_service` and `[[services]]` with other internal ports).
pub struct Pool<T> {
    idle: Mutex<Vec<Idle<T>>>,
    max_idle_time: Duration,
}

/// One idle connection.
struct Idle<T> {
    port: u16,
    since: Instant,
    conn: T,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool {
            idle: Mutex::default(),
            max_idle_time: MAX_IDLE_TIME,
        }
    }
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The machine did not accept.
    #[error("connect to 127.0.0.1:{port}: {source}")]
    Refused {
        /// The port dialled.
        port: u16,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The machine did not accept in time.
    #[error("connect to 127.0.0.1:{0}: no answer within {CONNECT_TIMEOUT:?}")]
    Timeout(u16),
    /// The HTTP handshake failed.
    #[error("HTTP handshake with 127.0.0.1:{port}: {source}")]
    Handshake {
        /// The port dialled.
        port: u16,
        /// What hyper said.
        source: hyper::Error,
    },
}

impl<T: Reusable> Pool<T> {
    /// An idle connection to `port` that can take a request now, if there is one.
    pub fn take(&self, port: u16) -> Option<T> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // The most recently used first: it is the likeliest to be still open.
        while let Some(at) = idle.iter().rposition(|i| i.port == port) {
            let mut found = idle.remove(at);
            // Closed, idle too long, or (rarely) still finishing: not usable now.
            if found.since.elapsed() <= self.max_idle_time && found.conn.usable() {
                return Some(found.conn);
            }
        }
        None
    }

    /// Keeps an idle connection to `port` for the next request (closing it when enough
    /// are kept).
    pub fn put(&self, port: u16, conn: T) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_IDLE {
            // Room is made by closing the one idle longest.
            idle.remove(0);
        }
        idle.push(Idle {
            port,
            since: Instant::now(),
            conn,
        });
    }
}

/// A new TCP connection to `127.0.0.1:port`.
pub async fn dial(port: u16) -> Result<TcpStream, ConnectError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(("127.0.0.1", port)))
        .await
        .map_err(|_| ConnectError::Timeout(port))?
        .map_err(|source| ConnectError::Refused { port, source })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A new hyper connection to `127.0.0.1:port`, able to switch protocols (WebSocket),
/// whose writes give up after waiting `stall` for the machine to read.
pub async fn connect(port: u16, stall: Duration) -> Result<Sender, ConnectError> {
    let stream = dial(port).await?;
    let io = crate::daemon::stall::StallLimit::writes_only(stream, stall);
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|source| ConnectError::Handshake { port, source })?;
    tokio::spawn(async move {
        // Ends when either side closes; an error here is the app closing mid-response,
        // which the request that was using it already reports.
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// A new HTTP/2 connection (h2c, prior knowledge) to `127.0.0.1:port`.
pub async fn connect_h2(port: u16, stall: Duration) -> Result<H2Sender, ConnectError> {
    let stream = dial(port).await?;
    let io = crate::daemon::stall::StallLimit::writes_only(stream, stall);
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(io))
        .await
        .map_err(|source| ConnectError::Handshake { port, source })?;
    tokio::spawn(async move {
        // Ends when either side closes; requests under way report their own errors.
        let _ = conn.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection stand-in: its name, and whether it is still open.
    struct Fake(&'static str, bool);

    impl Reusable for Fake {
        fn usable(&mut self) -> bool {
            self.1
        }
    }

    #[test]
    fn a_connection_is_reused_only_for_its_own_port_and_only_while_open() {
        let pool = Pool::default();
        pool.put(8080, Fake("web", true));
        pool.put(9090, Fake("admin", true));
        pool.put(8080, Fake("closed", false));
        assert_eq!(pool.take(9090).map(|c| c.0), Some("admin"));
        assert!(pool.take(9090).is_none());
        // The closed one is dropped on the way to the open one.
        assert_eq!(pool.take(8080).map(|c| c.0), Some("web"));
        assert!(pool.take(8080).is_none());
    }

    #[test]
    fn a_connection_idle_too_long_is_closed_not_reused() {
        let pool = Pool::default();
        let long_ago = Instant::now()
            .checked_sub(MAX_IDLE_TIME * 2)
            .expect("the clock is past its start");
        pool.idle.lock().expect("lock").push(Idle {
            port: 8080,
            since: long_ago,
            conn: Fake("stale", true),
        });
        assert!(pool.take(8080).is_none());
        pool.put(8080, Fake("fresh", true));
        assert_eq!(pool.take(8080).map(|c| c.0), Some("fresh"));
    }

    #[test]
    fn a_full_pool_closes_its_oldest_connection() {
        let pool = Pool::default();
        pool.put(8080, Fake("oldest", true));
        for _ in 1..MAX_IDLE {
            pool.put(8080, Fake("newer", true));
        }
        pool.put(8080, Fake("newest", true));
        let mut names = Vec::new();
        while let Some(conn) = pool.take(8080) {
            names.push(conn.0);
        }
        assert_eq!(names.len(), MAX_IDLE);
        assert_eq!(names.first(), Some(&"newest"));
        assert!(!names.contains(&"oldest"));
    }
}
