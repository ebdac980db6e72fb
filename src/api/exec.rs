//! The client's side of `machines exec`: one answer once the command ended, or its
//! output line by line as it runs.

use super::client::{decode, refusal, snippet, Client, ClientError};
use super::types::{ApiError, ExecEnd, ExecEvent, ExecRequest, ExecResult, NDJSON};

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
