//! Whether a process the test saw still runs: one lakeflyd started, which this test cannot
//! wait for (and which, reparented to an init that may not reap it, can stay a zombie).

use std::time::{Duration, Instant};

/// Whether `pid` is a live (non-zombie) process.
pub fn alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

/// Waits until `pid` is gone, failing the test after `within`; returns how long it took.
pub fn wait_gone(pid: u64, within: Duration) -> Duration {
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < within,
            "process {pid} still alive after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

/// Waits until `file` holds a pid (a test's program wrote `echo $$` there, renamed into
/// place so it is never read half-written), failing the test after `within`.
pub fn wait_pid_file(file: &std::path::Path, within: Duration) -> u64 {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            return text.trim().parse().expect("a pid in the file");
        }
        assert!(
            start.elapsed() < within,
            "{} was not written within {within:?}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `file` holds one pid per line, `n` lines, and returns them.
pub fn wait_pids(file: &std::path::Path, n: usize, within: Duration) -> Vec<u64> {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            let pids: Vec<u64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if pids.len() >= n {
                return pids;
            }
        }
        assert!(
            start.elapsed() < within,
            "{} did not get {n} pids",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
