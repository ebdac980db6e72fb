//! The API over TLS (`lakeflyd --api-tls-cert`): connections are accepted, and their
//! handshakes run each in a task of its own, so a slow or silent client holds up no
//! other; those that complete are handed to axum as they come.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;

use crate::daemon::server_tls::{handshake, ServerTls};

/// Completed handshakes waiting for axum to take them.
const READY_BACKLOG: usize = 64;

/// A listener whose connections come out of a TLS handshake.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
    accepting: JoinHandle<()>,
}

impl TlsListener {
    /// Serves TLS with `tls`'s certificate (read again on SIGHUP) on `tcp`.
    pub fn new(tcp: TcpListener, tls: Arc<ServerTls>) -> io::Result<Self> {
        let addr = tcp.local_addr()?;
        let (done, ready) = mpsc::channel(READY_BACKLOG);
        let accepting = tokio::spawn(async move {
            while !done.is_closed() {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, say: give the others a moment to close.
                        tracing::warn!(error = %e, "API: accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, done) = (tls.http(), done.clone());
                tokio::spawn(async move {
                    if let Some(stream) = handshake(&acceptor, stream, peer, "API").await {
                        let _ = done.send((stream, peer)).await;
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            addr,
            accepting,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task ended (it does not on its own): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // The port closes with the task that owns it.
        self.accepting.abort();
    }
}
