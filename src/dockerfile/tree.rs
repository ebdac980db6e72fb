//! Applying a final stage's local copies into a working tree on the host.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{normalize, FinalStage};

/// Why the tree could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A copy leaves `WORKDIR`, which only a container could hold.
    #[error(
        "COPY to {dest} is outside WORKDIR {workdir}, which cannot be applied without a container"
    )]
    OutsideWorkdir {
        /// The destination.
        dest: String,
        /// The stage's WORKDIR.
        workdir: String,
    },
    /// A source is missing from the bundle or leaves it.
    #[error("COPY source {0:?} is not in the app directory")]
    MissingSource(String),
    /// Disk trouble.
    #[error("cannot build the working tree at {}: {source}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Builds the machine's working tree at `tree` from the build `context`, and returns the
/// stage's environment with paths under `WORKDIR` mapped onto the tree.
pub fn build_tree(
    stage: &FinalStage,
    context: &Path,
    tree: &Path,
) -> Result<BTreeMap<String, String>, TreeError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TreeError::Io { path, source }
    };
    if tree.exists() {
        fs::remove_dir_all(tree).map_err(io(tree))?;
    }
    fs::create_dir_all(tree).map_err(io(tree))?;
    let workdir = &stage.workdir;
    for step in &stage.copies {
        let dest = if step.dest.starts_with('/') {
            normalize(&step.dest)
        } else {
            normalize(&format!("{}/{}", step.workdir, step.dest))
        };
        let relative = inside(workdir, &dest).ok_or_else(|| TreeError::OutsideWorkdir {
            dest: step.dest.clone(),
            workdir: workdir.clone(),
        })?;
        let into_dir = step.dest.ends_with('/') || step.dest == "." || step.sources.len() > 1;
        for source in &step.sources {
            let src_rel = normalize(&format!("/{source}"));
            let src = context.join(src_rel.trim_start_matches('/'));
            if !src.exists() {
                return Err(TreeError::MissingSource(source.clone()));
            }
            let target = tree.join(&relative);
            if src.is_dir() {
                // Docker copies a directory's contents, not the directory itself.
                copy_dir(&src, &target).map_err(io(&target))?;
            } else {
                let file_target = if into_dir || target.is_dir() {
                    target.join(src.file_name().unwrap_or_default())
                } else {
                    target
                };
                if let Some(parent) = file_target.parent() {
                    fs::create_dir_all(parent).map_err(io(parent))?;
                }
                fs::copy(&src, &file_target).map_err(io(&file_target))?;
            }
        }
    }
    let shown = tree.to_string_lossy();
    let mut env = BTreeMap::new();
    for (key, value) in &stage.env {
        let mapped = match inside(workdir, value) {
            Some(rel) if value.starts_with('/') => {
                if rel.as_os_str().is_empty() {
                    shown.to_string()
                } else {
                    format!("{shown}/{}", rel.display())
                }
            }
            _ => value.clone(),
        };
        env.insert(key.clone(), mapped);
    }
    Ok(env)
}

/// `path` relative to `dir` when it is `dir` or under it.
fn inside(dir: &str, path: &str) -> Option<PathBuf> {
    if dir == "/" {
        return Some(PathBuf::from(path.trim_start_matches('/')));
    }
    if path == dir {
        return Some(PathBuf::new());
    }
    path.strip_prefix(dir)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(PathBuf::from)
}

fn copy_dir(src: &Path, dest: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dest)?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let to = dest.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &to)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(entry.path())?;
            let _ = fs::remove_file(&to);
            std::os::unix::fs::symlink(target, &to)?;
        } else {
            fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;

    #[test]
    fn copies_land_under_the_tree_and_env_paths_are_mapped() {
        let context = tempfile::tempdir().unwrap();
        fs::create_dir_all(context.path().join("src/mcli/sub")).unwrap();
        fs::write(context.path().join("src/mcli/main.py"), "x").unwrap();
        fs::write(context.path().join("src/mcli/sub/a.py"), "y").unwrap();
        fs::write(context.path().join("run.py"), "z").unwrap();
        let stage = parse("FROM x\nWORKDIR /app\nENV DATA=/app/data OTHER=/etc/x\nCOPY src/mcli ./mcli\nCOPY run.py ./\n").unwrap();
        let out = tempfile::tempdir().unwrap();
        let tree = out.path().join("tree");
        let env = build_tree(&stage, context.path(), &tree).unwrap();
        assert_eq!(fs::read_to_string(tree.join("mcli/main.py")).unwrap(), "x");
        assert_eq!(fs::read_to_string(tree.join("mcli/sub/a.py")).unwrap(), "y");
        assert_eq!(fs::read_to_string(tree.join("run.py")).unwrap(), "z");
        assert_eq!(env["DATA"], format!("{}/data", tree.display()));
        assert_eq!(env["OTHER"], "/etc/x");
    }

    #[test]
    fn copies_outside_workdir_or_of_missing_files_are_refused() {
        let context = tempfile::tempdir().unwrap();
        fs::write(context.path().join("a"), "x").unwrap();
        let out = tempfile::tempdir().unwrap();
        let outside = parse("FROM x\nWORKDIR /app\nCOPY a /etc/a\n").unwrap();
        assert!(matches!(
            build_tree(&outside, context.path(), &out.path().join("t")),
            Err(TreeError::OutsideWorkdir { .. })
        ));
        let missing = parse("FROM x\nWORKDIR /app\nCOPY nope ./\n").unwrap();
        assert!(matches!(
            build_tree(&missing, context.path(), &out.path().join("t")),
            Err(TreeError::MissingSource(_))
        ));
        let climbing = parse("FROM x\nWORKDIR /app\nCOPY ../../etc/passwd ./\n").unwrap();
        assert!(matches!(
            build_tree(&climbing, context.path(), &out.path().join("t")),
            Err(TreeError::MissingSource(_))
        ));
    }
}
