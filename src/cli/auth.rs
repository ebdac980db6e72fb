//! `lakefly auth login [--token-stdin] | logout | token`: the API token this client
//! presents to a remote (`--remote`, else the current one), kept in the OS keyring or a
//! 0600 file (`credentials::tokens`).

use std::io::{IsTerminal, Read};
use std::path::Path;

use clap::{Args, Subcommand};

use super::remote::{base_url, block_on, resolve, token_for};
use super::GlobalArgs;
use crate::api::client::Client;
use crate::credentials::tokens::{self, Stored};
use crate::error::Error;
use crate::secret::Secret;

/// Store, forget or print the API token for a remote.
#[derive(Debug, Args)]
#[command(
    after_help = "The token is one of those in the daemon's --token-file. LAKEFLY_API_TOKEN, when set,\nis used instead of a stored one.\n\nExamples:\n  lakefly --remote prod auth login\n  echo \"$TOKEN\" | lakefly auth login --token-stdin\n  lakefly auth token\n  lakefly auth logout"
)]
pub struct AuthArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AuthCommand,
}

/// Auth commands.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Store the token for the remote, once the daemon has accepted it.
    Login {
        /// Read the token from stdin instead of asking for it.
        #[arg(long)]
        token_stdin: bool,
    },
    /// Forget the remote's stored token.
    Logout,
    /// Print the token commands present to the remote.
    Token,
}

/// Runs an auth command.
pub fn run(global: &GlobalArgs, args: AuthArgs) -> Result<(), Error> {
    let out = global.output();
    let target = resolve(global.remote().as_deref())?;
    let name = target.key.clone();
    match args.command {
        AuthCommand::Login { token_stdin } => {
            let token = read_token(token_stdin)?;
            // Checked before it is kept: a mistyped token fails here (exit 4), not on
            // the next deploy.
            let api = Client::with_token(&base_url(&target, out)?, Some(token.clone()))?;
            block_on(async { Ok(api.apps().await?) })?;
            let stored = tokens::set(&name, &token)?;
            if out.json {
                let (place, path) = match &stored {
                    Stored::Keyring => ("keyring", None),
                    Stored::File(path, _) => ("file", Some(path.clone())),
                };
                return out.json(
                    &serde_json::json!({ "remote": name, "stored_in": place, "path": path }),
                );
            }
            match stored {
                Stored::Keyring => out.note(&format!("logged in to {name}; the token is in the OS keyring")),
                Stored::File(path, why) => out.note(&format!(
                    "logged in to {name}; the token is in {} (mode 0600: the keyring is not available here: {why})",
                    path.display()
                )),
            }
            Ok(())
        }
        AuthCommand::Logout => {
            let removed = tokens::delete(&name)?;
            if out.json {
                return out.json(&serde_json::json!({ "remote": name, "removed": removed }));
            }
            if removed {
                out.note(&format!("logged out of {name}"));
            } else {
                out.note(&format!("no token was stored for {name}"));
            }
            Ok(())
        }
        AuthCommand::Token => {
            let token = token_for(&target)?.ok_or_else(|| Error::BadSecretInput {
                message: format!("no token is stored for {name}"),
                hint: format!("run `lakefly --remote {name} auth login`"),
            })?;
            let text = String::from_utf8_lossy(token.expose());
            if out.json {
                return out.json(&serde_json::json!({ "remote": name, "token": text }));
            }
            out.text(&text)
        }
    }
}

/// The token: from stdin with `--token-stdin`, else asked for on the terminal, unechoed.
fn read_token(from_stdin: bool) -> Result<Secret, Error> {
    let bad = |message: &str, hint: &str| Error::BadSecretInput {
        message: message.into(),
        hint: hint.into(),
    };
    let text = if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::io("read", Path::new("<stdin>"), e))?;
        text
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("API token: ")
            .map_err(|e| Error::io("read", Path::new("the terminal"), e))?
    } else {
        return Err(bad(
            "stdin is not a terminal to ask for the token on",
            "pipe it in with --token-stdin",
        ));
    };
    let text = zeroize::Zeroizing::new(text);
    let token = text.trim();
    if token.is_empty() {
        return Err(bad(
            "the token is empty",
            "give the token the daemon's --token-file lists",
        ));
    }
    if token.chars().any(char::is_control) || token.contains(' ') {
        return Err(bad(
            "the token holds spaces or control characters",
            "give the token alone, on one line",
        ));
    }
    Ok(Secret::from(token.to_string()))
}
