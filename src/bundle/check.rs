//! Walking a bundle's entries: every path must stay inside the tree, links must point
//! inside it, only files, directories and links are allowed, and sizes are bounded.
//! The same rules guard the upload (`check_archive`) and the unpack (`unpack`).

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Bounds on what a bundle may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most entries.
    pub max_entries: u64,
    /// Most bytes once unpacked.
    pub max_unpacked_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 100_000,
            max_unpacked_bytes: 4 << 30,
        }
    }
}

/// What a checked bundle holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Entries in the archive.
    pub entries: u64,
    /// Bytes of file content.
    pub unpacked_bytes: u64,
}

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not zstd-compressed tar, or truncated.
    #[error("the bundle is not a readable tar.zst archive: {0}")]
    Unreadable(std::io::Error),
    /// An entry's path leaves the tree or is absolute.
    #[error("entry {path:?} {problem}")]
    UnsafePath {
        /// The entry's path as stored.
        path: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A link points outside the tree.
    #[error("link {path:?} points outside the bundle ({target:?})")]
    LinkEscapes {
        /// The link.
        path: String,
        /// Where it points.
        target: String,
    },
    /// A device, FIFO or other special file.
    #[error("entry {path:?} is a {kind}; bundles hold only files, directories and links")]
    SpecialFile {
        /// The entry.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// Too many entries or bytes.
    #[error("the bundle unpacks to more than {limit} {what}")]
    TooLarge {
        /// `entries` or `bytes`.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// Writing the unpacked tree failed.
    #[error("could not unpack into {}: {source}", path.display())]
    Write {
        /// Where.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Checks every entry of a tar.zst stream without writing anything.
pub fn check_archive(reader: impl Read, limits: Limits) -> Result<Summary, BundleError> {
    walk(reader, limits, |_, _| Ok(()))
}

/// Whether a tar.zst stream holds a regular file at `name`, relative to its root.
pub fn holds_file(reader: impl Read, name: &str, limits: Limits) -> Result<bool, BundleError> {
    let mut found = false;
    walk(reader, limits, |relative, entry| {
        found |= relative == Path::new(name) && entry.header().entry_type().is_file();
        Ok(())
    })?;
    Ok(found)
}

/// Unpacks a checked tar.zst stream into `dest` (which must not exist yet).
pub fn unpack(reader: impl Read, dest: &Path, limits: Limits) -> Result<Summary, BundleError> {
    let write = |path: &Path, source| BundleError::Write {
        path: path.to_path_buf(),
        source,
    };
    fs::create_dir_all(dest).map_err(|e| write(dest, e))?;
    walk(reader, limits, |relative, entry| {
        let target = dest.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| write(parent, e))?;
        }
        // `unpack` (not `unpack_in`): the path was already proven to stay inside `dest`.
        entry
            .unpack(&target)
            .map_err(|e| write(&target, unpack_cause(e)))?;
        Ok(())
    })
}

/// tar wraps why an entry could not be written in an error whose message names only the
/// paths; the cause (`No space left on device`) is what says what to do.
fn unpack_cause(error: std::io::Error) -> std::io::Error {
    use std::error::Error as _;
    let mut cause: Option<&std::io::Error> = None;
    let mut next = error.source();
    while let Some(source) = next {
        if let Some(io) = source.downcast_ref::<std::io::Error>() {
            cause = Some(io);
        }
        next = source.source();
    }
    match cause {
        Some(cause) => std::io::Error::new(cause.kind(), cause.to_string()),
        None => error,
    }
}

/// An entry of a bundle being read.
type Entry<'a, R> = tar::Entry<'a, zstd::Decoder<'static, std::io::BufReader<R>>>;

fn walk<R: Read>(
    reader: R,
    limits: Limits,
    mut on_entry: impl FnMut(&Path, &mut Entry<'_, R>) -> Result<(), BundleError>,
) -> Result<Summary, BundleError> {
    let decoder = zstd::Decoder::new(reader).map_err(BundleError::Unreadable)?;
    let mut archive = tar::Archive::new(decoder);
    let mut summary = Summary {
        entries: 0,
        unpacked_bytes: 0,
    };
    for entry in archive.entries().map_err(BundleError::Unreadable)? {
        let mut entry = entry.map_err(BundleError::Unreadable)?;
        summary.entries += 1;
        if summary.entries > limits.max_entries {
            return Err(BundleError::TooLarge {
                what: "entries",
                limit: limits.max_entries,
            });
        }
        let raw = entry.path_bytes();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let relative = safe_relative(&shown)?;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                summary.unpacked_bytes += entry.size();
                if summary.unpacked_bytes > limits.max_unpacked_bytes {
                    return Err(BundleError::TooLarge {
                        what: "bytes",
                        limit: limits.max_unpacked_bytes,
                    });
                }
            }
            tar::EntryType::Directory => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                // A symlink resolves from its own directory; a hard link from the root.
                let base = if kind == tar::EntryType::Symlink {
                    relative.parent().map(Path::to_path_buf).unwrap_or_default()
                } else {
                    PathBuf::new()
                };
                if !stays_inside(&base, &target) {
                    return Err(BundleError::LinkEscapes {
                        path: shown,
                        target,
                    });
                }
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => continue,
            other => {
                let kind = match other {
                    tar::EntryType::Char => "character device",
                    tar::EntryType::Block => "block device",
                    tar::EntryType::Fifo => "FIFO",
                    _ => "special file",
                };
                return Err(BundleError::SpecialFile { path: shown, kind });
            }
        }
        if relative.as_os_str().is_empty() {
            continue; // `./` itself
        }
        on_entry(&relative, &mut entry)?;
    }
    Ok(summary)
}

/// The entry's path as a relative path inside the tree, or why it is not one.
fn safe_relative(path: &str) -> Result<PathBuf, BundleError> {
    let unsafe_path = |problem| BundleError::UnsafePath {
        path: path.to_string(),
        problem,
    };
    if path.contains('\0') {
        return Err(unsafe_path("contains a NUL byte"));
    }
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path("climbs out with `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(unsafe_path("is absolute")),
        }
    }
    Ok(out)
}

