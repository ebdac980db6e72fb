//! Secrets at rest: every value is sealed with ChaCha20-Poly1305 under the daemon's master
//! key, with a fresh random nonce per value. The key comes from
//! `$CREDENTIALS_DIRECTORY/lakefly-master-key` (systemd `LoadCredentialEncrypted=`), else
//! from `<state>/master.key`, created 0600 on first start; a key file others can read is
//! refused.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, OsRng};
use chacha20poly1305::{AeadCore, ChaCha20Poly1305, Key, Nonce};
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::secret::Secret;

/// The credential name systemd passes the key under.
pub const CREDENTIAL: &str = "lakefly-master-key";
const KEY_FILE: &str = "master.key";
const KEY_LEN: usize = 32;

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

/// The master key, loaded once.
pub struct MasterKey {
    cipher: ChaCha20Poly1305,
}

impl MasterKey {
    /// Loads the key from systemd's credentials, else from (or into) `state_dir`.
    pub fn load(state_dir: &Path) -> Result<Self, KeyError> {
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let path = PathBuf::from(dir).join(CREDENTIAL);
            if path.exists() {
                return Self::read(&path, false);
            }
        }
        let path = state_dir.join(KEY_FILE);
        if path.exists() {
            return Self::read(&path, true);
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&ChaCha20Poly1305::generate_key(&mut OsRng));
        crate::atomic_write::write(&path, key.as_slice(), 0o600).map_err(|e| KeyError::Io {
            action: "create",
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        tracing::info!(path = %path.display(), "created the secrets master key");
        Ok(Self::from_bytes(key.as_slice()))
    }

    fn read(path: &Path, check_mode: bool) -> Result<Self, KeyError> {
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
        MasterKey {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
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

/// A short digest of a value, to tell values apart without showing them.
pub fn digest(value: &Secret) -> String {
    let hash = sha2::Sha256::digest(value.expose());
    format!("{:x}", hash)[..12].to_string()
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

    #[test]
    fn digests_tell_values_apart_without_showing_them() {
        let a = digest(&Secret::from("a".to_string()));
        assert_eq!(a.len(), 12);
        assert_ne!(a, digest(&Secret::from("b".to_string())));
    }
}

/// Secrets in the store, sealed with the master key.
pub struct SecretStore {
    store: crate::daemon::store::Store,
    key: MasterKey,
}

/// A set of secret changes for one app.
pub struct Change<'a> {
    /// The app.
    pub app: &'a str,
    /// Names to set.
    pub set: &'a std::collections::BTreeMap<String, Secret>,
    /// Names to remove.
    pub unset: &'a [String],
    /// Stage instead of applying.
    pub stage: bool,
    /// The time to record.
    pub now: &'a str,
}

/// What a set/unset did, by name.
#[derive(Debug, Default)]
pub struct Applied {
    /// Names that changed.
    pub changed: Vec<String>,
    /// Names that already were so.
    pub unchanged: Vec<String>,
}

impl SecretStore {
    /// A store of secrets sealed with `key`.
    pub fn new(store: crate::daemon::store::Store, key: MasterKey) -> Self {
        SecretStore { store, key }
    }

    /// Applies sets and unsets in one transaction (run inside an event-hub change).
    pub fn apply(
        &self,
        tx: &rusqlite::Connection,
        path: &Path,
        change: &Change,
    ) -> Result<Applied, crate::daemon::store::StoreError> {
        let Change {
            app,
            set,
            unset,
            stage,
            now,
        } = *change;
        use rusqlite::{params, OptionalExtension};
        let sqlite = crate::daemon::store::sqlite(path);
        let mut applied = Applied::default();
        for (name, value) in set {
            let new_digest = digest(value);
            let current: Option<(Option<String>, Option<String>, bool)> = tx
                .query_row(
                    "SELECT digest, staged_digest, staged_unset FROM secrets WHERE app = ?1 AND name = ?2",
                    params![app, name],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)? != 0)),
                )
                .optional()
                .map_err(&sqlite)?;
            let pending = current.as_ref().and_then(|(d, s, u)| {
                if *u {
                    None
                } else {
                    s.clone().or_else(|| d.clone())
                }
            });
            let live = current
                .as_ref()
                .and_then(|(d, s, u)| (s.is_none() && !u).then(|| d.clone()).flatten());
            let same = if stage {
                pending.as_deref() == Some(new_digest.as_str())
            } else {
                live.as_deref() == Some(new_digest.as_str())
            };
            if same {
                applied.unchanged.push(name.clone());
                continue;
            }
            let sealed = self.key.seal(value);
            if stage {
                tx.execute(
                    "INSERT INTO secrets (app, name, staged, staged_digest, staged_unset, updated_at) VALUES (?1, ?2, ?3, ?4, 0, ?5)
                     ON CONFLICT (app, name) DO UPDATE SET staged = excluded.staged, staged_digest = excluded.staged_digest,
                     staged_unset = 0, updated_at = excluded.updated_at",
                    params![app, name, sealed, new_digest, now],
                )
                .map_err(&sqlite)?;
            } else {
                tx.execute(
                    "INSERT INTO secrets (app, name, sealed, digest, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (app, name) DO UPDATE SET sealed = excluded.sealed, digest = excluded.digest,
                     staged = NULL, staged_digest = NULL, staged_unset = 0, updated_at = excluded.updated_at",
                    params![app, name, sealed, new_digest, now],
                )
                .map_err(&sqlite)?;
            }
            applied.changed.push(name.clone());
        }
        for name in unset {
            let changed = if stage {
                tx.execute(
                    "UPDATE secrets SET staged = NULL, staged_digest = NULL, staged_unset = 1, updated_at = ?3
                     WHERE app = ?1 AND name = ?2 AND staged_unset = 0",
                    params![app, name, now],
                )
            } else {
                tx.execute("DELETE FROM secrets WHERE app = ?1 AND name = ?2", params![app, name])
            }
            .map_err(&sqlite)?;
            if changed > 0 {
                applied.changed.push(name.clone());
            } else {
                applied.unchanged.push(name.clone());
            }
        }
        Ok(applied)
    }

