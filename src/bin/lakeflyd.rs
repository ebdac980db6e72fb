//! `lakeflyd`, the platform daemon: the same code as `lakefly daemon run`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use lakefly::cli::daemon::{run_daemon, RunArgs};
use lakefly::output;

/// The lakefly platform daemon. Without a command it runs; `backup` while it runs;
/// `restore` and `secrets rotate-key` when it is stopped.
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
    /// Copy what the host needs to serve its apps again into a new directory, while the
    /// daemon runs: a consistent snapshot of the state database, the master key (when it
    /// is in the state directory), uploaded bundles and the releases' built files.
    #[command(
        after_help = "The backup is laid out as the state directory and written to TO.partial first, so a\nbackup that exists is whole. Restore it with `lakeflyd restore` at the same state path\n(built files hold absolute paths). A master key kept as a systemd credential is not in\nthe state directory: keep /etc/lakefly/master-key.cred with the backup.\n\nExample:\n  lakeflyd backup --state /var/lib/lakefly /srv/backups/lakefly-$(date +%F)"
    )]
    Backup {
        /// State directory (default: the user's data dir).
        #[arg(long, value_name = "DIR")]
        state: Option<std::path::PathBuf>,
        /// Copy the apps' volumes too, as they are at the time (for a consistent copy,
        /// stop the apps or use their own dumps).
        #[arg(long)]
        volumes: bool,
        /// Where the backup goes: a new or empty directory.
        #[arg(value_name = "TO")]
        to: std::path::PathBuf,
    },
    /// Put a backup back into an empty state directory, after checking its database and
    /// that its master key opens its secrets (stop the daemon first).
    #[command(
        after_help = "Run it as the user lakeflyd runs as, so it can read what it restores (or chown the\nstate directory after).\n\nExample:\n  systemctl stop lakeflyd && mv /var/lib/lakefly /var/lib/lakefly.old\n  sudo -u lakefly lakeflyd restore --state /var/lib/lakefly /srv/backups/lakefly-2026-12-01\n  systemctl start lakeflyd"
    )]
    Restore {
        /// State directory to restore into: it must not exist, or be empty.
        #[arg(long, value_name = "DIR")]
        state: Option<std::path::PathBuf>,
        /// The backup.
        #[arg(value_name = "FROM")]
        from: std::path::PathBuf,
    },
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
        Some(Command::Backup { state, volumes, to }) => {
            lakefly::daemon::backup::backup_state(state, &to, volumes).map(|copied| {
                println!("{}", serde_json::json!(copied));
                eprintln!(
                    "==> backed up {} files ({} MiB) into {}",
                    copied.files,
                    copied.bytes / (1024 * 1024),
                    to.display()
                );
                if !copied.master_key {
                    eprintln!("note: the master key is not in the state directory (a systemd credential?): keep it with the backup, or its secrets cannot be opened");
                }
            })
        }
        Some(Command::Restore { state, from }) => {
            lakefly::daemon::backup::restore_state(state, &from).map(|copied| {
                println!("{}", serde_json::json!(copied));
                eprintln!(
                    "==> restored {} files ({} MiB) into {}; start lakeflyd with --state {}",
                    copied.files,
                    copied.bytes / (1024 * 1024),
                    copied.path.display(),
                    copied.path.display()
                );
            })
        }
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
