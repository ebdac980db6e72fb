//! The embedded local daemon: with no remote configured, the client starts `lakefly daemon
//! run` from its own executable in the background when nothing answers on the local
//! address, and `lakefly daemon status|stop` manage it through the record it leaves in its
//! state directory.

use std::fs::OpenOptions;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::runtime::process;
use crate::daemon::{Record, RECORD_FILE};
use crate::error::Error;
use crate::output::Output;

/// The local daemon's edge address (`LAKEFLY_LOCAL_EDGE` moves it, e.g. for tests).
fn edge_addr() -> String {
    std::env::var("LAKEFLY_LOCAL_EDGE").unwrap_or_else(|_| "127.0.0.1:4281".into())
}

/// The local daemon's address (`LAKEFLY_LOCAL_ADDR` moves it, e.g. for tests).
pub fn local_addr() -> String {
    std::env::var("LAKEFLY_LOCAL_ADDR").unwrap_or_else(|_| "127.0.0.1:4280".into())
}

/// How long a starting daemon may take to answer.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// The local daemon's API URL.
pub fn local_url() -> String {
    format!("http://{}", local_addr())
}

/// Whether something accepts connections at `addr`.
pub fn listening(addr: &str) -> bool {
    let Some(socket) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    TcpStream::connect_timeout(&socket, Duration::from_millis(300)).is_ok()
}

/// The URL of a local daemon, started now if nothing answers.
pub fn ensure_running(out: Output) -> Result<String, Error> {
    let addr = local_addr();
    let url = local_url();
    if listening(&addr) {
        return Ok(url);
    }
    let state = crate::daemon::default_state_dir()?;
    let state = std::path::absolute(&state).map_err(|e| Error::io("find", &state, e))?;
    crate::daemon::create_private_dir(&state)
        .map_err(|e| Error::io("create the state directory", &state, e))?;
    let log = state.join("lakeflyd.log");
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| Error::io("open", &log, e))?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("find", Path::new("the lakefly executable"), e))?;
    let mut child = std::os::unix::process::CommandExt::process_group(
        Command::new(&exe)
            .args([
                "daemon",
                "run",
                "--api",
                &addr,
                "--edge",
                &edge_addr(),
                "--state",
            ])
            .arg(&state)
            // It outlives this command: it keeps no hold on the project directory.
            .current_dir(&state)
            // Not this command's service manager's to hear from (a CI runner's unit).
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file),
        // Its own group: a Ctrl-C on this command does not stop the daemon.
        0,
    )
    .spawn()
    .map_err(|e| Error::io("start", &exe, e))?;
    let deadline = Instant::now() + START_DEADLINE;
    while !listening(&addr) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::EmbeddedDaemon {
                detail: format!("it exited ({status}) before answering"),
                log,
            });
        }
        if Instant::now() > deadline {
            return Err(Error::EmbeddedDaemon {
                detail: format!("it did not answer on {addr} within {START_DEADLINE:?}"),
                log,
            });
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    out.note(&format!(
        "==> started a local lakefly daemon (pid {}) on {addr}; state in {}, log in {}; `lakefly daemon stop` stops it",
        child.id(),
        state.display(),
        log.display()
    ));
    Ok(url)
}

/// The record of the daemon serving `state`, if that process still runs.
pub fn running(state: &Path) -> Option<Record> {
    let text = std::fs::read(state.join(RECORD_FILE)).ok()?;
    let record: Record = serde_json::from_slice(&text).ok()?;
    let alive = match record.pid_start {
        Some(start) => process::is_same_process(record.pid, start),
        None => process::start_time(record.pid).is_some(),
    };
    alive.then_some(record)
}

/// Stops the local daemon with SIGTERM and waits for it to exit; `Ok(None)` when none runs.
pub fn stop(state: &Path) -> Result<Option<Record>, Error> {
    let Some(record) = running(state) else {
        return Ok(None);
    };
    let pid = nix::unistd::Pid::from_raw(i32::try_from(record.pid).unwrap_or(i32::MAX));
    match nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => {
            return Err(Error::io(
                "signal",
                &PathBuf::from(format!("pid {}", record.pid)),
                e.into(),
            ))
        }
    }
    // The daemon stops its machines first, each within its kill timeout.
    let deadline = Instant::now() + Duration::from_secs(120);
    while running(state).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Some(record))
}