    /// Applies staged changes; returns the names they touched.
    pub fn deploy_staged(
        &self,
        tx: &rusqlite::Connection,
        path: &Path,
        app: &str,
        now: &str,
    ) -> Result<Vec<String>, crate::daemon::store::StoreError> {
        use rusqlite::params;
        let sqlite = crate::daemon::store::sqlite(path);
        let mut stmt = tx
            .prepare("SELECT name FROM secrets WHERE app = ?1 AND (staged IS NOT NULL OR staged_unset = 1) ORDER BY name")
            .map_err(&sqlite)?;
        let names = stmt
            .query_map([app], |row| row.get::<_, String>(0))
            .map_err(&sqlite)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&sqlite)?;
        tx.execute(
            "DELETE FROM secrets WHERE app = ?1 AND staged_unset = 1",
            [app],
        )
        .map_err(&sqlite)?;
        tx.execute(
            "UPDATE secrets SET sealed = staged, digest = staged_digest, staged = NULL, staged_digest = NULL, updated_at = ?2
             WHERE app = ?1 AND staged IS NOT NULL",
            params![app, now],
        )
        .map_err(&sqlite)?;
        Ok(names)
    }

    /// Names, digests and status; never values.
    pub async fn list(
        &self,
        app: &str,
    ) -> Result<Vec<crate::api::types::SecretInfo>, crate::daemon::store::StoreError> {
        let app = app.to_string();
        self.store
            .run(move |conn, path| {
                let sqlite = crate::daemon::store::sqlite(path);
                let mut stmt = conn
                    .prepare("SELECT name, digest, staged_digest, staged_unset, updated_at FROM secrets WHERE app = ?1 ORDER BY name")
                    .map_err(&sqlite)?;
                let rows = stmt
                    .query_map([&app], |row| {
                        let (digest, staged, unset): (Option<String>, Option<String>, i64) = (row.get(1)?, row.get(2)?, row.get(3)?);
                        Ok(crate::api::types::SecretInfo {
                            name: row.get(0)?,
                            digest: staged.clone().or(digest),
                            status: if staged.is_some() || unset != 0 { "staged".into() } else { "deployed".into() },
                            updated_at: row.get(4)?,
                        })
                    })
                    .map_err(&sqlite)?;
                rows.collect::<Result<_, _>>().map_err(&sqlite)
            })
            .await
    }

    /// The deployed values of `app`, decrypted, for a machine's environment only.
    pub fn env(&self, app: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
        let app = app.to_string();
        let sealed: Vec<(String, Vec<u8>)> = self
            .store
            .run_blocking(move |conn, path| {
                let sqlite = crate::daemon::store::sqlite(path);
                let mut stmt = conn
                    .prepare(
                        "SELECT name, sealed FROM secrets WHERE app = ?1 AND sealed IS NOT NULL",
                    )
                    .map_err(&sqlite)?;
                let rows = stmt
                    .query_map([&app], |row| Ok((row.get(0)?, row.get(1)?)))
                    .map_err(&sqlite)?;
                rows.collect::<Result<_, _>>().map_err(&sqlite)
            })
            .map_err(|e| e.to_string())?;
        sealed
            .into_iter()
            .map(|(name, sealed)| {
                let value = self
                    .key
                    .open(&sealed)
                    .map_err(|e| format!("secret {name}: {e}"))?;
                Ok((name, String::from_utf8_lossy(value.expose()).into_owned()))
            })
            .collect()
    }
}

/// Why a secret's name is refused, if it is.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!("{name:?} is not a valid environment variable name"));
    }
    if name == "PORT" || name.starts_with("LAKEFLY_") || name.starts_with("FLY_") {
        return Err(format!(
            "{name} is set by lakefly for every machine and cannot be a secret"
        ));
    }
    Ok(())
}
