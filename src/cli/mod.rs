//! The `lakefly` command line: one file per command group, each with its clap `Args` and
//! its `run`. This file only declares the commands and dispatches.

pub mod apps;
pub mod auth;
pub mod certs;
pub mod checks;
pub mod completion;
pub mod config;
mod config_env;
mod config_save;
pub mod console;
pub mod daemon;
pub mod daemon_install;
pub mod deploy;
pub mod events;
pub mod flyctl_commands;
mod flyctl_flags;
pub mod jobs;
pub mod launch;
pub mod local;
pub mod logs;
mod machine_pick;
mod machine_status;
mod machine_wait;
pub mod machines;
pub mod open;
pub mod proxy;
mod release_follow;
pub mod releases;
pub mod remote;
pub mod remotes;
mod restarting;
pub mod rollback;
pub mod scale;
pub mod secrets;
mod service_options;
pub mod status;
pub mod volumes;
pub mod watch;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::Error;
use crate::output::Output;

/// Deploy and run daemons on your own hosts, the fly.io way.
#[derive(Debug, Parser)]
#[command(
    name = "lakefly",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Examples:\n  lakefly launch                      write a fly.toml for this directory\n  lakefly config validate             check ./fly.toml\n  lakefly config set kill_timeout=30  edit it, keeping comments and formatting"
)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by every command.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The daemon to talk to: a remote's name (`lakefly remote list`), a URL or host:port
    /// (default: $LAKEFLY_REMOTE, else the current remote, else the local daemon on
    /// http://127.0.0.1:4280, or $LAKEFLY_LOCAL_ADDR with its edge on $LAKEFLY_LOCAL_EDGE).
    // Not clap's `env`: clap would write an address from the environment into every usage
    // line as though it had been typed.
    #[arg(long, global = true, value_name = "NAME|URL")]
    pub remote: Option<String>,
    /// App name (default: `app` in the config file).
    #[arg(short = 'a', long, global = true, value_name = "APP")]
    pub app: Option<String>,
    /// Path to the app config (a directory: its fly.toml).
    #[arg(short = 'c', long, global = true, value_name = "FILE", default_value = crate::config::DEFAULT_FILE)]
    pub config: PathBuf,
    /// Print data as JSON on stdout and errors as JSON on stderr.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,
}

impl GlobalArgs {
    /// The daemon asked for: `--remote`, else `LAKEFLY_REMOTE` when set and not empty.
    pub fn remote(&self) -> Option<String> {
        self.remote.clone().or_else(|| {
            std::env::var("LAKEFLY_REMOTE")
                .ok()
                .filter(|remote| !remote.is_empty())
        })
    }

    /// The config file path: `-c`, or the `fly.toml` in it when it names a directory, as
    /// flyctl reads `-c app/`.
    pub fn config_path(&self) -> PathBuf {
        if self.config.is_dir() {
            self.config.join(crate::config::DEFAULT_FILE)
        } else {
            self.config.clone()
        }
    }

