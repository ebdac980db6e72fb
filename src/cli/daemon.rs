//! `lakefly daemon ...`: the daemon's own flags, shared with the `lakeflyd` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::GlobalArgs;
use crate::error::Error;

/// Run or manage the lakeflyd daemon.
#[derive(Debug, Args)]
#[command(
    after_help = "Without --remote, lakefly starts a local daemon in the background when none runs\n(state in the user's data dir, log file beside it); `status` and `stop` manage it.\n\nExamples:\n  lakefly daemon start\n  lakefly daemon status\n  lakefly daemon stop\n  sudo lakefly daemon install --systemd\n  lakefly daemon run --api 127.0.0.1:4280 --state ./state"
)]
pub struct DaemonArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DaemonCommand,
}

/// Daemon commands.
#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Run the daemon in the foreground (the same as `lakeflyd`).
    Run(Box<RunArgs>),
    /// Start the local daemon in the background, unless it runs already.
    Start,
    /// Say whether the local daemon runs, and where; with a remote, how that daemon is.
    Status,
    /// Stop the local daemon (its machines stop with their kill signal and timeout).
    Stop,
    /// Write a systemd unit or a launchd agent that runs lakeflyd on this host.
    Install(super::daemon_install::InstallArgs),
}

/// How `lakeflyd` runs: where it listens and keeps its state.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Examples:\n  lakeflyd\n  lakeflyd --api 127.0.0.1:0 --edge 127.0.0.1:0 --state /tmp/lakefly-state"
)]
pub struct RunArgs {
    /// Address of the HTTP API.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4280")]
    pub api: SocketAddr,
    /// Address of the edge proxy that routes traffic to apps.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4281")]
    pub edge: SocketAddr,
    /// State directory (default: the user's data dir).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Domain apps are served under: `<app>.<domain>`.
    #[arg(long, value_name = "DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// File with accepted API tokens, one per line (primary first).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Without --token-file, the API serves the user lakeflyd runs as and root; the
    /// members of GROUP (a name or a gid) too, as Docker's group does.
    #[arg(long, value_name = "GROUP", conflicts_with = "token_file")]
    pub local_group: Option<String>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Keep at most this many events (older ones are pruned).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub events_keep: u64,
    /// Largest bundle upload accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    pub bundle_max_bytes: u64,
    /// Log lines kept per app (pruned in steps: up to 2,048 lines or a sixteenth more may
    /// wait for the next).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub log_lines_per_app: u64,
    /// Leave machines running when lakeflyd stops, for its next run on this state
    /// directory to take back (an upgrade or a restart then stops no app). Under systemd
    /// it needs `KillMode=process` (`lakefly daemon install --systemd --live-restore`).
    #[arg(long)]
    pub live_restore: bool,
    /// Ports handed to machines as `$PORT`; keep it outside the kernel's ephemeral
    /// ports (`net.ipv4.ip_local_port_range`).
    #[arg(long, value_name = "FIRST-LAST", default_value_t = crate::daemon::runtime::ports::PortRange::DEFAULT)]
    pub machine_ports: crate::daemon::runtime::ports::PortRange,
    /// Prune events older than this.
    #[arg(long, value_name = "DURATION", default_value = "720h")]
    pub events_max_age: crate::config::units::Duration,
    /// How long a deploy's new machine must have run, from its start, before the old
    /// machines it replaces stop (flyctl's smoke checks): one that crashes sooner, even
    /// after passing its checks, fails the release. 0s: as soon as its checks pass.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        env = "LAKEFLYD_SMOKE_TIME"
    )]
    pub smoke_time: crate::config::units::Duration,
    /// With `auto_stop_machines`, a machine that served nothing this long stops.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub auto_stop_after: crate::config::units::Duration,
    /// With `auto_start_machines`, how long a request waits for a machine to start.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub auto_start_wait: crate::config::units::Duration,
    /// Through the edge, a client that sends no byte of a request body, or reads no byte
    /// of an answer, for this long is disconnected; so is a machine that reads no byte of
    /// a request body and does not answer.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub edge_stall_timeout: crate::config::units::Duration,
    /// Through the edge, a client connection that carries no request this long is
    /// closed (HTTP/1.1 keep-alive and HTTP/2 alike); a request's head must arrive
    /// within it too. nginx's `keepalive_timeout`.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub edge_idle_timeout: crate::config::units::Duration,
    /// Threads (event loops) serving host-routed HTTP; default: half the cores, rounded
    /// up (at most 8), leaving the rest to the machines behind the edge. Raise it on a
    /// host whose machines do little per request.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub edge_threads: Option<u16>,
    /// Where host-routed HTTPS is served: every app's `<app>.<domain>` and added host
    /// names over TLS (HTTP/2 or HTTP/1.1) with --edge-tls-cert's certificates, e.g.
    /// 0.0.0.0:443.
    #[arg(long, value_name = "ADDR", requires = "edge_tls_cert")]
    pub edge_https: Option<std::net::SocketAddr>,
    /// Write a JSON line for every HTTP request the edge answers to FILE (time, app,
    /// client, scheme, method, host, target, status, ms); SIGHUP opens it anew, for
    /// logrotate.
    #[arg(long, value_name = "FILE")]
    pub edge_access_log: Option<std::path::PathBuf>,
    /// PEM certificate chain (leaf first) for --edge-https and for `[[services.ports]]`
    /// with the `tls` handler. Repeat (each with its --edge-tls-key) to serve several:
    /// a client gets the first that covers the name it asks for, else the first.
    #[arg(long, value_name = "FILE", requires = "edge_tls_key")]
    pub edge_tls_cert: Vec<std::path::PathBuf>,
    /// PEM private key of --edge-tls-cert (in the same order when repeated).
    #[arg(long, value_name = "FILE", requires = "edge_tls_cert")]
    pub edge_tls_key: Vec<std::path::PathBuf>,
    /// PEM certificate chain (leaf first): the API is served over HTTPS (clients trust its
    /// CA through the host's store or `SSL_CERT_FILE`).
    #[arg(long, value_name = "FILE", requires = "api_tls_key")]
    pub api_tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --api-tls-cert.
    #[arg(long, value_name = "FILE", requires = "api_tls_cert")]
    pub api_tls_key: Option<std::path::PathBuf>,
    /// A browser origin (`https://dash.example.com`, or `*`) allowed to call the API
    /// (CORS); repeat for more. None: no CORS headers at all.
    #[arg(long, value_name = "ORIGIN", value_parser = crate::daemon::server::parse_origin)]
    pub cors_origin: Vec<String>,
}

