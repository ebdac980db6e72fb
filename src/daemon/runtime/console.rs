//! `lakefly console` on the daemon's side: a command in a machine's environment (as `exec`
//! runs one) on a pseudo-terminal of its own, as the leader of a new session, so job
//! control, Ctrl-C and full-screen programs work as in any terminal. Its terminal is
//! relayed to the client as console frames. The client hanging up is a terminal closing:
//! the session gets SIGHUP, then SIGKILL.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::exec::PreparedExec;
use super::{process, Runtime, RuntimeError};
use crate::api::console::Frame;
use crate::api::types::kind;
use crate::daemon::events::NewEvent;

/// How long output written just before the command exited may take to be read.
const LAST_OUTPUT: Duration = Duration::from_millis(200);
/// How long a hung-up session has to end at SIGHUP before SIGKILL.
const HANGUP_GRACE: Duration = Duration::from_secs(2);

/// A command running on its own terminal.
pub struct Console {
    master: AsyncFd<OwnedFd>,
    child: tokio::process::Child,
    pid: u32,
    app: String,
    machine: String,
    program: String,
}

impl Runtime {
    /// Starts `exec`'s command on a new terminal of `cols` x `rows`, `term` its `$TERM`.
    pub fn open_console(
        &self,
        exec: PreparedExec,
        cols: u16,
        rows: u16,
        term: Option<String>,
    ) -> Result<Console, RuntimeError> {
        let failed = |reason: String| RuntimeError::Exec {
            id: exec.id.clone(),
            reason,
        };
        let mut env = exec.env.clone();
        env.insert(
            "TERM".into(),
            term.unwrap_or_else(|| "xterm-256color".into()),
        );
        let (master, child) = process::spawn_on_terminal(
            &exec.command,
            &exec.workdir,
            &env,
            process::terminal_size(cols, rows),
        )
        .map_err(|e| failed(format!("{e} (in {})", exec.workdir.display())))?;
        let pid = child
            .id()
            .ok_or_else(|| failed("it exited before its pid was read".into()))?;
        let master = watch_terminal(master).map_err(|e| failed(e.to_string()))?;
        Ok(Console {
            master,
            child,
            pid,
            program: super::exec::program_name(&exec.command).to_string(),
            app: exec.app,
            machine: exec.id,
        })
    }
}

impl Console {
    /// Relays the terminal over `stream` until the command exits (its code is sent as the
    /// last frame and returned), the client hangs up or the daemon stops (`None`).
    pub async fn relay<S>(
        self,
        stream: S,
        hub: crate::daemon::events::EventHub,
        mut stopping: watch::Receiver<bool>,
    ) -> Option<i32>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let started = Instant::now();
        let Console {
            master,
            mut child,
            pid,
            app,
            machine,
            program,
        } = self;
        let (mut from_client, mut to_client) = tokio::io::split(stream);
        // Frames are read by a task of their own: a read cut off mid-frame by another
        // branch below would lose the frame's start.
        let (frames, mut incoming) = mpsc::channel::<Frame>(16);
        let reader = tokio::spawn(async move {
            while let Ok(Some(frame)) = Frame::read(&mut from_client).await {
                if frames.send(frame).await.is_err() {
                    break;
                }
            }
        });
        let mut buf = vec![0u8; 16 * 1024];
        let mut closed = false;
        let ended = loop {
            tokio::select! {
                status = child.wait() => break Some(status),
                frame = incoming.recv() => match frame {
                    Some(Frame::Input(bytes)) => {
                        if write_all(&master, &bytes).await.is_err() {
                            break None;
                        }
                    }
                    Some(Frame::Resize { cols, rows }) => {
                        set_size(&master, cols, rows);
                    }
                    // Daemon-to-client kinds from a client mean nothing.
                    Some(_) => {}
                    None => break None,
                },
                read = read(&master, &mut buf), if !closed => match read {
                    Ok(n) if n > 0 => {
                        let out = Frame::Output(buf[..n].to_vec());
                        if out.write(&mut to_client).await.is_err() {
                            break None;
                        }
                    }
                    // Every process that had the terminal closed it: nothing more to
                    // show; the command's exit (or the client leaving) comes next.
                    _ => closed = true,
                },
                // (The guard `wait_for` returns is dropped before the arm awaits.)
                () = async { let _ = stopping.wait_for(|stopping| *stopping).await; } => {
                    let note = Frame::Output(b"\r\nlakeflyd is stopping: the console was closed\r\n".to_vec());
                    let _ = note.write(&mut to_client).await;
                    break None;
                }
            }
        };
        reader.abort();
        let code = match ended {
            Some(Ok(status)) => {
                // What it wrote just before it exited, then its end.
                let deadline = tokio::time::Instant::now() + LAST_OUTPUT;
                while let Ok(Ok(n)) =
                    tokio::time::timeout_at(deadline, read(&master, &mut buf)).await
                {
                    if n == 0
                        || Frame::Output(buf[..n].to_vec())
                            .write(&mut to_client)
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
                let code = exit_code(status);
                let _ = Frame::Exit(code).write(&mut to_client).await;
                let _ = to_client.shutdown().await;
                Some(code)
            }
            _ => None,
        };
        // A terminal that closes hangs up its session: what the command left running goes.
        hang_up(pid).await;
        let _ = child.wait().await;
        let event = NewEvent::app(
            &app,
            kind::MACHINE_EXEC,
            serde_json::json!({
                "machine": machine,
                "program": program,
                "console": true,
                "exit_code": code,
                "ms": started.elapsed().as_millis() as u64,
            }),
        );
        if let Err(e) = hub.emit(event).await {
            tracing::warn!(error = %e, "recording a console failed");
        }
        code
    }
}

