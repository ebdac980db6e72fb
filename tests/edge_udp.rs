//! `[[services]]` with `protocol = "udp"`: a UDP-only app becomes healthy without a TCP
//! port, its public port relays datagrams both ways, a redeploy moves a client's flow to
//! the new machine on the same port, and TCP and UDP share a port number (DNS-style).

mod common;

use std::path::Path;
use std::time::Duration;

use common::daemon::TestDaemon;
use tokio::net::UdpSocket;

/// How long anything a test waits for may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// Echoes each datagram as `<machine id> <datagram>`; with `tcp`, also answers TCP
/// connections on the same port with `tcp <machine id>`.
const APP: &str = r#"
import os, socket, sys, threading
port = int(os.environ["PORT"])
machine = os.environ["LAKEFLY_MACHINE_ID"].encode()
if "tcp" in sys.argv:
    tcp = socket.create_server(("127.0.0.1", port))
    def answer():
        while True:
            conn, _ = tcp.accept()
            conn.sendall(b"tcp " + machine)
            conn.close()
    threading.Thread(target=answer, daemon=True).start()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", port))
while True:
    data, sender = udp.recvfrom(65535)
    udp.sendto(machine + b" " + data, sender)
"#;

/// A port number free for both TCP and UDP on loopback.
fn free_port_both_ways() -> u16 {
    loop {
        let port = common::free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Writes the app with `services` as its fly.toml's services, and deploys it.
fn deploy(d: &TestDaemon, dir: &Path, command: &str, services: &str) -> common::Run {
    std::fs::write(dir.join("echo.py"), APP).unwrap();
    let config = format!("app = \"udpecho\"\n\n[processes]\n  app = \"{command}\"\n{services}");
    std::fs::write(dir.join("fly.toml"), config).unwrap();
    let config = dir.join("fly.toml");
    common::lakefly(
        dir,
        &["--remote", &d.api, "deploy", "-c", config.to_str().unwrap()],
    )
}

/// Sends `payload` to the edge's UDP `port` until an answer comes (a datagram can be
/// dropped while a flow finds its machine), and returns it.
async fn ask(client: &UdpSocket, port: u16, payload: &str) -> String {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut buf = [0u8; 2048];
    loop {
        client
            .send_to(payload.as_bytes(), ("127.0.0.1", port))
            .await
            .unwrap();
        let wait = tokio::time::timeout(Duration::from_millis(500), client.recv(&mut buf));
        if let Ok(received) = wait.await {
            let n = received.expect("a datagram");
            return String::from_utf8_lossy(&buf[..n]).into_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no answer to {payload:?} on udp port {port}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_port_relays_datagrams_and_follows_a_redeploy() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_both_ways();
    let services = format!(
        "\n[[services]]\n  protocol = \"udp\"\n  internal_port = 5353\n  [[services.ports]]\n    port = {port}\n"
    );
    // No check and no TCP port: healthy by staying up, so the deploy completes.
    let run = deploy(&d, dir.path(), "python3 echo.py", &services);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("not served"), "{}", run.stderr);

    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let first = ask(&client, port, "hello").await;
    let (machine, echoed) = first.split_once(' ').expect("`<machine> <payload>`");
    assert_eq!(echoed, "hello");
    // The flow stays on its machine.
    let again = ask(&client, port, "again").await;
    assert_eq!(again, format!("{machine} again"));

    // A redeploy replaces the machine; the same client's datagrams reach the new one.
    std::fs::write(dir.path().join("touch.txt"), "v2").unwrap();
    let run = deploy(&d, dir.path(), "python3 echo.py", &services);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let answer = ask(&client, port, "after").await;
        let (now, echoed) = answer.split_once(' ').expect("`<machine> <payload>`");
        assert_eq!(echoed, "after");
        if now != machine {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flow never moved off {machine}"
        );
        // The old machine answers until its drain ends; ask again on the next turn.
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_udp_share_a_port_number() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_both_ways();
    let services = format!(
        "
[[services]]
  protocol = \"udp\"
  internal_port = 53
  [[services.ports]]
    port = {port}
[[services]]
  protocol = \"tcp\"
  internal_port = 53
  [[services.ports]]
    port = {port}
"
    );
    let run = deploy(&d, dir.path(), "python3 echo.py tcp", &services);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let answer = ask(&client, port, "query").await;
    assert!(answer.ends_with(" query"), "{answer}");

    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the TCP port is served");
    let mut text = String::new();
    tokio::time::timeout(
        DEADLINE,
        tokio::io::AsyncReadExt::read_to_string(&mut tcp, &mut text),
    )
    .await
    .expect("an answer in time")
    .unwrap();
    assert!(text.starts_with("tcp "), "{text}");
}
