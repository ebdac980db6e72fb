//! `lakefly secrets set | unset | list | import | deploy`: values go to the daemon and
//! never come back; a change rolls the machines (followed like a deploy) unless staged.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};

use clap::{Args, Subcommand};

use super::release_follow::{detached, subscribe, watch};
use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::api::client::ClientError;
use crate::api::codes::DEPLOY_RUNNING;
use crate::api::types::{SecretValue, SecretsChanged, SecretsRequest};
use crate::error::Error;
use crate::output::table::Table;
use crate::secret::Secret;

/// Set, unset and list the app's secrets (values never come back).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lakefly secrets set DATABASE_URL=postgres://...\n  printf %s \"$TOKEN\" | lakefly secrets set API_TOKEN=-\n  lakefly secrets set SESSION_KEY          # asks without echo\n  lakefly secrets import --stage < .env && lakefly secrets deploy\n  lakefly secrets list"
)]
pub struct SecretsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SecretsCommand,
    /// flyctl's check of the app's DNS after the release: noted, as the edge routes by
    /// Host with no DNS to check.
    #[arg(long, global = true, hide = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub dns_checks: Option<bool>,
}

/// Secrets commands.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Set secrets: NAME=VALUE, NAME=- (the value from stdin, one trailing newline
    /// stripped, binary-safe) or NAME (asked without echo on a terminal).
    Set {
        /// NAME=VALUE, NAME=- or NAME.
        #[arg(required = true, value_name = "NAME[=VALUE]")]
        pairs: Vec<String>,
        /// Store without restarting machines; the next release (`secrets deploy`,
        /// `deploy`) applies them.
        #[arg(long)]
        stage: bool,
        /// Do not follow the release the change starts.
        #[arg(long)]
        detach: bool,
    },
    /// Remove secrets (a name that is not set is fine).
    Unset {
        /// Names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Store without restarting machines.
        #[arg(long)]
        stage: bool,
        /// Do not follow the release the change starts.
        #[arg(long)]
        detach: bool,
    },
    /// List names, digests and status.
    #[command(visible_alias = "ls")]
    List,
    /// Set secrets from a .env file on stdin.
    Import {
        /// Store without restarting machines.
        #[arg(long)]
        stage: bool,
        /// Do not follow the release the change starts.
        #[arg(long)]
        detach: bool,
    },
    /// Apply staged changes.
    Deploy {
        /// Do not follow the release.
        #[arg(long)]
        detach: bool,
    },
}

/// Runs a secrets command.
pub fn run(global: &GlobalArgs, args: SecretsArgs) -> Result<(), Error> {
    let out = global.output();
    if args.dns_checks.is_some() && !out.json {
        out.note("    note: --dns-checks changes nothing: the edge routes by Host; lakefly has no DNS to check");
    }
    let app = app_name(global)?;
    let api = client(global)?;
    let (request, detach) = match args.command {
        SecretsCommand::List => {
            let list = block_on(async { Ok(api.secrets(&app).await?) })?;
            if out.json {
                return out.json(&list);
            }
            let mut table = Table::new(vec!["NAME", "DIGEST", "STATUS", "UPDATED"]);
            for s in list {
                table.row(vec![
                    s.name,
                    s.digest.unwrap_or_else(|| "-".into()),
                    s.status,
                    s.updated_at,
                ]);
            }
            return out.text(&table.render());
        }
        SecretsCommand::Deploy { detach } => {
            return block_on(async move {
                let stream = if detach {
                    None
                } else {
                    Some(subscribe(&api, &app).await?)
                };
                let changed = api.deploy_secrets(&app).await?;
                report(global, &app, changed, false, stream).await
            })
        }
        SecretsCommand::Set {
            pairs,
            stage,
            detach,
        } => (set_request(&pairs, stage)?, detach),
        SecretsCommand::Unset {
            names,
            stage,
            detach,
        } => (
            SecretsRequest {
                set: BTreeMap::new(),
                unset: names,
                stage,
            },
            detach,
        ),
        SecretsCommand::Import { stage, detach } => (import_request(stage)?, detach),
    };
    block_on(async move {
        let stream = if detach || request.stage {
            None
        } else {
            Some(subscribe(&api, &app).await?)
        };
        let changed = api
            .update_secrets(&app, &request)
            .await
            .map_err(offer_stage)?;
        report(global, &app, changed, request.stage, stream).await
    })
}

/// A change refused because a release is rolling out can still be staged for the next.
fn offer_stage(e: ClientError) -> ClientError {
    match e {
        ClientError::Api { status, mut error } if error.code == DEPLOY_RUNNING => {
            error.hint = Some(
                "wait for it to finish (`lakefly events`), or add --stage: the next release applies the change (`lakefly releases cancel` stops this one)"
                    .into(),
            );
            ClientError::Api { status, error }
        }
        e => e,
    }
}

