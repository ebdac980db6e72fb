//! An app's volumes: the directories `runtime::mounts` makes for its `[mounts]`, at
//! `<state>/volumes/<app>/<source>`. They outlive machines, releases and the app itself,
//! so this is where they are listed and, on request, deleted.

use std::path::{Path, PathBuf};

use crate::api::types::Machine;
use crate::api::volumes::{Volume, VolumeMount};

/// Prefix of a volume's directory while it is being deleted: renamed first, so a machine
/// that starts meanwhile gets a new empty directory, never half of the old one.
const DELETING: &str = ".deleting-";

/// Why a volume could not be listed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The app has no volume by that name.
    #[error("app {app:?} has no volume {name:?}")]
    NotFound {
        /// The app.
        app: String,
        /// The volume.
        name: String,
    },
    /// Not a name a volume can have.
    #[error("{name:?} is not a volume name: letters, digits, `-` and `_`")]
    BadName {
        /// The name asked for.
        name: String,
    },
    /// The app has a volume by that name already.
    #[error("app {app:?} has a volume {name:?} already")]
    Exists {
        /// The app.
        app: String,
        /// The volume.
        name: String,
    },
    /// A machine mounts it.
    #[error("volume {name:?} of app {app:?} is mounted by machine(s) {}", machines.join(", "))]
    InUse {
        /// The app.
        app: String,
        /// The volume.
        name: String,
        /// The machines whose spec mounts it.
        machines: Vec<String>,
    },
    /// Reading or deleting the directory failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// `read` or `delete`.
        action: &'static str,
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The volumes of `app` under `root` (`<state>/volumes`), by name, with the machines of
/// `machines` that mount each. A volume a machine mounts but that does not exist yet (its
/// machine never started) is listed with nothing used.
pub fn list(root: &Path, app: &str, machines: &[Machine]) -> Result<Vec<Volume>, VolumeError> {
    let dir = root.join(app);
    let mut names = std::collections::BTreeSet::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(io_error("read", &dir))?;
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                    if !name.starts_with(DELETING) {
                        names.insert(name.to_string());
                    }
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(io_error("read", &dir)(source)),
    }
    names.extend(
        machines
            .iter()
            .flat_map(|m| m.spec.mounts.iter().map(|mount| mount.source.clone())),
    );
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            Ok(Volume {
                app: app.to_string(),
                used_bytes: used_bytes(&path).map_err(io_error("read", &path))?,
                path: path.to_string_lossy().into_owned(),
                mounted_by: mounted_by(machines, &name),
                name,
            })
        })
        .collect()
}

/// Makes volume `name` of `app` under `root`, empty, before any machine mounts it (as `fly
/// volumes create` does before the first deploy of an app with `[mounts]`).
pub fn create(root: &Path, app: &str, name: &str) -> Result<Volume, VolumeError> {
    if !crate::daemon::runtime::mounts::is_volume_name(name) {
        return Err(VolumeError::BadName {
            name: name.to_string(),
        });
    }
    let dir = root.join(app);
    let path = dir.join(name);
    let io = |path: &Path| io_error("create", path);
    crate::daemon::create_private_dir(&dir).map_err(io(&dir))?;
    {
        use std::os::unix::fs::DirBuilderExt;
        // Not recursive: one that is there already is said, never taken over.
        let made = std::fs::DirBuilder::new().mode(0o700).create(&path);
        match made {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(VolumeError::Exists {
                    app: app.to_string(),
                    name: name.to_string(),
                })
            }
            other => other.map_err(io(&path))?,
        }
    }
    Ok(Volume {
        app: app.to_string(),
        name: name.to_string(),
        path: path.to_string_lossy().into_owned(),
        used_bytes: 0,
        mounted_by: Vec::new(),
    })
}

/// The apps that have a directory of volumes under `root`, destroyed ones included.
pub fn apps_with_volumes(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut apps: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    apps.sort();
    apps
}

/// Deletes volume `name` of `app` unless one of `machines` mounts it.
pub fn destroy(
    root: &Path,
    app: &str,
    name: &str,
    machines: &[Machine],
) -> Result<(), VolumeError> {
    let not_found = || VolumeError::NotFound {
        app: app.to_string(),
        name: name.to_string(),
    };
    // A name is one directory below the app's: never `..`, a path or a hidden entry.
    if name.is_empty() || name.starts_with('.') || name.contains('/') {
        return Err(not_found());
    }
    let users: Vec<String> = mounted_by(machines, name)
        .into_iter()
        .map(|m| m.machine)
        .collect();
    if !users.is_empty() {
        return Err(VolumeError::InUse {
            app: app.to_string(),
            name: name.to_string(),
            machines: users,
        });
    }
    let path = root.join(app).join(name);
    if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
        return Err(not_found());
    }
    let io = |path: &Path| io_error("delete", path);
    let doomed = root.join(app).join(format!(
        "{DELETING}{name}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::rename(&path, &doomed).map_err(io(&path))?;
    std::fs::remove_dir_all(&doomed).map_err(io(&doomed))?;
    // The app's own directory goes with its last volume, so a destroyed app leaves nothing.
    let _ = std::fs::remove_dir(root.join(app));
    Ok(())
}

/// Removes what a deletion interrupted by a crash left behind (renamed, not yet gone).
pub fn finish_deletions(root: &Path) {
    let Ok(apps) = std::fs::read_dir(root) else {
        return;
    };
    for app in apps.flatten() {
        let Ok(entries) = std::fs::read_dir(app.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(DELETING) {
                if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                    tracing::warn!(path = %entry.path().display(), error = %e, "cannot finish deleting a volume");
                }
            }
        }
    }
}

