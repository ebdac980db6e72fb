//! The edge's client connections keep alive: TCP keepalive is set on its listeners (the
//! host-routed address and service ports alike) and every accepted connection inherits
//! it, so a client gone without a FIN is found. Read from the kernel's own table of TCP
//! sockets (`/proc/net/tcp`), as the edge's side of a live connection sits idle.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::edge::{answered_connection, raw_tcp_service, Setup, DEADLINE};
use tokio::net::TcpStream;

/// How long the edge's connections stay silent before the first probe.
const KEEPALIVE_TIME: Duration = Duration::from_secs(60);

/// The kernel's clock ticks a second, in which `/proc/net/tcp` counts timers.
fn clock_ticks() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK is a number")
}

/// The pending timer of the socket whose local port is `port` and whose peer is `peer`:
/// its kind (`2` is keepalive) and the time left, with the table's line; `None` when no
/// such socket is listed.
fn timer_of(port: u16, peer: SocketAddr, ticks_a_second: f64) -> Option<(u8, Duration, String)> {
    let port_of = |field: &str| {
        let (_, port) = field.rsplit_once(':')?;
        u16::from_str_radix(port, 16).ok()
    };
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp is readable");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if port_of(fields.get(1)?)? != port || port_of(fields.get(2)?)? != peer.port() {
            return None;
        }
        let (kind, when) = fields.get(5)?.split_once(':')?;
        let kind = u8::from_str_radix(kind, 16).ok()?;
        let ticks = u64::from_str_radix(when, 16).ok()?;
        let left = Duration::from_secs_f64(ticks as f64 / ticks_a_second);
        Some((kind, left, line.to_string()))
    })
}

/// Waits until the edge's side of `client`'s connection to `port` has its keepalive
/// timer running (another timer, such as a loss probe for the answer just sent, may be
/// pending at first) and checks it fires within the edge's keepalive time.
async fn assert_kept_alive(port: u16, client: &TcpStream) {
    let peer = client.local_addr().unwrap();
    let ticks_a_second = clock_ticks();
    let until = Instant::now() + DEADLINE;
    let mut last = None;
    while Instant::now() < until {
        last = timer_of(port, peer, ticks_a_second);
        if let Some((2, left, line)) = &last {
            assert!(
                *left > Duration::ZERO && *left <= KEEPALIVE_TIME,
                "keepalive due in {left:?}, not within {KEEPALIVE_TIME:?}: {line}"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("port {port}'s connection from {peer} has no keepalive timer: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edges_client_connections_keep_alive_on_every_listener() {
    let tcp_port = common::free_port();
    let s = Setup::new(&raw_tcp_service(tcp_port), &[]);
    s.deploy().await.expect_code(0);
    // The host-routed address (the relay's connection) and a raw TCP port (spliced to a
    // machine, with no idle timeout of its own).
    for port in [s.edge_port(), tcp_port] {
        let client = answered_connection(port).await;
        assert_kept_alive(port, &client).await;
    }
}
