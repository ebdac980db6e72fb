//! `machines exec`: a command run once in a machine's environment (its directory, `[env]`,
//! secrets, `$PORT` and mounts), beside the machine's own process, its output captured.
//! Secrets are opened for that process only, as for the machine's.

use std::time::Instant;

use super::{environment, mounts, oneoff, Runtime, RuntimeError};
use crate::api::types::{kind, ExecRequest, ExecResult, MachineState};
use crate::daemon::events::NewEvent;

/// Bytes of each output stream kept for the answer.
const OUTPUT_LIMIT: usize = 1024 * 1024;

impl Runtime {
    /// Runs `request.command` in machine `id`'s environment and returns how it ended.
    pub async fn exec(
        &self,
        app: &str,
        id: &str,
        request: &ExecRequest,
    ) -> Result<ExecResult, RuntimeError> {
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
        let timeout = request.time_limit().to_std();
        let workdir = environment::workdir(&self.apps_dir, app, &machine.spec);
        let secrets = {
            let (store, app) = (self.secrets.clone(), app.to_string());
            tokio::task::spawn_blocking(move || store.env(&app))
                .await
                .map_err(|e| failed(format!("reading secrets failed: {e}")))?
                .map_err(failed)?
        };
        let mut env = environment::variables(app, id, &machine.spec, machine.port, secrets);
        mounts::prepare(
            &self.volumes_dir,
            app,
            &workdir,
            &machine.spec.mounts,
            &mut env,
        )
        .map_err(|e| failed(e.to_string()))?;
        let started = Instant::now();
        let captured = oneoff::capture(&request.command, &workdir, &env, timeout, OUTPUT_LIMIT)
            .await
            .map_err(|e| failed(format!("{e} (in {})", workdir.display())))?;
        drop(env);
        let result = ExecResult {
            exit_code: captured.exit_code,
            signal: captured.signal.map(|s| s.as_str().to_string()),
            timed_out: captured.timed_out,
            stdout: String::from_utf8_lossy(&captured.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&captured.stderr).into_owned(),
            truncated: captured.truncated,
        };
        let program = program_name(&request.command);
        let event = NewEvent::app(
            app,
            kind::MACHINE_EXEC,
            serde_json::json!({
                "machine": id,
                "program": program,
                "exit_code": result.exit_code,
                "signal": result.signal,
                "timed_out": result.timed_out,
                "ms": started.elapsed().as_millis() as u64,
            }),
        );
        if let Err(e) = self.hub.emit(event).await {
            tracing::warn!(error = %e, "recording an exec failed");
        }
        Ok(result)
    }
}

/// The program a command line runs, for the record: not its arguments, nor the variables
/// set before it (`PGPASSWORD=... psql`), which may carry credentials.
fn program_name(command: &str) -> &str {
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
