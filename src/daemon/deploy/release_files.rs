//! The files of an app's releases on disk: each release's unpacked bundle
//! (`releases/APP/N`) and Dockerfile working tree (`N-tree`). Those that nothing can use
//! any more are removed, so a host that deploys every day does not fill its disk with
//! copies of old releases (and of what their `[build] command` installed). A rollback
//! does not need them: it unpacks the old release's bundle again, and bundles stay as
//! long as a release of theirs does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::Deployer;
use crate::daemon::store::releases;

/// Complete releases before the current one whose files stay, for job runs that started
/// before a deploy switched releases.
const PREVIOUS_RELEASES_KEPT: usize = 1;

impl Deployer {
    /// Removes the files of `app`'s releases that neither its current release, the one
    /// before, a release rolling out nor any machine that is not destroyed uses.
    pub async fn remove_unused_release_files(&self, app: &str) {
        let a = app.to_string();
        let in_use = self
            .store
            .run(move |conn, path| {
                releases::versions_in_use(conn, path, &a, PREVIOUS_RELEASES_KEPT)
            })
            .await;
        let (newest, in_use) = match in_use {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(app, error = %e, "could not tell which release files are in use");
                return;
            }
        };
        let dir = self.releases_dir.join(app);
        let removed =
            tokio::task::spawn_blocking(move || remove_unused(&dir, newest, &in_use)).await;
        match removed {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(app, releases = ?removed, "removed the files of old releases");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(app, error = %e, "removing old release files failed"),
        }
    }

    /// Removes the bundles that no release of any app uses (an app's that was destroyed, an
    /// upload never deployed), once their grace time has passed; rollbacks keep theirs.
    pub async fn remove_unused_bundles(&self) {
        let in_use = self
            .store
            .run(|conn, path| releases::bundles_in_use(conn, path))
            .await;
        match in_use {
            Ok(in_use) => {
                let removed = self.bundles.remove_unused(in_use).await;
                if removed > 0 {
                    tracing::info!(bundles = removed, "removed bundles no release uses");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not tell which bundles are in use"),
        }
    }

    /// Removes the release files of apps that are gone (destroyed by a lakeflyd that did
    /// not remove them yet); `apps` are the names of those that exist.
    pub async fn remove_files_of_gone_apps(&self, apps: &[String]) {
        let Ok(mut entries) = tokio::fs::read_dir(&self.releases_dir).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !apps.contains(&name) && entry.file_type().await.is_ok_and(|t| t.is_dir()) {
                self.remove_app_files(&name).await;
            }
        }
    }

    /// Removes everything on disk of an app that is gone: its releases' files and its
    /// machines' default working directories (volumes stay: they hold data).
    pub async fn remove_app_files(&self, app: &str) {
        for dir in [
            self.releases_dir.join(app),
            self.runtime.apps_dir().join(app),
        ] {
            if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(app, dir = %dir.display(), error = %e, "could not remove a destroyed app's files");
                }
            }
        }
    }
}

/// Removes the entries of `dir` (`N`, `N-tree`, `N-stages`) of versions up to `newest`
/// that are not `in_use`; returns the versions removed. Newer entries belong to a release
/// that started after `in_use` was read, and anything else is not ours: both stay.
fn remove_unused(dir: &Path, newest: u64, in_use: &BTreeSet<u64>) -> BTreeSet<u64> {
    let mut removed = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(version) = release_version(&name.to_string_lossy()) else {
            continue;
        };
        if version > newest || in_use.contains(&version) {
            continue;
        }
        let path: PathBuf = entry.path();
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                removed.insert(version);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove old release files")
            }
        }
    }
    removed
}

/// The release version an entry of an app's releases directory belongs to.
fn release_version(name: &str) -> Option<u64> {
    let number = ["-tree", "-stages"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name);
    number.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unused_versions_up_to_the_newest_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "1", "1-tree", "2", "3", "3-tree", "4-stages", "5", "notes", "7x",
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        let removed = remove_unused(dir.path(), 4, &BTreeSet::from([3]));
        assert_eq!(removed, BTreeSet::from([1, 2, 4]));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        // 3 is in use, 5 is newer than what was read, the others are not releases.
        assert_eq!(left, ["3", "3-tree", "5", "7x", "notes"]);
    }
}
