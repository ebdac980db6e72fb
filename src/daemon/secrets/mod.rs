//! Secrets at rest: every value is sealed with ChaCha20-Poly1305 under the daemon's master
//! key, with a fresh random nonce per value. The key comes from
//! `$CREDENTIALS_DIRECTORY/lakefly-master-key` (systemd `LoadCredentialEncrypted=`), else
//! from `<state>/master.key`, created 0600 on first start; a key file others can read is
//! refused.

mod digests;
mod key;
mod pinned;
pub mod rotate;

use std::path::Path;

pub(crate) use self::key::KEY_FILE;
pub use self::key::{KeyError, MasterKey, OpenError, CREDENTIAL};
use crate::secret::Secret;

/// One stored secret: app, name, deployed value and staged value, sealed.
pub(super) type SealedRow = (String, String, Option<Vec<u8>>, Option<Vec<u8>>);

/// The rows `sql` selects with `params`, each made by `row`.
fn select<T>(
    conn: &rusqlite::Connection,
    path: &Path,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, crate::daemon::store::StoreError> {
    let sqlite = crate::daemon::store::sqlite(path);
    let mut stmt = conn.prepare(sql).map_err(&sqlite)?;
    let rows = stmt.query_map(params, row).map_err(&sqlite)?;
    rows.collect::<Result<_, _>>().map_err(&sqlite)
}

/// A store in a temporary directory that holds app `a`, for the tests of this module's
/// parts.
#[cfg(test)]
fn store_with_app() -> (tempfile::TempDir, crate::daemon::store::Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::daemon::store::Store::open(dir.path()).expect("store");
    store
        .run_blocking(|conn, path| {
            crate::daemon::store::apps::insert_app(conn, path, "a", "now").map(drop)
        })
        .expect("app");
    (dir, store)
}

#[cfg(test)]
impl SecretStore {
    /// Sets `name` of app `a` to `value`, deployed or staged, as `secrets set` does.
    fn set_in_a(&self, name: &str, value: &str, stage: bool) -> Applied {
        let set =
            std::collections::BTreeMap::from([(name.to_string(), Secret::from(value.to_string()))]);
        let change = Change {
            app: "a",
            set: &set,
            unset: &[],
            stage,
            now: "now",
        };
        (self.store)
            .run_blocking(|conn, path| self.apply(conn, path, &change))
            .expect("set")
    }
}

/// Every stored secret, sealed.
pub(super) fn sealed_rows(
    conn: &rusqlite::Connection,
    path: &Path,
) -> Result<Vec<SealedRow>, crate::daemon::store::StoreError> {
    let sql = "SELECT app, name, sealed, staged FROM secrets";
    select(conn, path, sql, [], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
    })
}

/// Opens a stored value; one that does not open means the state is damaged.
pub(super) fn open_stored(
    key: &MasterKey,
    sealed: &[u8],
    path: &Path,
) -> Result<Secret, crate::daemon::store::StoreError> {
    key.open(sealed)
        .map_err(|_| crate::daemon::store::StoreError::Corrupt {
            path: path.to_path_buf(),
            what: "secret value (it does not open with the current key)",
            id: 0,
        })
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
            let new_digest = self.key.digest(value);
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
        let names = select(
            tx,
            path,
            "SELECT name FROM secrets WHERE app = ?1 AND (staged IS NOT NULL OR staged_unset = 1) ORDER BY name",
            [app],
            |row| row.get::<_, String>(0),
        )?;
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
                let sql = "SELECT name, digest, staged_digest, staged_unset, updated_at FROM secrets WHERE app = ?1 ORDER BY name";
                select(conn, path, sql, [&app], |row| {
                    let (digest, staged, unset): (Option<String>, Option<String>, i64) = (row.get(1)?, row.get(2)?, row.get(3)?);
                    Ok(crate::api::types::SecretInfo {
                        name: row.get(0)?,
                        digest: staged.clone().or(digest),
                        status: if staged.is_some() || unset != 0 { "staged".into() } else { "deployed".into() },
                        updated_at: row.get(4)?,
                    })
                })
            })
            .await
    }

    /// Pins `app`'s deployed secrets to its new release `version`, in the transaction that
    /// records the release (see `pinned.rs`).
    pub fn pin(
        &self,
        tx: &rusqlite::Connection,
        path: &Path,
        app: &str,
        version: u64,
    ) -> Result<(), crate::daemon::store::StoreError> {
        pinned::pin(tx, path, app, version)
    }

    /// [`SecretStore::env`] away from the async workers (it reads the store and decrypts).
    pub async fn env_of(
        self: &std::sync::Arc<Self>,
        app: &str,
        release: Option<u64>,
    ) -> Result<std::collections::BTreeMap<String, String>, String> {
        let (store, app) = (self.clone(), app.to_string());
        tokio::task::spawn_blocking(move || store.env(&app, release))
            .await
            .map_err(|e| format!("reading secrets failed: {e}"))?
    }

    /// The values a process of `app`'s release `release` gets, decrypted, for its
    /// environment only: those the release was made with (the app's deployed ones for a
    /// release from before pinning, or none given).
    pub fn env(
        &self,
        app: &str,
        release: Option<u64>,
    ) -> Result<std::collections::BTreeMap<String, String>, String> {
        let app = app.to_string();
        let sealed = self
            .store
            .run_blocking(move |conn, path| pinned::sealed_for(conn, path, &app, release))
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
