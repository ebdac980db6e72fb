//! Named remotes in `~/.config/lakefly/config.toml` (`$XDG_CONFIG_HOME` honoured):
//!
//! ```toml
//! current = "prod"          # absent: the local daemon
//! [remotes.prod]
//! url = "https://host:4280"
//! ```
//!
//! Edited with toml_edit, so comments and layout a user wrote stay as they were. `local`
//! is the embedded local daemon and is never stored.

use std::path::{Path, PathBuf};

use toml_edit::{value, DocumentMut, Item, Table};

/// The name of the local daemon, which every configuration has.
pub const LOCAL: &str = "local";

/// Why the remotes file or a change to it cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// No such remote.
    #[error("no remote named `{name}` (known: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
    /// A name that cannot be a remote's.
    #[error("`{name}` is not a remote name: use lowercase letters, digits, `-` and `_`")]
    BadName {
        /// The name as given.
        name: String,
    },
    /// `local` names the local daemon.
    #[error("`local` is the local daemon; give the remote another name")]
    Reserved,
    /// A URL lakefly cannot talk to.
    #[error("`{url}` is not a daemon URL: write http://HOST:PORT or https://HOST:PORT")]
    BadUrl {
        /// The URL as given.
        url: String,
    },
    /// A URL with a user name or password in it: every error naming the URL would echo
    /// the password, and lakeflyd takes API tokens, not passwords.
    #[error("a daemon URL holds no user name or password: write {without}")]
    Credentials {
        /// The URL without them.
        without: String,
    },
    /// The name is taken.
    #[error("a remote named `{name}` already exists ({url})")]
    Exists {
        /// The name.
        name: String,
        /// Its URL.
        url: String,
    },
    /// The file is not TOML, or not in the shape above.
    #[error("{}:{line}:{column}: {detail}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        detail: String,
    },
    /// Neither `XDG_CONFIG_HOME` nor `HOME` is set.
    #[error("cannot find the config directory: neither XDG_CONFIG_HOME nor HOME is set")]
    NoConfigDir,
    /// Reading or writing the file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The remotes file, as read.
#[derive(Debug)]
pub struct Remotes {
    path: PathBuf,
    doc: DocumentMut,
}

/// One remote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Remote {
    /// Its name.
    pub name: String,
    /// The daemon's URL.
    pub url: String,
    /// Whether commands use it when no `--remote` is given.
    pub current: bool,
}

/// `~/.config/lakefly/config.toml`, or under `$XDG_CONFIG_HOME`.
pub fn config_file() -> Result<PathBuf, RemoteError> {
    let dir = match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|home| PathBuf::from(home).join(".config"))
            .ok_or(RemoteError::NoConfigDir)?,
    };
    Ok(dir.join("lakefly").join("config.toml"))
}

impl Remotes {
    /// Reads the user's remotes file; none yet is an empty one.
    pub fn load() -> Result<Self, RemoteError> {
        Self::load_from(&config_file()?)
    }

