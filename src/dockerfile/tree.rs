//! Building a machine's working tree on the host from a Dockerfile's final stage: its
//! copies applied under its `WORKDIR`, the earlier stages it copies from built in a scratch
//! directory beside the tree first, and its `ENV` with paths under `WORKDIR` mapped onto
//! the tree.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use super::syntax::absolute;
use super::{normalize, CopySource, CopyStep, Stage};

/// Why the tree could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A source is missing from the bundle or leaves it.
    #[error(
        "COPY source {0:?} is not in the uploaded app (the app's directory less what \
         .gitignore, .dockerignore and .lakeflyignore leave out; a `!{0}` line in \
         .lakeflyignore takes an ignored file back in)"
    )]
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

/// A built working tree's environment, and what of the Dockerfile it could not apply.
#[derive(Debug, Default)]
pub struct Built {
    /// The final stage's `ENV`, with paths under `WORKDIR` mapped onto the tree.
    pub env: BTreeMap<String, String>,
    /// Its command line, with paths under `WORKDIR` mapped onto the tree (flyctl's Rails
    /// Dockerfile runs `/rails/bin/docker-entrypoint`); `None` without `CMD`/`ENTRYPOINT`.
    pub command: Option<String>,
    /// The `[processes]` commands it was given, by group, as they run in the image: after
    /// its `ENTRYPOINT`, paths mapped the same way.
    pub processes: BTreeMap<String, String>,
    /// The final stage's `WORKDIR`, which the tree stands for.
    workdir: String,
    /// The tree.
    tree: PathBuf,
    /// Copies it could not apply, each with its line and why: to a place outside the final
    /// `WORKDIR` (only a container could hold it, as flyctl's Django Dockerfile copies
    /// `requirements.txt` to `/tmp` for a `RUN` step), or from a stage of files that no
    /// copy of that stage made (its `RUN` steps or its image did).
    pub not_applied: Vec<String>,
}

/// Builds the machine's working tree at `tree` from the build `context` and the final
/// `stage`; `processes` are the app's `[processes]` commands, by group.
pub fn build_tree(
    stage: &Stage,
    context: &Path,
    tree: &Path,
    processes: &BTreeMap<String, String>,
) -> Result<Built, TreeError> {
    remove(tree)?;
    create(tree)?;
    let scratch = tree.with_extension("stages");
    remove(&scratch)?;
    let mut builder = Builder {
        context,
        scratch: &scratch,
        built: HashMap::new(),
        started: 0,
        not_applied: Vec::new(),
    };
    let applied = builder.apply(stage, tree, &stage.workdir);
    // The stages were only a means to the final tree.
    let _ = fs::remove_dir_all(&scratch);
    applied?;
    let map = |word: &str| onto_tree(&stage.workdir, word, tree);
    Ok(Built {
        env: tree_env(stage, tree),
        command: stage.command_line_mapped(&map),
        processes: processes
            .iter()
            .map(|(group, command)| (group.clone(), stage.process_command_mapped(command, &map)))
            .collect(),
        not_applied: builder.not_applied,
        workdir: stage.workdir.clone(),
        tree: tree.to_path_buf(),
    })
}

impl Built {
    /// A command line as it runs on the tree, without the image's `ENTRYPOINT` (a
    /// `console_command`): absolute paths under `WORKDIR` mapped onto the tree.
    pub fn on_tree(&self, command: &str) -> String {
        super::shell_words_mapped(command, &|word| onto_tree(&self.workdir, word, &self.tree))
    }
}

/// Applies stages' copies, building each stage copied from once.
struct Builder<'a> {
    context: &'a Path,
    scratch: &'a Path,
    /// Stages built so far, by name, with the directory that stands for their `/`.
    built: HashMap<String, PathBuf>,
    /// Stages started so far, which names their directories.
    started: usize,
    not_applied: Vec<String>,
}

