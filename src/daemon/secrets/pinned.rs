//! The secrets a release was made with, kept sealed beside it: its machines, jobs,
//! release command and execs get these, not what has been set since. A `secrets set`
//! whose release fails leaves its values set for the next release (as on Fly), while the
//! release still serving keeps starting its machines with its own.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::select;
use crate::daemon::store::{sqlite, StoreError};

/// The releases of an app whose pinned secrets are still wanted, as an SQL set over `?1`
/// (the app): the current release, and every one a machine not destroyed runs.
const IN_USE: &str = "SELECT current_release FROM apps WHERE name = ?1 AND current_release IS NOT NULL
     UNION SELECT json_extract(spec, '$.release_version') FROM machines
     WHERE app = ?1 AND state != 'destroyed' AND json_extract(spec, '$.release_version') IS NOT NULL";

/// Pins `app`'s deployed secrets to its new release `version` (in the transaction that
/// records it, after staged values are applied), and lets go of the pins of earlier
/// releases nothing runs any more, so an unset value does not linger sealed in them.
pub(super) fn pin(tx: &Connection, path: &Path, app: &str, version: u64) -> Result<(), StoreError> {
    let sqlite = sqlite(path);
    let version = version as i64;
    tx.execute(
        "INSERT INTO release_secrets (app, version, name, sealed)
         SELECT app, ?2, name, sealed FROM secrets WHERE app = ?1 AND sealed IS NOT NULL",
        params![app, version],
    )
    .map_err(&sqlite)?;
    tx.execute(
        "UPDATE releases SET secrets_pinned = 1 WHERE app = ?1 AND version = ?2",
        params![app, version],
    )
    .map_err(&sqlite)?;
    let unused = format!("app = ?1 AND version < ?2 AND version NOT IN ({IN_USE})");
    tx.execute(
        &format!("DELETE FROM release_secrets WHERE {unused}"),
        params![app, version],
    )
    .map_err(&sqlite)?;
    tx.execute(
        &format!("UPDATE releases SET secrets_pinned = 0 WHERE secrets_pinned = 1 AND {unused}"),
        params![app, version],
    )
    .map_err(&sqlite)?;
    Ok(())
}

/// The sealed secrets by name that a process of `app`'s release `version` gets: those
/// pinned to it, else (no version, or a release without pins) the app's deployed ones.
pub(super) fn sealed_for(
    conn: &Connection,
    path: &Path,
    app: &str,
    version: Option<u64>,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let sqlite = sqlite(path);
    let pinned = match version {
        Some(version) => conn
            .query_row(
                "SELECT secrets_pinned FROM releases WHERE app = ?1 AND version = ?2",
                params![app, version as i64],
                |row| row.get::<_, i64>(0),
            )
            .optional()
            .map_err(&sqlite)?
            .is_some_and(|pinned| pinned != 0),
        None => false,
    };
    let by_name = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, row.get(1)?));
    match version.filter(|_| pinned) {
        Some(version) => select(
            conn,
            path,
            "SELECT name, sealed FROM release_secrets WHERE app = ?1 AND version = ?2",
            params![app, version as i64],
            by_name,
        ),
        None => select(
            conn,
            path,
            "SELECT name, sealed FROM secrets WHERE app = ?1 AND sealed IS NOT NULL",
            params![app],
            by_name,
        ),
    }
}

/// One pinned value, sealed: app, release version, name, value.
pub(super) type PinnedRow = (String, i64, String, Vec<u8>);

/// Every pinned value (for a key rotation).
pub(super) fn all(conn: &Connection, path: &Path) -> Result<Vec<PinnedRow>, StoreError> {
    let sql = "SELECT app, version, name, sealed FROM release_secrets";
    select(conn, path, sql, [], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
    })
}

/// Replaces one pinned value's sealed bytes (a key rotation).
pub(super) fn reseal(
    tx: &Connection,
    path: &Path,
    (app, version, name): (&str, i64, &str),
    sealed: &[u8],
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE release_secrets SET sealed = ?4 WHERE app = ?1 AND version = ?2 AND name = ?3",
        params![app, version, name, sealed],
    )
    .map(drop)
    .map_err(sqlite(path))
}

#[cfg(test)]
mod tests {
    use super::super::rotate::{open_key, rotate};
    use super::super::SecretStore;
    use crate::daemon::store::Store;

    struct Fixture {
        dir: tempfile::TempDir,
        store: Store,
    }

    impl Fixture {
        /// App `a` with no release yet.
        fn new() -> Self {
            let (dir, store) = super::super::store_with_app();
            Fixture { dir, store }
        }

