//! lakeflyd under systemd socket activation: the edge socket and a `[[services]]` port's
//! socket a service manager bound and passes (`LISTEN_FDS`, named `edge` and `port-N`)
//! are served in place of `--edge` and of binding the port, are not handed on to
//! machines, and stay open across a restart of lakeflyd, so requests sent while the
//! daemon is down wait in their queues and are answered by the next one; a socket under
//! another name is refused. Connections to a passed port no app serves (never, or not
//! since its app was destroyed) are reset, not left waiting. One test in its own binary: the socket is made inheritable,
//! and no other test's children may take it.

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use common::daemon::TestDaemon;
use common::edge::{Setup, HOST};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(30);

/// The kernel's name of a descriptor's socket (`socket:[inode]`).
fn socket_name(pid: u32, fd: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .map(|link| link.display().to_string())
        .unwrap_or_default()
}

/// Every open descriptor of `pid`, by what it refers to.
fn open_descriptors(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|link| link.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A listening socket on a free loopback port, inheritable, and its kernel name.
fn passed_socket() -> (std::net::TcpListener, String) {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&socket).set_cloexec(false).unwrap();
    let inode = socket_name(std::process::id(), socket.as_raw_fd());
    assert!(inode.starts_with("socket:["), "{inode}");
    (socket, inode)
}

/// Sends a request for `path` to `addr` and leaves it waiting for its answer.
async fn ask(addr: std::net::SocketAddr, path: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// The whole answer on `stream`, which must come in time.
async fn answer(mut stream: tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("the queued request is answered in time")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Connects to `addr` and asks: the connection must be reset or closed unanswered in
/// time, not left waiting in the queue.
async fn reset(addr: std::net::SocketAddr) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.map(|_| answer)
    };
    match tokio::time::timeout(DEADLINE, exchange).await {
        Ok(Ok(answer)) => assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer)),
        Ok(Err(_reset)) => {}
        Err(_) => panic!("a connection to {addr}, which no app serves, was left waiting"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passed_sockets_are_served_and_keep_clients_waiting_across_a_restart() {
    let (edge, edge_inode) = passed_socket();
    let (service, service_inode) = passed_socket();
    // Passed, and no app's: a port an app was destroyed with before a restart.
    let (unclaimed, _) = passed_socket();
    let (edge_addr, service_addr) = (edge.local_addr().unwrap(), service.local_addr().unwrap());
    let unclaimed_addr = unclaimed.local_addr().unwrap();
    let port_name = format!("port-{}", service_addr.port());
    let unclaimed_name = format!("port-{}", unclaimed_addr.port());
    let fds = [
        (edge.as_raw_fd(), "edge"),
        (service.as_raw_fd(), port_name.as_str()),
        (unclaimed.as_raw_fd(), unclaimed_name.as_str()),
    ];

    // A socket under a name lakeflyd has no use for (systemd's default is the unit's):
    // refused, saying how to name it, before anything starts.
    let state = tempfile::tempdir().unwrap();
    let refused = common::daemon::socket_activated(&[(edge.as_raw_fd(), "lakeflyd.socket")])
        .args(["--api", "127.0.0.1:0", "--state"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("\"lakeflyd.socket\""), "{stderr}");
    assert!(stderr.contains("FileDescriptorName="), "{stderr}");
    assert!(refused.stdout.is_empty(), "no ready line");

    // The app has a fixed `[[services]]` port: the one passed as `port-N`.
    let services = format!(
        "[[services]]\n  internal_port = 8080\n  processes = [\"app\"]\n\
         [[services.ports]]\n  port = {}\n  handlers = [\"http\"]\n",
        service_addr.port()
    );
    let mut s = Setup::with_daemon(&services, |state| {
        TestDaemon::start_with_sockets(state, &fds)
    });
    assert_eq!(
        s.d.edge_addr(),
        edge_addr.to_string(),
        "the passed socket is the edge"
    );
    s.deploy().await.expect_code(0);
    assert_eq!(s.get("/echo").await.status(), 200);
    assert!(answer(ask(service_addr, "/fixed").await)
        .await
        .starts_with("HTTP/1.1 200"));
    reset(unclaimed_addr).await;

    // lakeflyd has them, and its machine has not.
    let held = open_descriptors(s.d.pid());
    assert!(held.contains(&edge_inode) && held.contains(&service_inode));
    let machine = s.status().await["machines"][0]["pid"].as_u64().unwrap();
    let machine = open_descriptors(u32::try_from(machine).unwrap());
    assert!(
        !machine.contains(&edge_inode) && !machine.contains(&service_inode),
        "a machine must not hold a passed socket"
    );

    // Down: clients connect and ask; the kernel queues them on the sockets kept here.
    let state = s.d.state.clone();
    assert!(s.d.stop().success());
    // Several a socket: each is a chance for the next daemon to take one before it knows
    // where it goes.
    let mut waiting = Vec::new();
    for i in 0..8 {
        for (addr, what) in [(edge_addr, "host"), (service_addr, "port")] {
            let path = format!("/echo?{what}={i}");
            waiting.push((ask(addr, &path).await, path));
        }
    }

    // Up again on the same sockets: the queued requests are answered by the app.
    s.d = TestDaemon::start_with_sockets(&state, &fds);
    for (stream, path) in waiting {
        let answer = answer(stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        assert!(answer.contains(&path), "{answer}");
    }

    // The app goes, its port stays passed: refused, where it was served.
    s.cli(&["apps", "destroy", common::edge::APP, "--yes"])
        .await
        .expect_code(0);
    reset(service_addr).await;
}
