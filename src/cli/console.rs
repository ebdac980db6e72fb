//! `lakefly console`: a terminal in one of the app's machines' environment (its directory,
//! `[env]`, secrets, `$PORT`), as `fly ssh console` opens one: an interactive shell, or
//! `--command`. The local terminal is in raw mode for the session (keys such as Ctrl-C go
//! to the remote program) and is restored afterwards whatever happens; its size follows
//! the window. Without a terminal on stdin the command runs without one, as `machines exec
//! -i` runs it. lakefly exits with the command's exit code.

use std::io::IsTerminal;

use clap::{Args, Subcommand};
use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::api::client::Client;
use crate::api::console::{ConsoleRequest, Frame};
use crate::api::types::{ExecRequest, Machine, MachineState};
use crate::error::Error;
use crate::output::Output;

/// The size assumed when stdout is not a terminal.
const DEFAULT_SIZE: (u16, u16) = (80, 24);

/// Open a terminal in one of the app's machines (its directory, env and secrets).
#[derive(Debug, Args)]
#[command(
    after_help = "The counterpart of `fly console` and `fly ssh console`: the app's console_command\n(fly.toml) if it has one, else a shell (bash if the host has it), in the machine's working\ndirectory with its environment and secrets. lakefly exits with the command's exit code.\nWith no machine running (scaled to zero, stopped by auto_stop_machines), `console` runs\nwith the newest stopped one's directory and environment, and it stays stopped, as `fly\nconsole` needs no machine that runs; `ssh console` needs one.\n\nExamples:\n  lakefly console\n  lakefly console --machine 3779b97f4a7c15\n  lakefly ssh console -s\n  lakefly console -C 'python3 manage.py shell'\n  lakefly console -C 'psql \"$DATABASE_URL\"'\n\n`lakefly ssh console` is the same, for flyctl habits, with a shell rather than\nconsole_command when -C is not given."
)]
pub struct ConsoleArgs {
    /// The machine (default: the first started one of the app; for `console`, with none
    /// started, the newest stopped one).
    #[arg(long, value_name = "ID")]
    pub machine: Option<String>,
    /// Pick the machine from a list, asked on the terminal (as `fly ssh console -s`).
    #[arg(short = 's', long, conflicts_with = "machine")]
    pub select: bool,
    /// flyctl's: allocate a terminal. lakefly gives one whenever stdin is a terminal.
    #[arg(long, hide = true)]
    pub pty: bool,
    /// flyctl's: no WireGuard progress. lakefly shows none.
    #[arg(short = 'q', long, hide = true)]
    pub quiet: bool,
    /// Run this instead of the app's console_command or an interactive shell (through
    /// `sh -c`).
    #[arg(long, short = 'C', value_name = "COMMAND")]
    pub command: Option<String>,
    /// flyctl's flags for what a machine here has not (users, addresses, containers,
    /// regions): noted, or refused with what to do instead.
    #[command(flatten)]
    pub flyctl: super::flyctl_flags::ConsoleFlags,
}

/// `lakefly ssh console`, as flyctl users type it (no SSH is involved).
#[derive(Debug, Args)]
pub struct SshArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SshCommand,
}

/// flyctl's `ssh` commands lakefly has.
#[derive(Debug, Subcommand)]
pub enum SshCommand {
    /// Open a shell in one of the app's machines, as `fly ssh console` does: the same as
    /// `lakefly console`, except that without -C it is a shell, not console_command.
    Console(ConsoleArgs),
}

/// What runs without `-C`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The app's `console_command`, else a shell (`fly console`).
    ConsoleCommand,
    /// A shell (`fly ssh console`).
    Shell,
}

/// Runs `lakefly ssh ...`.
pub fn run_ssh(global: &GlobalArgs, args: SshArgs) -> Result<(), Error> {
    match args.command {
        SshCommand::Console(console) => run(global, console, Fallback::Shell),
    }
}

/// The machine `console` runs beside: the first started one; with none, the newest
/// release's stopped (or failed) one, whose directory and environment the console takes
/// while it stays stopped, as `fly console` needs no machine that runs (it makes one of
/// its own). An app scaled to zero, or stopped by `auto_stop_machines`, has its console.
async fn beside_any(api: &Client, app: &str, out: Output) -> Result<Machine, Error> {
    let machines = api.machines(app).await?;
    if let Some(started) = machines.iter().find(|m| m.state == MachineState::Started) {
        return Ok(started.clone());
    }
    let stopped = (machines.into_iter())
        .filter(|m| matches!(m.state, MachineState::Stopped | MachineState::Failed))
        .max_by_key(|m| m.release_version);
    let Some(stopped) = stopped else {
        return Err(Error::NoStartedMachine {
            app: app.to_string(),
        });
    };
    if !out.json {
        out.note(&format!(
            "    note: no machine of {app} runs: the console runs with {} machine {}'s directory and environment (it stays {0})",
            stopped.state.as_str(),
            stopped.id
        ));
    }
    Ok(stopped)
}

