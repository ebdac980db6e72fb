//! The files of an app's releases on disk: each release's unpacked bundle
//! (`releases/APP/N`) and Dockerfile working tree (`N-tree`). Those that nothing can use
//! any more are removed, so a host that deploys every day does not fill its disk with
//! copies of old releases (and of what their `[build] command` installed).
//!
//! A release whose bundle, `[build]` and `[env]` are those of a complete release whose
//! files are still here (a rollback to the one before, a secrets change, a config-only
//! deploy) runs from that release's directory instead of unpacking and building again:
//! it is quick and needs no package registry. Built files cannot be copied or renamed
//! (a virtualenv holds its absolute path), so the reused directory stays in use as long
//! as a release running from it is. A rollback to a release whose files are gone unpacks
//! its bundle again: bundles stay as long as a release of theirs does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{DeployError, Deployer};
use crate::bundle::Digest;
use crate::config::AppConfig;
use crate::daemon::store::releases;

/// Complete releases before the current one whose files stay, for job runs that started
/// before a deploy switched releases.
const PREVIOUS_RELEASES_KEPT: usize = 1;

impl Deployer {
    /// The directory of release `version`'s files.
    pub(super) fn release_dir(&self, app: &str, version: u64) -> PathBuf {
        self.releases_dir.join(app).join(version.to_string())
    }

    /// The release whose built files a new release of `bundle` with `config` can run from:
    /// the newest complete one built from the same inputs whose files are still on disk.
    /// Called with `files_lock` held.
    pub(super) async fn built_before(
        &self,
        app: &str,
        bundle: &Digest,
        config: &AppConfig,
    ) -> Result<Option<u64>, DeployError> {
        let (a, b) = (app.to_string(), bundle.to_string());
        let candidates = self
            .store
            .run(move |conn, path| releases::built_from(conn, path, &a, &b))
            .await?;
        for candidate in candidates {
            if same_build(&candidate.config, config)
                && tokio::fs::try_exists(self.release_dir(app, candidate.files))
                    .await
                    .unwrap_or(false)
            {
                return Ok(Some(candidate.files));
            }
        }
        Ok(None)
    }

    /// Removes the files of `app`'s releases that neither its current release, the one
    /// before, a release rolling out nor any machine that is not destroyed uses.
    pub async fn remove_unused_release_files(&self, app: &str) {
        // A release starting now may be about to reuse files this would remove.
        let _files = self.files_lock.lock().await;
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

/// Whether what `[build] command` makes from the same bundle is the same for both: it
/// runs with `[env]` and is shaped by `[build]` (its command, Dockerfile, args); secrets,
/// processes, services and the rest of the config do not reach it.
fn same_build(a: &AppConfig, b: &AppConfig) -> bool {
    a.build == b.build && a.env == b.env
}

/// Removes the entries of `dir` (`N`, `N-tree`, `N-stages`) of versions up to `newest`
/// that are not `in_use`; returns the versions removed. Newer entries belong to a release
/// that started after `in_use` was read, and anything else is not ours: both stay.
///
/// An entry is renamed out of the way before it is removed, so one whose removal fails
/// halfway is never taken for a release's files (and reused); the next pass removes it.
fn remove_unused(dir: &Path, newest: u64, in_use: &BTreeSet<u64>) -> BTreeSet<u64> {
    let mut removed = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path: PathBuf = entry.path();
        if name.starts_with(GONE) {
            remove_logged(&path);
            continue;
        }
        let Some(version) = release_version(&name) else {
            continue;
        };
        if version > newest || in_use.contains(&version) {
            continue;
        }
        let gone = dir.join(format!("{GONE}{name}"));
        if let Err(e) = std::fs::rename(&path, &gone) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove old release files");
            continue;
        }
        removed.insert(version);
        remove_logged(&gone);
    }
    removed
}

/// What an entry being removed is renamed to first (`.gone-3-tree`).
const GONE: &str = ".gone-";

fn remove_logged(path: &Path) {
    if let Err(e) = std::fs::remove_dir_all(path) {
        tracing::warn!(path = %path.display(), error = %e, "could not remove old release files");
    }
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
            "1", "1-tree", "2", "3", "3-tree", "4-stages", "5", "notes", "7x", ".gone-6",
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
        // 3 is in use, 5 is newer than what was read, the others are not releases; what a
        // removal left halfway goes.
        assert_eq!(left, ["3", "3-tree", "5", "7x", "notes"]);
    }
}
