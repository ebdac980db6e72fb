//! A `.dockerignore` read as Docker reads it: only the file at the build context's root,
//! each pattern from the root (`dist` is `/dist`, not every `dist` below as in a
//! `.gitignore`), leading and trailing slashes dropped, `**` for any number of
//! directories, and `!` re-including, even inside a directory left out (`docs` then
//! `!docs/README.md`).

use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// The patterns of one Docker ignore file.
#[derive(Debug, Clone)]
pub struct DockerIgnore {
    root: std::path::PathBuf,
    matcher: Gitignore,
    /// The `!` patterns, without the `!` (relative to the root).
    negations: Vec<String>,
}

impl DockerIgnore {
    /// Reads `file` (a missing one has no patterns); patterns are from `root`, wherever
    /// the file is (`[build] ignorefile`).
    pub fn load(root: &Path, file: &Path) -> Result<Self, ignore::Error> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(ignore::Error::Io(e)),
        };
        let mut builder = GitignoreBuilder::new(root);
        let mut negations = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negation, pattern) = match line.strip_prefix('!') {
                Some(rest) => ("!", rest.trim()),
                None => ("", line),
            };
            let pattern = pattern.trim_start_matches("./").trim_matches('/');
            if pattern.is_empty() {
                continue;
            }
            if !negation.is_empty() {
                negations.push(pattern.to_string());
            }
            builder.add_line(Some(file.to_path_buf()), &format!("{negation}/{pattern}"))?;
        }
        Ok(DockerIgnore {
            root: root.to_path_buf(),
            matcher: builder.build()?,
            negations,
        })
    }

    /// Whether `path` (under the root) is left out: matched itself, or inside a directory
    /// that is, unless a `!` pattern takes it back.
    pub fn leaves_out(&self, path: &Path, is_dir: bool) -> bool {
        path != self.root
            && self
                .matcher
                .matched_path_or_any_parents(path, is_dir)
                .is_ignore()
    }

    /// Whether the walk need not go into directory `path`: it is left out and no `!`
    /// pattern could take back anything inside it.
    pub fn prunes(&self, path: &Path) -> bool {
        if !self.leaves_out(path, true) {
            return false;
        }
        let Ok(relative) = path.strip_prefix(&self.root) else {
            return false;
        };
        let inside = format!("{}/", relative.to_string_lossy());
        !self.negations.iter().any(|pattern| {
            // A pattern with a wildcard before its last part could reach anywhere.
            let mut parts: Vec<&str> = pattern.split('/').collect();
            parts.pop();
            pattern.starts_with(&inside) || parts.iter().any(|p| p.contains(['*', '?', '[']))
        })
    }
}
