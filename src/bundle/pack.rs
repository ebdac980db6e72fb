//! Packing an app directory: every file not ignored by `.dockerignore` (read as Docker
//! reads it: at the root, each pattern from the root), `.gitignore` or `.lakeflyignore`
//! (in every directory, as git reads `.gitignore`), as a deterministic tar compressed with
//! zstd. Entries are sorted and carry no times, owners or umask, so the same tree always
//! gives the same digest and an unchanged app uploads nothing.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::dockerignore::DockerIgnore;
use super::Digest;

/// Ignore file read in every directory of the app, besides `.gitignore`.
const LAKEFLY_IGNORE: &str = ".lakeflyignore";
/// The Docker ignore file read at the root when `[build] ignorefile` names none.
pub const DOCKER_IGNORE: &str = ".dockerignore";
/// zstd level: a good ratio at a speed that keeps packing well under a second for most apps.
const LEVEL: i32 = 3;

/// What was packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// SHA-256 of the compressed bytes.
    pub digest: Digest,
    /// Compressed size.
    pub size: u64,
    /// Files, directories and links in the archive.
    pub entries: u64,
    /// Named pipes, sockets and devices found and left out: an archive cannot carry what
    /// they would give (opening a pipe would wait for a writer forever).
    pub left_out: Vec<PathBuf>,
}

/// Why packing failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Walking the tree failed.
    #[error("cannot read the app directory {}: {source}", dir.display())]
    Walk {
        /// The app directory.
        dir: PathBuf,
        /// The cause.
        source: ignore::Error,
    },
    /// A link points out of the app directory (absolute, or up past its root): the
    /// daemon refuses such a bundle, and the release could not follow it anyway.
    #[error("link {} in {} points outside it (to {})", link.display(), dir.display(), target.display())]
    LinkOutside {
        /// The app directory.
        dir: PathBuf,
        /// The link, relative to the app directory.
        link: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// Reading a file or writing the archive failed.
    #[error("cannot pack {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// What of an app directory goes into its bundle besides what no ignore file leaves out.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    /// The Docker ignore file, relative to the directory (`[build] ignorefile`, else
    /// [`DOCKER_IGNORE`]); none there is no error.
    pub docker_ignore: &'a Path,
    /// Files packed even when an ignore file leaves them out, as Docker always sends the
    /// Dockerfile it builds: flyctl's `.dockerignore` for Node apps lists `Dockerfile`.
    pub always: &'a [&'a Path],
}

impl Default for Selection<'_> {
    fn default() -> Self {
        Selection {
            docker_ignore: Path::new(DOCKER_IGNORE),
            always: &[],
        }
    }
}

/// Writes the bundle of `dir` to `out` and returns its digest.
pub fn pack(dir: &Path, selection: Selection<'_>, out: impl Write) -> Result<Packed, PackError> {
    let always = selection.always;
    let Collected {
        mut paths,
        left_out,
    } = collect(dir, selection.docker_ignore)?;
    for file in always {
        use std::path::Component;
        let inside = file
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        let file: PathBuf = file
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect();
        let is_file = fs::symlink_metadata(dir.join(&file)).is_ok_and(|m| m.is_file());
        if inside && is_file && !paths.contains(&file) {
            paths.push(file);
        }
    }
    paths.sort();
    let hashing = HashingWriter {
        inner: out,
        hasher: sha2::Sha256::new(),
        size: 0,
    };
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackError::Io { path, source }
    };
    let encoder = zstd::Encoder::new(hashing, LEVEL).map_err(io_err(dir))?;
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    for relative in &paths {
        let full = dir.join(relative);
        let meta = fs::symlink_metadata(&full).map_err(io_err(&full))?;
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let name = relative.to_string_lossy().replace('\\', "/");
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&full).map_err(io_err(&full))?;
            let base = relative.parent().unwrap_or(Path::new(""));
            if !super::check::stays_inside(base, &target.to_string_lossy()) {
                return Err(PackError::LinkOutside {
                    dir: dir.to_path_buf(),
                    link: relative.clone(),
                    target,
                });
            }
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            tar.append_link(&mut header, &name, &target)
                .map_err(io_err(&full))?;
        } else if meta.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            tar.append_data(&mut header, format!("{name}/"), io::empty())
                .map_err(io_err(&full))?;
        } else if meta.is_file() {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if is_executable(&meta) { 0o755 } else { 0o644 });
            header.set_size(meta.len());
            let file = fs::File::open(&full).map_err(io_err(&full))?;
            tar.append_data(&mut header, &name, file)
                .map_err(io_err(&full))?;
        } else {
            // It was a file, a directory or a link when the walk saw it.
            return Err(PackError::Io {
                path: full,
                source: io::Error::other("it changed into a pipe, socket or device while packing"),
            });
        }
    }
    let encoder = tar.into_inner().map_err(io_err(dir))?;
    let mut hashing = encoder.finish().map_err(io_err(dir))?;
    hashing.inner.flush().map_err(io_err(dir))?;
    Ok(Packed {
        digest: Digest::from_hasher(hashing.hasher),
        size: hashing.size,
        entries: paths.len() as u64,
        left_out,
    })
}

