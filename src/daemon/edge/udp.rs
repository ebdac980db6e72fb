//! `[[services]]` with `protocol = "udp"`: each client address is a flow, relayed to one
//! machine (picked, waited for and auto-started as a TCP connection's is) through a socket
//! of its own, and the machine's replies go back to the client from the public port. A
//! flow ends after `FLOW_IDLE` without a datagram either way; a flow whose machine starts
//! draining moves to another, so a deploy or scale-down stops sending it datagrams.
//! Datagrams are dropped, as a congested link would, when a flow's queue is full or no
//! machine takes it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::acquire::acquire;
use super::backends::Lease;
use super::routes::Route;
use super::EdgeState;

/// A flow with no datagram either way for this long ends (nginx's stream
/// `proxy_timeout` is 10 minutes; Fly's UDP flows are shorter).
const FLOW_IDLE: Duration = Duration::from_secs(60);
/// How often a quiet flow looks whether its machine is draining.
const DRAIN_LOOK: Duration = Duration::from_secs(1);
/// Most flows one public port keeps: datagrams from further clients are dropped, so
/// spoofed source addresses cannot grow the edge's memory without bound.
const MAX_FLOWS: usize = 4096;
/// Datagrams a flow holds while its machine is picked or its socket is busy.
const FLOW_QUEUE: usize = 64;
/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// Serves the public UDP `port` of `app` until the task is aborted.
pub(super) async fn serve(state: Arc<EdgeState>, socket: UdpSocket, app: String, port: u16) {
    let public = Arc::new(socket);
    let mut flows: HashMap<SocketAddr, mpsc::Sender<Bytes>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, client) = match public.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                // Nothing a client sends makes this fail; back off instead of spinning.
                tracing::warn!(%port, error = %e, "edge: receiving a UDP datagram failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut datagram = Bytes::copy_from_slice(&buf[..n]);
        if let Some(flow) = flows.get(&client) {
            match flow.try_send(datagram) {
                Ok(()) | Err(TrySendError::Full(_)) => continue,
                // The flow ended (idle, or its machine went): a new one starts.
                Err(TrySendError::Closed(back)) => {
                    flows.remove(&client);
                    datagram = back;
                }
            }
        }
        let Some(route) = state.udp_route(&app, port) else {
            continue;
        };
        if flows.len() >= MAX_FLOWS {
            flows.retain(|_, flow| !flow.is_closed());
            if flows.len() >= MAX_FLOWS {
                tracing::debug!(%port, %client, "edge: too many UDP flows; datagram dropped");
                continue;
            }
        }
        let (tx, rx) = mpsc::channel(FLOW_QUEUE);
        // A fresh channel has room.
        let _ = tx.try_send(datagram);
        flows.insert(client, tx);
        let flow = Flow {
            state: state.clone(),
            route,
            public: public.clone(),
            client,
        };
        tokio::spawn(flow.run(rx));
    }
}

/// One client's datagrams and their replies.
struct Flow {
    state: Arc<EdgeState>,
    route: Arc<Route>,
    public: Arc<UdpSocket>,
    client: SocketAddr,
}

/// Why a flow left its machine.
enum Left {
    /// Nothing either way for `FLOW_IDLE`, or the listener went: the flow ends.
    Done,
    /// The machine is draining or gone: this datagram (if any) goes to another.
    Moved(Option<Bytes>),
}

impl Flow {
    async fn run(self, mut from_client: mpsc::Receiver<Bytes>) {
        let _open = self.state.open_connection();
        let mut pending = from_client.recv().await;
        let mut tried: Vec<String> = Vec::new();
        loop {
            let lease = match acquire(&self.state, &self.route, &tried).await {
                Ok(lease) => lease,
                Err(refusal) => {
                    let (_, why) = refusal.reason(&self.route.app);
                    tracing::debug!(app = %self.route.app, client = %self.client, "edge: dropping a UDP flow: {why}");
                    return;
                }
            };
            match self.relay(&lease, pending.take(), &mut from_client).await {
                Left::Done => return,
                Left::Moved(datagram) => {
                    pending = datagram;
                    // A machine that went is not picked again for this flow; one that
                    // drained is not pickable anyway.
                    tried = vec![lease.backend.spec.machine.clone()];
                }
            }
        }
    }

    /// Passes datagrams between the client and the machine of `lease`, `first` first.
    async fn relay(
        &self,
        lease: &Lease,
        first: Option<Bytes>,
        from_client: &mut mpsc::Receiver<Bytes>,
    ) -> Left {
        let port = lease.backend.dial_port(self.route.internal_port);
        let upstream = match connect(port).await {
            Ok(upstream) => upstream,
            Err(e) => {
                tracing::debug!(machine = %lease.backend.spec.machine, error = %e, "edge: no UDP socket for a machine");
                return Left::Moved(first);
            }
        };
        if let Some(datagram) = first {
            if let Err(e) = upstream.send(&datagram).await {
                return gone(lease, &e, Some(datagram));
            }
        }
        let idle = tokio::time::sleep(FLOW_IDLE);
        tokio::pin!(idle);
        let mut look = tokio::time::interval(DRAIN_LOOK);
        loop {
            tokio::select! {
                datagram = from_client.recv() => {
                    let Some(datagram) = datagram else { return Left::Done };
                    if lease.backend.is_draining() {
                        return Left::Moved(Some(datagram));
                    }
                    if let Err(e) = upstream.send(&datagram).await {
                        return gone(lease, &e, Some(datagram));
                    }
                }
                reply = recv_datagram(&upstream) => match reply {
                    Ok(reply) => {
                        let _ = self.public.send_to(&reply, self.client).await;
                    }
                    Err(e) => return gone(lease, &e, None),
                },
                _ = look.tick() => {
                    if lease.backend.is_draining() {
                        return Left::Moved(None);
                    }
                    continue;
                }
                () = idle.as_mut() => return Left::Done,
            }
            idle.as_mut().reset(tokio::time::Instant::now() + FLOW_IDLE);
        }
    }
}

thread_local! {
    /// Where replies are received before they are copied out at their size, so that a
    /// flow waiting for one holds no 64 KiB buffer of its own.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_DATAGRAM]);
}

/// The next datagram on `socket` (cancel-safe: nothing is taken until one is there).
async fn recv_datagram(socket: &UdpSocket) -> std::io::Result<Bytes> {
    loop {
        socket.readable().await?;
        let received: std::io::Result<Bytes> = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let n = socket.try_recv(&mut scratch)?;
            Ok(Bytes::copy_from_slice(&scratch[..n]))
        });
        match received {
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            received => return received,
        }
    }
}

/// A socket of the flow's own, connected to the machine's port (so the kernel lets
/// only the machine's replies in, and reports a closed port).
async fn connect(port: u16) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(("127.0.0.1", 0)).await?;
    socket.connect(("127.0.0.1", port)).await?;
    Ok(socket)
}

/// The machine's port refused a datagram (it is not listening, or its process went):
/// the flow moves on. Other errors end it.
fn gone(lease: &Lease, e: &std::io::Error, datagram: Option<Bytes>) -> Left {
    tracing::debug!(machine = %lease.backend.spec.machine, error = %e, "edge: a machine's UDP port failed");
    match e.kind() {
        ErrorKind::ConnectionRefused => Left::Moved(datagram),
        _ => Left::Done,
    }
}
