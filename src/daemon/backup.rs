//! `lakeflyd backup` and `lakeflyd restore`: everything a host needs to serve its apps
//! again, taken while the daemon runs, put back into an empty state directory.
//!
//! A backup is a directory laid out as the state directory: `state.db`, a consistent
//! snapshot (`VACUUM INTO`, which reads in one transaction while the daemon writes);
//! `master.key`, when the key lives there; `bundles/` (immutable, content-addressed);
//! `releases/`, the built files the machines run (a virtualenv holds its absolute path,
//! so they serve again at the same state path); with `--volumes`, the apps' volumes,
//! copied as they are (stop the apps, or use their own dumps, for a consistent copy). It
//! is written under `<to>.partial` and renamed to `<to>` once complete, so a backup that
//! exists is whole. A restore checks the snapshot and that the key opens its secrets,
//! then copies into `<state>.restoring` and renames that to the state directory.

use std::path::{Path, PathBuf};

use super::secrets::rotate::{open_key, NEXT_FILE};
use super::secrets::KEY_FILE;
use super::store::Store;

/// The database file in a state directory and a backup.
const DATABASE: &str = "state.db";
/// What is copied besides the database and the key, and whether only with `--volumes`.
const DIRECTORIES: [(&str, bool); 3] = [("bundles", false), ("releases", false), ("volumes", true)];

/// Why a backup or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The destination is there already.
    #[error("{} exists and is not empty", .0.display())]
    NotEmpty(PathBuf),
    /// The state directory holds no database.
    #[error("{} holds no {DATABASE}: is it a lakefly state directory (or backup)?", .0.display())]
    NoDatabase(PathBuf),
    /// The snapshot is damaged.
    #[error("{} is damaged: {detail}", path.display())]
    Damaged {
        /// The database.
        path: PathBuf,
        /// What SQLite's check said.
        detail: String,
    },
    /// The backup's key does not open its secrets.
    #[error("the master key in {} does not open the secrets in its {DATABASE}: {detail}", backup.display())]
    WrongKey {
        /// The backup.
        backup: PathBuf,
        /// Why.
        detail: String,
    },
    /// SQLite failed.
    #[error("{}: {source}", path.display())]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// A file operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// To what.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The restored database could not be opened.
    #[error(transparent)]
    Store(#[from] super::store::StoreError),
}

/// What a backup or restore copied.
#[derive(Debug, Default, serde::Serialize)]
pub struct Copied {
    /// Where to.
    pub path: PathBuf,
    /// Files copied (the database counts as one).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Whether the master key is among them; when not, it lives elsewhere (a systemd
    /// credential) and must be kept with the backup by hand.
    pub master_key: bool,
    /// Whether the apps' volumes are among them.
    pub volumes: bool,
}

/// `lakeflyd backup`: the state directory (default: the user's) copied into `to`.
pub fn backup_state(
    state_dir: Option<PathBuf>,
    to: &Path,
    volumes: bool,
) -> Result<Copied, crate::error::Error> {
    let state_dir = match state_dir {
        Some(dir) => dir,
        None => super::default_state_dir()?,
    };
    Ok(backup(&state_dir, to, volumes)?)
}

/// `lakeflyd restore`: a backup copied into an empty state directory (default: the
/// user's), which no daemon may hold meanwhile.
pub fn restore_state(
    state_dir: Option<PathBuf>,
    from: &Path,
) -> Result<Copied, crate::error::Error> {
    let state_dir = match state_dir {
        Some(dir) => dir,
        None => super::default_state_dir()?,
    };
    Ok(restore(from, &state_dir)?)
}

