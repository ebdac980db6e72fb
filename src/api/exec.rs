//! `machines exec`: its wire types (shared with the daemon, re-exported by `types`), and
//! the client's side: one answer once the command ended, or its output line by line as
//! it runs.

use serde::{Deserialize, Serialize};

use super::client::{decode, refusal, snippet, Client, ClientError};
use super::types::ApiError;
use crate::config::units::Duration;

/// `POST /v1/apps/{app}/machines/{id}/exec`: a command to run once in the machine's
/// environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// A shell command line (`/bin/sh -c`).
    pub command: String,
    /// How long it may run before its processes are killed (default 1m, at most 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// What the command reads on its standard input (base64 on the wire), at most
    /// [`ExecRequest::MAX_STDIN`] bytes; without it the command reads nothing.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::base64_bytes"
    )]
    pub stdin: Option<Vec<u8>>,
}

impl ExecRequest {
    /// How long a command may run when the request does not say.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
    /// The longest a command may be given: exec is for a migration or a look around, not
    /// for a process that should be a machine or a job.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);
    /// The most standard input a request carries: a script or a small dump, not a file
    /// transfer (files go out with the release).
    pub const MAX_STDIN: usize = 16 * 1024 * 1024;

    /// The time limit the command runs under.
    pub fn time_limit(&self) -> Duration {
        self.timeout.unwrap_or(Self::DEFAULT_TIMEOUT)
    }
}

/// How an exec'd command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecEnd {
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it (`SIGKILL`), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Whether it was killed at its time limit.
    pub timed_out: bool,
}

/// How an exec'd command ended, and what it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    /// How it ended.
    #[serde(flatten)]
    pub end: ExecEnd,
    /// Its standard output (lossy UTF-8), up to a limit.
    pub stdout: String,
    /// Its standard error (lossy UTF-8), up to a limit.
    pub stderr: String,
    /// Whether either stream went past the limit and was cut.
    pub truncated: bool,
}

/// The media type of an exec answered as it runs, a JSON [`ExecEvent`] a line: what the
/// client asks for in `Accept` and the daemon answers in `Content-Type`.
pub const NDJSON: &str = "application/x-ndjson";

/// One line of an exec answered as it runs (`Accept: application/x-ndjson`): the
/// command's output as it writes it (lossy UTF-8, never a character split), then how it
/// ended, or why it could not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecEvent {
    /// Written to its standard output.
    Stdout(String),
    /// Written to its standard error.
    Stderr(String),
    /// It ended; the last line.
    End(ExecEnd),
    /// It could not be run or waited for; the last line.
    Error(String),
}

impl Client {
    /// `POST /v1/apps/{app}/machines/{id}/exec`: answers once the command has ended, so
    /// this request waits for the command's time limit and then the usual timeout.
    pub async fn exec(
        &self,
        app: &str,
        id: &str,
        request: &ExecRequest,
    ) -> Result<ExecResult, ClientError> {
        let url = format!("{}/v1/apps/{app}/machines/{id}/exec", self.base);
        let timeout = request.time_limit().to_std() + self.timeout;
        let builder = self.http.post(&url).json(request);
        let (url, status, bytes) = self.exchange(url, builder, timeout).await?;
        decode(url, status, &bytes)
    }

    /// The same, answered as the command runs: `output` gets each piece of its output
    /// (`ExecEvent::Stdout` or `Stderr`) as it comes, and says whether to go on. Returns
    /// how the command ended, or `None` when `output` stopped (the connection closes,
    /// which kills the command). An answer that breaks off before the end is an error.
    pub async fn exec_streamed(
        &self,
        app: &str,
        id: &str,
        request: &ExecRequest,
        mut output: impl FnMut(ExecEvent) -> bool,
    ) -> Result<Option<ExecEnd>, ClientError> {
        let url = format!("{}/v1/apps/{app}/machines/{id}/exec", self.base);
        let timeout = request.time_limit().to_std() + self.timeout;
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::ACCEPT, NDJSON)
            .json(request)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(&url, e, timeout))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response
                .bytes()
                .await
                .map_err(|e| self.transport_error(&url, e, timeout))?;
            return Err(refusal(url, status, &bytes));
        }
        let broken = |detail: String| ClientError::BadResponse {
            url: url.clone(),
            status: status.as_u16(),
            detail,
        };
        let mut response = response;
        let mut pending = Vec::new();
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| self.transport_error(&url, e, timeout))?;
            let Some(chunk) = chunk else {
                return Err(broken(
                    "the answer ended before the command did (lakeflyd stopped, or a proxy cut it)"
                        .to_string(),
                ));
            };
            pending.extend_from_slice(&chunk);
            while let Some(newline) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=newline).collect();
                let event: ExecEvent = serde_json::from_slice(&line)
                    .map_err(|e| broken(format!("{e} in line {}", snippet(&line))))?;
                match event {
                    ExecEvent::End(end) => return Ok(Some(end)),
                    // As the answer of an exec that could not run (500, `exec_failed`).
                    ExecEvent::Error(error) => {
                        return Err(ClientError::Api {
                            status: 500,
                            error: ApiError {
                                error,
                                code: "exec_failed".to_string(),
                                hint: None,
                            },
                        })
                    }
                    piece => {
                        if !output(piece) {
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }
}
