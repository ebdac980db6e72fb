//! One machine's OS process: spawned in its own process group, signalled as a group, and
//! recognized after a daemon crash by its pid *and* its start time, so a pid that the
//! kernel has since given to another program is never signalled.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// The search path a process gets when the daemon was started without one.
pub(crate) const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Variables passed through from the daemon's environment; everything else comes from
/// the machine's spec, so nothing of the daemon's own configuration leaks into apps.
pub(crate) const PASS_THROUGH: &[&str] = &[
    "PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "TMPDIR",
];

/// The host's proxy settings, in the cases programs read them.
pub(crate) const HOST_PROXY: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The host's proxy settings that the daemon's environment holds, for `[build] command`:
/// as Docker's predefined build arguments, they reach the build, which fetches
/// dependencies (`pip install` on a host that reaches the internet only through a
/// proxy), and not the machines, whose own requests to services on 127.0.0.1 many HTTP
/// libraries would send to the proxy.
pub(crate) fn host_proxy() -> BTreeMap<String, String> {
    HOST_PROXY
        .iter()
        .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)))
        .collect()
}

/// A spawned machine process.
pub struct Spawned {
    /// The process; its pid is also its process group id.
    pub child: Child,
    /// Its pid.
    pub pid: u32,
    /// Its start time in clock ticks since boot, when the platform tells.
    pub start_time: Option<u64>,
}

/// What a process reads on its standard input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Nothing: it reads end of file at once.
    Empty,
    /// A pipe, `Child::stdin`, that the caller writes to and closes.
    Piped,
}

/// Where a process's stdout and stderr go.
pub enum Output {
    /// Pipes: `Child::stdout` and `Child::stderr`.
    Piped,
    /// These files (a machine's FIFOs under live restore), with descriptors the process
    /// keeps open across its exec.
    Files {
        /// Its stdout.
        stdout: std::fs::File,
        /// Its stderr.
        stderr: std::fs::File,
        /// Kept open in it.
        held: Vec<std::os::fd::OwnedFd>,
    },
}

/// Starts `/bin/sh -c command` in `workdir` as the leader of a new process group, with
/// stdout and stderr piped.
pub fn spawn(
    command: &str,
    workdir: &Path,
    env: &BTreeMap<String, String>,
    memory: MemoryLimit<'_>,
    input: Input,
) -> std::io::Result<Spawned> {
    spawn_writing_to(command, workdir, env, memory, input, Output::Piped)
}

/// As [`spawn`], with stdout and stderr going to `output`.
pub fn spawn_writing_to(
    command: &str,
    workdir: &Path,
    env: &BTreeMap<String, String>,
    memory: MemoryLimit<'_>,
    input: Input,
    output: Output,
) -> std::io::Result<Spawned> {
    let mut cmd = shell(command, workdir, env);
    cmd.stdin(match input {
        Input::Empty => Stdio::null(),
        Input::Piped => Stdio::piped(),
    });
    match output {
        Output::Piped => {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        Output::Files {
            stdout,
            stderr,
            held,
        } => {
            cmd.stdout(Stdio::from(stdout)).stderr(Stdio::from(stderr));
            super::live_restore::keep_across_exec(&mut cmd, held);
        }
    }
    // Its own group: signals reach every process it starts, and a Ctrl-C meant for a
    // foreground daemon does not reach it.
    cmd.process_group(0);
    match memory {
        MemoryLimit::None => {}
        MemoryLimit::Cgroup(procs) => join_cgroup(&mut cmd, procs.try_clone()?),
    }
    let child = cmd.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("the process exited before its pid was read"))?;
    Ok(Spawned {
        child,
        pid,
        start_time: start_time(pid),
    })
}

