//! `lakeflyd`, the platform daemon: the same code as `lakefly daemon run`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use lakefly::cli::daemon::{run_daemon, RunArgs};
use lakefly::output;

/// The lakefly platform daemon. Without a command it runs; `secrets rotate-key` is for
/// when it is stopped.
#[derive(Debug, Parser)]
#[command(
    name = "lakeflyd",
    version,
    max_term_width = 100,
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Maintenance of the secrets store.
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Re-encrypt every secret under a new master key, in one transaction (stop the
    /// daemon first). A crash midway loses nothing: the next start finishes or undoes it.
    #[command(
        after_help = "Example:\n  systemctl stop lakeflyd && lakeflyd secrets rotate-key --state /var/lib/lakefly && systemctl start lakeflyd"
    )]
    RotateKey {
        /// State directory (default: the user's data dir).
        #[arg(long, value_name = "DIR")]
        state: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => return output::error::exit_on_usage_error(&e, false),
    };
    let result = match args.command {
        None => run_daemon(args.run),
        Some(Command::Secrets(SecretsCommand::RotateKey { state })) => {
            lakefly::daemon::rotate_master_key(state).map(|count| {
                println!("{}", serde_json::json!({ "rotated": count }));
                eprintln!("==> re-encrypted {count} secret value(s) under a new master key");
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            anstream::eprint!("{}", output::error::render(&e, false));
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
