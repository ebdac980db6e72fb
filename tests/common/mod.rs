//! Helpers shared by the integration tests: running the real binaries and finding the
//! fly.toml corpus.

#![allow(dead_code)]

pub mod api;
pub mod bundle;
pub mod daemon;
pub mod edge;
pub mod files;
pub mod follow;
pub mod process;
pub mod sse;
pub mod terminal;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Whether the program `name` runs here (`name --version` succeeds). A test that needs
/// it skips without it, saying so; under `.ci/run`, which installs every such program
/// (`LAKEFLY_TEST_TOOLS=required`), a missing one fails the test instead, so CI never
/// passes a check it did not make.
pub fn have_tool(name: &str) -> bool {
    let found = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        let required = std::env::var("LAKEFLY_TEST_TOOLS").is_ok_and(|v| v == "required");
        assert!(
            !required,
            "{name} is not installed, and LAKEFLY_TEST_TOOLS=required"
        );
        eprintln!("skipping: {name} is not installed");
    }
    found
}

/// The result of running a binary: exit code and both streams as text.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The exit code and both streams of a finished process.
    pub fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with both streams when the exit code is not `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Ports tests pick for fly.toml: below the machine ports test daemons are given and the
/// kernel's ephemeral ones (32768 up), so that neither a machine's `$PORT` nor an
/// outgoing connection of a test running beside can take one between the test picking
/// it and the daemon binding it.
const TEST_PORTS: std::ops::Range<u16> = 10000..20000;

/// Where each test daemon gets its own `--machine-ports` block: the daemons of tests
/// running side by side each walk a range of their own, so none hands out a port another
/// has just handed to a machine that has not bound it yet.
const MACHINE_PORTS: std::ops::Range<u16> = 20000..32000;

/// Ports in a test daemon's `--machine-ports` block.
const MACHINE_BLOCK: u16 = 40;

/// The next of `len` slots, counting from where this process's id says, so test
/// binaries run one after the other do not all begin at the same place.
fn slot(next: &std::sync::atomic::AtomicU32, len: u32) -> u32 {
    (std::process::id() + next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) % len
}

/// A port that nothing listens on, and that no other test of this run will be given.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let len = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    for _ in 0..len {
        let offset = u16::try_from(slot(&NEXT, len)).expect("a slot is below the range length");
        let port = TEST_PORTS.start + offset;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("every port of {TEST_PORTS:?} is in use");
}

/// A `--machine-ports` value that no other daemon of this test run is given.
pub fn machine_ports() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let blocks = u32::from((MACHINE_PORTS.end - MACHINE_PORTS.start) / MACHINE_BLOCK);
    let block = u16::try_from(slot(&NEXT, blocks)).expect("a slot is below the block count");
    let first = MACHINE_PORTS.start + block * MACHINE_BLOCK;
    format!("{first}-{}", first + MACHINE_BLOCK - 1)
}

/// A `reqwest` client builder: reqwest is built without a crypto provider of its own
/// (lakefly gives rustls ring), so one is installed first. Tests talk to loopback only,
/// so never through a proxy the machine running them may have in its environment.
pub fn http_builder() -> reqwest::ClientBuilder {
    lakefly::tls::install_default_provider();
    reqwest::Client::builder().no_proxy()
}

/// A `reqwest` client with the defaults.
pub fn http_client() -> reqwest::Client {
    http_builder().build().expect("an HTTP client")
}

/// Runs `lakefly` with `args` in `dir`, stdin closed, no colour.
pub fn lakefly(dir: &Path, args: &[&str]) -> Run {
    run(env!("CARGO_BIN_EXE_lakefly"), dir, args, &[], None)
}

/// Runs `lakefly` like [`lakefly`], with `env` set on top.
pub fn lakefly_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    run(env!("CARGO_BIN_EXE_lakefly"), dir, args, env, None)
}

/// Runs `lakefly` like [`lakefly`], with `input` on its stdin.
pub fn lakefly_stdin(dir: &Path, args: &[&str], input: &[u8]) -> Run {
    run(env!("CARGO_BIN_EXE_lakefly"), dir, args, &[], Some(input))
}

/// Runs `lakeflyd` on ephemeral loopback ports with state in `state`, then `extra`: for
/// starts that are meant to be refused (a daemon that starts is `daemon::TestDaemon`).
pub fn lakeflyd_in(state: &Path, extra: &[&str]) -> Run {
    let state = state.to_str().expect("a UTF-8 path");
    let mut args = vec![
        "--api",
        "127.0.0.1:0",
        "--edge",
        "127.0.0.1:0",
        "--state",
        state,
    ];
    args.extend_from_slice(extra);
    lakeflyd(&args)
}

/// Runs `lakeflyd` with `args`.
pub fn lakeflyd(args: &[&str]) -> Run {
    run(
        env!("CARGO_BIN_EXE_lakeflyd"),
        Path::new("."),
        args,
        &[],
        None,
    )
}

/// `lakefly args` in `dir`, started with its output piped, for a test that does something
/// while it runs; `Run::from(child.wait_with_output())` reads what it did.
pub fn lakefly_spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    spawn_lakefly(dir, args, Stdio::null())
}

/// `lakefly args` started in `dir` with its standard input a pipe the test holds (and
/// closes by dropping it).
pub fn lakefly_spawn_with_stdin(dir: &Path, args: &[&str]) -> std::process::Child {
    spawn_lakefly(dir, args, Stdio::piped())
}

/// `lakefly args` started in `dir` with `stdin`, its output piped.
fn spawn_lakefly(dir: &Path, args: &[&str], stdin: Stdio) -> std::process::Child {
    command(env!("CARGO_BIN_EXE_lakefly"), dir, args, &[])
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run lakefly")
}

/// `bin args` in `dir`, apart from the user's own lakefly set-up, with `env` on top.
fn command(bin: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(bin);
    command
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("LAKEFLY_REMOTE")
        .env_remove("LAKEFLY_API_TOKEN")
        // Nor their named remotes: a test names its own, under its directory.
        .env("XDG_CONFIG_HOME", dir.join(".lakefly-test-config"))
        // Nor their home: a local daemon's state, a launchd agent, land under it too.
        .env("HOME", dir.join(".lakefly-test-home"))
        .env("XDG_DATA_HOME", dir.join(".lakefly-test-data"))
        .envs(env.iter().copied());
    command
}

fn run(bin: &str, dir: &Path, args: &[&str], env: &[(&str, &str)], input: Option<&[u8]>) -> Run {
    let mut child = command(bin, dir, args, env)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // From a thread: a program that answers before reading all of it must not wait
        // on a test blocked writing.
        let input = input.to_vec();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&input);
        });
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    Run::from(output)
}

/// The fly.toml corpus: `$LAKEFLY_FLY_TOML_CORPUS`, else `../shared/corpus/fly-toml`.
/// `None` only when the variable is unset and the default is absent; a variable that
/// names a missing directory is a failure, so CI cannot skip the corpus by accident.
pub fn corpus_dir() -> Option<PathBuf> {
    match std::env::var_os("LAKEFLY_FLY_TOML_CORPUS") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            assert!(
                dir.is_dir(),
                "LAKEFLY_FLY_TOML_CORPUS={} is not a directory",
                dir.display()
            );
            Some(dir)
        }
        None => {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/fly-toml");
            if dir.is_dir() {
                Some(dir)
            } else {
                eprintln!(
                    "skipping: no corpus at {} and LAKEFLY_FLY_TOML_CORPUS is unset",
                    dir.display()
                );
                None
            }
        }
    }
}

/// The ids of `machines` (as the API lists them), sorted: to compare sets of machines.
pub fn machine_ids(machines: &[serde_json::Value]) -> Vec<String> {
    let mut ids: Vec<String> = machines
        .iter()
        .map(|m| m["id"].as_str().expect("a machine id").to_string())
        .collect();
    ids.sort();
    ids
}

/// Every `.toml` file of the corpus, sorted.
pub fn corpus_files() -> Vec<PathBuf> {
    let Some(dir) = corpus_dir() else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no .toml files", dir.display());
    files
}