/// Starts `/bin/sh -c command` in `workdir` on a new pseudo-terminal of `size`, as the
/// leader of a new session whose controlling terminal it is (its pid is also its process
/// group's id); returns the terminal's master side and the process.
pub fn spawn_on_terminal(
    command: &str,
    workdir: &Path,
    env: &BTreeMap<String, String>,
    size: nix::pty::Winsize,
) -> std::io::Result<(std::os::fd::OwnedFd, Child)> {
    let pty = nix::pty::openpty(Some(&size), None)?;
    // The master is ours alone: no process the command starts inherits it.
    nix::fcntl::fcntl(
        &pty.master,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    nix::fcntl::fcntl(
        &pty.master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )?;
    let mut cmd = shell(command, workdir, env);
    cmd.stdin(Stdio::from(pty.slave.try_clone()?))
        .stdout(Stdio::from(pty.slave.try_clone()?))
        .stderr(Stdio::from(pty.slave));
    become_session_leader(&mut cmd);
    Ok((pty.master, cmd.spawn()?))
}

/// A terminal size of `cols` x `rows` (at least 1 x 1).
pub fn terminal_size(cols: u16, rows: u16) -> nix::pty::Winsize {
    nix::pty::Winsize {
        ws_row: rows.max(1),
        ws_col: cols.max(1),
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Makes the child the leader of a new session with its stdin, a terminal, as the
/// session's controlling terminal, between fork and exec.
#[allow(unsafe_code)]
fn become_session_leader(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: setsid(2) and ioctl(2) are single system calls
    // that neither allocate nor take locks. TIOCSCTTY takes an integer argument, not a
    // pointer.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `/bin/sh -c command` in `workdir`, with `env` over the variables passed through from
/// the daemon's own environment and nothing else of it; one simple command replaces the
/// shell (`shell_command.rs`).
fn shell(command: &str, workdir: &Path, env: &BTreeMap<String, String>) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(super::shell_command::exec_form(command).as_ref())
        .current_dir(workdir)
        .env_clear()
        .kill_on_drop(false);
    for name in PASS_THROUGH {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", DEFAULT_PATH);
    }
    // Python buffers its output when it goes to a pipe, so a worker's `print` would reach
    // the logs only kilobytes later; as Heroku and Fly's Python images do, it writes at
    // once unless the app's environment says otherwise (`PYTHONUNBUFFERED = ""`).
    cmd.env("PYTHONUNBUFFERED", "1");
    cmd.envs(env);
    if let Some((soft, hard)) = crate::daemon::open_files::started_with() {
        limit_open_files(&mut cmd, soft, hard);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    drop_ambient_capabilities(&mut cmd);
    cmd
}

/// Clears the child's ambient capabilities between fork and exec: a unit that lets
/// lakeflyd bind ports below 1024 (`AmbientCapabilities=CAP_NET_BIND_SERVICE`) grants it
/// to lakeflyd, not to the apps it runs, which would inherit it across exec.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
fn drop_ambient_capabilities(cmd: &mut Command) {
    use nix::libc::{prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL};
    // SAFETY: the closure runs in the forked child before exec; prctl(2) is a single
    // system call with integer arguments that neither allocates nor takes locks. A kernel
    // without ambient capabilities (before 4.3) has none to clear: its EINVAL is fine.
    unsafe {
        cmd.pre_exec(|| {
            if prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == -1 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(nix::libc::EINVAL) {
                    return Err(e);
                }
            }
            Ok(())
        });
    }
}

/// Where a machine's memory limit is enforced at its start.
#[derive(Debug, Clone, Copy)]
pub enum MemoryLimit<'a> {
    /// Nowhere: no limit, or one the supervisor holds by watching resident memory.
    None,
    /// Its own cgroup, whose `cgroup.procs` this is; the cgroup holds the limit.
    Cgroup(&'a std::fs::File),
}

/// Moves the child into a cgroup between fork and exec, by writing `0` (itself) to the
/// cgroup's `cgroup.procs`, opened before the fork.
#[allow(unsafe_code)]
fn join_cgroup(cmd: &mut Command, procs: std::fs::File) {
    use std::io::Write;
    // SAFETY: the closure runs in the forked child before exec; it only calls write(2) on
    // a file descriptor opened before the fork, which neither allocates nor takes locks.
    unsafe {
        cmd.pre_exec(move || (&procs).write_all(b"0"));
    }
}

/// Gives the child the limits on open files lakeflyd was started with (it raised its
/// own), between fork and exec.
#[allow(unsafe_code)]
fn limit_open_files(cmd: &mut Command, soft: u64, hard: u64) {
    use nix::sys::resource::{setrlimit, Resource};
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed; setrlimit is a single system call that neither
    // allocates nor takes locks.
    unsafe {
        cmd.pre_exec(move || {
            setrlimit(Resource::RLIMIT_NOFILE, soft, hard).map_err(std::io::Error::from)
        });
    }
}

/// Sends `signal` to process `pid` alone (a machine's main process: the app when its
/// command is one simple command, else the shell running it); one already gone is fine.
pub fn signal_process(pid: u32, signal: Signal) -> std::io::Result<()> {
    let Ok(raw) = i32::try_from(pid) else {
        return Ok(());
    };
    match nix::sys::signal::kill(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

/// Sends `signal` to the whole process group led by `pid`; a group that is already gone
/// is not an error.
pub fn signal_group(pid: u32, signal: Signal) -> std::io::Result<()> {
    let Ok(raw) = i32::try_from(pid) else {
        return Ok(());
    };
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

/// The start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), or `None` when it does not exist or is a zombie.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses;
    // the fields after the last `)` are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `rest` starts at field 3 (state); the start time is field 22.
    fields.nth(22 - 4)?.parse().ok()
}

/// The pids of the processes in the group led by `pgid` (from `/proc`): a machine's
/// processes, its leader and what it starts, unless they left the group. A process that
/// ends while the list is read, or has ended (a zombie), is left out.
pub fn group_members(pgid: u32) -> Vec<u32> {
    members(Membership::Group, pgid)
}

/// What processes are counted together by: the process group or the session they are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// The process group (`/proc/<pid>/stat` field 5): a machine's processes.
    Group,
    /// The session (field 6): a console's, whose shell puts each job in a group of its own.
    Session,
}

/// The pids of the live processes whose group or session id is `id` (from `/proc`).
pub fn members(of: Membership, id: u32) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| membership(&stat, of) == Some(id))
        })
        .collect()
}