/// Whether `target`, resolved from `base` (a directory inside the tree), stays inside.
pub(super) fn stays_inside(base: &Path, target: &str) -> bool {
    if target.is_empty() || Path::new(target).is_absolute() {
        return false;
    }
    let mut depth = base.components().count() as i64;
    for component in Path::new(target).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_normalized_and_escapes_refused() {
        assert_eq!(
            safe_relative("./app/main.py").unwrap(),
            PathBuf::from("app/main.py")
        );
        assert!(matches!(
            safe_relative("../etc/passwd"),
            Err(BundleError::UnsafePath {
                problem: "climbs out with `..`",
                ..
            })
        ));
        assert!(matches!(
            safe_relative("a/../../b"),
            Err(BundleError::UnsafePath { .. })
        ));
        assert!(matches!(
            safe_relative("/etc/passwd"),
            Err(BundleError::UnsafePath {
                problem: "is absolute",
                ..
            })
        ));
    }

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        zstd::encode_all(builder.into_inner().unwrap().as_slice(), 1).unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    }

    #[test]
    fn unpack_writes_the_tree_with_modes_and_links() {
        use std::os::unix::fs::PermissionsExt;
        let bytes = archive(|b| {
            file(b, "bin/run.sh", b"#!/bin/sh\necho hi\n");
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_cksum();
            b.append_link(&mut h, "run", "bin/run.sh").unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("release");
        let summary = unpack(bytes.as_slice(), &dest, Limits::default()).unwrap();
        assert_eq!(summary.entries, 2);
        assert_eq!(
            fs::read_to_string(dest.join("bin/run.sh")).unwrap(),
            "#!/bin/sh\necho hi\n"
        );
        assert_eq!(
            fs::metadata(dest.join("bin/run.sh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        assert_eq!(
            fs::read_link(dest.join("run")).unwrap(),
            PathBuf::from("bin/run.sh")
        );
    }

    #[test]
    fn limits_bound_entries_and_bytes() {
        let bytes = archive(|b| {
            file(b, "a", b"12345");
            file(b, "b", b"67890");
        });
        let few = Limits {
            max_entries: 1,
            ..Limits::default()
        };
        assert!(matches!(
            check_archive(bytes.as_slice(), few),
            Err(BundleError::TooLarge {
                what: "entries",
                ..
            })
        ));
        let small = Limits {
            max_unpacked_bytes: 8,
            ..Limits::default()
        };
        assert!(matches!(
            check_archive(bytes.as_slice(), small),
            Err(BundleError::TooLarge { what: "bytes", .. })
        ));
        assert_eq!(
            check_archive(bytes.as_slice(), Limits::default())
                .unwrap()
                .unpacked_bytes,
            10
        );
    }

    #[test]
    fn an_entry_that_cannot_be_written_says_why() {
        // `a/b` is a directory by the time the file of that name comes.
        let bytes = archive(|b| {
            file(b, "a/b/c", b"x");
            file(b, "a/b", b"y");
        });
        let dir = tempfile::tempdir().unwrap();
        let error = unpack(
            bytes.as_slice(),
            &dir.path().join("release"),
            Limits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("/release/a/b: "), "{error}");
        assert!(error.contains("os error"), "the cause is missing: {error}");
    }

    #[test]
    fn links_must_resolve_inside_the_tree() {
        assert!(stays_inside(Path::new("a/b"), "../c"));
        assert!(stays_inside(Path::new("a"), "../c"));
        assert!(!stays_inside(Path::new("a"), "../../c"));
        assert!(!stays_inside(Path::new(""), "/etc/passwd"));
        assert!(!stays_inside(Path::new(""), ".."));
        assert!(stays_inside(Path::new(""), "./x"));
    }
}