/// What the walk of an app directory found, relative to it, sorted.
struct Collected {
    /// Every path to pack.
    paths: Vec<PathBuf>,
    /// Named pipes, sockets and devices no ignore file left out, which are not packed.
    left_out: Vec<PathBuf>,
}

/// Walks `dir` as the ignore files say.
fn collect(dir: &Path, docker_ignore: &Path) -> Result<Collected, PackError> {
    let docker =
        DockerIgnore::load(dir, &dir.join(docker_ignore)).map_err(|source| PackError::Walk {
            dir: dir.to_path_buf(),
            source,
        })?;
    let walk_filter = docker.clone();
    let mut builder = ignore::WalkBuilder::new(dir);
    builder
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .parents(false)
        .follow_links(false)
        .filter_entry(move |e| {
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            e.file_name() != ".git" && !(is_dir && walk_filter.prunes(e.path()))
        });
    builder.add_custom_ignore_filename(LAKEFLY_IGNORE);
    let (mut paths, mut left_out) = (Vec::new(), Vec::new());
    for entry in builder.build() {
        let entry = entry.map_err(|source| PackError::Walk {
            dir: dir.to_path_buf(),
            source,
        })?;
        let Ok(relative) = entry.path().strip_prefix(dir) else {
            continue;
        };
        let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
        if relative.as_os_str().is_empty() || docker.leaves_out(entry.path(), is_dir) {
            continue;
        }
        let special = entry
            .file_type()
            .is_some_and(|t| !(t.is_file() || t.is_dir() || t.is_symlink()));
        if special {
            left_out.push(relative.to_path_buf());
        } else {
            paths.push(relative.to_path_buf());
        }
    }
    paths.sort();
    left_out.sort();
    Ok(Collected { paths, left_out })
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &fs::Metadata) -> bool {
    false
}

