//! The app's `.lakeflyignore`, which `launch` gives the patterns of what must stay out of
//! the bundle ([`super::Plan::left_out`]), as `fly launch` writes a `.dockerignore`.

use std::path::Path;

use super::detect::read_optional;
use crate::error::Error;

/// The file's name, in the app directory.
const FILE: &str = ".lakeflyignore";

/// Adds to `dir`'s `.lakeflyignore` each of `patterns` it lacks, creating the file if need
/// be; lines already there stay as they are. Returns the patterns added.
pub fn add<'a>(dir: &Path, patterns: &[&'a str]) -> Result<Vec<&'a str>, Error> {
    let path = dir.join(FILE);
    let text = read_optional(&path)?;
    let present: Vec<&str> = text
        .as_deref()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .collect();
    let mut added: Vec<&str> = Vec::new();
    for &pattern in patterns {
        if !present.contains(&pattern) && !added.contains(&pattern) {
            added.push(pattern);
        }
    }
    if added.is_empty() {
        return Ok(added);
    }
    let mut new = text.unwrap_or_default();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str("# Added by `lakefly launch`: the build makes these in the release, or they hold secrets.\n");
    for pattern in &added {
        new.push_str(pattern);
        new.push('\n');
    }
    crate::atomic_write::write(&path, new.as_bytes(), 0o644)?;
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_file_then_adds_only_what_it_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        assert_eq!(
            add(dir.path(), &["node_modules/", "/.venv/"]).unwrap(),
            ["node_modules/", "/.venv/"]
        );
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(first.ends_with("node_modules/\n/.venv/\n"), "{first}");
        // Nothing new: the file is left as it is.
        assert!(add(dir.path(), &["/.venv/"]).unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);

        std::fs::write(&path, "*.log\n  /target/  \nsecret.txt").unwrap();
        assert_eq!(
            add(dir.path(), &["/target/", "/target/", "/bin/server"]).unwrap(),
            ["/bin/server"]
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("*.log\n  /target/  \nsecret.txt\n# "),
            "{text}"
        );
        assert!(text.ends_with("\n/bin/server\n"), "{text}");
    }
}
