//! Bundles on disk: `bundles/<sha256>.tar.zst` under the state directory, written through a
//! temp file in `bundles/.incoming/` and renamed into place only once the digest matches and
//! every entry passed the safety checks.

use std::path::{Path, PathBuf};

use sha2::Digest as _;
use tokio::io::AsyncWriteExt;

use crate::bundle::{self, BundleError, Digest, Limits, Summary};

/// How long a bundle no release uses is kept after it was stored or last asked about.
pub const UNUSED_BUNDLE_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Where bundles live and how large they may be.
#[derive(Debug, Clone)]
pub struct BundleStore {
    dir: PathBuf,
    /// Most compressed bytes accepted in one upload.
    pub max_bytes: u64,
    /// Bounds on the unpacked tree.
    pub limits: Limits,
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// More bytes than `max_bytes`.
    #[error("the bundle is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The bytes do not hash to the digest in the URL.
    #[error("the bundle's SHA-256 is {actual}, not {expected}")]
    DigestMismatch {
        /// From the URL.
        expected: Digest,
        /// Of the bytes received.
        actual: Digest,
    },
    /// The archive failed a safety check.
    #[error(transparent)]
    Unsafe(#[from] BundleError),
    /// The request body broke off.
    #[error("the upload broke off: {0}")]
    Body(String),
    /// Disk trouble.
    #[error("could not store the bundle in {}: {source}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl BundleStore {
    /// A store in `state_dir/bundles`.
    pub fn new(state_dir: &Path, max_bytes: u64, limits: Limits) -> Self {
        BundleStore {
            dir: state_dir.join("bundles"),
            max_bytes,
            limits,
        }
    }

    /// The file of a stored bundle.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{digest}.tar.zst"))
    }

    /// The size of a stored bundle, if it is stored; the bundle is then kept for at least
    /// [`UNUSED_BUNDLE_GRACE`] even if no release uses it yet (a client that found it
    /// there is about to deploy it).
    pub async fn claim(&self, digest: &Digest) -> Option<u64> {
        let path = self.path(digest);
        let claimed = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::options().append(true).open(&path)?;
            file.set_modified(std::time::SystemTime::now())?;
            file.metadata()
        })
        .await;
        match claimed {
            Ok(Ok(meta)) => Some(meta.len()),
            _ => None,
        }
    }

    /// Removes the stored bundles that are not `in_use` and were neither stored nor
    /// claimed in the last [`UNUSED_BUNDLE_GRACE`]; returns how many it removed.
    pub async fn remove_unused(&self, in_use: std::collections::HashSet<String>) -> usize {
        let dir = self.dir.clone();
        let removing = tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                return 0;
            };
            let mut removed = 0;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(digest) = name.strip_suffix(".tar.zst") else {
                    continue;
                };
                let recent = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|at| at.elapsed().ok())
                    .is_none_or(|age| age < UNUSED_BUNDLE_GRACE);
                if in_use.contains(digest) || recent {
                    continue;
                }
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        tracing::warn!(bundle = digest, error = %e, "could not remove an unused bundle")
                    }
                }
            }
            removed
        });
        removing.await.unwrap_or(0)
    }

    /// Stores the chunks of an upload as `digest`, or refuses it and keeps nothing.
    pub async fn store<S, E>(
        &self,
        digest: &Digest,
        mut chunks: S,
    ) -> Result<(u64, Summary), UploadError>
    where
        S: futures_util::Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use futures_util::StreamExt;
        let incoming = self.dir.join(".incoming");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| UploadError::Io { path, source }
        };
        tokio::fs::create_dir_all(&incoming)
            .await
            .map_err(io(&incoming))?;
        let temp = tempfile::Builder::new()
            .prefix(digest.as_str())
            .tempfile_in(&incoming)
            .map_err(io(&incoming))?;
        // The temp file is removed on every early return, when `temp` drops.
        let mut file = tokio::fs::File::from_std(temp.reopen().map_err(io(temp.path()))?);
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            if size > self.max_bytes {
                return Err(UploadError::TooLarge {
                    limit: self.max_bytes,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io(temp.path()))?;
        }
        // tokio writes in the background: `flush` reports the last write's error (a full
        // disk), which `sync_all` alone would drop, leaving a short file to be misread.
        file.flush().await.map_err(io(temp.path()))?;
        file.sync_all().await.map_err(io(temp.path()))?;
        drop(file);
        let actual = Digest::from_hasher(hasher);
        if &actual != digest {
            return Err(UploadError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let limits = self.limits;
        let check_path = temp.path().to_path_buf();
        let summary = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&check_path).map_err(BundleError::Unreadable)?;
            bundle::check_archive(std::io::BufReader::new(file), limits)
        })
        .await
        .map_err(|e| UploadError::Body(e.to_string()))??;
        let dest = self.path(digest);
        temp.persist(&dest).map_err(|e| UploadError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok((size, summary))
    }
}