/// Hashes and counts what passes through.
struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::bundle::{check_archive, unpack, Limits};

    fn tree(root: &Path) {
        fs::create_dir_all(root.join("src/lib")).unwrap();
        fs::create_dir_all(root.join("node_modules/x")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::write(root.join("app.py"), "print('hi')\n").unwrap();
        fs::write(root.join("run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(root.join("src/lib/mod.py"), "x = 1\n").unwrap();
        fs::write(root.join("node_modules/x/index.js"), "").unwrap();
        fs::write(root.join(".git/HEAD"), "ref").unwrap();
        fs::write(root.join("secret.env"), "TOKEN=1").unwrap();
        fs::write(root.join("debug.log"), "noise").unwrap();
        fs::write(root.join(".gitignore"), "*.log\n").unwrap();
        fs::write(root.join(".dockerignore"), "node_modules\n").unwrap();
        fs::write(root.join(".lakeflyignore"), "secret.env\n").unwrap();
        std::os::unix::fs::symlink("app.py", root.join("main.py")).unwrap();
    }

    fn names(bytes: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(zstd::Decoder::new(bytes).unwrap());
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_same_tree_gives_the_same_digest_whatever_its_times_and_modes() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        tree(a.path());
        std::thread::sleep(std::time::Duration::from_millis(20));
        tree(b.path());
        // Differences that must not matter: group/other bits, and file times.
        fs::set_permissions(b.path().join("app.py"), fs::Permissions::from_mode(0o600)).unwrap();
        let mut bytes_a = Vec::new();
        let mut bytes_b = Vec::new();
        let pa = pack(a.path(), Selection::default(), &mut bytes_a).unwrap();
        let pb = pack(b.path(), Selection::default(), &mut bytes_b).unwrap();
        assert_eq!(pa.digest, pb.digest);
        assert_eq!(bytes_a, bytes_b);
        assert_eq!(pa.size, bytes_a.len() as u64);
        // A content change changes the digest.
        fs::write(b.path().join("app.py"), "print('bye')\n").unwrap();
        assert_ne!(
            pack(b.path(), Selection::default(), io::sink())
                .unwrap()
                .digest,
            pa.digest
        );
    }

    #[test]
    fn ignore_files_and_git_are_honoured() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let mut bytes = Vec::new();
        pack(dir.path(), Selection::default(), &mut bytes).unwrap();
        assert_eq!(
            names(&bytes),
            [
                ".dockerignore",
                ".gitignore",
                ".lakeflyignore",
                "app.py",
                "main.py",
                "run.sh",
                "src/",
                "src/lib/",
                "src/lib/mod.py"
            ]
        );
    }

    #[test]
    fn dockerignore_patterns_are_read_from_the_root_as_docker_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in [
            "dist/a.js",
            "src/dist/b.js",
            "a.log",
            "keep.log",
            "src/c.log",
            "src/x.tmp",
            "tmp/t",
            "src/tmp/t2",
            "docs/README.md",
            "docs/internal.md",
        ] {
            fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
            fs::write(root.join(file), "").unwrap();
        }
        fs::write(
            root.join(".dockerignore"),
            "# build output\ndist\n*.log\n!keep.log\n**/*.tmp\n/tmp/\n.dockerignore\ndocs\n!docs/README.md\n",
        )
        .unwrap();
        // Docker reads only the root's.
        fs::write(root.join("src/.dockerignore"), "dist\n").unwrap();
        let files = |selection: Selection<'_>| {
            let mut bytes = Vec::new();
            pack(root, selection, &mut bytes).unwrap();
            names(&bytes)
                .into_iter()
                .filter(|n| !n.ends_with('/'))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            files(Selection::default()),
            [
                // Taken back from a directory left out, as Docker does.
                "docs/README.md",
                "keep.log",
                "src/.dockerignore",
                "src/c.log",
                "src/dist/b.js",
                "src/tmp/t2"
            ]
        );
        // `[build] ignorefile` names another file, read instead.
        fs::write(root.join("deploy.ignore"), "src\ntmp\n").unwrap();
        let other = Selection {
            docker_ignore: Path::new("deploy.ignore"),
            ..Selection::default()
        };
        assert_eq!(
            files(other),
            [
                ".dockerignore",
                "a.log",
                "deploy.ignore",
                "dist/a.js",
                "docs/README.md",
                "docs/internal.md",
                "keep.log"
            ]
        );
    }

    #[test]
    fn a_lakeflyignore_takes_back_what_gitignore_leaves_out() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("dist")).unwrap();
        fs::write(dir.path().join("dist/app.js"), "").unwrap();
        fs::write(dir.path().join("debug.log"), "").unwrap();
        fs::write(dir.path().join(".gitignore"), "dist/\n*.log\n").unwrap();
        fs::write(dir.path().join(".lakeflyignore"), "!dist/\n").unwrap();
        let mut bytes = Vec::new();
        pack(dir.path(), Selection::default(), &mut bytes).unwrap();
        assert_eq!(
            names(&bytes),
            [".gitignore", ".lakeflyignore", "dist/", "dist/app.js"]
        );
    }

    #[test]
    fn a_link_out_of_the_directory_is_refused_naming_it_before_anything_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        fs::create_dir_all(app.join("config")).unwrap();
        fs::write(app.join("app.py"), "").unwrap();
        std::os::unix::fs::symlink("../app.py", app.join("config/inside")).unwrap();
        let mut bytes = Vec::new();
        pack(&app, Selection::default(), &mut bytes).unwrap();
        for target in ["../../shared/.env", "/etc/myapp/.env"] {
            let link = app.join("config/.env");
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(target, &link).unwrap();
            match pack(&app, Selection::default(), io::sink()) {
                Err(PackError::LinkOutside {
                    link, target: to, ..
                }) => {
                    assert_eq!(link, Path::new("config/.env"));
                    assert_eq!(to, Path::new(target));
                }
                other => panic!("{target}: {other:?}"),
            }
        }
    }

    #[test]
    fn pipes_and_sockets_are_left_out_and_named_instead_of_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("app.py"), "").unwrap();
        fs::create_dir(dir.path().join("run")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join("run/pipe"))
            .status()
            .unwrap();
        assert!(made.success());
        let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("app.sock")).unwrap();
        let mut bytes = Vec::new();
        // Opening the pipe would wait for a writer: this returning at all is the point.
        let packed = pack(dir.path(), Selection::default(), &mut bytes).unwrap();
        assert_eq!(names(&bytes), ["app.py", "run/"]);
        assert_eq!(packed.entries, 2);
        assert_eq!(
            packed.left_out,
            [PathBuf::from("app.sock"), PathBuf::from("run/pipe")]
        );
    }

    #[test]
    fn a_file_always_packed_is_packed_when_ignored_but_never_from_outside() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("Dockerfile"), "FROM x\n").unwrap();
        fs::write(dir.path().join("app.py"), "").unwrap();
        fs::write(
            dir.path().join(".dockerignore"),
            "Dockerfile\n.dockerignore\n",
        )
        .unwrap();
        let mut bytes = Vec::new();
        let always = [
            Path::new("./Dockerfile"),
            Path::new("../outside"),
            Path::new("missing"),
        ];
        let selection = Selection {
            always: &always,
            ..Selection::default()
        };
        pack(dir.path(), selection, &mut bytes).unwrap();
        assert_eq!(names(&bytes), ["Dockerfile", "app.py"]);
    }

    #[test]
    fn a_packed_bundle_passes_the_daemons_checks_and_unpacks_with_modes_and_links() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let mut bytes = Vec::new();
        let packed = pack(dir.path(), Selection::default(), &mut bytes).unwrap();
        assert_eq!(
            check_archive(bytes.as_slice(), Limits::default())
                .unwrap()
                .entries,
            packed.entries
        );
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("release");
        unpack(bytes.as_slice(), &dest, Limits::default()).unwrap();
        assert_eq!(
            fs::metadata(dest.join("run.sh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        assert_eq!(
            fs::metadata(dest.join("app.py"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o644
        );
        assert_eq!(
            fs::read_link(dest.join("main.py")).unwrap(),
            PathBuf::from("app.py")
        );
        assert_eq!(
            fs::read_to_string(dest.join("src/lib/mod.py")).unwrap(),
            "x = 1\n"
        );
    }
}
