//! `lakeflyd --live-restore`: machines outlive a stop of lakeflyd (an upgrade, a restart)
//! and the next run on the same state directory takes them back, as Docker's live restore
//! and a Nomad client's restart do, instead of stopping and starting every app.
//!
//! What ties a machine to a daemon is its output: through pipes, a machine writing while
//! no daemon reads would get `EPIPE` (or die of `SIGPIPE`). Under live restore its stdout
//! and stderr are FIFOs in the state directory instead, which the next daemon opens by
//! name, and the machine itself holds a read end of each: its writes never fail, and what
//! it writes while no daemon runs waits in the FIFO (1 MiB each) for the next one. Its
//! exit, which only its parent could read, is seen as its pid going away (or staying a
//! zombie no one reaps), so its status is not known then.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::stat::Mode;
use tokio::io::AsyncRead;
use tokio::net::unix::pipe;

/// The streams a machine writes, by the name its log lines carry.
const STREAMS: [&str; 2] = ["stdout", "stderr"];
/// What a FIFO holds while no daemon reads it (Linux's most for an unprivileged process).
const FIFO_SIZE: i32 = 1 << 20;
/// How often an adopted machine's pid is looked at to see it exit.
const EXIT_POLL: Duration = Duration::from_millis(100);

/// A machine's output as the daemon reads it: each stream with its name.
pub type Streams = Vec<(&'static str, Box<dyn AsyncRead + Unpin + Send + Sync>)>;

/// Where machines' output FIFOs live: `<state>/run/output/<machine>.stdout` and `.stderr`.
#[derive(Debug, Clone)]
pub struct Outputs {
    dir: PathBuf,
}

/// A machine's output FIFOs, made before its process starts.
pub struct MachineOutput {
    /// The daemon's ends.
    pub streams: Streams,
    /// The machine's stdout and stderr.
    pub stdout: File,
    /// See `stdout`.
    pub stderr: File,
    /// Read ends the machine keeps open (they are not closed at its exec), so a write
    /// never finds the FIFO without a reader.
    pub held: Vec<OwnedFd>,
}

impl Outputs {
    /// The FIFOs of the daemon with state directory `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Outputs {
            dir: state_dir.join("run").join("output"),
        }
    }

    fn path(&self, machine: &str, stream: &str) -> PathBuf {
        self.dir.join(format!("{machine}.{stream}"))
    }

    /// New FIFOs for a start of `machine` (any left from an earlier start are replaced).
    pub fn create(&self, machine: &str) -> io::Result<MachineOutput> {
        std::fs::create_dir_all(&self.dir)?;
        let [out, err] = STREAMS;
        let (out_reader, stdout, out_held) = self.fifo(machine, out)?;
        let (err_reader, stderr, err_held) = self.fifo(machine, err)?;
        Ok(MachineOutput {
            streams: vec![(out, Box::new(out_reader)), (err, Box::new(err_reader))],
            stdout,
            stderr,
            held: vec![out_held, err_held],
        })
    }

    /// One new FIFO of `machine`: the daemon's read end, the machine's write end, and the
    /// read end the machine holds.
    fn fifo(&self, machine: &str, stream: &str) -> io::Result<(pipe::Receiver, File, OwnedFd)> {
        let path = self.path(machine, stream);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR)?;
        // The reader first: opening the write end of a FIFO waits for one.
        let reader = pipe::OpenOptions::new().open_receiver(&path)?;
        let _ = fcntl(&reader, FcntlArg::F_SETPIPE_SZ(FIFO_SIZE));
        let held: OwnedFd = nix::fcntl::open(
            &path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let writer = File::options().write(true).open(&path)?;
        Ok((reader, writer, held))
    }

    /// The daemon's ends of the FIFOs of `machine`, started by an earlier run; `None` when
    /// they are not there (it was started without live restore).
    pub fn reopen(&self, machine: &str) -> Option<Streams> {
        let mut streams: Streams = Vec::with_capacity(2);
        for stream in STREAMS {
            let reader = pipe::OpenOptions::new()
                .open_receiver(self.path(machine, stream))
                .ok()?;
            streams.push((stream, Box::new(reader)));
        }
        Some(streams)
    }

    /// Removes every machine's FIFOs (a run without live restore, once it stopped what an
    /// earlier run left).
    pub fn remove_all(&self) {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove the output FIFOs an earlier run left")
            }
        }
    }

    /// Removes the FIFOs of `machine`, once it has ended.
    pub fn remove(&self, machine: &str) {
        for stream in STREAMS {
            let _ = std::fs::remove_file(self.path(machine, stream));
        }
    }
}

/// Leaves `fds` open across the exec of the child `cmd` starts: the machine holds them.
#[allow(unsafe_code)]
pub fn keep_across_exec(cmd: &mut tokio::process::Command, fds: Vec<OwnedFd>) {
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: fcntl(2) is a single system call that neither
    // allocates nor takes locks. The descriptors live in the closure until the spawn.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &fds {
                fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
            }
            Ok(())
        });
    }
}

/// Waits for the process `pid` that started at `start_time`, which this daemon did not
/// start and so cannot wait for, to end (or to be a zombie).
pub async fn exited(pid: u32, start_time: u64) {
    while super::process::is_same_process(pid, start_time) {
        tokio::time::sleep(EXIT_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn what_is_written_while_no_one_reads_waits_for_the_next_reader() {
        let state = tempfile::tempdir().unwrap();
        let outputs = Outputs::new(state.path());
        let made = outputs.create("m1").unwrap();
        let MachineOutput {
            streams,
            stdout,
            stderr: _stderr,
            held,
        } = made;
        // The daemon goes: its ends close. The machine, holding its own, writes on.
        drop(streams);
        use std::io::Write;
        (&stdout).write_all(b"during the restart\n").unwrap();
        let mut streams = outputs.reopen("m1").expect("the FIFOs are there");
        drop(held);
        drop(stdout);
        let (name, reader) = &mut streams[0];
        assert_eq!(*name, "stdout");
        let mut text = String::new();
        reader.read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "during the restart\n");
        outputs.remove("m1");
        assert!(outputs.reopen("m1").is_none());
    }
}
