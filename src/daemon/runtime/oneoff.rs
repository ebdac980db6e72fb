//! One-off commands: a release's `[build] command` and `[deploy] release_command`, job
//! runs, and commands exec'd in a machine's environment. Run with `/bin/sh -c` in the
//! release's directory, bounded in time, the whole process group killed at the end; the
//! last lines of output kept, or (exec) the output passed on as it is written.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::oneoff_pids::{Noted, OneOffPids};
use super::output_lines::OutputLines;
use super::process;

/// Lines of output kept to explain a failure.
const TAIL: usize = 20;
/// Lines read ahead of whoever takes them as they come.
const LIVE_QUEUE: usize = 256;
/// How long a command asked to stop has, after SIGTERM, before its group is killed: a
/// migration gets to roll its transaction back.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How a one-off command ended.
pub struct Outcome {
    /// Whether it exited 0 in time.
    pub success: bool,
    /// What happened, in a few words (`exited 1`, `timed out after 5m`).
    pub summary: String,
    /// Its last lines of output (stdout and stderr together).
    pub tail: Vec<String>,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Whether it was stopped at the time limit.
    pub timed_out: bool,
    /// Why it was stopped before it ended, when something asked ([`run_until`]).
    pub stopped: Option<String>,
}

impl Outcome {
    /// Hides the values of `secrets` in the kept output, before it is recorded.
    pub fn redact(&mut self, secrets: &BTreeMap<String, String>) {
        let redactor = crate::secret::Redactor::new(secrets.values().map(String::as_str));
        for line in &mut self.tail {
            *line = redactor.redact(line).into_owned();
        }
    }
}

/// Kills a one-off command's process group if dropped while it runs; disarmed once the
/// command was reaped, so a pid the kernel reuses later is never signalled. Its note
/// (`oneoff_pids`) goes after it, for a daemon that dies without dropping anything.
struct KillGroupOnDrop {
    pid: Option<u32>,
    _noted: Noted,
}

impl KillGroupOnDrop {
    fn new(pid: u32, pids: &OneOffPids) -> Self {
        KillGroupOnDrop {
            pid: Some(pid),
            _noted: pids.note(pid),
        }
    }
}

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = process::signal_group(pid, Signal::SIGKILL);
        }
    }
}

/// A line of a one-off command's output, as it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLine {
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The text, without its line ending.
    pub line: String,
}

/// Runs `command` in `dir` with `env`, killing its whole group after `timeout`. Each line
/// of its output also goes to `live`, when given, as it is read. It is noted in `pids`
/// while it runs.
pub async fn run(
    pids: &OneOffPids,
    command: &str,
    dir: &Path,
    env: &BTreeMap<String, String>,
    timeout: Duration,
    live: Option<mpsc::Sender<LiveLine>>,
) -> Outcome {
    let never = std::future::pending();
    run_until(pids, command, dir, env, timeout, live, never).await
}

