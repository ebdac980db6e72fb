//! `lakefly remote add NAME URL | list | remove NAME | use NAME`: the daemons this client
//! knows by name, and which one commands talk to by default.

use clap::{Args, Subcommand};

use super::GlobalArgs;
use crate::credentials::remotes::Remotes;
use crate::error::Error;
use crate::output::table::Table;

/// Name the daemons you deploy to, and pick the default one.
#[derive(Debug, Args)]
#[command(
    after_help = "The names live in ~/.config/lakefly/config.toml; `local` is the daemon this client\nstarts on this machine. --remote NAME (or LAKEFLY_REMOTE) picks one for a command.\n\nExamples:\n  lakefly remote add prod https://lake.example.com:4280\n  lakefly remote use prod\n  lakefly remote list\n  lakefly remote use local"
)]
pub struct RemoteArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RemoteCommand,
}

/// Remote commands.
#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Name a daemon.
    Add {
        /// Its name: lowercase letters, digits, `-` and `_`.
        name: String,
        /// Its API: http://HOST:PORT or https://HOST:PORT.
        url: String,
    },
    /// List the named daemons; `*` marks the default one.
    #[command(visible_alias = "ls")]
    List,
    /// Forget a named daemon, and its stored API token.
    #[command(alias = "rm")]
    Remove {
        /// Its name.
        name: String,
    },
    /// Make a named daemon the one commands talk to by default (`local`: this machine's).
    Use {
        /// Its name.
        name: String,
    },
}

/// Runs a remote command.
pub fn run(global: &GlobalArgs, args: RemoteArgs) -> Result<(), Error> {
    let out = global.output();
    let mut remotes = Remotes::load()?;
    match args.command {
        RemoteCommand::Add { name, url } => {
            remotes.add(&name, &url)?;
            remotes.save()?;
            if out.json {
                return out.json(&remotes.list());
            }
            out.note(&format!(
                "added remote {name}; `lakefly remote use {name}` makes it the default, or pass --remote {name}"
            ));
            Ok(())
        }
        RemoteCommand::List => {
            let list = remotes.list();
            if out.json {
                return out.json(&list);
            }
            let mut table = Table::new(vec!["", "NAME", "URL"]);
            for remote in list {
                let mark = if remote.current { "*" } else { "" };
                table.row(vec![mark.to_string(), remote.name, remote.url]);
            }
            out.text(&table.render())
        }
        RemoteCommand::Remove { name } => {
            let was_current = remotes.current().as_deref() == Some(name.as_str());
            remotes.remove(&name)?;
            // Its token goes first: kept, it would be sent to whatever daemon a remote
            // added later under the same name points at.
            let had_token = crate::credentials::tokens::delete(&name)?;
            remotes.save()?;
            if out.json {
                return out.json(&remotes.list());
            }
            out.note(&format!("removed remote {name}"));
            if had_token {
                out.note("its API token is forgotten too");
            }
            if was_current {
                out.note("commands talk to the local daemon again");
            }
            Ok(())
        }
        RemoteCommand::Use { name } => {
            remotes.select(&name)?;
            remotes.save()?;
            if out.json {
                return out.json(&remotes.list());
            }
            out.note(&format!(
                "commands now talk to {name} unless --remote says otherwise"
            ));
            Ok(())
        }
    }
}
