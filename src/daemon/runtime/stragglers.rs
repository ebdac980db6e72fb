//! A machine's stragglers: processes that left its process group (`setsid`, a server that
//! daemonizes by forking twice, `nohup worker &` in a start script) and so outlive a stop
//! that signals the group, holding its port and its files. systemd finds such processes
//! by their cgroup; lakefly, which may run without one, by what every process of a
//! machine inherits: its environment, tagged with the daemon's id and the machine's id.
//! Both are needed: two daemons on one host whose states were copied from one (a backup
//! restored beside its original) give out the same machine ids. Commands exec'd beside a
//! machine carry its variables and the one-off tag, and are not its: they end with their
//! request (and `oneoff_pids.rs`), not with it.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The variable that names the daemon that started a process.
pub const DAEMON_VAR: &str = "LAKEFLY_DAEMON_ID";
/// The variable that names the machine a process belongs to.
pub const MACHINE_VAR: &str = "LAKEFLY_MACHINE_ID";

/// This daemon's id: derived from its state directory, which one daemon holds at a time
/// (its lock), so it is the same across restarts and differs between daemons on a host.
pub fn daemon_id(state_dir: &Path) -> String {
    let dir = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let digest = Sha256::digest(dir.as_os_str().as_encoded_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A live process started for one of a daemon's machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    /// The process.
    pub pid: u32,
    /// The machine its environment names.
    pub machine: String,
    /// Its process group now.
    pub group: u32,
}

/// The live processes (not this one, not zombies) started for daemon `daemon`, read from
/// `/proc`. A process whose environment cannot be read (another user's, to a daemon that
/// is not root) is not lakefly's to stop.
pub fn of_daemon(daemon: &str) -> Vec<Tagged> {
    let daemon_entry = format!("{DAEMON_VAR}={daemon}");
    others_environ()
        .filter_map(|(pid, environ)| {
            let machine = machine_of(&environ, daemon_entry.as_bytes())?;
            let group = super::process::group_of(pid)?;
            Some(Tagged {
                pid,
                machine,
                group,
            })
        })
        .collect()
}

/// Every live process but this one, with its environment (`/proc/<pid>/environ`, NUL-
/// separated `NAME=value` entries), when it can be read.
pub(super) fn others_environ() -> impl Iterator<Item = (u32, Vec<u8>)> {
    let own = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(move |&pid| pid != own)
        .filter_map(|pid| Some((pid, std::fs::read(format!("/proc/{pid}/environ")).ok()?)))
}

/// The machine named in a `/proc/<pid>/environ` (NUL-separated `NAME=value` entries) that
/// holds `daemon_entry`; `None` for a process of another daemon or of none, and for a
/// one-off command's (an exec beside a machine carries its variables, but ends with its
/// request, not with the machine).
fn machine_of(environ: &[u8], daemon_entry: &[u8]) -> Option<String> {
    let mut ours = false;
    let mut machine = None;
    let oneoff = super::oneoff_pids::ONEOFF_VAR.as_bytes();
    for entry in environ.split(|&b| b == 0) {
        if entry
            .strip_prefix(oneoff)
            .is_some_and(|rest| rest.starts_with(b"="))
        {
            return None;
        }
        if entry == daemon_entry {
            ours = true;
        } else if let Some(id) = entry
            .strip_prefix(MACHINE_VAR.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
        {
            machine = String::from_utf8(id.to_vec()).ok();
        }
    }
    machine.filter(|_| ours)
}

/// The live processes of machine `machine` of daemon `daemon`, in any process group.
pub fn of_machine_all(daemon: &str, machine: &str) -> Vec<Tagged> {
    let mut tagged = of_daemon(daemon);
    tagged.retain(|t| t.machine == machine);
    tagged
}

/// The stragglers of machine `machine` of daemon `daemon`: its processes outside the
/// process group `group` (its leader's), which a signal to the group does not reach.
pub fn of_machine(daemon: &str, machine: &str, group: u32) -> Vec<u32> {
    outside(&of_machine_all(daemon, machine), group)
}

/// The pids of `tagged` outside process group `group`.
pub fn outside(tagged: &[Tagged], group: u32) -> Vec<u32> {
    tagged
        .iter()
        .filter(|t| t.group != group)
        .map(|t| t.pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn a_machine_is_read_only_from_its_own_daemons_processes() {
        let ours = b"PATH=/bin\0LAKEFLY_MACHINE_ID=3779b97f4a7c15\0LAKEFLY_DAEMON_ID=ab12\0";
        assert_eq!(
            machine_of(ours, b"LAKEFLY_DAEMON_ID=ab12").as_deref(),
            Some("3779b97f4a7c15")
        );
        assert_eq!(machine_of(ours, b"LAKEFLY_DAEMON_ID=ab1"), None);
        let no_machine = b"LAKEFLY_DAEMON_ID=ab12\0";
        assert_eq!(machine_of(no_machine, b"LAKEFLY_DAEMON_ID=ab12"), None);
        // An exec beside the machine carries its variables, and the one-off tag.
        let exec = b"LAKEFLY_MACHINE_ID=3779b97f4a7c15\0LAKEFLY_DAEMON_ID=ab12\0LAKEFLY_ONEOFF=1\0";
        assert_eq!(machine_of(exec, b"LAKEFLY_DAEMON_ID=ab12"), None);
        // A value that merely starts with the name is another variable.
        let lookalike = b"LAKEFLY_MACHINE_IDS=x\0LAKEFLY_DAEMON_ID=ab12\0";
        assert_eq!(machine_of(lookalike, b"LAKEFLY_DAEMON_ID=ab12"), None);
    }

    #[test]
    fn the_daemon_id_is_the_state_directorys() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        assert_eq!(daemon_id(a.path()), daemon_id(a.path()));
        assert_ne!(daemon_id(a.path()), daemon_id(b.path()));
        assert_eq!(daemon_id(a.path()).len(), 16);
    }

    #[test]
    fn a_process_that_left_its_group_is_found_by_its_tag() {
        let daemon = format!("test-{}", std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(DAEMON_VAR, &daemon)
            .env(MACHINE_VAR, "m1")
            .spawn()
            .expect("sleep runs");
        // It is in this test's group, not in group 1: a straggler of a machine led by 1.
        let found = of_machine(&daemon, "m1", 1);
        assert_eq!(found, vec![child.id()]);
        assert!(of_machine(&daemon, "m2", 1).is_empty());
        crate::daemon::runtime::process::signal_each(&found, Signal::SIGKILL);
        let _ = child.wait();
        assert!(of_machine(&daemon, "m1", 1).is_empty());
    }
}