impl Console {
    /// Closes a console that will not be relayed (the client never took the upgrade).
    pub async fn close(mut self) {
        hang_up(self.pid).await;
        let _ = self.child.wait().await;
    }
}

/// Reads what the terminal shows; 0 once nothing has it open any more.
async fn read(master: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        let mut ready = master.readable().await?;
        match ready.try_io(|fd| Ok(nix::unistd::read(fd.get_ref(), buf)?)) {
            Ok(Ok(n)) => return Ok(n),
            // Linux answers EIO once the last process holding the terminal closed it.
            Ok(Err(e)) if e.raw_os_error() == Some(nix::libc::EIO) => return Ok(0),
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

/// Types `bytes` into the terminal.
async fn write_all(master: &AsyncFd<OwnedFd>, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let mut ready = master.writable().await?;
        match ready.try_io(|fd| Ok(nix::unistd::write(fd.get_ref(), bytes)?)) {
            Ok(Ok(n)) => bytes = &bytes[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

/// Has the runtime watch the terminal's master side.
#[allow(unsafe_code)]
fn watch_terminal(master: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is an open descriptor that stays open, and the same, until it
    // is dropped, which the `AsyncFd` that owns it does last.
    unsafe { AsyncFd::register(master) }.map_err(std::io::Error::from)
}

/// Sets the terminal's size; its foreground program gets SIGWINCH and redraws.
#[allow(unsafe_code)]
fn set_size(master: &AsyncFd<OwnedFd>, cols: u16, rows: u16) {
    let size = process::terminal_size(cols, rows);
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which points at a live
    // value for the duration of the call, on a descriptor this console owns.
    let done =
        unsafe { nix::libc::ioctl(master.get_ref().as_raw_fd(), nix::libc::TIOCSWINSZ, &size) };
    if done == -1 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not resize a console");
    }
}

/// SIGHUP to every process of the session (each job of an interactive shell is a process
/// group of its own), as a terminal going away does; SIGKILL to what is left after a grace
/// time. What made itself a session of its own (`setsid`, a daemon) is left alone.
async fn hang_up(sid: u32) {
    use process::Membership::Session;
    process::signal_session(sid, Signal::SIGHUP);
    // A stopped job (Ctrl-Z) sees the hangup only once it runs again.
    process::signal_session(sid, Signal::SIGCONT);
    process::wait_gone(Session, sid, tokio::time::Instant::now() + HANGUP_GRACE).await;
    process::signal_session(sid, Signal::SIGKILL);
}

/// The exit code a shell would report: the code, or 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
