//! lakeflyd under systemd socket activation: the edge socket a service manager bound and
//! passes (`LISTEN_FDS`, named `edge`) is served in place of `--edge`, is not handed on to
//! machines, and stays open across a restart of lakeflyd, so a request sent while the
//! daemon is down waits in its queue and is answered by the next one; a socket under
//! another name is refused. One test in its own binary: the socket is made inheritable,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_edge_socket_is_served_and_keeps_clients_waiting_across_a_restart() {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    socket2::SockRef::from(&socket).set_cloexec(false).unwrap();
    let fd = socket.as_raw_fd();
    let inode = socket_name(std::process::id(), fd);
    assert!(inode.starts_with("socket:["), "{inode}");

    // A socket under a name lakeflyd has no use for (systemd's default is the unit's):
    // refused, saying how to name it, before anything starts.
    let state = tempfile::tempdir().unwrap();
    let refused = common::daemon::socket_activated(fd, "lakeflyd.socket")
        .args(["--api", "127.0.0.1:0", "--state"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("\"lakeflyd.socket\""), "{stderr}");
    assert!(stderr.contains("FileDescriptorName="), "{stderr}");
    assert!(refused.stdout.is_empty(), "no ready line");

    let mut s = Setup::with_daemon("", |state| TestDaemon::start_with_socket(state, fd, "edge"));
    assert_eq!(
        s.d.edge_addr(),
        addr.to_string(),
        "the passed socket is the edge"
    );
    s.deploy().await.expect_code(0);
    let resp = s.get("/echo").await;
    assert_eq!(resp.status(), 200);

    // lakeflyd has it, and its machine has not.
    assert!(open_descriptors(s.d.pid()).contains(&inode));
    let machine = s.status().await["machines"][0]["pid"].as_u64().unwrap();
    let machine = u32::try_from(machine).unwrap();
    assert!(
        !open_descriptors(machine).contains(&inode),
        "a machine must not hold the edge's socket"
    );

    // Down: a client connects and asks; the kernel queues it on the socket kept here.
    let state = s.d.state.clone();
    assert!(s.d.stop().success());
    let mut waiting = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET /echo?while=down HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    waiting.write_all(request.as_bytes()).await.unwrap();

    // Up again on the same socket: the queued request is answered by the app.
    s.d = TestDaemon::start_with_socket(&state, fd, "edge");
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, waiting.read_to_end(&mut answer))
        .await
        .expect("the queued request is answered in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("/echo?while=down"), "{answer}");
}