    /// Reads the remotes file at `path`; none yet is an empty one.
    pub fn load_from(path: &Path) -> Result<Self, RemoteError> {
        let text = super::read_or_empty(path).map_err(|source| RemoteError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        let parse_error = |span: Option<std::ops::Range<usize>>, detail: String| {
            let at = span.map_or(0, |s| s.start).min(text.len());
            let before = &text[..at];
            RemoteError::Parse {
                path: path.to_path_buf(),
                line: before.matches('\n').count() + 1,
                column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
                detail,
            }
        };
        // Parsed with spans for the checks, then made editable.
        let parsed = toml_edit::Document::parse(text.as_str())
            .map_err(|e| parse_error(e.span(), e.message().to_string()))?;
        // Check the shape once, so the accessors below can trust it.
        if let Some(item) = parsed.get("remotes") {
            let Some(table) = item.as_table_like() else {
                return Err(parse_error(item.span(), "`remotes` must be a table".into()));
            };
            for (name, entry) in table.iter() {
                let Some((item, url)) = entry
                    .get("url")
                    .and_then(|item| Some((item, item.as_str()?)))
                else {
                    return Err(parse_error(
                        entry.span(),
                        format!("`remotes.{name}` needs `url = \"https://HOST:PORT\"`"),
                    ));
                };
                // A file written by hand or by an older lakefly: its URL is checked as
                // `remote add` checks one, so no command sends or echoes a password in it.
                if let Err(e) = check_url(url) {
                    return Err(parse_error(
                        item.span(),
                        format!("`remotes.{name}.url`: {e}"),
                    ));
                }
            }
        }
        if let Some(item) = parsed.get("current") {
            if item.as_str().is_none() {
                return Err(parse_error(
                    item.span(),
                    "`current` must be a remote's name".into(),
                ));
            }
        }
        Ok(Remotes {
            path: path.to_path_buf(),
            doc: parsed.into_mut(),
        })
    }

    /// Every remote, `local` first, in the file's order.
    pub fn list(&self) -> Vec<Remote> {
        let current = self.current();
        let local = Remote {
            name: LOCAL.into(),
            url: crate::cli::local::local_url(),
            current: current.is_none(),
        };
        let stored = self
            .table()
            .into_iter()
            .flat_map(|t| t.iter())
            .filter_map(|(name, entry)| {
                Some(Remote {
                    name: name.to_string(),
                    url: entry.get("url")?.as_str()?.to_string(),
                    current: current.as_deref() == Some(name),
                })
            });
        std::iter::once(local).chain(stored).collect()
    }

    /// The URL of remote `name`; `None` for `local`.
    pub fn url(&self, name: &str) -> Result<Option<String>, RemoteError> {
        if name == LOCAL {
            return Ok(None);
        }
        let url = self
            .table()
            .and_then(|t| t.get(name))
            .and_then(|entry| entry.get("url"))
            .and_then(Item::as_str);
        match url {
            Some(url) => Ok(Some(url.to_string())),
            None => Err(self.unknown(name)),
        }
    }

    /// The remote commands use when no `--remote` is given; `None` is the local daemon.
    pub fn current(&self) -> Option<String> {
        let name = self.doc.get("current")?.as_str()?;
        (name != LOCAL).then(|| name.to_string())
    }

    /// Adds remote `name` at `url`.
    pub fn add(&mut self, name: &str, url: &str) -> Result<(), RemoteError> {
        check_name(name)?;
        let url = check_url(url)?;
        if let Ok(Some(existing)) = self.url(name) {
            return Err(RemoteError::Exists {
                name: name.into(),
                url: existing,
            });
        }
        let remotes = self
            .doc
            .entry("remotes")
            .or_insert_with(|| {
                let mut table = Table::new();
                // `[remotes.NAME]` headers only, not an empty `[remotes]`.
                table.set_implicit(true);
                Item::Table(table)
            })
            .as_table_mut()
            .ok_or_else(|| self_shape_error(&self.path))?;
        let mut entry = Table::new();
        entry.insert("url", value(url));
        remotes.insert(name, Item::Table(entry));
        Ok(())
    }

    /// Removes remote `name`; when it was the current one, the local daemon becomes it.
    pub fn remove(&mut self, name: &str) -> Result<(), RemoteError> {
        if name == LOCAL {
            return Err(RemoteError::Reserved);
        }
        self.url(name)?;
        if let Some(table) = self
            .doc
            .get_mut("remotes")
            .and_then(Item::as_table_like_mut)
        {
            table.remove(name);
        }
        if self.current().as_deref() == Some(name) {
            self.doc.remove("current");
        }
        Ok(())
    }

    /// Makes `name` the remote commands use by default.
    pub fn select(&mut self, name: &str) -> Result<(), RemoteError> {
        if name == LOCAL {
            self.doc.remove("current");
            return Ok(());
        }
        self.url(name)?;
        self.doc.insert("current", value(name));
        Ok(())
    }

    /// Writes the file back (0600, atomically), comments and layout kept.
    pub fn save(&self) -> Result<(), RemoteError> {
        let io = |action, source| RemoteError::Io {
            action,
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            crate::daemon::create_private_dir(dir).map_err(|e| io("create the directory of", e))?;
        }
        crate::atomic_write::write(&self.path, self.doc.to_string().as_bytes(), 0o600)
            .map_err(|e| io("write", std::io::Error::other(e.to_string())))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn table(&self) -> Option<&dyn toml_edit::TableLike> {
        self.doc.get("remotes").and_then(Item::as_table_like)
    }

    fn unknown(&self, name: &str) -> RemoteError {
        let known: Vec<String> = self.list().into_iter().map(|r| r.name).collect();
        RemoteError::Unknown {
            name: name.into(),
            known: known.join(", "),
        }
    }
}

/// `remotes` exists and is not a table (checked at load, so not expected here).
fn self_shape_error(path: &Path) -> RemoteError {
    RemoteError::Parse {
        path: path.to_path_buf(),
        line: 1,
        column: 1,
        detail: "`remotes` must be a table".into(),
    }
}

/// A remote name: what `--remote` tells apart from a URL or `host:port`.
pub fn check_name(name: &str) -> Result<(), RemoteError> {
    if name == LOCAL {
        return Err(RemoteError::Reserved);
    }
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(RemoteError::BadName { name: name.into() })
    }
}

/// A daemon URL, without a trailing `/`.
pub fn check_url(url: &str) -> Result<String, RemoteError> {
    let bad = || RemoteError::BadUrl { url: url.into() };
    let parsed = reqwest::Url::parse(url).map_err(|_| bad())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(bad());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let mut without = parsed.clone();
        // Cannot fail on an http(s) URL with a host, checked above.
        let _ = without.set_username("");
        let _ = without.set_password(None);
        return Err(RemoteError::Credentials {
            without: without.as_str().trim_end_matches('/').to_string(),
        });
    }
    Ok(url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_temp(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lakefly/config.toml");
        if !text.is_empty() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        (dir, path)
    }

    #[test]
    fn add_select_and_remove_keep_what_the_user_wrote() {
        let (_dir, path) = in_temp("# my remotes\n[remotes.staging] # the box under the desk\nurl = \"http://10.0.0.2:4280\"\n");
        let mut remotes = Remotes::load_from(&path).unwrap();
        remotes
            .add("prod", "https://lake.example.com:4280/")
            .unwrap();
        remotes.select("prod").unwrap();
        remotes.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# my remotes"), "{text}");
        assert!(text.contains("# the box under the desk"), "{text}");
        let remotes = Remotes::load_from(&path).unwrap();
        assert_eq!(remotes.current().as_deref(), Some("prod"));
        assert_eq!(
            remotes.url("prod").unwrap().as_deref(),
            Some("https://lake.example.com:4280")
        );
        let names: Vec<String> = remotes.list().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["local", "staging", "prod"]);

        let mut remotes = remotes;
        remotes.remove("prod").unwrap();
        assert_eq!(
            remotes.current(),
            None,
            "removing the current one goes back to local"
        );
        assert!(matches!(
            remotes.url("prod"),
            Err(RemoteError::Unknown { .. })
        ));
        assert_eq!(remotes.url("local").unwrap(), None);
    }