/// How the daemon writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Human,
    /// One JSON object per line.
    Json,
}

/// Runs a daemon command.
pub fn run(global: &GlobalArgs, args: DaemonArgs) -> Result<(), Error> {
    let out = global.output();
    // Only status and stop look at the local daemon's state; `run` and `install` are
    // told where things go, and must work where HOME is not set (a service manager).
    let local_state = crate::daemon::default_state_dir;
    match args.command {
        DaemonCommand::Run(run) => run_daemon(*run),
        DaemonCommand::Install(install) => super::daemon_install::run(out, &install),
        DaemonCommand::Start => {
            let was_running = super::local::listening(&super::local::local_addr());
            let url = super::local::ensure_running(out)?;
            if out.json {
                return out.json(&serde_json::json!({ "api": url, "started": !was_running }));
            }
            if was_running {
                match super::local::running(&local_state()?) {
                    Some(_) => out.note(&format!("the local daemon already runs at {url}")),
                    None => out.note(&format!(
                        "another daemon answers at {url} (another user's, or one started by hand on other state): commands without --remote go to it; LAKEFLY_LOCAL_ADDR and LAKEFLY_LOCAL_EDGE move this user's own"
                    )),
                }
            }
            Ok(())
        }
        DaemonCommand::Status => {
            // A remote named (or the current one): that daemon, as it answers.
            if super::remote::resolve(global.remote().as_deref())?
                .url
                .is_some()
            {
                return remote_status(global);
            }
            let state = local_state()?;
            let record = super::local::running(&state);
            if out.json {
                out.json(&serde_json::json!({
                    "running": record.is_some(),
                    "api": record.as_ref().map(|r| r.api.clone()),
                    "pid": record.as_ref().map(|r| r.pid),
                    "state": state,
                }))?;
            }
            // As `systemctl status`: a script can test whether it runs by the exit code.
            let Some(r) = record else {
                let addr = super::local::local_addr();
                let taken = super::local::listening(&addr).then_some(addr);
                return Err(Error::DaemonNotRunning { state, taken });
            };
            if out.json {
                return Ok(());
            }
            out.text(&format!(
                "running: pid {} at {}, state in {}",
                r.pid,
                r.api,
                state.display()
            ))
        }
        DaemonCommand::Stop => {
            let stopped = super::local::stop(&local_state()?)?;
            if out.json {
                return out
                    .json(&serde_json::json!({ "stopped": stopped.as_ref().map(|r| r.pid) }));
            }
            match stopped {
                Some(r) => out.note(&format!("stopped the local daemon (pid {})", r.pid)),
                None => out.note("no local daemon runs"),
            }
            Ok(())
        }
    }
}

/// `daemon status` of a remote daemon: its health and what it holds. Unreachable is exit
/// 8, as for any command; a daemon that answers `degraded` says what needs doing.
fn remote_status(global: &GlobalArgs) -> Result<(), Error> {
    let out = global.output();
    let api = super::remote::client(global)?;
    let (health, held) = super::remote::block_on(async {
        let (health, held) = tokio::join!(api.health(), api.daemon_status());
        Ok((health?, held?))
    })?;
    if out.json {
        return out.json(&serde_json::json!({
            "running": true,
            "api": api.base(),
            "status": health.status,
            "problems": health.problems,
            "version": health.version,
            "edge": health.edge,
            "domain": health.domain,
            "apps": held.apps,
            "machines": held.machines,
            "jobs": held.jobs,
            "jobs_running": held.jobs_running,
        }));
    }
    let mut text = format!(
        "running: lakeflyd {} at {} ({})",
        health.version,
        api.base(),
        health.status
    );
    for problem in &health.problems {
        text.push_str(&format!("\n  problem: {problem}"));
    }
    if let Some(edge) = &health.edge {
        let domain = health.domain.as_deref().unwrap_or("localhost");
        text.push_str(&format!("\nedge: {edge}, apps at <app>.{domain}"));
    }
    text.push_str(&format!(
        "\n{} apps, {} machines, {} jobs ({} running)",
        held.apps, held.machines, held.jobs, held.jobs_running
    ));
    out.text(&text)
}

/// Starts the daemon; the entry point of both `lakeflyd` and `lakefly daemon run`.
pub fn run_daemon(args: RunArgs) -> Result<(), Error> {
    crate::daemon::run(args)
}