impl Builder<'_> {
    /// Applies `stage`'s copies into `target`, the directory that stands for the stage's
    /// path `base` (its `WORKDIR` for the final tree, `/` for a stage copied from).
    fn apply(&mut self, stage: &Stage, target: &Path, base: &str) -> Result<(), TreeError> {
        for step in &stage.copies {
            let root = match &step.from {
                CopySource::Context => self.context.to_path_buf(),
                CopySource::Stage { name, stage } => self.stage_root(name, stage)?,
            };
            let mut sources = Vec::new();
            for source in &step.sources {
                let found = expand(&root, source).map_err(io(&root))?;
                if found.is_empty() {
                    match &step.from {
                        CopySource::Context => {
                            return Err(TreeError::MissingSource(source.clone()))
                        }
                        CopySource::Stage { name, .. } => self.not_applied.push(format!(
                            "line {}: COPY --from={name} {source}: no COPY of that stage makes it (its RUN steps or its image do)",
                            step.line
                        )),
                    }
                }
                sources.extend(found);
            }
            if sources.is_empty() {
                continue;
            }
            let dest = absolute(&step.workdir, &step.dest);
            let Some(relative) = inside(base, &dest) else {
                self.not_applied.push(format!(
                    "line {}: COPY to {dest}: outside WORKDIR {base}, where only a container could put it",
                    step.line
                ));
                continue;
            };
            copy_sources(step, &sources, &target.join(relative))?;
        }
        Ok(())
    }

    /// The directory that stands for `/` of a stage copied from, built on first use.
    fn stage_root(&mut self, name: &str, stage: &Stage) -> Result<PathBuf, TreeError> {
        if let Some(root) = self.built.get(name) {
            return Ok(root.clone());
        }
        // Numbered in the order started: a stage that copies from another starts first.
        self.started += 1;
        let root = self.scratch.join(self.started.to_string());
        create(&root)?;
        self.apply(stage, &root, "/")?;
        self.built.insert(name.to_string(), root.clone());
        Ok(root)
    }
}

/// Copies `sources` to `target` as Docker does: a directory's contents, not the directory;
/// a file into `target` when it is a directory (or is written as one), else as `target`.
fn copy_sources(step: &CopyStep, sources: &[PathBuf], target: &Path) -> Result<(), TreeError> {
    let into_dir = step.dest.ends_with('/') || step.dest == "." || sources.len() > 1;
    for src in sources {
        if src.is_dir() {
            copy_dir(src, target).map_err(io(target))?;
        } else {
            let file_target = if into_dir || target.is_dir() {
                target.join(src.file_name().unwrap_or_default())
            } else {
                target.to_path_buf()
            };
            if let Some(parent) = file_target.parent() {
                create(parent)?;
            }
            fs::copy(src, &file_target).map_err(io(&file_target))?;
        }
    }
    Ok(())
}

/// The paths under `root` that `pattern` names (`*`, `?` and `[...]` match within one
/// path segment, as Docker's), sorted; none when nothing matches. A pattern cannot leave
/// `root`: `..` stops at it.
fn expand(root: &Path, pattern: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut found = vec![root.to_path_buf()];
    for segment in normalize(&format!("/{pattern}")).split('/').skip(1) {
        if segment.is_empty() {
            continue;
        }
        let glob = segment.contains(['*', '?', '[']) && globset::Glob::new(segment).is_ok();
        let mut next = Vec::new();
        for dir in found {
            if !glob {
                let path = dir.join(segment);
                if path.exists() {
                    next.push(path);
                }
                continue;
            }
            let matcher = globset::GlobBuilder::new(segment)
                .literal_separator(true)
                .build()
                .map_err(std::io::Error::other)?
                .compile_matcher();
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let entry = entry?;
                if matcher.is_match(entry.file_name()) {
                    next.push(entry.path());
                }
            }
        }
        next.sort();
        found = next;
    }
    Ok(found)
}

