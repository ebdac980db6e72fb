//! Master key rotation, crash-safe. The new key is written to `master.key.next` first;
//! then one transaction re-seals every value and the key check under it; then the file is
//! renamed over `master.key`. A crash at any point leaves a state [`open_key`] resolves
//! without loss: before the commit the old key still opens everything (the leftover
//! `.next` is removed); after it the new key does (the rename is finished).

use std::path::{Path, PathBuf};

use rusqlite::params;

use super::key::{credential_path, KEY_FILE};
use super::{digests, open_stored, pinned, sealed_rows, KeyError, MasterKey};
use crate::daemon::store::{meta, sqlite, Store, StoreError};
use crate::secret::Secret;

/// Where a rotation keeps the new key until its transaction commits.
pub(crate) const NEXT_FILE: &str = "master.key.next";
/// The plain value of the key check.
const CHECK: &[u8] = b"lakefly master key check";

/// Loads the master key for the secrets in `store`: finishes or discards a rotation a
/// crash interrupted, refuses a key that does not open them, and keys the digests of a
/// state from before keyed digests.
pub fn open_key(store: &Store, state_dir: &Path) -> Result<MasterKey, KeyError> {
    let key = checked_key(store, state_dir)?;
    store.run_blocking(|conn, path| digests::ensure_keyed(conn, path, &key))?;
    Ok(key)
}

/// The master key, once it is known to open the secrets in `store`.
fn checked_key(store: &Store, state_dir: &Path) -> Result<MasterKey, KeyError> {
    let key_path = credential_path().unwrap_or_else(|| state_dir.join(KEY_FILE));
    // `load` makes a key when there is none: right for a new state, not for one whose
    // secrets were sealed with a key that has gone (none is made then, not even for a
    // moment: the log would say one was created).
    let had_key = key_path.exists();
    if !had_key
        && !store
            .run_blocking(|conn, path| super::sealed_rows(conn, path))?
            .is_empty()
    {
        return Err(KeyError::Missing(key_path));
    }
    let key = MasterKey::load(state_dir)?;
    let next_path = state_dir.join(NEXT_FILE);
    let Some(check) = store.run_blocking(read_check)? else {
        // A state from before key checks (or a new one): record one now.
        let sealed = key.seal(&Secret::new(CHECK.to_vec()));
        store.run_blocking(move |conn, path| write_check(conn, path, &sealed))?;
        remove_if_present(&next_path)?;
        return Ok(key);
    };
    if opens_check(&key, &check) {
        // A rotation that did not commit: the old key is still the key.
        remove_if_present(&next_path)?;
        return Ok(key);
    }
    if next_path.exists() {
        let next = MasterKey::read(&next_path, true)?;
        if opens_check(&next, &check) {
            // The rotation committed, then the daemon stopped before the rename.
            std::fs::rename(&next_path, &key_path).map_err(|source| KeyError::Io {
                action: "finish the key rotation by renaming",
                path: next_path.clone(),
                source,
            })?;
            tracing::info!("finished a master key rotation that was interrupted");
            return Ok(next);
        }
    }
    if !had_key {
        // Nothing was sealed with the lost key (see above): the new one serves as well.
        tracing::warn!(path = %key_path.display(), "the master key was missing; no secret is stored, so a new key is used");
        let check = key.seal(&Secret::new(CHECK.to_vec()));
        store.run_blocking(move |conn, path| write_check(conn, path, &check))?;
        return Ok(key);
    }
    Err(KeyError::WrongKey(key_path))
}

/// Re-seals every secret value (deployed, staged, and the copies releases keep) under a new
/// master key in one transaction; returns how many deployed and staged values were re-sealed.
/// The daemon must not be running.
pub fn rotate(store: &Store, state_dir: &Path) -> Result<usize, KeyError> {
    if let Some(path) = credential_path() {
        return Err(KeyError::FromCredentials(path));
    }
    let old = open_key(store, state_dir)?;
    let next_path = state_dir.join(NEXT_FILE);
    let new = MasterKey::create(&next_path)?;
    let count = store.run_blocking(move |conn, path| reseal_all(conn, path, &old, &new))?;
    let key_path = state_dir.join(KEY_FILE);
    std::fs::rename(&next_path, &key_path).map_err(|source| KeyError::Io {
        action: "install the new key by renaming",
        path: next_path,
        source,
    })?;
    sync_dir(state_dir);
    Ok(count)
}

