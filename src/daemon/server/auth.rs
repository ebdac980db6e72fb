//! API tokens. `lakeflyd --token-file F` accepts every token listed in F (one per line,
//! primary first, then secondary, so a rotation never locks anyone out). Only their SHA-256
//! digests are kept, compared in constant time. A request presents one with
//! `Authorization: Bearer T` or (for LSH clients) `X-API-Key: T`. `/health` needs none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::error::ServerError;
use super::local_users::{LocalUsers, Peer, Verdict};

/// Why the token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// Reading it failed.
    #[error("cannot read the token file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// It lists no token.
    #[error("the token file {} lists no token", .0.display())]
    Empty(PathBuf),
    /// A token is too short to be one.
    #[error("{}:{line}: a token must be at least {MIN_TOKEN_LEN} characters", path.display())]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Its line.
        line: usize,
    },
}

/// Tokens shorter than this are refused: they could be guessed.
const MIN_TOKEN_LEN: usize = 16;

/// The accepted tokens, as digests.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    digests: Arc<Vec<[u8; 32]>>,
}

impl Tokens {
    /// Reads one token per line; blank lines and `#` comments are skipped.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            TokenFileError::Read {
                path: path.to_path_buf(),
                source,
            }
        })?);
        let mut digests = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let token = line.trim();
            if token.is_empty() || token.starts_with('#') {
                continue;
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(TokenFileError::TooShort {
                    path: path.to_path_buf(),
                    line: i + 1,
                });
            }
            digests.push(digest(token.as_bytes()));
        }
        if digests.is_empty() {
            return Err(TokenFileError::Empty(path.to_path_buf()));
        }
        Ok(Tokens {
            digests: Arc::new(digests),
        })
    }

    /// Whether any token is configured (else the API serves local users, on loopback only).
    pub fn is_configured(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Whether `presented` is one of the tokens. Every digest is compared, each in constant
    /// time, so the answer takes as long whichever token (if any) matches.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let candidate = digest(presented);
        self.digests.iter().fold(false, |found, known| {
            found | constant_time_eq(known, &candidate)
        })
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token a request presents, if any.
fn presented(req: &Request) -> Option<&[u8]> {
    let headers = req.headers();
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value.as_bytes();
        let scheme = b"bearer ";
        if value.len() > scheme.len() && value[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(value[scheme.len()..].trim_ascii());
        }
        return None;
    }
    headers.get("x-api-key").map(|v| v.as_bytes().trim_ascii())
}

/// Who may use the API: with tokens, whoever presents one; without, the local users
/// [`LocalUsers`] names.
#[derive(Debug, Clone)]
pub struct Access {
    /// The accepted tokens; none serves the local users.
    pub tokens: Tokens,
    /// Who an API without tokens serves.
    pub local: LocalUsers,
}

/// Lets a request through when it asks for `/health`, when it presents an accepted token,
/// or, with no token configured, when it asks for the metrics or comes from a local user
/// the API serves; else answers 401 (no or a wrong token) or 403 (another local user).
pub async fn require_token(State(access): State<Access>, req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/health" | "/v1/health") {
        return next.run(req).await;
    }
    let tokens = &access.tokens;
    if !tokens.is_configured() {
        // Read-only figures for the host's Prometheus, which runs as a user of its own.
        if matches!(req.uri().path(), "/metrics" | "/v1/metrics/targets") {
            return next.run(req).await;
        }
        // Every connection is given one by `serve`; one without comes from no socket.
        let verdict = match req.extensions().get::<Peer>() {
            Some(peer) => access.local.judge(peer).await,
            None => Verdict::Refused("the request came from no connection".into()),
        };
        return match verdict {
            Verdict::Allowed => next.run(req).await,
            Verdict::Refused(why) => ServerError::LocalUserRefused(why).into_response(),
        };
    }
    if presented(&req).is_some_and(|t| tokens.accepts(t)) {
        return next.run(req).await;
    }
    let error = if presented(&req).is_some() {
        ServerError::Unauthorized("the API token is not accepted".into())
    } else {
        ServerError::Unauthorized("this daemon needs an API token".into())
    };
    error.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Result<Tokens, TokenFileError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens");
        std::fs::write(&path, text).expect("write");
        Tokens::load(&path)
    }

    #[test]
    fn primary_and_secondary_tokens_are_both_accepted() {
        let t =
            tokens("# rotated 2026-11\nprimary-token-0123456789\n\nsecondary-token-0123456789\n")
                .expect("tokens");
        assert!(t.accepts(b"primary-token-0123456789"));
        assert!(t.accepts(b"secondary-token-0123456789"));
        assert!(!t.accepts(b"primary-token-012345678"));
        assert!(!t.accepts(b""));
    }

    #[test]
    fn an_empty_file_or_a_short_token_is_refused() {
        assert!(matches!(
            tokens("# none\n\n"),
            Err(TokenFileError::Empty(_))
        ));
        assert!(matches!(
            tokens("long-enough-token-0123\nshort\n"),
            Err(TokenFileError::TooShort { line: 2, .. })
        ));
    }
}
