//! Kept-alive HTTP/1 connections to one machine, per edge thread: the relay's own
//! (`Upstream`) and hyper's (`Sender`, for what the full server forwards). A connection
//! goes back to the pool once its response has been read to the end; a closed one is
//! dropped when found, and so is one idle for longer than an app may keep it open.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
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
pub type Sender = SendRequest<super::http::EdgeBody>;

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

impl Pool<Sender> {
    /// Hands a connection to `port` back once it can take another request.
    pub fn give_back(
        backend: std::sync::Arc<super::backends::Backend>,
        port: u16,
        mut sender: Sender,
    ) {
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
    let io = super::stall::StallLimit::writes_only(stream, stall);
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