/// Backs `state_dir` up into `to`, a directory that must not exist or be empty.
pub fn backup(state_dir: &Path, to: &Path, volumes: bool) -> Result<Copied, BackupError> {
    let database = state_dir.join(DATABASE);
    if !database.is_file() {
        return Err(BackupError::NoDatabase(state_dir.to_path_buf()));
    }
    refuse_non_empty(to)?;
    let partial = sibling(to, "partial");
    let mut copied = Copied {
        path: to.to_path_buf(),
        volumes,
        ..Copied::default()
    };
    into_place(&partial, to, |partial| {
        // The database first: files it names were there when it was read (bundles and
        // built files are removed only once no release names them).
        snapshot(&database, &partial.join(DATABASE))?;
        count(&partial.join(DATABASE), &mut copied)?;
        copied.master_key = copy_key(state_dir, partial, &mut copied)?;
        for (name, only_with_volumes) in DIRECTORIES {
            if volumes || !only_with_volumes {
                copy_tree(&state_dir.join(name), &partial.join(name), &mut copied)?;
            }
        }
        Ok(())
    })?;
    Ok(copied)
}

/// Fills `staging` (emptied first) with `fill`, then renames it to `to`; on a failure
/// `staging` goes, and `to` is not touched.
fn into_place(
    staging: &Path,
    to: &Path,
    fill: impl FnOnce(&Path) -> Result<(), BackupError>,
) -> Result<(), BackupError> {
    remove_all(staging)?;
    make_dir(staging)?;
    match fill(staging) {
        Ok(()) => rename(staging, to),
        Err(e) => {
            let _ = remove_all(staging);
            Err(e)
        }
    }
}

/// Restores the backup `from` into `state_dir`, which must not exist or be empty (and so
/// no daemon uses it).
pub fn restore(from: &Path, state_dir: &Path) -> Result<Copied, BackupError> {
    let database = from.join(DATABASE);
    if !database.is_file() {
        return Err(BackupError::NoDatabase(from.to_path_buf()));
    }
    let check: String = rusqlite::Connection::open_with_flags(
        &database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .and_then(|conn| conn.query_row("PRAGMA quick_check", [], |row| row.get(0)))
    .map_err(|source| BackupError::Sqlite {
        path: database.clone(),
        source,
    })?;
    if check != "ok" {
        return Err(BackupError::Damaged {
            path: database,
            detail: check,
        });
    }
    refuse_non_empty(state_dir)?;
    let restoring = sibling(state_dir, "restoring");
    let mut copied = Copied {
        path: state_dir.to_path_buf(),
        volumes: from.join("volumes").is_dir(),
        ..Copied::default()
    };
    into_place(&restoring, state_dir, |restoring| {
        copy_file(&database, &restoring.join(DATABASE), &mut copied)?;
        copied.master_key = copy_key(from, restoring, &mut copied)?;
        if copied.master_key {
            // As the daemon will at its start: the key must open the secrets (finishing
            // a rotation the backup caught between its commit and its rename).
            let store = Store::open(restoring)?;
            open_key(&store, restoring).map_err(|e| BackupError::WrongKey {
                backup: from.to_path_buf(),
                detail: e.to_string(),
            })?;
        }
        for (name, _) in DIRECTORIES {
            copy_tree(&from.join(name), &restoring.join(name), &mut copied)?;
        }
        Ok(())
    })?;
    Ok(copied)
}

/// A consistent copy of the database at `to`, read in one transaction.
fn snapshot(database: &Path, to: &Path) -> Result<(), BackupError> {
    let sqlite = |source| BackupError::Sqlite {
        path: database.to_path_buf(),
        source,
    };
    let conn = rusqlite::Connection::open(database).map_err(sqlite)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(sqlite)?;
    let target = to.to_str().ok_or_else(|| BackupError::Io {
        action: "write",
        path: to.to_path_buf(),
        source: std::io::Error::other("the path is not UTF-8"),
    })?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(sqlite)?;
    Ok(())
}

/// Copies `master.key` (and the next key of a rotation under way) from `from` to `to`
/// when it is there, 0600 kept; whether it was.
fn copy_key(from: &Path, to: &Path, copied: &mut Copied) -> Result<bool, BackupError> {
    for name in [NEXT_FILE, KEY_FILE] {
        let key = from.join(name);
        if key.is_file() {
            copy_file(&key, &to.join(name), copied)?;
        }
    }
    Ok(to.join(KEY_FILE).is_file())
}

/// Copies the tree at `from` (if any) to `to`: directories, regular files with their
/// permissions, and symbolic links as links. What the running daemon removes meanwhile
/// (an old release's files, `.gone-*` on their way out) is left out: no release the
/// snapshot names loses its files while it is in use.
fn copy_tree(from: &Path, to: &Path, copied: &mut Copied) -> Result<(), BackupError> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    if from
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with(".gone-"))
    {
        return Ok(());
    }
    let meta = match std::fs::symlink_metadata(from) {
        Ok(meta) => meta,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(io("read", from)(e)),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(from).map_err(io("read", from))?;
        std::os::unix::fs::symlink(&target, to).map_err(io("write", to))?;
    } else if kind.is_dir() {
        let entries = match std::fs::read_dir(from) {
            Ok(entries) => entries,
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(io("read", from)(e)),
        };
        make_dir(to)?;
        for entry in entries {
            let entry = entry.map_err(io("read", from))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()), copied)?;
        }
        std::fs::set_permissions(to, meta.permissions()).map_err(io("write", to))?;
    } else if kind.is_file() {
        match copy_file(from, to, copied) {
            Err(BackupError::Io { source, .. }) if gone(&source) => {}
            other => other?,
        }
    }
    // Sockets, FIFOs and devices are not an app's files; they are left out.
    Ok(())
}

