//! Mounts without a container engine. A mount's data lives in
//! `<state>/volumes/<app>/<source>`, kept across machines and releases (and not deleted
//! with the app). A machine sees it three ways, since its `destination` cannot be bound
//! at an absolute path without namespaces:
//! - `LAKEFLY_MOUNT_<SOURCE>` holds the directory's path;
//! - environment values that are the destination, or a path under it, are rewritten to
//!   the same path under the directory (`DATA_DIR=/data/db` works unchanged);
//! - `<workdir>/<destination without its leading />` is a symlink to the directory, for
//!   apps that use a path relative to their working tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::api::types::MountSpec;
use crate::daemon::create_private_dir;

/// Why a mount could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The source is not a plain name.
    #[error("mount source {0:?} must be a plain name (letters, digits, `-`, `_`)")]
    BadSource(String),
    /// The destination is not absolute.
    #[error("mount destination {0:?} must be an absolute path")]
    BadDestination(String),
    /// Creating the directory or link failed.
    #[error("cannot prepare mount {name:?} at {}: {error}", path.display())]
    Io {
        /// The mount's source name.
        name: String,
        /// The path being created.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
}

/// Whether `name` may name a volume: one plain directory name below the app's.
pub fn is_volume_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Checks a mount's names.
pub fn check(mount: &MountSpec) -> Result<(), MountError> {
    if !is_volume_name(&mount.source) {
        return Err(MountError::BadSource(mount.source.clone()));
    }
    if !mount.destination.starts_with('/') || mount.destination.split('/').any(|part| part == "..")
    {
        return Err(MountError::BadDestination(mount.destination.clone()));
    }
    Ok(())
}

/// Creates the mounts' directories and links, and adds their variables to `env`.
pub fn prepare(
    volumes: &Path,
    app: &str,
    workdir: &Path,
    mounts: &[MountSpec],
    env: &mut BTreeMap<String, String>,
) -> Result<(), MountError> {
    for mount in mounts {
        check(mount)?;
        let dir = volumes.join(app).join(&mount.source);
        let io = |path: &Path| {
            let (name, path) = (mount.source.clone(), path.to_path_buf());
            move |error| MountError::Io { name, path, error }
        };
        create_private_dir(&dir).map_err(io(&dir))?;
        let shown = dir.to_string_lossy().into_owned();
        let destination = mount.destination.trim_end_matches('/');
        for value in env.values_mut() {
            if value == destination {
                *value = shown.clone();
            } else if let Some(rest) = value
                .strip_prefix(destination)
                .filter(|r| r.starts_with('/'))
            {
                *value = format!("{shown}{rest}");
            }
        }
        env.insert(crate::config::names::mount_variable(&mount.source), shown);
        let link = workdir.join(destination.trim_start_matches('/'));
        match std::fs::symlink_metadata(&link) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if std::fs::read_link(&link).ok().as_deref() != Some(dir.as_path()) {
                    std::fs::remove_file(&link).map_err(io(&link))?;
                    std::os::unix::fs::symlink(&dir, &link).map_err(io(&link))?;
                }
            }
            Ok(_) => {
                tracing::warn!(path = %link.display(), "not linking a mount over an existing file")
            }
            Err(_) => {
                if let Some(parent) = link.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                std::os::unix::fs::symlink(&dir, &link).map_err(io(&link))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(source: &str, destination: &str) -> MountSpec {
        MountSpec {
            source: source.into(),
            destination: destination.into(),
        }
    }

    #[test]
    fn env_paths_under_the_destination_are_mapped_and_the_dir_is_linked() {
        let state = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let mut env = BTreeMap::from([
            ("DATA_DIR".to_string(), "/data".to_string()),
            ("DB".to_string(), "/data/app.sqlite".to_string()),
            ("OTHER".to_string(), "/database".to_string()),
        ]);
        prepare(
            state.path(),
            "app",
            work.path(),
            &[mount("my-data", "/data")],
            &mut env,
        )
        .unwrap();
        let dir = state.path().join("app/my-data");
        assert!(dir.is_dir());
        assert_eq!(env["DATA_DIR"], dir.to_string_lossy());
        assert_eq!(env["DB"], format!("{}/app.sqlite", dir.display()));
        assert_eq!(
            env["OTHER"], "/database",
            "only whole path components match"
        );
        assert_eq!(env["LAKEFLY_MOUNT_MY_DATA"], dir.to_string_lossy());
        assert_eq!(std::fs::read_link(work.path().join("data")).unwrap(), dir);
        // Preparing again is harmless.
        prepare(
            state.path(),
            "app",
            work.path(),
            &[mount("my-data", "/data")],
            &mut env,
        )
        .unwrap();
    }

    #[test]
    fn names_are_checked() {
        assert!(matches!(
            check(&mount("../x", "/d")),
            Err(MountError::BadSource(_))
        ));
        assert!(matches!(
            check(&mount("x", "d")),
            Err(MountError::BadDestination(_))
        ));
        assert!(matches!(
            check(&mount("x", "/a/../b")),
            Err(MountError::BadDestination(_))
        ));
    }
}