/// [`run`], and stops the command when `stop` ends, before its time is up: SIGTERM to its
/// group, then SIGKILL after [`STOP_GRACE`]; the outcome says why (`stopped`).
pub async fn run_until(
    pids: &OneOffPids,
    command: &str,
    dir: &Path,
    env: &BTreeMap<String, String>,
    timeout: Duration,
    live: Option<mpsc::Sender<LiveLine>>,
    stop: impl std::future::Future<Output = String>,
) -> Outcome {
    let none = process::MemoryLimit::None;
    let env = pids.tagged(env);
    let mut spawned = match process::spawn(command, dir, &env, none, process::Input::Empty) {
        Ok(spawned) => spawned,
        Err(e) => {
            return Outcome {
                success: false,
                summary: format!("could not start: {e}"),
                tail: Vec::new(),
                exit_code: None,
                timed_out: false,
                stopped: None,
            }
        }
    };
    // If this future is dropped (the daemon stops mid-run), the command goes with it.
    let mut group = KillGroupOnDrop::new(spawned.pid, pids);
    // Bounded all the way: a command that writes faster than `live` takes its lines (the
    // app's log) is slowed by its pipe, as a machine is, instead of queueing in memory.
    let (tx, mut rx) = mpsc::channel::<LiveLine>(LIVE_QUEUE);
    let pipes = [
        (
            "stdout",
            (spawned.child.stdout.take())
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
        (
            "stderr",
            (spawned.child.stderr.take())
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
    ];
    for (stream, pipe) in pipes {
        let Some(pipe) = pipe else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = OutputLines::new(pipe);
            while let Some(line) = lines.next_line().await {
                if tx.send(LiveLine { stream, line }).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    // Lines are passed on as they come and only the last ones kept, however much it says.
    let collector = tokio::spawn(async move {
        let mut tail = std::collections::VecDeque::with_capacity(TAIL + 1);
        while let Some(line) = rx.recv().await {
            if let Some(live) = &live {
                let _ = live.send(line.clone()).await;
            }
            tail.push_back(line.line);
            if tail.len() > TAIL {
                tail.pop_front();
            }
        }
        Vec::from(tail)
    });
    let ended = wait_then_kill(&mut spawned, timeout, stop).await;
    group.pid = None;
    let exit_code = match &ended {
        Ended::Exited(status) => status.code(),
        _ => None,
    };
    let timed_out = matches!(ended, Ended::TimedOut);
    let stopped = match &ended {
        Ended::Stopped(why) => Some(why.clone()),
        _ => None,
    };
    let (success, summary) = match ended {
        Ended::Exited(s) if s.success() => (true, "exited 0".to_string()),
        Ended::Exited(s) => (
            false,
            match s.code() {
                Some(code) => format!("exited {code}"),
                None => "was killed by a signal".to_string(),
            },
        ),
        Ended::WaitFailed(e) => (false, format!("could not be waited for: {e}")),
        Ended::TimedOut => (
            false,
            format!(
                "did not finish within {}",
                crate::config::units::Duration::from_millis(timeout.as_millis() as u64)
            ),
        ),
        Ended::Stopped(why) => (false, format!("was stopped: {why}")),
    };
    // The group is gone, so its pipes close and the collector ends.
    let tail = collector.await.unwrap_or_default();
    Outcome {
        success,
        summary,
        tail,
        exit_code,
        timed_out,
        stopped,
    }
}

/// How waiting for a one-off command ended.
enum Ended {
    Exited(std::process::ExitStatus),
    WaitFailed(std::io::Error),
    TimedOut,
    /// Asked to stop, for this reason.
    Stopped(String),
}

/// Waits for the command up to `timeout` or until `stop`, then kills its whole group: what
/// it started in the background goes with it, as does the command itself when it ran out
/// of time or was stopped.
async fn wait_then_kill(
    spawned: &mut process::Spawned,
    timeout: Duration,
    stop: impl std::future::Future<Output = String>,
) -> Ended {
    let waited = tokio::select! {
        waited = tokio::time::timeout(timeout, spawned.child.wait()) => waited,
        why = stop => {
            let _ = process::signal_group(spawned.pid, Signal::SIGTERM);
            let _ = tokio::time::timeout(STOP_GRACE, spawned.child.wait()).await;
            let _ = process::signal_group(spawned.pid, Signal::SIGKILL);
            let _ = spawned.child.wait().await;
            return Ended::Stopped(why);
        }
    };
    let _ = process::signal_group(spawned.pid, Signal::SIGKILL);
    match waited {
        Ok(Ok(status)) => Ended::Exited(status),
        Ok(Err(e)) => Ended::WaitFailed(e),
        Err(_) => {
            let _ = spawned.child.wait().await;
            Ended::TimedOut
        }
    }
}

/// A piece of a command's output, as it was written.
#[derive(Debug)]
pub enum Output {
    /// From its standard output.
    Stdout(Vec<u8>),
    /// From its standard error.
    Stderr(Vec<u8>),
}

/// How a command whose output was passed on ended.
#[derive(Debug)]
pub struct Exit {
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did (`SIGKILL` at the time limit).
    pub signal: Option<Signal>,
    /// Whether it was killed at the time limit.
    pub timed_out: bool,
}

/// Runs `command` in `dir` with `env` like [`run`], passing its output on as it is
/// written (a slow reader slows the command, as a pipe does). When `output`'s reader
/// goes away (a client hung up), the command's whole group is killed.
pub async fn stream(
    pids: &OneOffPids,
    command: &str,
    dir: &Path,
    env: &BTreeMap<String, String>,
    timeout: Duration,
    stdin: Option<Vec<u8>>,
    output: mpsc::Sender<Output>,
) -> std::io::Result<Exit> {
    let input = match stdin {
        Some(_) => process::Input::Piped,
        None => process::Input::Empty,
    };
    let env = pids.tagged(env);
    let mut spawned = process::spawn(command, dir, &env, process::MemoryLimit::None, input)?;
    let mut group = KillGroupOnDrop::new(spawned.pid, pids);
    // Written beside the readers (a command may answer before it has read everything),
    // then closed so the command sees its end; one that stops reading just loses the rest.
    if let (Some(bytes), Some(mut pipe)) = (stdin, spawned.child.stdin.take()) {
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = pipe.write_all(&bytes).await;
        });
    }
    let readers = [
        spawned.child.stdout.take().map(|pipe| {
            let output = output.clone();
            tokio::spawn(pass_on(pipe, output, Output::Stdout))
        }),
        spawned.child.stderr.take().map(|pipe| {
            let output = output.clone();
            tokio::spawn(pass_on(pipe, output, Output::Stderr))
        }),
    ];
    let ended = tokio::select! {
        ended = wait_then_kill(&mut spawned, timeout, std::future::pending()) => ended,
        () = output.closed() => {
            let _ = process::signal_group(spawned.pid, Signal::SIGKILL);
            match spawned.child.wait().await {
                Ok(status) => Ended::Exited(status),
                Err(e) => Ended::WaitFailed(e),
            }
        }
    };
    group.pid = None;
    // The group is gone, so the pipes are closed and both readers end, all they read
    // passed on before the end is told.
    for reader in readers.into_iter().flatten() {
        let _ = reader.await;
    }
    match ended {
        Ended::Exited(status) => {
            use std::os::unix::process::ExitStatusExt;
            Ok(Exit {
                exit_code: status.code(),
                signal: status.signal().and_then(|n| Signal::try_from(n).ok()),
                timed_out: false,
            })
        }
        Ended::TimedOut => Ok(Exit {
            exit_code: None,
            signal: Some(Signal::SIGKILL),
            timed_out: true,
        }),
        // Nothing asks it to stop but its reader going away, above.
        Ended::Stopped(_) => Ok(Exit {
            exit_code: None,
            signal: Some(Signal::SIGTERM),
            timed_out: false,
        }),
        Ended::WaitFailed(e) => Err(e),
    }
}

/// Passes what `pipe` gives on as `wrap`ped pieces until it ends or nobody reads them.
async fn pass_on(
    mut pipe: impl AsyncRead + Unpin,
    output: mpsc::Sender<Output>,
    wrap: fn(Vec<u8>) -> Output,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 || output.send(wrap(buf[..n].to_vec())).await.is_err() {
            break;
        }
    }
}

/// A command's output gathered from [`stream`]: up to `limit` bytes of each stream.
#[derive(Debug, Default)]
pub struct Gathered {
    /// Its standard output, up to the limit.
    pub stdout: Vec<u8>,
    /// Its standard error, up to the limit.
    pub stderr: Vec<u8>,
    /// Whether either stream went past the limit (the rest was read and dropped).
    pub truncated: bool,
}

/// Reads `output` to its end, keeping the first `limit` bytes of each stream. Reading on
/// past the limit keeps the command from blocking on a full pipe.
pub async fn gather(mut output: mpsc::Receiver<Output>, limit: usize) -> Gathered {
    let mut gathered = Gathered::default();
    while let Some(piece) = output.recv().await {
        let (kept, bytes) = match piece {
            Output::Stdout(bytes) => (&mut gathered.stdout, bytes),
            Output::Stderr(bytes) => (&mut gathered.stderr, bytes),
        };
        let room = limit - kept.len();
        gathered.truncated |= bytes.len() > room;
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
    gathered
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that takes lines slowly holds the command back (its pipe fills) rather
    /// than lines piling up in memory, and loses none.
    #[tokio::test]
    async fn a_slow_reader_of_the_live_lines_gets_every_one_in_order() {
        let state = tempfile::tempdir().expect("temp dir");
        let pids = OneOffPids::new(state.path());
        let (live, mut lines) = mpsc::channel::<LiveLine>(1);
        let reader = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(line) = lines.recv().await {
                if seen.len() % 500 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                seen.push(line);
            }
            seen
        });
        let command = "seq 1 3000; echo done >&2";
        let env = BTreeMap::new();
        let minute = Duration::from_secs(60);
        let outcome = run(&pids, command, state.path(), &env, minute, Some(live)).await;
        assert!(outcome.success, "{}", outcome.summary);
        let seen = reader.await.expect("the reader ends with the command");
        let stdout: Vec<&str> = (seen.iter())
            .filter(|l| l.stream == "stdout")
            .map(|l| l.line.as_str())
            .collect();
        let expected: Vec<String> = (1..=3000).map(|n| n.to_string()).collect();
        assert_eq!(stdout, expected);
        assert!(seen.contains(&LiveLine {
            stream: "stderr",
            line: "done".into()
        }));
        assert_eq!(outcome.tail.len(), TAIL);
    }
}