/// Says what changed, then follows the release it started (unless detached).
async fn report(
    global: &GlobalArgs,
    app: &str,
    changed: SecretsChanged,
    staged: bool,
    stream: Option<impl futures_util::Stream<Item = crate::api::follow::Item>>,
) -> Result<(), Error> {
    let out = global.output();
    if out.json && (changed.release.is_none() || stream.is_none()) {
        return out.json(&changed);
    }
    if !out.json {
        if !changed.changed.is_empty() {
            out.note(&format!("changed: {}", changed.changed.join(", ")));
        }
        if !changed.unchanged.is_empty() {
            out.note(&format!(
                "unchanged (same value, or not set): {}",
                changed.unchanged.join(", ")
            ));
        }
    }
    match (changed.release, stream) {
        (Some(version), Some(stream)) => {
            let followed = watch(out, app, version, stream).await;
            if let Err(Error::DeployFailed {
                running: Some(running),
                ..
            }) = &followed
            {
                if !out.json && !changed.changed.is_empty() {
                    let stay = if changed.changed.len() == 1 {
                        "stays"
                    } else {
                        "stay"
                    };
                    out.note(&format!(
                        "note: {} {stay} set for the next release; release v{running} goes on with the secrets it was made with (set the old value again, or unset, to undo)",
                        changed.changed.join(", ")
                    ));
                }
            }
            followed
        }
        (Some(version), None) => detached(out, app, version),
        (None, _) => {
            if !changed.changed.is_empty() && !out.json {
                let them = if changed.changed.len() == 1 {
                    "it"
                } else {
                    "them"
                };
                out.note(&if staged {
                    format!(
                        "staged: `lakefly secrets deploy -a {app}` (or the next deploy) applies {them}"
                    )
                } else {
                    format!("{app} has no release yet: its first deploy applies {them}")
                });
            }
            Ok(())
        }
    }
}

fn bad(message: String, hint: &str) -> Error {
    Error::BadSecretInput {
        message,
        hint: hint.to_string(),
    }
}

/// Refuses a name no secret can have, saying what one looks like.
fn named(name: &str) -> Result<(), Error> {
    crate::secret::check_name(name).map_err(|why| {
        bad(
            why,
            "name it as an environment variable of the app's own: DATABASE_URL, API_TOKEN (not PORT, LAKEFLY_* or FLY_*)",
        )
    })
}

fn set_request(pairs: &[String], stage: bool) -> Result<SecretsRequest, Error> {
    let mut set = BTreeMap::new();
    // Every name is checked before any value is read or asked for: nothing is typed in
    // vain. One given twice is refused, as one value would silently replace the other.
    let names: Vec<&str> = (pairs.iter())
        .map(|pair| pair.split_once('=').map_or(pair.as_str(), |(name, _)| name))
        .collect();
    for (i, name) in names.iter().enumerate() {
        named(name)?;
        if names[..i].contains(name) {
            return Err(bad(
                format!("{name} is given twice"),
                "give each secret once",
            ));
        }
    }
    let from_stdin = |pair: &&String| pair.split_once('=').is_some_and(|(_, value)| value == "-");
    if pairs.iter().filter(from_stdin).count() > 1 {
        return Err(bad(
            "only one NAME=- can read stdin".into(),
            "set the others with NAME=VALUE",
        ));
    }
    for pair in pairs {
        let (name, value) = match pair.split_once('=') {
            Some((name, "-")) => (name.to_string(), read_stdin_value()?),
            Some((name, value)) => (name.to_string(), Secret::from(value.to_string())),
            None => (pair.clone(), prompt(pair)?),
        };
        set.insert(name, SecretValue(value));
    }
    Ok(SecretsRequest {
        set,
        unset: Vec::new(),
        stage,
    })
}

/// The whole of stdin, with one trailing newline (`\n` or `\r\n`) stripped.
fn read_stdin_value() -> Result<Secret, Error> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", std::path::Path::new("<stdin>"), e))?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    Ok(Secret::new(bytes))
}

fn prompt(name: &str) -> Result<Secret, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(bad(
            format!("{name} has no value, and stdin is not a terminal to ask for one"),
            "write NAME=VALUE, or NAME=- to read the value from stdin",
        ));
    }
    rpassword::prompt_password(format!("{name}: "))
        .map(Secret::from)
        .map_err(|e| Error::io("read", std::path::Path::new("the terminal"), e))
}

fn import_request(stage: bool) -> Result<SecretsRequest, Error> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Error::io("read", std::path::Path::new("<stdin>"), e))?;
    let pairs = crate::dotenv::parse(&text)
        .map_err(|e| bad(format!("stdin: {e}"), "write NAME=VALUE lines"))?;
    for (name, _) in &pairs {
        named(name)?;
    }
    Ok(SecretsRequest {
        set: pairs
            .into_iter()
            .map(|(k, v)| (k, SecretValue(v)))
            .collect(),
        unset: Vec::new(),
        stage,
    })
}