fn copy_file(from: &Path, to: &Path, copied: &mut Copied) -> Result<(), BackupError> {
    // `std::fs::copy` keeps the permissions (and clones the data where the file system can).
    let bytes = std::fs::copy(from, to).map_err(io("copy", from))?;
    copied.files += 1;
    copied.bytes += bytes;
    Ok(())
}

fn count(path: &Path, copied: &mut Copied) -> Result<(), BackupError> {
    copied.files += 1;
    copied.bytes += std::fs::metadata(path).map_err(io("read", path))?.len();
    Ok(())
}

fn refuse_non_empty(dir: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            Some(_) => Err(BackupError::NotEmpty(dir.to_path_buf())),
            None => Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("read", dir)(e)),
    }
}

/// `<dir>.<suffix>` beside `dir`: where it is built before the rename that makes it whole.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

fn make_dir(dir: &Path) -> Result<(), BackupError> {
    super::create_private_dir(dir).map_err(io("create", dir))
}

fn remove_all(dir: &Path) -> Result<(), BackupError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", dir)(e)),
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), BackupError> {
    if to.exists() {
        // Empty (checked): the rename needs it gone.
        std::fs::remove_dir(to).map_err(io("replace", to))?;
    }
    std::fs::rename(from, to).map_err(io("rename into place", to))
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackupError + 'a {
    move |source| BackupError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_copied_with_links_as_links_and_files_on_their_way_out_left_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let from = dir.path().join("releases");
        std::fs::create_dir_all(from.join("app/1/.venv/bin")).expect("mkdir");
        std::fs::create_dir_all(from.join("app/.gone-0")).expect("mkdir");
        std::fs::write(from.join("app/1/server.py"), "print()").expect("write");
        std::fs::write(from.join("app/.gone-0/old.py"), "").expect("write");
        std::os::unix::fs::symlink("/usr/bin/python3", from.join("app/1/.venv/bin/python3"))
            .expect("link");
        let to = dir.path().join("copy");
        let mut copied = Copied::default();
        copy_tree(&from, &to, &mut copied).expect("copied");
        assert_eq!((copied.files, copied.bytes), (1, 7));
        assert_eq!(
            std::fs::read_link(to.join("app/1/.venv/bin/python3")).expect("a link"),
            Path::new("/usr/bin/python3")
        );
        assert!(!to.join("app/.gone-0").exists());
        // Nothing there is nothing to copy.
        copy_tree(
            &dir.path().join("missing"),
            &dir.path().join("x"),
            &mut copied,
        )
        .expect("nothing");
        assert!(!dir.path().join("x").exists());
    }

    #[test]
    fn a_backup_that_fails_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).expect("mkdir");
        std::fs::write(state.join(DATABASE), "not a database").expect("write");
        let to = dir.path().join("backup");
        let failed = backup(&state, &to, false);
        assert!(
            matches!(failed, Err(BackupError::Sqlite { .. })),
            "{failed:?}"
        );
        assert!(!to.exists() && !dir.path().join("backup.partial").exists());
    }
}
