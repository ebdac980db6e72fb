//! The client's side of bundles: whether the daemon has one, and the upload.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::sync::watch;

use super::client::{Client, ClientError};

/// The most an upload may take however steadily it goes; a stall ends it much sooner.
const UPLOAD_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// What the daemon says of a bundle before its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleHead {
    /// It has the bundle: nothing to upload.
    pub stored: bool,
    /// The largest upload it takes, in bytes (unsaid by daemons older than this client).
    pub max_bytes: Option<u64>,
}

impl Client {
    /// `HEAD /v1/bundles/{digest}`: whether the daemon has the bundle, and how large an
    /// upload it takes.
    pub async fn bundle_head(&self, digest: &str) -> Result<BundleHead, ClientError> {
        let url = format!("{}/v1/bundles/{digest}", self.base);
        let response = self
            .http
            .head(&url)
            .send()
            .await
            .map_err(|e| self.transport_error(&url, e, self.timeout))?;
        let max_bytes = response
            .headers()
            .get(crate::api::types::BUNDLE_MAX_BYTES_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let head = |stored| BundleHead { stored, max_bytes };
        match response.status() {
            s if s.is_success() => Ok(head(true)),
            StatusCode::NOT_FOUND => Ok(head(false)),
            s => Err(ClientError::BadResponse {
                url,
                status: s.as_u16(),
                detail: "unexpected status for HEAD".into(),
            }),
        }
    }

    /// `PUT /v1/bundles/{digest}`: streams the file at `path`, reporting bytes sent. It
    /// takes as long as the link needs (a big app over a slow one), and fails once nothing
    /// has been sent for the client's timeout, or answered that long after the last byte.
    pub async fn upload_bundle(
        &self,
        digest: &str,
        path: &std::path::Path,
        sent: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<(), ClientError> {
        let url = format!("{}/v1/bundles/{digest}", self.base);
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| ClientError::BadResponse {
                url: url.clone(),
                status: 0,
                detail: format!("cannot read the bundle {}: {e}", path.display()),
            })?;
        let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        let (progress, mut moved) = watch::channel(());
        let chunks = futures_util::StreamExt::inspect(
            tokio_util::io::ReaderStream::new(file),
            move |chunk| {
                if let Ok(bytes) = chunk {
                    sent(bytes.len() as u64);
                    let _ = progress.send(());
                }
            },
        );
        let body = reqwest::Body::wrap_stream(chunks);
        let request = self
            .http
            .put(&url)
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(body);
        let idle = self.timeout;
        tokio::select! {
            answer = self.exchange(url.clone(), request, UPLOAD_LIMIT) => answer.map(|_| ()),
            () = stalled(&mut moved, idle) => Err(ClientError::Stalled { url, idle }),
        }
    }
}

/// Resolves once `moved` has not changed for `idle`; when its sender is gone (the body is
/// all sent), `idle` after that.
async fn stalled(moved: &mut watch::Receiver<()>, idle: Duration) {
    loop {
        match tokio::time::timeout(idle, moved.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => {
                tokio::time::sleep(idle).await;
                return;
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_upload_is_stalled_only_once_nothing_moves_for_the_idle_time() {
        let (progress, mut moved) = watch::channel(());
        let start = tokio::time::Instant::now();
        // Ten chunks ten seconds apart: 90 s in all, three times the idle time.
        let sender = tokio::spawn(async move {
            for _ in 0..10 {
                let _ = progress.send(());
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            // Held past the last chunk, as a body waiting for its answer.
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(progress);
        });
        stalled(&mut moved, Duration::from_secs(30)).await;
        // The last chunk went at 90 s; nothing moved for 30 s after it.
        assert_eq!(start.elapsed(), Duration::from_secs(120));
        sender.abort();

        // Once the body is all sent (its sender dropped), the answer has the idle time.
        let (progress, mut moved) = watch::channel(());
        let start = tokio::time::Instant::now();
        drop(progress);
        stalled(&mut moved, Duration::from_secs(30)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }
}
