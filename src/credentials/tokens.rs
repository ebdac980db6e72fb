//! API tokens per remote: in the OS keyring (service `lakefly`, one entry per remote),
//! else, where there is none (a headless server, a container), in
//! `~/.config/lakefly/credentials.toml`, written atomically with mode 0600.
//! `LAKEFLY_KEYRING=off` skips the keyring; `LAKEFLY_API_TOKEN` overrides both (read by
//! the caller).
//!
//! The file also notes which remotes have their token in the keyring (`[in_keyring]`,
//! no secret), so a command for a remote without one never waits on the keyring.

use std::path::PathBuf;

use toml_edit::{value, DocumentMut, Item, Table};

use crate::secret::Secret;

/// The keyring service tokens are stored under.
const SERVICE: &str = "lakefly";

/// Where a token was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The OS keyring.
    Keyring,
    /// The 0600 file, because the keyring could not be used (why).
    File(PathBuf, String),
}

/// Why a token cannot be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The credentials file is unreadable or not TOML.
    #[error("cannot use {}: {detail}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Neither `XDG_CONFIG_HOME` nor `HOME` is set.
    #[error(transparent)]
    NoConfigDir(#[from] super::remotes::RemoteError),
}

/// `credentials.toml` beside the remotes file.
fn credentials_file() -> Result<PathBuf, TokenError> {
    let config = super::remotes::config_file()?;
    Ok(config.with_file_name("credentials.toml"))
}

/// Whether the keyring may be tried at all.
fn keyring_allowed() -> bool {
    !matches!(
        std::env::var("LAKEFLY_KEYRING").as_deref(),
        Ok("off" | "0" | "false" | "no")
    )
}

/// Runs a keyring call on a thread of its own: the Secret Service client drives its own
/// async runtime, which must not start inside a caller's.
fn with_keyring<T: Send>(
    remote: &str,
    call: impl FnOnce(&keyring::Entry) -> keyring::Result<T> + Send,
) -> keyring::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| call(&keyring::Entry::new(SERVICE, remote)?))
            .join()
            .unwrap_or_else(|_| {
                Err(keyring::Error::PlatformFailure(
                    "the keyring call panicked".into(),
                ))
            })
    })
}

/// The table of the file that holds what is stored for each remote.
const TOKENS: &str = "tokens";
/// The table that notes the remotes whose token is in the keyring.
const IN_KEYRING: &str = "in_keyring";

/// The token stored for `remote`, if any.
pub fn get(remote: &str) -> Result<Option<Secret>, TokenError> {
    let (_, doc) = read_file()?;
    if let Some(token) = doc
        .get(TOKENS)
        .and_then(|t| t.get(remote))
        .and_then(Item::as_str)
    {
        return Ok(Some(Secret::from(token.to_string())));
    }
    let in_keyring = doc
        .get(IN_KEYRING)
        .and_then(|t| t.get(remote))
        .and_then(Item::as_bool)
        == Some(true);
    if !in_keyring || !keyring_allowed() {
        return Ok(None);
    }
    // A keyring that cannot be reached now is a missing token, not a failed command: the
    // daemon will say 401, and `auth login` stores one again.
    Ok(with_keyring(remote, |entry| entry.get_password())
        .ok()
        .map(Secret::from))
}

/// Stores `token` for `remote`: in the keyring when it works, else in the file.
pub fn set(remote: &str, token: &Secret) -> Result<Stored, TokenError> {
    let text = String::from_utf8_lossy(token.expose()).into_owned();
    let text = zeroize::Zeroizing::new(text);
    let keyring_failure = if keyring_allowed() {
        match with_keyring(remote, |entry| entry.set_password(&text)) {
            Ok(()) => {
                // No copy stays in the file; the file only notes where the token is.
                let (path, mut doc) = read_file()?;
                remove(&mut doc, TOKENS, remote);
                table(&mut doc, &path, IN_KEYRING)?.insert(remote, value(true));
                write_file(&path, &doc)?;
                return Ok(Stored::Keyring);
            }
            Err(e) => e.to_string(),
        }
    } else {
        "LAKEFLY_KEYRING=off".to_string()
    };
    let (path, mut doc) = read_file()?;
    remove(&mut doc, IN_KEYRING, remote);
    table(&mut doc, &path, TOKENS)?.insert(remote, value(text.as_str()));
    write_file(&path, &doc)?;
    Ok(Stored::File(path, keyring_failure))
}

/// Forgets the token of `remote`, wherever it is; whether there was one.
pub fn delete(remote: &str) -> Result<bool, TokenError> {
    let (path, mut doc) = read_file()?;
    let in_file = remove(&mut doc, TOKENS, remote);
    let in_keyring = remove(&mut doc, IN_KEYRING, remote);
    if in_keyring && keyring_allowed() {
        // Gone from the keyring already (by hand) is as good as deleted.
        let _ = with_keyring(remote, |entry| entry.delete_credential());
    }
    if in_file || in_keyring {
        write_file(&path, &doc)?;
    }
    Ok(in_file || in_keyring)
}

/// The table `name` of the file, made when missing.
fn table<'d>(
    doc: &'d mut DocumentMut,
    path: &std::path::Path,
    name: &str,
) -> Result<&'d mut Table, TokenError> {
    doc.entry(name)
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| TokenError::File {
            path: path.to_path_buf(),
            detail: format!("`{name}` must be a table"),
        })
}

/// Removes `remote` from table `name`; whether it was there.
fn remove(doc: &mut DocumentMut, name: &str, remote: &str) -> bool {
    doc.get_mut(name)
        .and_then(Item::as_table_like_mut)
        .and_then(|t| t.remove(remote))
        .is_some()
}

fn read_file() -> Result<(PathBuf, DocumentMut), TokenError> {
    let path = credentials_file()?;
    let text = match super::read_or_empty(&path) {
        Ok(text) => text,
        Err(e) => {
            return Err(TokenError::File {
                path,
                detail: e.to_string(),
            })
        }
    };
    let text = zeroize::Zeroizing::new(text);
    // The parser's message names the line; the file's content never goes into an error.
    let doc = text.parse::<DocumentMut>().map_err(|e| TokenError::File {
        path: path.clone(),
        detail: format!("not TOML ({})", e.message()),
    })?;
    Ok((path, doc))
}

fn write_file(path: &std::path::Path, doc: &DocumentMut) -> Result<(), TokenError> {
    let failed = |detail: String| TokenError::File {
        path: path.to_path_buf(),
        detail,
    };
    if let Some(dir) = path.parent() {
        crate::daemon::create_private_dir(dir).map_err(|e| failed(e.to_string()))?;
    }
    let text = zeroize::Zeroizing::new(doc.to_string());
    crate::atomic_write::write(path, text.as_bytes(), 0o600).map_err(|e| failed(e.to_string()))
}