fn reseal_all(
    conn: &mut rusqlite::Connection,
    path: &Path,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<usize, StoreError> {
    let tx = conn.transaction().map_err(sqlite(path))?;
    let rows = sealed_rows(&tx, path)?;
    let reseal = |sealed: Option<Vec<u8>>, app: &str, name: &str| {
        sealed
            .map(|s| open_stored(old, &s, path).map(|value| new.seal(&value)))
            .transpose()
            .inspect_err(|_| {
                tracing::error!(
                    app,
                    name,
                    "a secret value does not open; nothing was rotated"
                )
            })
    };
    let mut count = 0;
    for (app, name, sealed, staged) in rows {
        count += usize::from(sealed.is_some()) + usize::from(staged.is_some());
        let sealed = reseal(sealed, &app, &name)?;
        let staged = reseal(staged, &app, &name)?;
        tx.execute(
            "UPDATE secrets SET sealed = ?3, staged = ?4 WHERE app = ?1 AND name = ?2",
            params![app, name, sealed, staged],
        )
        .map_err(sqlite(path))?;
    }
    // The copies releases were made with (`pinned.rs`): re-sealed, not counted, as the
    // count is of the values `secrets list` shows.
    for (app, version, name, sealed) in pinned::all(&tx, path)? {
        let resealed = reseal(Some(sealed), &app, &name)?.unwrap_or_default();
        pinned::reseal(&tx, path, (&app, version, &name), &resealed)?;
    }
    // Digests are keyed too: the old ones would all read as changed values.
    digests::rewrite(&tx, path, new)?;
    write_check(&tx, path, &new.seal(&Secret::new(CHECK.to_vec())))?;
    tx.commit().map_err(sqlite(path))?;
    Ok(count)
}

fn opens_check(key: &MasterKey, sealed: &[u8]) -> bool {
    key.open(sealed).is_ok_and(|v| v.expose() == CHECK)
}

fn read_check(conn: &mut rusqlite::Connection, path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    meta::get(conn, path, "key_check")
}

fn write_check(conn: &rusqlite::Connection, path: &Path, sealed: &[u8]) -> Result<(), StoreError> {
    meta::set(conn, path, "key_check", &sealed)
}

fn remove_if_present(path: &PathBuf) -> Result<(), KeyError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(KeyError::Io {
            action: "remove",
            path: path.clone(),
            source,
        }),
    }
}

