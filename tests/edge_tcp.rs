//! Raw TCP service ports against a machine that stopped accepting: its queue is full, so
//! the kernel drops the edge's handshake and would retry it for two minutes. The edge
//! gives up within its connect timeout and splices the connection to another machine.

mod common;

use std::time::Duration;

use common::edge::{health_on, raw_tcp_service, Setup, APP, DEADLINE};
use tokio::net::TcpStream;

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

/// Connects to the service port and reads one answer through it, leaving it open.
async fn answered(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let answer = tokio::time::timeout(DEADLINE, health_on(&mut stream))
        .await
        .expect("the connection is spliced to a machine that answers, in time");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_that_stopped_accepting_is_skipped_within_the_connect_timeout() {
    let tcp_port = common::free_port();
    let s = Setup::new(&raw_tcp_service(tcp_port), &[]);
    s.deploy().await.expect_code(0);
    let health_port = common::free_port();
    let api = common::api::Api::new(&s.d);
    let stuck = api
        .create_machine(
            APP,
            serde_json::json!({
                "process_group": "app",
                "command": stuck_machine(health_port),
                "internal_port": 8080,
                "checks": { "alive": { "type": "tcp", "port": health_port, "interval": "100ms", "grace_period": "0s" } },
            }),
        )
        .await;
    let id = stuck["id"].as_str().unwrap().to_string();
    let until = tokio::time::Instant::now() + DEADLINE;
    while api.machine(APP, &id).await["health"] != "passing" {
        assert!(
            tokio::time::Instant::now() < until,
            "the stuck machine passes its check"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first connection holds one machine; the least loaded, the stuck one, is tried
    // for the second, which then goes to the first machine too.
    let first = answered(tcp_port).await;
    let second = answered(tcp_port).await;
    drop((first, second));
}