/// What turns an I/O error while doing `action` to `path` into a [`VolumeError`].
fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError {
    let path = path.to_path_buf();
    move |source| VolumeError::Io {
        action,
        path,
        source,
    }
}

/// The machines of `machines` that mount `name`.
fn mounted_by(machines: &[Machine], name: &str) -> Vec<VolumeMount> {
    machines
        .iter()
        .flat_map(|m| {
            m.spec
                .mounts
                .iter()
                .filter(move |mount| mount.source == name)
                .map(move |mount| VolumeMount {
                    machine: m.id.clone(),
                    process_group: m.process_group.clone(),
                    destination: mount.destination.clone(),
                })
        })
        .collect()
}

/// Disk space taken by the files under `path` (allocated blocks, as `du` counts them),
/// without following links; 0 when it does not exist.
fn used_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            total += used_bytes(&entry?.path())?;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::{MachineSpec, MachineState, MountSpec};

    fn machine(id: &str, mounts: &[(&str, &str)]) -> Machine {
        let spec: MachineSpec = serde_json::from_value(serde_json::json!({
            "command": "true",
            "mounts": mounts
                .iter()
                .map(|(source, destination)| MountSpec {
                    source: source.to_string(),
                    destination: destination.to_string(),
                })
                .collect::<Vec<_>>(),
        }))
        .expect("spec");
        serde_json::from_value(serde_json::json!({
            "id": id,
            "app": "app",
            "process_group": spec.process_group,
            "spec": spec,
            "state": MachineState::Stopped,
            "health": "unknown",
            "restarts": 0,
            "created_at": "2026-12-03T00:00:00Z",
        }))
        .expect("machine")
    }

    #[test]
    fn a_volume_is_made_private_and_empty_once_and_only_by_a_plain_name() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("tempdir");
        let made = create(root.path(), "app", "data").expect("created");
        let dir = root.path().join("app/data");
        assert_eq!(made.path, dir.to_string_lossy());
        let mode = std::fs::metadata(&dir).expect("made").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::write(dir.join("kept"), "x").expect("write");
        assert!(matches!(
            create(root.path(), "app", "data"),
            Err(VolumeError::Exists { .. })
        ));
        assert!(dir.join("kept").is_file());
        for bad in ["", "..", "a/b", ".hidden", "sp ace"] {
            assert!(
                matches!(
                    create(root.path(), "app", bad),
                    Err(VolumeError::BadName { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn volumes_on_disk_and_in_specs_are_listed_with_their_users() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("app/data");
        std::fs::create_dir_all(data.join("db")).unwrap();
        std::fs::write(data.join("db/file"), vec![7u8; 10_000]).unwrap();
        std::fs::create_dir_all(root.path().join("app/old")).unwrap();
        std::fs::create_dir_all(root.path().join(format!("app/{DELETING}x-1"))).unwrap();
        let machines = [
            machine("m1", &[("data", "/data")]),
            machine("m2", &[("new", "/n")]),
        ];
        let listed = list(root.path(), "app", &machines).unwrap();
        let names: Vec<&str> = listed.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["data", "new", "old"]);
        assert!(listed[0].used_bytes >= 10_000, "{listed:?}");
        assert_eq!(listed[0].mounted_by[0].machine, "m1");
        assert_eq!(listed[0].mounted_by[0].destination, "/data");
        assert_eq!((listed[1].used_bytes, listed[1].mounted_by.len()), (0, 1));
        assert!(listed[2].mounted_by.is_empty());
        // Another app's volumes, or none at all, are not this one's.
        assert!(list(root.path(), "other", &[]).unwrap().is_empty());
    }

    #[test]
    fn a_volume_in_use_is_kept_and_an_unused_one_deleted_whole() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("app/data/deep")).unwrap();
        std::fs::write(root.path().join("app/data/deep/f"), "x").unwrap();
        let users = [machine("m1", &[("data", "/data")])];
        let refused = destroy(root.path(), "app", "data", &users).unwrap_err();
        assert!(
            matches!(&refused, VolumeError::InUse { machines, .. } if machines == &["m1"]),
            "{refused}"
        );
        assert!(root.path().join("app/data/deep/f").exists());
        for bad in ["", "..", ".deleting-data-1", "a/b", "missing"] {
            assert!(
                matches!(
                    destroy(root.path(), "app", bad, &[]),
                    Err(VolumeError::NotFound { .. })
                ),
                "{bad:?}"
            );
        }
        destroy(root.path(), "app", "data", &[]).unwrap();
        assert!(!root.path().join("app").exists());
    }

    #[test]
    fn a_deletion_cut_short_is_finished_at_the_next_start() {
        let root = tempfile::tempdir().unwrap();
        let left = root.path().join(format!("app/{DELETING}data-5"));
        std::fs::create_dir_all(left.join("sub")).unwrap();
        std::fs::create_dir_all(root.path().join("app/kept")).unwrap();
        finish_deletions(root.path());
        assert!(!left.exists());
        assert!(root.path().join("app/kept").exists());
    }
}
