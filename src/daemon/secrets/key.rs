//! The master key: where it comes from, and sealing values with it (ChaCha20-Poly1305,
//! a fresh random nonce per value, stored as `nonce || ciphertext`).

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, OsRng};
use chacha20poly1305::{AeadCore, ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::secret::Secret;

/// The credential name systemd passes the key under.
pub const CREDENTIAL: &str = "lakefly-master-key";
/// The key file in the state directory.
pub(crate) const KEY_FILE: &str = "master.key";
const KEY_LEN: usize = 32;
/// Hex digits of a value's digest.
const DIGEST_LEN: usize = 12;
/// What the digest key is derived for (changing it changes every digest).
const DIGEST_KEY_LABEL: &[u8] = b"lakefly secret digest v1";

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as hmac::Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Why the master key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Others can read the key file.
    #[error("{} is readable by group or others (mode {mode:o})", path.display())]
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The key file does not hold a 32-byte key.
    #[error("{} does not hold a {KEY_LEN}-byte key", .0.display())]
    Malformed(PathBuf),
    /// The key does not open the secrets this state directory holds.
    #[error("the master key in {} does not open the secrets in this state directory", .0.display())]
    WrongKey(PathBuf),
    /// The key file is gone, and this state directory holds secrets sealed with one.
    #[error("the master key file {} is missing, and the secrets in this state directory were sealed with it", .0.display())]
    Missing(PathBuf),
    /// The key is systemd's credential, which lakeflyd cannot replace.
    #[error("the master key comes from {}, which lakeflyd cannot replace", .0.display())]
    FromCredentials(PathBuf),
    /// The state database failed during a rotation.
    #[error(transparent)]
    Store(#[from] crate::daemon::store::StoreError),
    /// Reading or creating it failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A value that could not be opened: the key is wrong or the data was altered.
#[derive(Debug, thiserror::Error)]
#[error("a secret could not be decrypted: the master key is not the one it was sealed with, or the data was altered")]
pub struct OpenError;

/// systemd's credential file for the key, when the daemon was given one.
pub(super) fn credential_path() -> Option<PathBuf> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
    Some(PathBuf::from(dir).join(CREDENTIAL)).filter(|p| p.exists())
}

/// The master key, loaded once.
pub struct MasterKey {
    cipher: ChaCha20Poly1305,
    /// Keys the digests of values, so a digest cannot be used to test guesses of a value.
    digest_key: Zeroizing<[u8; KEY_LEN]>,
}

impl MasterKey {
    /// Loads the key from systemd's credentials, else from (or into) `state_dir`.
    pub fn load(state_dir: &Path) -> Result<Self, KeyError> {
        if let Some(path) = credential_path() {
            return Self::read(&path, false);
        }
        let path = state_dir.join(KEY_FILE);
        if path.exists() {
            return Self::read(&path, true);
        }
        let key = Self::create(&path)?;
        tracing::info!(path = %path.display(), "created the secrets master key");
        Ok(key)
    }

    /// A new random key, written to `path` (0600, atomically) before it is returned.
    pub(super) fn create(path: &Path) -> Result<Self, KeyError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&ChaCha20Poly1305::generate_key(&mut OsRng));
        crate::atomic_write::write(path, key.as_slice(), 0o600).map_err(|e| KeyError::Io {
            action: "create",
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(Self::from_bytes(key.as_slice()))
    }

    /// Reads a key file; `check_mode` refuses one that others can read.
    pub(super) fn read(path: &Path, check_mode: bool) -> Result<Self, KeyError> {
        let io = |action, source| KeyError::Io {
            action,
            path: path.to_path_buf(),
            source,
        };
        if check_mode {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| io("read", e))?
                .permissions()
                .mode()
                & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::TooOpen {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| io("read", e))?);
        if bytes.len() != KEY_LEN {
            return Err(KeyError::Malformed(path.to_path_buf()));
        }
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(key: &[u8]) -> Self {
        // A key of its own for digests (HMAC as the KDF), so no value is ever both
        // encrypted and MACed under one key.
        let mut digest_key = Zeroizing::new([0u8; KEY_LEN]);
        digest_key.copy_from_slice(&hmac_sha256(key, DIGEST_KEY_LABEL));
        MasterKey {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
            digest_key,
        }
    }

    /// A short keyed digest of a value (HMAC-SHA256): it tells values apart in
    /// `secrets list` without showing them, and unlike a plain hash it cannot be used to
    /// check a guessed value by anyone without the master key.
    pub fn digest(&self, value: &Secret) -> String {
        let mac = hmac_sha256(self.digest_key.as_slice(), value.expose());
        mac.iter()
            .take(DIGEST_LEN / 2)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Seals a value: `nonce || ciphertext`.
    pub fn seal(&self, value: &Secret) -> Vec<u8> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption with a valid key and nonce cannot fail for in-memory buffers.
        let sealed = self
            .cipher
            .encrypt(&nonce, value.expose())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a sealed value.
    pub fn open(&self, sealed: &[u8]) -> Result<Secret, OpenError> {
        if sealed.len() < 12 {
            return Err(OpenError);
        }
        let (nonce, data) = sealed.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), data)
            .map(Secret::new)
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn sealed_values_open_with_the_same_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load(dir.path()).unwrap();
        let secret = Secret::from("postgres://user:pw@db/app".to_string());
        let sealed = key.seal(&secret);
        assert!(
            !sealed.windows(8).any(|w| w == b"postgres"),
            "the value is not in the clear"
        );
        assert_ne!(sealed, key.seal(&secret), "a fresh nonce each time");
        assert_eq!(key.open(&sealed).unwrap(), secret);
        // The same file gives the same key back.
        let again = MasterKey::load(dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), secret);
        // Another key, or altered data, does not open it.
        let other = MasterKey::load(tempfile::tempdir().unwrap().path()).unwrap();
        assert!(other.open(&sealed).is_err());
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(key.open(&altered).is_err());
    }

    #[test]
    fn digests_tell_values_apart_and_are_keyed() {
        use sha2::Digest as _;
        let key = MasterKey::load(tempfile::tempdir().unwrap().path()).unwrap();
        let value = Secret::from("hunter2".to_string());
        let digest = key.digest(&value);
        assert_eq!(digest.len(), DIGEST_LEN);
        assert_eq!(digest, key.digest(&value), "stable under one key");
        assert_ne!(digest, key.digest(&Secret::from("hunter3".to_string())));
        // Without the key, hashing a guess does not reproduce it.
        let plain = format!("{:x}", sha2::Sha256::digest(b"hunter2"));
        assert!(
            !plain.starts_with(&digest),
            "a plain hash would confirm guesses"
        );
        let other = MasterKey::load(tempfile::tempdir().unwrap().path()).unwrap();
        assert_ne!(digest, other.digest(&value));
    }

    #[test]
    fn the_key_file_is_private_and_an_open_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        MasterKey::load(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MasterKey::load(dir.path()),
            Err(KeyError::TooOpen { mode: 0o644, .. })
        ));
    }
}
