//! The digests `secrets list` shows are keyed by the master key (see
//! [`MasterKey::digest`]). States from before keyed digests kept a plain SHA-256, which
//! anyone with an API token or a copy of the database could test guesses against; those
//! are rewritten once, at the daemon's start, and again whenever the key changes.

use std::path::Path;

use rusqlite::params;

use super::{open_stored, sealed_rows, MasterKey};
use crate::daemon::store::{meta, sqlite, StoreError};

/// The digest scheme the stored digests follow, recorded in `meta`.
const SCHEME: &str = "hmac-sha256/1";

/// Rewrites the stored digests under `key` unless they already follow [`SCHEME`].
pub(super) fn ensure_keyed(
    conn: &mut rusqlite::Connection,
    path: &Path,
    key: &MasterKey,
) -> Result<(), StoreError> {
    let scheme: Option<String> = meta::get(conn, path, "digest_scheme")?;
    if scheme.as_deref() == Some(SCHEME) {
        return Ok(());
    }
    let tx = conn.transaction().map_err(sqlite(path))?;
    let count = rewrite(&tx, path, key)?;
    tx.commit().map_err(sqlite(path))?;
    if count > 0 {
        tracing::info!(
            count,
            "rewrote the digests of secret values as keyed digests"
        );
    }
    Ok(())
}

/// Recomputes every stored digest (deployed and staged) from its value under `key`, in
/// the caller's transaction; returns how many were written.
pub(super) fn rewrite(
    tx: &rusqlite::Connection,
    path: &Path,
    key: &MasterKey,
) -> Result<usize, StoreError> {
    let digest = |sealed: Option<Vec<u8>>| {
        sealed
            .map(|s| open_stored(key, &s, path).map(|value| key.digest(&value)))
            .transpose()
    };
    let mut count = 0;
    for (app, name, sealed, staged) in sealed_rows(tx, path)? {
        count += usize::from(sealed.is_some()) + usize::from(staged.is_some());
        let digest_now = digest(sealed)?;
        let staged_digest = digest(staged)?;
        tx.execute(
            "UPDATE secrets SET digest = ?3, staged_digest = ?4 WHERE app = ?1 AND name = ?2",
            params![app, name, digest_now, staged_digest],
        )
        .map_err(sqlite(path))?;
    }
    meta::set(tx, path, "digest_scheme", &SCHEME)?;
    Ok(count)
}
