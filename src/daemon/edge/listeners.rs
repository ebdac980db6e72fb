//! The edge's TCP listeners and the loops that accept from them: every listener is made
//! by [`listen`], with the keepalive its connections inherit; host-routed HTTP is accepted
//! by `--edge-threads` threads, each with an event loop of its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::forwarding::ClientHop;
use super::Listen;
use super::{pool, relay, tls, EdgeState, Scheme};

/// Most edge threads by default, however many cores.
const MAX_DEFAULT_THREADS: usize = 8;

/// How many threads serve the edge when `--edge-threads` is not given: half the cores,
/// rounded up. Each runs its own event loop and keeps its own upstream connections, as
/// nginx's workers do, so a request never wakes another thread on its way through. The
/// machines it proxies to run on the same host and need the other half: an edge thread
/// per core only adds context switches once the cores are busy. On two cores, through
/// `scripts/bench/proxy.sh` at 32 connections, two loops relayed 6% fewer requests a
/// second than nginx, one loop 7% more.
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.div_ceil(2).clamp(1, MAX_DEFAULT_THREADS)
}

/// TCP keepalive for the edge's client connections: probed after a minute of silence,
/// every ten seconds, closed after six unanswered probes. A client that vanished without
/// a FIN (a phone out of coverage, a NAT that dropped its state) is found within two
/// minutes, instead of holding its connection, and the machine's `concurrency` slot it
/// counts against, for as long as the daemon runs: upgraded (WebSocket) and raw TCP
/// connections have no idle timeout, as quiet ones may be alive. A live peer answers the
/// probes in its kernel, whatever its application does.
const CLIENT_KEEPALIVE: socket2::TcpKeepalive = socket2::TcpKeepalive::new()
    .with_time(Duration::from_secs(60))
    .with_interval(Duration::from_secs(10))
    .with_retries(6);

/// How long data sent to a client may go unacknowledged before its connection is
/// dropped (`TCP_USER_TIMEOUT`). Keepalive probes only a silent connection; one with
/// data in flight to a vanished client (an event stream) would otherwise retransmit for
/// about a quarter of an hour. Two minutes, as keepalive.
#[cfg(any(target_os = "linux", target_os = "android"))]
const CLIENT_USER_TIMEOUT: Duration = Duration::from_secs(120);

/// How many connections may wait to be accepted (the kernel caps it at
/// `net.core.somaxconn`, 4096 by default). The standard library's 128 drops the SYNs of
/// a burst of new clients, which retry a second later; nginx asks for 511.
const BACKLOG: i32 = 4096;

/// A non-blocking TCP listener on `addr`, for an event loop to take, with room for
/// [`BACKLOG`] waiting connections. Its connections keep alive by [`CLIENT_KEEPALIVE`]
/// and give up on unacknowledged data after `CLIENT_USER_TIMEOUT` (Linux): set on the
/// listener, the kernel gives both to every accepted connection, so no connection pays
/// a system call for them.
pub(super) fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As the standard library's listeners: a restarted daemon binds again at once, while
    // the last one's connections linger in TIME_WAIT.
    socket.set_reuse_address(true)?;
    for_clients(&socket)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The listener `at` says: bound by [`listen`], or the socket a service manager passed,
/// given the same options for its connections (its backlog is the manager's `Backlog=`).
pub(super) fn open(at: &Listen) -> std::io::Result<std::net::TcpListener> {
    let listener = at.open(listen)?;
    if matches!(at, Listen::Inherited(..)) {
        for_clients(&socket2::SockRef::from(&listener))?;
    }
    Ok(listener)
}

/// The options a listener's accepted connections inherit.
fn for_clients(socket: &socket2::Socket) -> std::io::Result<()> {
    socket.set_tcp_keepalive(&CLIENT_KEEPALIVE)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    socket.set_tcp_user_timeout(Some(CLIENT_USER_TIMEOUT))?;
    Ok(())
}

/// One edge thread: its own single-threaded event loop accepting from the shared
/// listener, beating while it runs. Accepting ends at `stop`; the connections it serves
/// live until `exit`.
pub(super) fn edge_thread(
    slot: usize,
    listener: std::net::TcpListener,
    state: Arc<EdgeState>,
    beats: Arc<super::heartbeat::Heartbeats>,
    stop: watch::Receiver<bool>,
    mut exit: watch::Receiver<bool>,
) {
    pool::set_thread_slot(slot);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "edge: could not start an edge thread");
            return;
        }
    };
    runtime.block_on(async move {
        // Ends with the loop: the thread stops beating when its runtime is dropped.
        tokio::spawn(super::heartbeat::keep_beating(beats, slot));
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => accept(listener, state, stop).await,
            Err(e) => tracing::error!(error = %e, "edge: could not use the edge listener"),
        }
        let _ = exit.wait_for(|stopping| *stopping).await;
    });
}

/// Accepts connections until the daemon stops, each routed by its `Host` header.
async fn accept(
    listener: tokio::net::TcpListener,
    state: Arc<EdgeState>,
    stop: watch::Receiver<bool>,
) {
    accept_until(listener, stop, |stream, peer, port| {
        let hop = ClientHop {
            peer,
            port,
            scheme: Scheme::Http,
        };
        tokio::spawn(relay::serve(state.clone(), stream, hop, None));
    })
    .await;
}

/// Host-routed HTTPS (`--edge-https`): each connection's TLS is ended, then its requests
/// are routed by `Host` as on the plain edge address.
pub(super) async fn accept_https(
    listener: tokio::net::TcpListener,
    state: Arc<EdgeState>,
    stop: watch::Receiver<bool>,
) {
    accept_until(listener, stop, |stream, peer, port| {
        tokio::spawn(tls::serve_routed(state.clone(), stream, peer, port));
    })
    .await;
}

/// Hands each accepted connection, with the client's address and the listener's port,
/// to `serve` until `stop` turns true.
async fn accept_until(
    listener: tokio::net::TcpListener,
    mut stop: watch::Receiver<bool>,
    mut serve: impl FnMut(tokio::net::TcpStream, SocketAddr, u16),
) {
    let port = listener.local_addr().map_or(0, |addr| addr.port());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match accepted {
            Ok((stream, peer)) => serve(stream, peer, port),
            Err(e) => accept_failed(e).await,
        }
    }
}

/// Out of file descriptors and the like: say so and back off a little, instead of spinning.
pub(super) async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "edge: accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_connections_waits_to_be_accepted() {
        // Nothing is accepted: each connection completes only while the kernel has room
        // for it in the listener's queue (a full one drops the SYN, and connecting stalls).
        let cap = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok());
        if cap.is_some_and(|cap| cap < 300) {
            eprintln!("skipping: the kernel keeps at most {cap:?} connections waiting");
            return;
        }
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let burst: Vec<_> = (0..300)
            .map(|n| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                    .unwrap_or_else(|e| panic!("connection {n} waits in the queue: {e}"))
            })
            .collect();
        assert_eq!(burst.len(), 300);
    }

    #[test]
    fn accepted_connections_inherit_the_listeners_keepalive_and_user_timeout() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let socket = socket2::SockRef::from(&accepted);
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(60)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 6);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert_eq!(
            socket.tcp_user_timeout().unwrap(),
            Some(CLIENT_USER_TIMEOUT)
        );
    }
}