    /// The output mode these flags ask for.
    pub fn output(&self) -> Output {
        Output { json: self.json }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a fly.toml for the current directory, then deploy it.
    Launch(launch::LaunchArgs),
    /// Validate, show and edit fly.toml.
    Config(config::ConfigArgs),
    /// Deploy the app: pack, upload, release, follow until it is live.
    Deploy(Box<deploy::DeployArgs>),
    /// Show the app's release and machines.
    Status(status::StatusArgs),
    /// Open the app in a browser (its address is printed too).
    Open(open::OpenArgs),
    /// List the app's releases, or cancel the one rolling out.
    Releases(releases::ReleasesArgs),
    /// Go back to an earlier release.
    Rollback(rollback::RollbackArgs),
    /// Create, list and destroy apps.
    #[command(alias = "app")]
    Apps(apps::AppsArgs),
    /// List and control an app's machines.
    #[command(visible_alias = "machine", alias = "m")]
    Machines(machines::MachinesArgs),
    /// Show each running machine's health checks and what each last saw.
    Checks(checks::ChecksArgs),
    /// Open a terminal in one of the app's machines (its directory, env and secrets).
    Console(console::ConsoleArgs),
    /// Reach a port of one of the app's machines from a local port (as `fly proxy`).
    Proxy(proxy::ProxyArgs),
    /// flyctl's `ssh console`: a shell in one of the app's machines (no SSH involved).
    #[command(hide = true)]
    Ssh(console::SshArgs),
    /// Change or show how many machines each process group runs.
    Scale(scale::ScaleArgs),
    /// Set, unset and list the app's secrets.
    Secrets(secrets::SecretsArgs),
    /// Route your own host names (www.example.com) to the app.
    Certs(certs::CertsArgs),
    /// List, make and delete the app's volumes (its [mounts] data).
    #[command(alias = "volume", alias = "vol", alias = "v")]
    Volumes(volumes::VolumesArgs),
    /// Show the app's logs, and follow them.
    Logs(logs::LogsArgs),
    /// Follow events as they happen.
    Events(events::EventsArgs),
    /// A live table of the app's machines, health and jobs.
    Watch(watch::WatchArgs),
    /// Scheduled and manual jobs of the app.
    Jobs(jobs::JobsArgs),
    /// Run or manage the lakeflyd daemon.
    Daemon(daemon::DaemonArgs),
    /// Name the daemons you deploy to, and pick the default one.
    Remote(remotes::RemoteArgs),
    /// Store, forget or print the API token for a remote.
    Auth(auth::AuthArgs),
    /// Print a shell completion script.
    Completion(completion::CompletionArgs),
    /// Print lakefly's version (the daemon's is in its `/health`).
    Version,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    let global = cli.global;
    match cli.command {
        Command::Launch(args) => launch::run(&global, args),
        Command::Config(args) => config::run(&global, args),
        Command::Deploy(args) => deploy::run(&global, *args),
        Command::Status(args) => status::run(&global, args),
        Command::Open(args) => open::run(&global, args),
        Command::Releases(args) => releases::run(&global, args),
        Command::Rollback(args) => rollback::run(&global, args),
        Command::Apps(args) => apps::run(&global, args),
        Command::Machines(args) => machines::run(&global, args),
        Command::Checks(args) => checks::run(&global, args),
        Command::Console(args) => console::run(&global, args, console::Fallback::ConsoleCommand),
        Command::Ssh(args) => console::run_ssh(&global, args),
        Command::Proxy(args) => proxy::run(&global, args),
        Command::Scale(args) => scale::run(&global, args),
        Command::Secrets(args) => secrets::run(&global, args),
        Command::Volumes(args) => volumes::run(&global, args),
        Command::Certs(args) => certs::run(&global, args),
        Command::Logs(args) => logs::run(&global, args),
        Command::Events(args) => events::run(&global, args),
        Command::Watch(args) => watch::run(&global, args),
        Command::Jobs(args) => jobs::run(&global, args),
        Command::Daemon(args) => daemon::run(&global, args),
        Command::Remote(args) => remotes::run(&global, args),
        Command::Auth(args) => auth::run(&global, args),
        Command::Completion(args) => completion::run(args),
        Command::Version => {
            let out = global.output();
            let version = env!("CARGO_PKG_VERSION");
            if out.json {
                return out.json(&serde_json::json!({ "version": version }));
            }
            out.text(&format!("lakefly {version}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// What flyctl users type from habit, and scripts written for flyctl, parse.
    #[test]
    fn flyctl_spellings_parse() {
        for line in [
            "apps ls -j",
            "app list",
            "apps create --name web",
            "apps destroy web -y",
            "apps rm web --yes",
            "machines ls -q",
            "machine list",
            "m restart a b c",
            "machines rm a --force",
            "machine stop a b",
            "secrets ls",
            "volumes ls",
            "vol create data --size 1 -r ams -y",
            "volumes rm data -y",
            "certs ls",
            "certs delete www.example.com",
            "checks ls",
            "jobs ls",
            "remote ls",
            "logs --no-tail -n 5 -i abc",
            "logs --no-tail --instance abc",
            "logs -m abc",
            "logs -s",
            "ssh console -s --pty -q -C uptime",
            "console --select",
            "deploy --remote-only -y",
            "deploy --ha=false",
            "deploy --local-only --no-cache",
            "deploy --vm-size shared-cpu-2x --vm-memory 1024 --vm-cpus 2",
            "deploy --skip-release-command --release-command-timeout 10m --max-unavailable 0.5",
            "scale count 2 -y -g web",
            "status -j",
            "status --watch",
            "version",
            "open /admin",
            "config validate -s",
        ] {
            let argv = std::iter::once("lakefly").chain(line.split(' '));
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("`lakefly {line}` does not parse:\n{e}");
            }
        }
    }
}
