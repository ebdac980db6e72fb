//! `lakefly events --json` (or another command that streams NDJSON) run as a child
//! process, its lines read as they come.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use serde_json::Value;

/// A running `lakefly events --json`, its stdout read line by line.
pub struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    /// Follows the daemon at `remote` with `args` after `events --json`.
    pub fn start(remote: &str, args: &[&str]) -> Self {
        Self::start_with(remote, args, &[])
    }

    /// [`Follower::start`], with `env` set for it.
    pub fn start_with(remote: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut all = vec!["--remote", remote, "events", "--json"];
        all.extend_from_slice(args);
        Self::lakefly(&all, env)
    }

    /// Any `lakefly ARGS` that prints NDJSON until stopped (`watch --json`, say).
    pub fn lakefly(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lakefly"))
            .args(args)
            .env_remove("LAKEFLY_REMOTE")
            .env_remove("LAKEFLY_API_TOKEN")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Follower { child, lines }
    }

    /// Events until one satisfies `pred`, each waited for up to the tests' deadline.
    pub fn until(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(super::edge::DEADLINE)
                .expect("an event line in time");
            let event: Value = serde_json::from_str(&line).expect("NDJSON");
            let done = pred(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