/// The stage's `ENV`, with paths under `WORKDIR` mapped onto the tree; in a search path
/// (a name ending in `PATH`: `PATH`, `PYTHONPATH`, `NODE_PATH`...) each entry is.
fn tree_env(stage: &Stage, tree: &Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (key, value) in &stage.env {
        let mapped = if key.ends_with("PATH") {
            value
                .split(':')
                .map(|entry| onto_tree(&stage.workdir, entry, tree))
                .collect::<Vec<_>>()
                .join(":")
        } else {
            onto_tree(&stage.workdir, value, tree)
        };
        env.insert(key.clone(), mapped);
    }
    env
}

/// `value` as a path in the tree when it is an absolute path under `workdir`; with a
/// `WORKDIR` of `/`, only when the tree has its first part (`/usr/bin` stays the host's).
fn onto_tree(workdir: &str, value: &str, tree: &Path) -> String {
    if !value.starts_with('/') {
        return value.to_string();
    }
    let Some(relative) = inside(workdir, value) else {
        return value.to_string();
    };
    if workdir == "/" {
        let first = relative.components().next();
        if !first.is_some_and(|part| tree.join(part).exists()) {
            return value.to_string();
        }
    }
    let shown = tree.to_string_lossy();
    if relative.as_os_str().is_empty() {
        shown.into_owned()
    } else {
        format!("{shown}/{}", relative.display())
    }
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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TreeError {
    let path = path.to_path_buf();
    move |source| TreeError::Io { path, source }
}

fn create(dir: &Path) -> Result<(), TreeError> {
    fs::create_dir_all(dir).map_err(io(dir))
}

fn remove(dir: &Path) -> Result<(), TreeError> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(dir)(e)),
        _ => Ok(()),
    }
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
    use crate::dockerfile::tests::read;

    #[test]
    fn copies_land_under_the_tree_and_env_paths_are_mapped() {
        let context = tempfile::tempdir().unwrap();
        fs::create_dir_all(context.path().join("src/mcli/sub")).unwrap();
        fs::write(context.path().join("src/mcli/main.py"), "x").unwrap();
        fs::write(context.path().join("src/mcli/sub/a.py"), "y").unwrap();
        fs::write(context.path().join("run.py"), "z").unwrap();
        let stage = read("FROM x\nWORKDIR /app\nENV DATA=/app/data OTHER=/etc/x\nCOPY src/mcli ./mcli\nCOPY run.py ./\n").unwrap();
        let out = tempfile::tempdir().unwrap();
        let tree = out.path().join("tree");
        let env = build_tree(&stage, context.path(), &tree, &BTreeMap::new())
            .unwrap()
            .env;
        assert_eq!(fs::read_to_string(tree.join("mcli/main.py")).unwrap(), "x");
        assert_eq!(fs::read_to_string(tree.join("mcli/sub/a.py")).unwrap(), "y");
        assert_eq!(fs::read_to_string(tree.join("run.py")).unwrap(), "z");
        assert_eq!(env["DATA"], format!("{}/data", tree.display()));
        assert_eq!(env["OTHER"], "/etc/x");
    }

    #[test]
    fn copies_outside_workdir_are_named_and_of_missing_files_refused() {
        let context = tempfile::tempdir().unwrap();
        fs::write(context.path().join("a"), "x").unwrap();
        let out = tempfile::tempdir().unwrap();
        // flyctl's Django Dockerfile: requirements.txt to /tmp, for a RUN step.
        let outside =
            read("FROM x\nWORKDIR /code\nCOPY a /tmp/requirements.txt\nCOPY a .\n").unwrap();
        let tree = out.path().join("t");
        let built = build_tree(&outside, context.path(), &tree, &BTreeMap::new()).unwrap();
        assert_eq!(
            built.not_applied,
            ["line 3: COPY to /tmp/requirements.txt: outside WORKDIR /code, where only a container could put it"]
        );
        assert!(tree.join("a").is_file() && !tree.join("tmp").exists());
        let missing = read("FROM x\nWORKDIR /app\nCOPY nope ./\n").unwrap();
        assert!(matches!(
            build_tree(
                &missing,
                context.path(),
                &out.path().join("t"),
                &BTreeMap::new()
            ),
            Err(TreeError::MissingSource(_))
        ));
        let climbing = read("FROM x\nWORKDIR /app\nCOPY ../../etc/passwd ./\n").unwrap();
        assert!(matches!(
            build_tree(
                &climbing,
                context.path(),
                &out.path().join("t"),
                &BTreeMap::new()
            ),
            Err(TreeError::MissingSource(_))
        ));
    }

    #[test]
    fn a_stage_copied_from_is_built_from_its_own_copies() {
        let context = tempfile::tempdir().unwrap();
        for (path, text) in [
            ("package.json", "{}"),
            ("package-lock.json", "{}"),
            ("server.js", "js"),
            // What `[build] command = "npm ci"` left in the app's directory.
            ("node_modules/.bin/serve", "bin"),
        ] {
            let path = context.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        let dockerfile = "FROM node AS base\nWORKDIR /app\nENV PATH=/app/node_modules/.bin:/usr/bin HOME_URL=http://x/app\n\
            FROM base AS build\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\n\
            FROM base\nCOPY --from=build /app /app\nCOPY --from=build /usr/local/bundle /usr/local/bundle\nCMD npm start\n";
        let stage = read(dockerfile).unwrap();
        let out = tempfile::tempdir().unwrap();
        let tree = out.path().join("1-tree");
        let built = build_tree(&stage, context.path(), &tree, &BTreeMap::new()).unwrap();
        assert_eq!(fs::read_to_string(tree.join("server.js")).unwrap(), "js");
        assert_eq!(
            fs::read_to_string(tree.join("node_modules/.bin/serve")).unwrap(),
            "bin"
        );
        assert!(tree.join("package-lock.json").is_file());
        assert_eq!(
            built.env["PATH"],
            format!("{}/node_modules/.bin:/usr/bin", tree.display())
        );
        assert_eq!(built.env["HOME_URL"], "http://x/app");
        assert_eq!(
            built.not_applied,
            ["line 10: COPY --from=build /usr/local/bundle: no COPY of that stage makes it (its RUN steps or its image do)"]
        );
        // Nothing but the tree is left beside it.
        let left: Vec<_> = fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["1-tree"]);
    }

    #[test]
    fn patterns_match_within_a_segment_and_a_root_workdir_keeps_host_paths() {
        let context = tempfile::tempdir().unwrap();
        fs::create_dir_all(context.path().join("conf/sub")).unwrap();
        for path in ["a.txt", "b.txt", "c.md", "conf/x.ini", "conf/sub/y.ini"] {
            fs::write(context.path().join(path), path).unwrap();
        }
        let stage = read("FROM x\nENV PATH=/usr/local/bin:/conf DATA=/data\nCOPY *.txt conf/*.ini /etc-copy/\nCOPY c.[mM]d /conf/\n").unwrap();
        let out = tempfile::tempdir().unwrap();
        let tree = out.path().join("t");
        let built = build_tree(&stage, context.path(), &tree, &BTreeMap::new()).unwrap();
        for path in [
            "etc-copy/a.txt",
            "etc-copy/b.txt",
            "etc-copy/x.ini",
            "conf/c.md",
        ] {
            assert!(tree.join(path).is_file(), "{path}");
        }
        assert!(!tree.join("etc-copy/y.ini").exists(), "`*` crossed a `/`");
        // `/conf` is in the tree; `/usr/local/bin` and `/data` are the host's.
        assert_eq!(
            built.env["PATH"],
            format!("/usr/local/bin:{}/conf", tree.display())
        );
        assert_eq!(built.env["DATA"], "/data");
        let none = read("FROM x\nWORKDIR /app\nCOPY *.none ./\n").unwrap();
        assert!(matches!(
            build_tree(&none, context.path(), &tree, &BTreeMap::new()),
            Err(TreeError::MissingSource(source)) if source == "*.none"
        ));
    }

    #[test]
    fn paths_under_workdir_in_the_command_are_the_tree() {
        let context = tempfile::tempdir().unwrap();
        fs::create_dir_all(context.path().join("bin")).unwrap();
        fs::write(context.path().join("bin/docker-entrypoint"), "#!/bin/sh").unwrap();
        let out = tempfile::tempdir().unwrap();
        let tree = out.path().join("t");
        // As flyctl's Rails Dockerfile ends.
        let rails = read("FROM ruby AS base\nWORKDIR /rails\nFROM base AS build\nCOPY . .\nFROM base\nCOPY --from=build /rails /rails\nENTRYPOINT [\"/rails/bin/docker-entrypoint\"]\nCMD [\"./bin/rails\", \"server\", \"-b\", \"/rails-not\"]\n").unwrap();
        // `[processes]` commands take CMD's place, after the ENTRYPOINT, as on Fly.
        let processes = BTreeMap::from([
            ("web".to_string(), "./bin/rails server".to_string()),
            (
                "worker".to_string(),
                "/rails/bin/jobs --queue a".to_string(),
            ),
        ]);
        let built = build_tree(&rails, context.path(), &tree, &processes).unwrap();
        assert_eq!(
            built.command.as_deref().unwrap(),
            format!(
                "{}/bin/docker-entrypoint ./bin/rails server -b /rails-not",
                tree.display()
            )
        );
        // A console_command runs on the tree too, without the ENTRYPOINT.
        assert_eq!(
            built.on_tree("/rails/bin/rails console"),
            format!("{}/bin/rails console", tree.display())
        );
        let entrypoint = format!("{}/bin/docker-entrypoint", tree.display());
        assert_eq!(
            built.processes,
            BTreeMap::from([
                (
                    "web".to_string(),
                    format!("{entrypoint} ./bin/rails server")
                ),
                (
                    "worker".to_string(),
                    format!("{entrypoint} {}/bin/jobs --queue a", tree.display())
                ),
            ])
        );
        let shell = read(
            "FROM x\nWORKDIR /srv\nCOPY . .\nCMD /srv/bin/docker-entrypoint --log /var/log/x\n",
        )
        .unwrap();
        let built = build_tree(&shell, context.path(), &tree, &BTreeMap::new()).unwrap();
        assert_eq!(
            built.command.unwrap(),
            format!("{}/bin/docker-entrypoint --log /var/log/x", tree.display())
        );
    }

    #[test]
    fn a_stage_copying_from_another_is_built_apart_from_it() {
        let context = tempfile::tempdir().unwrap();
        fs::create_dir_all(context.path().join("node_modules/dep")).unwrap();
        fs::write(context.path().join("node_modules/dep/index.js"), "dep").unwrap();
        fs::write(context.path().join("package.json"), "{}").unwrap();
        fs::write(context.path().join("server.js"), "js").unwrap();
        // As remix-run's blues-stack: deps, then production-deps from deps, then the app.
        let stage = read("FROM node AS base\nFROM base AS deps\nWORKDIR /myapp\nADD package.json ./\nCOPY node_modules /myapp/node_modules\nCOPY server.js deps-only.js\n\
            FROM base AS production-deps\nWORKDIR /myapp\nCOPY --from=deps /myapp/node_modules /myapp/node_modules\nADD package.json ./\n\
            FROM base\nWORKDIR /myapp\nCOPY --from=production-deps /myapp /myapp\nADD server.js .\nCMD [\"node\", \"server.js\"]\n").unwrap();
        let out = tempfile::tempdir().unwrap();
        let tree = out.path().join("t");
        let built = build_tree(&stage, context.path(), &tree, &BTreeMap::new()).unwrap();
        assert!(built.not_applied.is_empty(), "{:?}", built.not_applied);
        assert_eq!(
            fs::read_to_string(tree.join("node_modules/dep/index.js")).unwrap(),
            "dep"
        );
        assert!(tree.join("server.js").is_file() && tree.join("package.json").is_file());
        // What deps holds beside what production-deps took from it stays in deps.
        assert!(!tree.join("deps-only.js").exists());
    }
}