    #[test]
    fn bad_names_urls_and_duplicates_are_refused() {
        let (_dir, path) = in_temp("");
        let mut remotes = Remotes::load_from(&path).unwrap();
        assert!(matches!(
            remotes.add("local", "http://x:1"),
            Err(RemoteError::Reserved)
        ));
        assert!(matches!(
            remotes.add("Prod!", "http://x:1"),
            Err(RemoteError::BadName { .. })
        ));
        assert!(matches!(
            remotes.add("prod", "ftp://x"),
            Err(RemoteError::BadUrl { .. })
        ));
        // No password reaches the file, or a message.
        match remotes.add("prod", "https://me:hunter2@lake.example.com:4280/") {
            Err(e @ RemoteError::Credentials { .. }) => {
                assert!(!e.to_string().contains("hunter2"), "{e}");
                assert!(
                    e.to_string().contains("https://lake.example.com:4280"),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            remotes.add("prod", "x:4280"),
            Err(RemoteError::BadUrl { .. })
        ));
        remotes.add("prod", "http://x:1").unwrap();
        let error = remotes.add("prod", "http://y:2").unwrap_err().to_string();
        assert!(error.contains("http://x:1"), "{error}");
        let error = remotes.select("nope").unwrap_err().to_string();
        assert!(error.contains("known: local, prod"), "{error}");
    }

    #[test]
    fn a_stored_url_with_a_password_is_refused_at_its_line_without_echoing_it() {
        let (_dir, path) = in_temp(
            "[remotes.ok]\nurl = \"http://10.0.0.2:4280\"\n[remotes.prod]\nurl = \"https://me:hunter2@lake.example.com:4280\"\n",
        );
        let error = Remotes::load_from(&path).unwrap_err();
        let shown = error.to_string();
        assert!(
            matches!(
                error,
                RemoteError::Parse {
                    line: 4,
                    column: 7,
                    ..
                }
            ),
            "{shown}"
        );
        assert!(
            shown.ends_with(
                "`remotes.prod.url`: a daemon URL holds no user name or password: write https://lake.example.com:4280"
            ) && !shown.contains("hunter2"),
            "{shown}"
        );
        let (_dir, path) = in_temp("[remotes.prod]\nurl = \"ftp://lake\"\n");
        let shown = Remotes::load_from(&path).unwrap_err().to_string();
        assert!(
            shown.contains(":2:7: `remotes.prod.url`: `ftp://lake` is not a daemon URL"),
            "{shown}"
        );
    }

    #[test]
    fn a_broken_file_is_reported_with_its_line() {
        let (_dir, path) = in_temp("current = \"prod\"\n[remotes.prod]\nurl = 5\n");
        let error = Remotes::load_from(&path).unwrap_err().to_string();
        assert!(error.contains("config.toml:2:1"), "{error}");
        assert!(error.contains("needs `url"), "{error}");
        let (_dir, path) = in_temp("current = \n");
        let error = Remotes::load_from(&path).unwrap_err().to_string();
        assert!(error.contains("config.toml:1:"), "{error}");
    }
}
