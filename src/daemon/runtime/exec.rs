//! `machines exec`: a command run once in a machine's environment (its directory, `[env]`,
//! secrets, `$PORT` and mounts), beside the machine's own process, its output passed on
//! as it is written or gathered for one answer.
//! Secrets are opened for that process only, as for the machine's.

use std::time::Instant;

use tokio::sync::mpsc;

use super::oneoff::{self, Output};
use super::{environment, mounts, Runtime, RuntimeError};
use crate::api::types::{kind, ExecEnd, ExecRequest, ExecResult, MachineState};
use crate::daemon::events::NewEvent;

/// Bytes of each output stream kept for a gathered answer.
const OUTPUT_LIMIT: usize = 1024 * 1024;

/// A command ready to run in a machine's environment, found and checked. It holds the
/// machine's secrets, opened for this command only (no `Debug`, so none is printed).
pub struct PreparedExec {
    pub(super) app: String,
    pub(super) id: String,
    pub(super) command: String,
    pub(super) workdir: std::path::PathBuf,
    pub(super) env: std::collections::BTreeMap<String, String>,
    timeout: std::time::Duration,
    stdin: Option<Vec<u8>>,
}

impl Runtime {
    /// Finds machine `id` and the environment `request.command` is to run in: an error
    /// here (no such machine, secrets unreadable) comes before anything ran.
    pub async fn prepare_exec(
        &self,
        app: &str,
        id: &str,
        request: &ExecRequest,
    ) -> Result<PreparedExec, RuntimeError> {
        let machine = self.get(app, id).await?;
        if machine.state == MachineState::Destroyed {
            return Err(RuntimeError::NotFound {
                app: app.to_string(),
                id: id.to_string(),
            });
        }
        let failed = |reason: String| RuntimeError::Exec {
            id: id.to_string(),
            reason,
        };
        let workdir = environment::workdir(&self.apps_dir, app, &machine.spec);
        let secrets =
            (self.secrets.env_of(app, machine.spec.release_version).await).map_err(failed)?;
        let mut env = environment::variables(app, id, &machine.spec, machine.port, secrets);
        mounts::prepare(
            &self.volumes_dir,
            app,
            &workdir,
            &machine.spec.mounts,
            &mut env,
        )
        .map_err(|e| failed(e.to_string()))?;
        Ok(PreparedExec {
            app: app.to_string(),
            id: id.to_string(),
            command: request.command.clone(),
            workdir,
            env,
            timeout: request.time_limit().to_std(),
            stdin: request.stdin.clone(),
        })
    }

    /// Runs a prepared command, passing its output on to `output` as it is written (it
    /// is killed if `output`'s reader goes away), and records how it ended.
    pub async fn run_exec(
        &self,
        exec: PreparedExec,
        output: mpsc::Sender<Output>,
    ) -> Result<ExecEnd, RuntimeError> {
        let started = Instant::now();
        let exit = oneoff::stream(
            &self.oneoff_pids,
            &exec.command,
            &exec.workdir,
            &exec.env,
            exec.timeout,
            exec.stdin,
            output,
        )
        .await
        .map_err(|e| RuntimeError::Exec {
            id: exec.id.clone(),
            reason: format!("{e} (in {})", exec.workdir.display()),
        })?;
        let end = ExecEnd {
            exit_code: exit.exit_code,
            signal: exit.signal.map(|s| s.as_str().to_string()),
            timed_out: exit.timed_out,
        };
        let event = NewEvent::app(
            &exec.app,
            kind::MACHINE_EXEC,
            serde_json::json!({
                "machine": exec.id,
                "program": program_name(&exec.command),
                "exit_code": end.exit_code,
                "signal": end.signal,
                "timed_out": end.timed_out,
                "ms": started.elapsed().as_millis() as u64,
            }),
        );
        if let Err(e) = self.hub.emit(event).await {
            tracing::warn!(error = %e, "recording an exec failed");
        }
        Ok(end)
    }

    /// Runs `request.command` in machine `id`'s environment and returns how it ended,
    /// with up to [`OUTPUT_LIMIT`] bytes of each output stream.
    pub async fn exec(
        &self,
        app: &str,
        id: &str,
        request: &ExecRequest,
    ) -> Result<ExecResult, RuntimeError> {
        let exec = self.prepare_exec(app, id, request).await?;
        let (output, written) = mpsc::channel(16);
        let (end, gathered) = tokio::join!(
            self.run_exec(exec, output),
            oneoff::gather(written, OUTPUT_LIMIT)
        );
        Ok(ExecResult {
            end: end?,
            stdout: String::from_utf8_lossy(&gathered.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&gathered.stderr).into_owned(),
            truncated: gathered.truncated,
        })
    }
}

/// The program a command line runs, for the record: not its arguments, nor the variables
/// set before it (`PGPASSWORD=... psql`), which may carry credentials.
pub(super) fn program_name(command: &str) -> &str {
    let is_assignment = |word: &str| {
        word.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    command
        .split_whitespace()
        .find(|word| !is_assignment(word))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::program_name;

    #[test]
    fn the_recorded_program_leaves_out_arguments_and_assignments() {
        assert_eq!(program_name("python3 manage.py migrate"), "python3");
        assert_eq!(
            program_name("PGPASSWORD=hunter2 LANG=C psql -c 'select 1'"),
            "psql"
        );
        assert_eq!(program_name("  ./bin/tool --x=1"), "./bin/tool");
        assert_eq!(program_name("TOKEN=abc"), "");
        assert_eq!(program_name("9x=1 run"), "9x=1");
    }
}
