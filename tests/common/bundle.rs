//! Building bundles for tests, including hostile ones a well-behaved packer never makes.

use sha2::Digest as _;

/// One archive entry.
pub enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    CharDevice(&'a str),
}

/// A tar.zst of `entries`, with names written raw (no path sanitizing).
pub fn tar_zst(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (name, data, kind, link): (&str, &[u8], tar::EntryType, Option<&str>) = match entry {
            Entry::File(n, d) => (n, d, tar::EntryType::Regular, None),
            Entry::Dir(n) => (n, b"", tar::EntryType::Directory, None),
            Entry::Symlink(n, t) => (n, b"", tar::EntryType::Symlink, Some(t)),
            Entry::HardLink(n, t) => (n, b"", tar::EntryType::Link, Some(t)),
            Entry::CharDevice(n) => (n, b"", tar::EntryType::Char, None),
        };
        let gnu = header.as_gnu_mut().expect("gnu header");
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_mtime(0);
        header.set_cksum();
        builder.append(&header, data).expect("append");
    }
    let tar = builder.into_inner().expect("finish tar");
    zstd::encode_all(tar.as_slice(), 3).expect("compress")
}

/// Lowercase hex SHA-256.
pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(bytes))
}
