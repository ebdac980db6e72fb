//! Helpers shared by the integration tests: running the real binaries and finding the
//! fly.toml corpus.

#![allow(dead_code)]

pub mod api;
pub mod bundle;
pub mod daemon;
pub mod edge;
pub mod sse;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The result of running a binary: exit code and both streams as text.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
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

/// A loopback port that was free a moment ago (bound, noted, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("its address")
        .port()
}

/// Runs `lakefly` with `args` in `dir`, stdin closed, no colour.
pub fn lakefly(dir: &Path, args: &[&str]) -> Run {
    run(env!("CARGO_BIN_EXE_lakefly"), dir, args, &[])
}

/// Runs `lakefly` like [`lakefly`], with `env` set on top.
pub fn lakefly_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    run(env!("CARGO_BIN_EXE_lakefly"), dir, args, env)
}

/// Runs `lakeflyd` with `args`.
pub fn lakeflyd(args: &[&str]) -> Run {
    run(env!("CARGO_BIN_EXE_lakeflyd"), Path::new("."), args, &[])
}

/// The developer's own remote and token never leak into a test's run.
fn run(bin: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("LAKEFLY_REMOTE")
        .env_remove("LAKEFLY_API_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
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