/// Makes the rename durable; a failure only weakens that, so it is logged, not fatal.
fn sync_dir(dir: &Path) {
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not sync the state directory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::secrets::{store_with_app as setup, SecretStore};
    use std::collections::BTreeMap;

    /// Sets `DB_URL` (deployed) and `TOKEN` (staged) with the state's current key.
    fn set_secrets(store: &Store, dir: &Path) {
        let secrets = SecretStore::new(store.clone(), open_key(store, dir).expect("key"));
        secrets.set_in_a("DB_URL", "postgres://x", false);
        secrets.set_in_a("TOKEN", "t0ken", true);
    }

    /// Each secret's (deployed, staged) digest, as `secrets list` shows them.
    fn digests(store: &Store) -> BTreeMap<String, (Option<String>, Option<String>)> {
        store
            .run_blocking(|conn, path| {
                let mut stmt = conn
                    .prepare("SELECT name, digest, staged_digest FROM secrets")
                    .map_err(sqlite(path))?;
                let rows = stmt
                    .query_map([], |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?))))
                    .map_err(sqlite(path))?;
                rows.collect::<Result<_, _>>().map_err(sqlite(path))
            })
            .expect("digests")
    }

    /// Sets `DB_URL` again to the value it has; true when that was seen as unchanged.
    fn same_value_is_unchanged(store: &Store, dir: &Path) -> bool {
        let secrets = SecretStore::new(store.clone(), open_key(store, dir).expect("key"));
        secrets.set_in_a("DB_URL", "postgres://x", false).unchanged == ["DB_URL"]
    }

    fn deployed(store: &Store, dir: &Path) -> BTreeMap<String, String> {
        SecretStore::new(store.clone(), open_key(store, dir).expect("key"))
            .env("a", None)
            .expect("env")
    }

    #[test]
    fn rotation_reseals_every_value_under_a_new_key() {
        let (dir, store) = setup();
        set_secrets(&store, dir.path());
        let old_key = std::fs::read(dir.path().join(KEY_FILE)).expect("key");
        assert_eq!(rotate(&store, dir.path()).expect("rotate"), 2);
        assert_ne!(
            std::fs::read(dir.path().join(KEY_FILE)).expect("key"),
            old_key
        );
        assert!(!dir.path().join(NEXT_FILE).exists());
        assert_eq!(deployed(&store, dir.path())["DB_URL"], "postgres://x");
        // The staged value moved too: deploying it still works.
        let secrets = SecretStore::new(store.clone(), open_key(&store, dir.path()).expect("key"));
        store
            .run_blocking(|conn, path| secrets.deploy_staged(conn, path, "a", "now").map(drop))
            .expect("deploy staged");
        assert_eq!(deployed(&store, dir.path())["TOKEN"], "t0ken");
    }

    #[test]
    fn rotation_rekeys_the_digests() {
        let (dir, store) = setup();
        set_secrets(&store, dir.path());
        let before = digests(&store);
        rotate(&store, dir.path()).expect("rotate");
        let after = digests(&store);
        assert_ne!(after["DB_URL"].0, before["DB_URL"].0);
        assert_ne!(after["TOKEN"].1, before["TOKEN"].1);
        assert!(after["TOKEN"].1.is_some(), "the staged digest is kept");
        assert!(same_value_is_unchanged(&store, dir.path()));
    }

    #[test]
    fn plain_digests_of_an_older_state_are_rewritten_at_start() {
        use sha2::Digest as _;
        let (dir, store) = setup();
        set_secrets(&store, dir.path());
        let keyed = digests(&store);
        // As an older lakeflyd stored them: a plain SHA-256 prefix, no scheme recorded.
        let plain = format!("{:x}", sha2::Sha256::digest(b"postgres://x"))[..12].to_string();
        store
            .run_blocking(|conn, path| {
                conn.execute_batch("DELETE FROM meta WHERE key = 'digest_scheme'")
                    .map_err(sqlite(path))?;
                conn.execute(
                    "UPDATE secrets SET digest = ?1 WHERE name = 'DB_URL'",
                    [&plain],
                )
                .map_err(sqlite(path))
            })
            .expect("older state");
        assert!(same_value_is_unchanged(&store, dir.path()));
        assert_eq!(digests(&store), keyed);
    }

    #[test]
    fn a_crash_before_the_commit_keeps_the_old_key() {
        let (dir, store) = setup();
        set_secrets(&store, dir.path());
        // The new key was written, then the daemon died before its transaction committed.
        MasterKey::create(&dir.path().join(NEXT_FILE)).expect("next");
        assert_eq!(deployed(&store, dir.path())["DB_URL"], "postgres://x");
        assert!(
            !dir.path().join(NEXT_FILE).exists(),
            "the unused key is removed"
        );
    }

    #[test]
    fn a_crash_after_the_commit_finishes_the_rotation() {
        let (dir, store) = setup();
        set_secrets(&store, dir.path());
        let old = open_key(&store, dir.path()).expect("key");
        let new = MasterKey::create(&dir.path().join(NEXT_FILE)).expect("next");
        store
            .run_blocking(move |conn, path| reseal_all(conn, path, &old, &new).map(drop))
            .expect("reseal");
        // The rename never happened: master.key is the old key, .next the one in use.
        assert_eq!(deployed(&store, dir.path())["DB_URL"], "postgres://x");
        assert!(
            !dir.path().join(NEXT_FILE).exists(),
            "the rename was finished"
        );
        assert_eq!(deployed(&store, dir.path())["DB_URL"], "postgres://x");
    }

    #[test]
    fn a_wrong_key_is_refused_at_start() {
        let (dir, store) = setup();
        set_secrets(&store, dir.path());
        std::fs::remove_file(dir.path().join(KEY_FILE)).expect("remove");
        MasterKey::create(&dir.path().join(KEY_FILE)).expect("other key");
        assert!(matches!(
            open_key(&store, dir.path()),
            Err(KeyError::WrongKey(_))
        ));
    }

    #[test]
    fn a_lost_key_is_said_to_be_missing_and_no_new_one_is_left_in_its_place() {
        let (dir, store) = setup();
        set_secrets(&store, dir.path());
        let key_file = dir.path().join(KEY_FILE);
        std::fs::remove_file(&key_file).expect("remove");
        for _ in 0..2 {
            assert!(matches!(
                open_key(&store, dir.path()),
                Err(KeyError::Missing(path)) if path == key_file
            ));
            assert!(!key_file.exists(), "a made-up key left behind");
        }
    }

    #[test]
    fn a_lost_key_of_a_state_from_before_key_checks_is_missing_too() {
        let (dir, store) = setup();
        set_secrets(&store, dir.path());
        store
            .run_blocking(|conn, path| {
                conn.execute_batch("DELETE FROM meta WHERE key = 'key_check'")
                    .map_err(sqlite(path))
            })
            .expect("an older state");
        let key_file = dir.path().join(KEY_FILE);
        std::fs::remove_file(&key_file).expect("remove");
        assert!(matches!(
            open_key(&store, dir.path()),
            Err(KeyError::Missing(path)) if path == key_file
        ));
        assert!(!key_file.exists(), "a made-up key left behind");
    }

    #[test]
    fn a_lost_key_that_sealed_nothing_is_replaced() {
        let (dir, store) = setup();
        open_key(&store, dir.path()).expect("first start");
        std::fs::remove_file(dir.path().join(KEY_FILE)).expect("remove");
        open_key(&store, dir.path()).expect("a new key: no secret was sealed with the old");
        set_secrets(&store, dir.path());
        assert_eq!(deployed(&store, dir.path())["DB_URL"], "postgres://x");
    }
}