/// The process group or session in a `/proc/<pid>/stat` line: fields 5 and 6, after the
/// command name, which is in parentheses and may itself hold spaces and parentheses.
/// `None` for a zombie: it has ended, and only waits for its parent to read its status.
fn membership(stat: &str, of: Membership) -> Option<u32> {
    let after_command = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_command.split_whitespace();
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    let after_state = match of {
        Membership::Group => 1,
        Membership::Session => 2,
    };
    fields.nth(after_state)?.parse().ok()
}

/// Waits until no process of the group led by `pgid` runs, or until `deadline`.
pub async fn wait_group_gone(pgid: u32, deadline: tokio::time::Instant) {
    wait_gone(Membership::Group, pgid, deadline).await;
}

/// Waits until no process of the group or session `id` runs, or until `deadline`.
pub async fn wait_gone(of: Membership, id: u32, deadline: tokio::time::Instant) {
    wait_none(move || members(of, id), deadline).await;
}

/// Waits until `find` (a read of `/proc`, run on the blocking pool) finds no process, or
/// until `deadline`.
pub async fn wait_none(
    find: impl Fn() -> Vec<u32> + Clone + Send + 'static,
    deadline: tokio::time::Instant,
) {
    /// Often enough that a stop does not linger, seldom enough to cost nothing.
    const POLL: std::time::Duration = std::time::Duration::from_millis(20);
    while tokio::time::Instant::now() < deadline {
        let found = tokio::task::spawn_blocking(find.clone()).await;
        if found.map_or(true, |m| m.is_empty()) {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Sends `signal` to every process of session `sid`, whatever group each job is in.
pub fn signal_session(sid: u32, signal: Signal) {
    signal_each(&members(Membership::Session, sid), signal);
}

/// Sends `signal` to each of `pids`; one already gone is fine.
pub fn signal_each(pids: &[u32], signal: Signal) {
    for &pid in pids {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = nix::sys::signal::kill(Pid::from_raw(raw), signal);
        }
    }
}

/// The process group of `pid`, or `None` when it has ended (or is a zombie).
pub fn group_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    membership(&stat, Membership::Group)
}

/// Whether `pid` is still the process that started at `recorded` ticks.
pub fn is_same_process(pid: u32, recorded: u64) -> bool {
    start_time(pid) == Some(recorded)
}

/// Stops a process that is not our child (left over from a crashed daemon): `signal` to
/// its group, then SIGKILL after `timeout`. Waits until it is gone or `timeout` twice over.
pub async fn stop_orphan(pid: u32, recorded_start: u64, signal: Signal, timeout: Duration) {
    if !is_same_process(pid, recorded_start) {
        return;
    }
    let _ = signal_group(pid, signal);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !is_same_process(pid, recorded_start) {
            // The leader is gone; finish off anything it left in its group.
            let _ = signal_group(pid, Signal::SIGKILL);
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = signal_group(pid, Signal::SIGKILL);
    let deadline = Instant::now() + timeout;
    while is_same_process(pid, recorded_start) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_group_is_read_past_an_odd_command_name() {
        let stat =
            "4242 (my (odd) app) S 1 4240 4241 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 99 1000 50";
        assert_eq!(membership(stat, Membership::Group), Some(4240));
        assert_eq!(membership(stat, Membership::Session), Some(4241));
        assert_eq!(membership("garbage", Membership::Group), None);
        // A zombie is no longer one of the group's processes.
        let zombie = stat.replace(") S ", ") Z ");
        assert_eq!(membership(&zombie, Membership::Group), None);
        let own = nix::unistd::getpgrp().as_raw() as u32;
        assert!(group_members(own).contains(&std::process::id()));
    }

    #[test]
    fn our_own_start_time_is_stable_and_a_missing_pid_has_none() {
        let me = std::process::id();
        let t = start_time(me).expect("this process has a start time");
        assert!(is_same_process(me, t));
        assert!(!is_same_process(me, t + 1));
        assert_eq!(start_time(u32::MAX - 1), None);
    }
}
