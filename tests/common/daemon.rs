//! A real `lakeflyd` on an ephemeral loopback port with a temporary state directory,
//! stopped (SIGTERM, then SIGKILL) when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a daemon gets to start or stop before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The log level of a test daemon whose stderr is the test's: its warnings, without the
/// journal of events (the crashes tests cause on purpose would crowd the output).
const QUIET: &str = "warn,lakefly::events=off";

pub struct TestDaemon {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub api: String,
    /// `http://127.0.0.1:PORT` of the edge.
    pub edge: String,
    pub state: PathBuf,
    // Keeps a temporary state directory alive for the daemon's life.
    _temp: Option<tempfile::TempDir>,
}

impl TestDaemon {
    /// `lakefly --remote <this daemon> args` in `dir`.
    pub fn cli(&self, dir: &Path, args: &[&str]) -> super::Run {
        let mut all = vec!["--remote", self.api.as_str()];
        all.extend_from_slice(args);
        super::lakefly(dir, &all)
    }

    /// A daemon with a fresh state directory.
    pub fn start() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let state = temp.path().join("state");
        let mut d = Self::start_in(&state, &[]);
        d._temp = Some(temp);
        d
    }

    /// A daemon on `state`, with extra flags.
    pub fn start_in(state: &Path, extra: &[&str]) -> Self {
        Self::start_at("127.0.0.1:0", state, extra)
    }

    /// A daemon on `state` that logs everything, at debug level, to `log`.
    pub fn start_logging_to(state: &Path, log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("create the log file");
        Self::spawn("127.0.0.1:0", state, &[], "debug", Stdio::from(file))
    }

    /// A daemon on `state` logging to `log` as systemd would connect it to the journal:
    /// `$JOURNAL_STREAM` names its stderr.
    pub fn start_under_journal(state: &Path, log: &Path) -> Self {
        use std::os::unix::fs::MetadataExt;
        let file = std::fs::File::create(log).expect("create the log file");
        let meta = file.metadata().unwrap();
        let mut lakeflyd = Command::new(env!("CARGO_BIN_EXE_lakeflyd"));
        lakeflyd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        Self::spawn_from(
            lakeflyd,
            "127.0.0.1:0",
            state,
            &[],
            "info",
            Stdio::from(file),
        )
    }

    /// A daemon on `state` with these variables in its environment (as systemd sets
    /// `NOTIFY_SOCKET` and `WATCHDOG_USEC`).
    pub fn start_with_env(state: &Path, vars: &[(&str, &str)]) -> Self {
        let mut lakeflyd = Command::new(env!("CARGO_BIN_EXE_lakeflyd"));
        lakeflyd.envs(vars.iter().copied());
        Self::spawn_from(lakeflyd, "127.0.0.1:0", state, &[], QUIET, Stdio::inherit())
    }

    /// A daemon listening on `api` (to come back on the same address after a restart).
    pub fn start_at(api: &str, state: &Path, extra: &[&str]) -> Self {
        Self::spawn(api, state, extra, QUIET, Stdio::inherit())
    }

    /// A daemon whose soft limit on open files starts at `soft`, its hard limit kept (as
    /// systemd starts a service with 1024).
    pub fn start_with_open_files(state: &Path, soft: u64) -> Self {
        // bash: POSIX sh takes no descriptor numbers past 9 in a redirection.
        let mut sh = Command::new("bash");
        sh.arg("-c")
            .arg(format!("ulimit -Sn {soft} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_lakeflyd"));
        Self::spawn_from(sh, "127.0.0.1:0", state, &[], QUIET, Stdio::inherit())
    }

    /// A daemon holding CAP_NET_BIND_SERVICE as an ambient capability, as a unit with
    /// `AmbientCapabilities=CAP_NET_BIND_SERVICE` starts it (util-linux `setpriv`).
    pub fn start_with_bind_capability(state: &Path) -> Self {
        let mut setpriv = Command::new("setpriv");
        setpriv
            .args(["--inh-caps", "+net_bind_service"])
            .args(["--ambient-caps", "+net_bind_service"])
            .arg(env!("CARGO_BIN_EXE_lakeflyd"));
        Self::spawn_from(setpriv, "127.0.0.1:0", state, &[], QUIET, Stdio::inherit())
    }

    /// A daemon given the listening sockets `fds` as systemd passes a socket unit's,
    /// each with its name (see [`socket_activated`]).
    pub fn start_with_sockets(state: &Path, fds: &[(i32, &str)]) -> Self {
        let lakeflyd = socket_activated(fds);
        Self::spawn_from(lakeflyd, "127.0.0.1:0", state, &[], QUIET, Stdio::inherit())
    }

    fn spawn(api: &str, state: &Path, extra: &[&str], level: &str, stderr: Stdio) -> Self {
        let lakeflyd = Command::new(env!("CARGO_BIN_EXE_lakeflyd"));
        Self::spawn_from(lakeflyd, api, state, extra, level, stderr)
    }

    /// Runs `command` (lakeflyd, or a shell that execs it) with the test flags.
    fn spawn_from(
        mut command: Command,
        api: &str,
        state: &Path,
        extra: &[&str],
        level: &str,
        stderr: Stdio,
    ) -> Self {
        command
            .args(["--api", api, "--edge", "127.0.0.1:0", "--state"])
            .arg(state)
            .args(extra);
        if !extra.contains(&"--machine-ports") {
            command.args(["--machine-ports", &super::machine_ports()]);
        }
        // A new machine counts once its checks pass: the 10 s a deploy watches it by
        // default would add up over every test's deploys (tests/smoke_time.rs sets it).
        if !extra.contains(&"--smoke-time") {
            command.args(["--smoke-time", "0s"]);
        }
        // Two edge threads whatever the cores (the default on two is one), so what they
        // share (routes, machines, per-thread upstream pools) is tested everywhere.
        if !extra.contains(&"--edge-threads") {
            command.args(["--edge-threads", "2"]);
        }
        let mut child = command
            .env("LAKEFLY_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn lakeflyd");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(DEADLINE) {
            Ok(line) if !line.is_empty() => line,
            _ => {
                let _ = child.kill();
                panic!("lakeflyd did not report its address within {DEADLINE:?}");
            }
        };
        let ready: serde_json::Value = serde_json::from_str(&line).expect("ready line is JSON");
        TestDaemon {
            child: Some(child),
            api: ready["api"].as_str().expect("api address").to_string(),
            edge: ready["edge"].as_str().expect("edge address").to_string(),
            state: state.to_path_buf(),
            _temp: None,
        }
    }

    /// The edge's `host:port`.
    pub fn edge_addr(&self) -> &str {
        self.edge.trim_start_matches("http://")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait()
    }

    /// SIGTERM, without waiting: the daemon stops its machines, then exits
    /// ([`wait_exit`](Self::wait_exit)).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Waits for the exit a signal asked for, failing the test after [`DEADLINE`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait()
    }

    /// SIGHUP: the daemon reloads what it can.
    pub fn hangup(&self) {
        self.signal("HUP");
    }

    /// Whether the process is still there.
    pub fn is_running(&mut self) -> bool {
        let child = self.child.as_mut().expect("started");
        child.try_wait().expect("wait").is_none()
    }

    /// SIGKILL: the daemon gets no chance to clean up.
    pub fn kill9(&mut self) {
        self.signal("KILL");
        self.wait();
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > until {
                let _ = child.kill();
                panic!("lakeflyd did not exit within {DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `lakeflyd` (arguments to follow) run as systemd runs a socket-activated service: the
/// listening sockets `fds` as descriptors 3, 4, ..., with `LISTEN_PID`, `LISTEN_FDS` and
/// `LISTEN_FDNAMES` (their names, in order). The descriptors must not be close-on-exec.
pub fn socket_activated(fds: &[(i32, &str)]) -> Command {
    // The shell moves each to a spare number, closing the original (which a machine
    // would otherwise inherit), then into place, and names its own pid, which lakeflyd
    // keeps by `exec`.
    let mut moves = String::new();
    for (i, (fd, _)) in fds.iter().enumerate() {
        moves.push_str(&format!("exec {spare}<&{fd} {fd}<&- && ", spare = 100 + i));
    }
    for i in 0..fds.len() {
        moves.push_str(&format!(
            "exec {}<&{spare} {spare}<&- && ",
            3 + i,
            spare = 100 + i
        ));
    }
    let names: Vec<&str> = fds.iter().map(|(_, name)| *name).collect();
    // bash: POSIX sh takes no descriptor numbers past 9 in a redirection.
    let mut sh = Command::new("bash");
    sh.arg("-c")
        .arg(format!(
            "{moves}export LISTEN_PID=$$ LISTEN_FDS={} LISTEN_FDNAMES={} && exec \"$0\" \"$@\"",
            fds.len(),
            names.join(":")
        ))
        .arg(env!("CARGO_BIN_EXE_lakeflyd"));
    sh
}

impl Drop for TestDaemon {
    /// SIGTERM, so the daemon stops its machines; SIGKILL only if it hangs, which leaves
    /// them running (a failing test should not also hang).
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg(child.id().to_string())
                .stderr(Stdio::null())
                .status();
            let until = Instant::now() + DEADLINE;
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The state database's write lock, held by the test as long as this lives: the daemon's
/// writes fail after its busy timeout, as they do on a full disk.
pub struct StoreLock(rusqlite::Connection);

impl StoreLock {
    /// Takes the write lock of the database in `state`.
    pub fn take(state: &Path) -> Self {
        let conn = rusqlite::Connection::open(state.join("state.db")).expect("open state.db");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn.execute_batch("BEGIN EXCLUSIVE")
            .expect("take the write lock");
        StoreLock(conn)
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

/// Waits until the daemon's log file has `text`, or fails the test at a deadline.
pub fn wait_logged(log: &Path, text: &str) {
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(text)
    {
        assert!(
            start.elapsed() < DEADLINE,
            "the daemon never logged {text:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