        fn secrets(&self) -> SecretStore {
            let key = open_key(&self.store, self.dir.path()).expect("key");
            SecretStore::new(self.store.clone(), key)
        }

        fn set(&self, name: &str, value: &str) {
            self.secrets().set_in_a(name, value, false);
        }

        /// Records release `version` and pins the secrets set now to it.
        fn release(&self, version: u64) {
            let secrets = self.secrets();
            (self.store)
                .run_blocking(|conn, path| {
                    conn.execute(
                        "INSERT INTO releases (app, version, status, description, config, bundle, strategy, created_at)
                         VALUES ('a', ?1, 'running', 'd', '{}', 'b', 'rolling', 't')",
                        [version as i64],
                    )
                    .map_err(crate::daemon::store::sqlite(path))?;
                    secrets.pin(conn, path, "a", version)
                })
                .expect("release");
        }

        fn sql(&self, sql: &str) {
            (self.store)
                .run_blocking(|conn, path| {
                    conn.execute_batch(sql)
                        .map_err(crate::daemon::store::sqlite(path))
                })
                .expect("sql");
        }

        fn db_url(&self, release: Option<u64>) -> Option<String> {
            let mut env = self.secrets().env("a", release).expect("env");
            env.remove("DB_URL")
        }
    }

    #[test]
    fn a_release_keeps_the_secrets_it_was_made_with() {
        let f = Fixture::new();
        f.set("DB_URL", "good");
        f.release(1);
        f.sql("UPDATE apps SET current_release = 1 WHERE name = 'a'");
        // `secrets set` of a value its release then fails with.
        f.set("DB_URL", "bad");
        f.release(2);
        assert_eq!(f.db_url(Some(1)).as_deref(), Some("good"));
        assert_eq!(f.db_url(Some(2)).as_deref(), Some("bad"));
        // A process of no release, or of one recorded before pinning: what is set now.
        assert_eq!(f.db_url(None).as_deref(), Some("bad"));
        f.sql("UPDATE releases SET secrets_pinned = 0 WHERE version = 1");
        assert_eq!(f.db_url(Some(1)).as_deref(), Some("bad"));
        // A release made with no secrets gets none, not those set later.
        let f = Fixture::new();
        f.release(1);
        f.set("DB_URL", "later");
        assert_eq!(f.db_url(Some(1)), None);
    }

    #[test]
    fn pins_go_once_no_machine_runs_their_release_and_it_is_not_current() {
        let f = Fixture::new();
        f.set("DB_URL", "one");
        f.release(1);
        f.sql("UPDATE apps SET current_release = 1 WHERE name = 'a'");
        f.set("DB_URL", "two");
        f.release(2);
        f.sql(
            "INSERT INTO machines (id, app, process_group, spec, desired, state, created_at)
             VALUES ('m2', 'a', 'app', '{\"release_version\":2}', 'stopped', 'stopped', 't'),
                    ('m1', 'a', 'app', '{\"release_version\":1}', 'destroyed', 'destroyed', 't');",
        );
        f.set("DB_URL", "three");
        f.release(3);
        // Release 1 is current and release 2 has a stopped machine: both keep theirs.
        assert_eq!(f.db_url(Some(1)).as_deref(), Some("one"));
        assert_eq!(f.db_url(Some(2)).as_deref(), Some("two"));
        f.sql(
            "UPDATE apps SET current_release = 3 WHERE name = 'a';
             UPDATE machines SET state = 'destroyed' WHERE id = 'm2';",
        );
        f.set("DB_URL", "four");
        f.release(4);
        // Neither is wanted now: their values are gone, not left sealed.
        let left: i64 = (f.store)
            .run_blocking(|conn, _| {
                Ok(conn
                    .query_row(
                        "SELECT count(*) FROM release_secrets WHERE version < 3",
                        [],
                        |row| row.get(0),
                    )
                    .expect("count"))
            })
            .expect("count");
        assert_eq!(left, 0);
        assert_eq!(f.db_url(Some(3)).as_deref(), Some("three"));
        assert_eq!(f.db_url(Some(1)).as_deref(), Some("four"));
    }

    #[test]
    fn a_key_rotation_reseals_pinned_values() {
        let f = Fixture::new();
        f.set("DB_URL", "good");
        f.release(1);
        f.set("DB_URL", "bad");
        // The one value `secrets list` shows is counted; the copy pinned to release 1 is
        // re-sealed too.
        assert_eq!(rotate(&f.store, f.dir.path()).expect("rotate"), 1);
        assert_eq!(f.db_url(Some(1)).as_deref(), Some("good"));
        assert_eq!(f.db_url(None).as_deref(), Some("bad"));
    }
}
