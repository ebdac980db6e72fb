//! App bundles: a tar archive compressed with zstd, named by the SHA-256 of its bytes.
//! The daemon stores them content-addressed and checks every entry before it accepts one.

pub mod check;
pub mod dockerignore;
pub mod pack;

use std::fmt;
use std::str::FromStr;

pub use check::{check_archive, holds_file, unpack, BundleError, Limits, Summary};

pub use pack::{pack, PackError, Packed, Selection, DOCKER_IGNORE};

/// A bundle's SHA-256, as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// A string that is not a SHA-256 in hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a SHA-256 digest (64 hex digits)")]
pub struct BadDigest(pub String);

impl FromStr for Digest {
    type Err = BadDigest;

    fn from_str(s: &str) -> Result<Self, BadDigest> {
        let s = s.strip_prefix("sha256:").unwrap_or(s);
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Digest(s.to_ascii_lowercase()))
        } else {
            Err(BadDigest(s.to_string()))
        }
    }
}

impl Digest {
    /// The digest of finished SHA-256 state.
    pub fn from_hasher(hasher: sha2::Sha256) -> Self {
        use sha2::Digest as _;
        Digest(format!("{:x}", hasher.finalize()))
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_64_hex_digits_normalized_to_lowercase() {
        let hex = "A".repeat(64);
        assert_eq!(hex.parse::<Digest>().unwrap().as_str(), "a".repeat(64));
        assert!(format!("sha256:{}", "0".repeat(64))
            .parse::<Digest>()
            .is_ok());
        assert!("abc".parse::<Digest>().is_err());
        assert!("g".repeat(64).parse::<Digest>().is_err());
    }
}
