//! Raw TCP service ports against a machine that stopped accepting: its queue is full, so
//! the kernel drops the edge's handshake and would retry it for two minutes. The edge
//! gives up within its connect timeout and splices the connection to another machine.

mod common;

use common::edge::{answered_connection, raw_tcp_service, Setup};

/// A machine program that passes a TCP check on `health_port` but never accepts on
/// `$PORT`, whose queue (room for one) it fills itself.
fn stuck_machine(health_port: u16) -> String {
    let program = [
        "import os, socket",
        "def listen(port, backlog):",
        "    s = socket.socket()",
        "    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
        "    s.bind((\"127.0.0.1\", port))",
        "    s.listen(backlog)",
        "    return s",
        &format!("health = listen({health_port}, 8)"),
        "stuck = listen(int(os.environ[\"PORT\"]), 0)",
        "filler = socket.create_connection((\"127.0.0.1\", int(os.environ[\"PORT\"])))",
        "while True:",
        "    health.accept()[0].close()",
    ];
    format!("exec python3 -c '{}'", program.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_that_stopped_accepting_is_skipped_within_the_connect_timeout() {
    let tcp_port = common::free_port();
    let s = Setup::new(&raw_tcp_service(tcp_port), &[]);
    s.deploy().await.expect_code(0);
    let health_port = common::free_port();
    s.add_machine_checked_on(&stuck_machine(health_port), health_port)
        .await;
    // The first connection holds one machine; the least loaded, the stuck one, is tried
    // for the second, which then goes to the first machine too.
    let first = answered_connection(tcp_port).await;
    let second = answered_connection(tcp_port).await;
    drop((first, second));
}
