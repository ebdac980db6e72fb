//! A release's own tool directories on its search path, as Heroku's buildpacks put them: a
//! virtualenv that `[build] command` made at `.venv` first (so `python3` and `gunicorn` are
//! the release's, installed apart from the host's Python and from other releases, and a
//! rollback runs with the dependencies it was built with), `node_modules/.bin` last (so a
//! Procfile's `next start` finds the app's own `next`).

use std::collections::BTreeMap;
use std::path::Path;

/// Where `[build] command` is expected to make a Python virtualenv.
pub(crate) const VENV: &str = ".venv";

/// Puts the tool directories `dir` holds on `env`'s `PATH` (the Dockerfile's, else the
/// daemon's), and names the virtualenv in `VIRTUAL_ENV`. `env` is left alone when `dir`
/// holds neither.
pub(super) fn add_to_search_path(dir: &Path, env: &mut BTreeMap<String, String>) {
    let venv = dir.join(VENV);
    // `pyvenv.cfg` tells a virtualenv from a directory that happens to have the name.
    let venv = venv.join("pyvenv.cfg").is_file().then_some(venv);
    let node = dir.join("node_modules").join(".bin");
    let node = node.is_dir().then_some(node);
    if venv.is_none() && node.is_none() {
        return;
    }
    let base = env
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_else(|| crate::daemon::runtime::process::DEFAULT_PATH.to_string());
    let mut entries = Vec::new();
    if let Some(venv) = &venv {
        entries.push(venv.join("bin").to_string_lossy().into_owned());
        env.insert("VIRTUAL_ENV".into(), venv.to_string_lossy().into_owned());
    }
    entries.push(base);
    if let Some(node) = node {
        entries.push(node.to_string_lossy().into_owned());
    }
    env.insert("PATH".into(), entries.join(":"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_virtualenv_comes_first_and_node_modules_last() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".venv/bin")).unwrap();
        std::fs::write(dir.path().join(".venv/pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        std::fs::create_dir_all(dir.path().join("node_modules/.bin")).unwrap();
        // The Dockerfile's PATH is the one extended.
        let mut env = BTreeMap::from([("PATH".to_string(), "/opt/bin:/usr/bin".to_string())]);
        add_to_search_path(dir.path(), &mut env);
        let d = dir.path().display();
        assert_eq!(
            env["PATH"],
            format!("{d}/.venv/bin:/opt/bin:/usr/bin:{d}/node_modules/.bin")
        );
        assert_eq!(env["VIRTUAL_ENV"], format!("{d}/.venv"));
    }

    #[test]
    fn a_directory_named_venv_that_is_not_one_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".venv/bin")).unwrap();
        let mut env = BTreeMap::new();
        add_to_search_path(dir.path(), &mut env);
        assert!(env.is_empty(), "{env:?}");
    }

    #[test]
    fn without_a_dockerfile_path_the_daemons_is_extended() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("node_modules/.bin")).unwrap();
        let mut env = BTreeMap::new();
        add_to_search_path(dir.path(), &mut env);
        let host = std::env::var("PATH").unwrap();
        assert_eq!(
            env["PATH"],
            format!("{host}:{}/node_modules/.bin", dir.path().display())
        );
        assert!(!env.contains_key("VIRTUAL_ENV"));
    }
}
