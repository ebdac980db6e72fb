//! lakeflyd raises its soft limit on open files to the hard one, so a soft limit such as
//! systemd's 1024 does not cap the edge at half as many connections, and starts machines
//! with the limits it was given itself.

mod common;

use common::daemon::TestDaemon;
use common::edge::{health_on, Setup, DEADLINE};
use tokio::net::TcpStream;

/// The soft limit the daemon is started with: well below the connections opened.
const SOFT: u64 = 256;
/// Client connections held open through the edge at once.
const CONNECTIONS: usize = 300;

/// The "Max open files" limits (soft, hard) of process `pid`.
fn open_files_of(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a limit on open files");
    let mut numbers = line
        .split_whitespace()
        .filter_map(|word| word.parse::<u64>().ok());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_raises_its_open_files_limit_and_machines_keep_the_one_it_was_given() {
    let mine = open_files_of(std::process::id());
    assert!(
        mine.1 > CONNECTIONS as u64 * 2,
        "this test needs a hard limit on open files above {}: {mine:?}",
        CONNECTIONS * 2
    );
    let s = Setup::with_daemon("", |state| TestDaemon::start_with_open_files(state, SOFT));
    s.deploy().await.expect_code(0);
    let (soft, hard) = open_files_of(s.d.pid());
    assert_eq!(hard, mine.1, "the hard limit is kept");
    assert_eq!(soft, hard, "the soft limit is raised to the hard one");
    let machine = s.status().await["machines"][0]["pid"].as_u64().unwrap();
    let machine = u32::try_from(machine).unwrap();
    assert_eq!(
        open_files_of(machine),
        (SOFT, hard),
        "a machine gets the limits lakeflyd was started with"
    );

    // More connections at once than the soft limit it was started with allows: each is
    // accepted and answered.
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        clients.push(TcpStream::connect(s.d.edge_addr()).await.unwrap());
    }
    for (n, client) in clients.iter_mut().enumerate() {
        let answer = tokio::time::timeout(DEADLINE, health_on(client))
            .await
            .unwrap_or_else(|_| panic!("connection {n} was not answered in time"));
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "connection {n}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    let open = std::fs::read_dir(format!("/proc/{}/fd", s.d.pid()))
        .unwrap()
        .count();
    assert!(
        open > SOFT as usize,
        "lakeflyd holds {open} descriptors, past the {SOFT} it was started with"
    );
}