/// Runs a console session.
pub fn run(global: &GlobalArgs, args: ConsoleArgs, fallback: Fallback) -> Result<(), Error> {
    let out = global.output();
    args.flyctl.note(&out);
    let app = app_name(global)?;
    let api = client(global)?;
    let chosen = block_on(async {
        match (args.select, args.machine.as_deref(), fallback) {
            (true, ..) => super::machine_pick::select_flag(&api, &app).await,
            (false, None, Fallback::ConsoleCommand) => beside_any(&api, &app, out).await,
            (false, machine, _) => super::machine_pick::chosen(&api, &app, machine).await,
        }
    })?;
    // As `fly console`: the app's `console_command` unless told otherwise.
    let command = match fallback {
        Fallback::ConsoleCommand => args.command.or(chosen.spec.console_command),
        Fallback::Shell => args.command,
    };
    let machine = chosen.id;
    if !std::io::stdin().is_terminal() {
        // As `docker exec` and `kubectl exec` do, no terminal for input that is not one: a
        // piped script reaches its end reliably, which a terminal's Ctrl-D does not.
        let out = global.output();
        out.note("stdin is not a terminal: the command runs without one, reading stdin (as `lakefly machines exec -i`)");
        let request = ExecRequest {
            command: command.unwrap_or_else(|| "sh".into()),
            timeout: Some(ExecRequest::MAX_TIMEOUT),
            stdin: Some(super::machines::read_stdin()?),
        };
        return super::machines::exec(&out, &api, &app, &machine, &request);
    }
    let (cols, rows) = window_size().unwrap_or(DEFAULT_SIZE);
    let request = ConsoleRequest {
        command,
        cols,
        rows,
        term: std::env::var("TERM").ok().filter(|t| !t.is_empty()),
    };
    let ended = block_on(async {
        let stream = api.console(&app, &machine, &request).await?;
        let raw = RawMode::enter()?;
        let ended = relay(stream).await;
        drop(raw);
        Ok(ended)
    })?;
    match ended {
        Ok(Some(0)) => Ok(()),
        Ok(Some(code)) => Err(Error::ExecFailed {
            machine,
            how: format!("exited {code}"),
            code,
            timed_out: false,
        }),
        Ok(None) => Err(Error::ConsoleCut {
            machine,
            detail: "the connection closed".into(),
        }),
        Err(e) => Err(Error::ConsoleCut {
            machine,
            detail: e.to_string(),
        }),
    }
}

/// Relays the session: keys and window sizes out, the terminal's output in, until the
/// command's exit code comes (`None`: the connection ended first).
async fn relay(stream: reqwest::Upgraded) -> std::io::Result<Option<i32>> {
    let (mut from_daemon, mut to_daemon) = tokio::io::split(stream);
    let (frames, mut outgoing) = mpsc::channel::<Frame>(32);
    let writer = tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            if frame.write(&mut to_daemon).await.is_err() {
                break;
            }
        }
    });
    read_keys(frames.clone());
    let resizer = tokio::spawn(follow_window_size(frames));
    let mut stdout = tokio::io::stdout();
    let ended = loop {
        match Frame::read(&mut from_daemon).await {
            Ok(Some(Frame::Output(bytes))) => {
                stdout.write_all(&bytes).await?;
                stdout.flush().await?;
            }
            Ok(Some(Frame::Exit(code))) => break Ok(Some(code)),
            Ok(Some(_)) => {}
            Ok(None) => break Ok(None),
            Err(e) => break Err(e),
        }
    };
    writer.abort();
    resizer.abort();
    ended
}

/// Sends what is typed as input frames, from a thread of its own: a read of stdin cannot
/// be cancelled, and the runtime must not wait for one to end when the session does.
fn read_keys(frames: mpsc::Sender<Frame>) {
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0
                || frames
                    .blocking_send(Frame::Input(buf[..n].to_vec()))
                    .is_err()
            {
                return;
            }
        }
    });
}

/// Sends the window's new size each time it changes (SIGWINCH).
async fn follow_window_size(frames: mpsc::Sender<Frame>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut changes) = signal(SignalKind::window_change()) else {
        return;
    };
    while changes.recv().await.is_some() {
        if let Some((cols, rows)) = window_size() {
            if frames.send(Frame::Resize { cols, rows }).await.is_err() {
                return;
            }
        }
    }
}

/// The terminal's size (columns, rows), when stdout is one.
#[allow(unsafe_code)]
fn window_size() -> Option<(u16, u16)> {
    let mut size = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which points at a live,
    // writable value for the duration of the call; on a descriptor that is not a
    // terminal it fails and writes nothing.
    let done = unsafe {
        nix::libc::ioctl(
            nix::libc::STDOUT_FILENO,
            nix::libc::TIOCGWINSZ,
            &mut size as *mut nix::pty::Winsize,
        )
    };
    (done == 0 && size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// The local terminal in raw mode: every key goes to the remote program as typed, none is
/// acted on here. Dropping it puts the terminal back as it was.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> Result<Self, Error> {
        let failed = |e: nix::Error| {
            Error::io(
                "set up",
                std::path::Path::new("the terminal"),
                std::io::Error::from(e),
            )
        };
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).map_err(failed)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).map_err(failed)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}
