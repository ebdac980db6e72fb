//! The resident memory of a machine's processes, read from `/proc`: what a machine's
//! memory limit is held to where lakeflyd has no cgroup of its own to put it in. The
//! resident set is what a cgroup's `memory.max` counts too (less the page cache), unlike
//! the address space, which runtimes such as V8 and the JVM reserve by gigabytes up front.

use std::fs;
use std::time::Duration;

use nix::sys::signal::Signal;

/// How often a machine's resident memory is checked against its limit.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// A machine's memory limit, held by the supervisor: its process group is killed when its
/// resident memory goes over, as a cgroup's OOM kill (`memory.oom.group`) would.
pub struct MemoryWatch {
    pid: u32,
    limit_mb: u64,
    interval: tokio::time::Interval,
    /// What the group held when it was killed.
    killed_at: Option<u64>,
}

impl MemoryWatch {
    /// Watches the process group led by `pid` against `limit_mb`.
    pub fn new(pid: u32, limit_mb: u64) -> Self {
        MemoryWatch {
            pid,
            limit_mb,
            interval: tokio::time::interval(CHECK_EVERY),
            killed_at: None,
        }
    }

    /// Checks at each tick and kills the group once it is over its limit; never returns
    /// for no watch, or once the group was killed (its exit is then awaited elsewhere).
    pub async fn enforce(watch: &mut Option<Self>) {
        let Some(watch) = watch.as_mut().filter(|w| w.killed_at.is_none()) else {
            return std::future::pending().await;
        };
        loop {
            watch.interval.tick().await;
            let pid = watch.pid;
            let resident = tokio::task::spawn_blocking(move || group_resident_bytes(pid))
                .await
                .unwrap_or(0);
            if resident > watch.limit_mb.saturating_mul(1024 * 1024) {
                watch.killed_at = Some(resident);
                let _ = super::process::signal_group(pid, Signal::SIGKILL);
                return;
            }
        }
    }

    /// Whether it killed the group for its memory.
    pub fn killed(&self) -> bool {
        self.killed_at.is_some()
    }

    /// The line for the machine's log when it was killed for its memory.
    pub fn kill_note(&self) -> Option<String> {
        let resident = self.killed_at?;
        Some(format!(
            "lakeflyd: killed the machine: its processes held {} MB in memory, over its {} MB limit ([[vm]] memory, `lakefly scale memory`)",
            resident / (1024 * 1024),
            self.limit_mb
        ))
    }
}

/// Bytes resident in memory for every process in process group `pgid` (a machine's
/// processes: its leader and what it starts, unless they leave the group).
pub fn group_resident_bytes(pgid: u32) -> u64 {
    super::process::group_members(pgid)
        .into_iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .map(|status| resident_kib(&status).unwrap_or(0) * 1024)
        .sum()
}

/// `VmRSS` of a `/proc/<pid>/status`, in KiB (absent for kernel threads and zombies).
fn resident_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_read() {
        let status = "Name:\tpython3\nVmPeak:\t  20000 kB\nVmRSS:\t   9876 kB\nThreads:\t1\n";
        assert_eq!(resident_kib(status), Some(9876));
        assert_eq!(resident_kib("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn this_process_group_holds_at_least_this_process() {
        let pgid = nix::unistd::getpgrp().as_raw() as u32;
        let resident = group_resident_bytes(pgid);
        assert!(resident > 1024 * 1024, "{resident}");
    }
}
