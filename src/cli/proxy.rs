//! `lakefly proxy LOCAL[:REMOTE]`: a local port that reaches a port of one of the app's
//! machines through the daemon's API, as `fly proxy` does: an admin page, a database or a
//! metrics port that the edge does not serve, from a laptop, over the one connection a
//! remote daemon already allows (its token, its TLS).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use clap::Args;
use tokio::net::{TcpListener, TcpStream};

use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::api::client::Client;
use crate::error::Error;

/// How long the proxy waits after a failed accept before it accepts again.
const ACCEPT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Reach a port of one of the app's machines from a local port (as `fly proxy`).
#[derive(Debug, Args)]
#[command(
    after_help = "REMOTE is a port as the app knows it: its internal_port (which reaches the machine's\n$PORT) or another port its processes listen on. Each connection to the local port is\ncarried through the daemon's API, so it needs nothing the API does not: no open port on\nthe host, no SSH. Without --machine each connection goes to the first started machine\nof the app at that moment, so the proxy outlives a deploy. Ctrl-C stops it.\nWith --json, one line on stdout once it listens: {\"listen\", \"machine\", \"port\"}; a\nconnection it cannot carry is an error object on stderr, with its \"peer\".\n\nExamples:\n  lakefly proxy 8080                   localhost:8080 to the app's port 8080\n  lakefly proxy 15432:5432 -a db       a database on another local port\n  lakefly proxy 0:9091 --json          a free local port, printed\n  lakefly proxy 5432 -q --watch-stdin  quiet, until the script holding stdin ends"
)]
pub struct ProxyArgs {
    /// LOCAL[:REMOTE]: the local port, and the machine's port (default: the same); a
    /// local port of 0 takes a free one.
    #[arg(value_name = "LOCAL[:REMOTE]")]
    pub ports: Ports,
    /// The machine (default: the first started one, for each connection).
    #[arg(long, value_name = "ID")]
    pub machine: Option<String>,
    /// Pick the machine from a list, asked on the terminal (as `fly proxy -s`).
    #[arg(short = 's', long, conflicts_with = "machine")]
    pub select: bool,
    /// Say nothing once it listens (errors are still said).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Stop when standard input closes: a script's proxy ends with the script that
    /// holds its stdin (as flyctl's).
    #[arg(long)]
    pub watch_stdin: bool,
    /// The local address to listen on.
    #[arg(short = 'b', long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind_addr: IpAddr,
}

/// `LOCAL[:REMOTE]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The local port (0: any free one).
    pub local: u16,
    /// The machine's port.
    pub remote: u16,
}

impl FromStr for Ports {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let port = |part: &str| {
            part.trim().parse::<u16>().map_err(|_| {
                format!("{part:?} is not a port; write LOCAL[:REMOTE], e.g. 8080 or 15432:5432")
            })
        };
        let (local, remote) = match text.split_once(':') {
            Some((local, remote)) => (port(local)?, port(remote)?),
            None => (port(text)?, port(text)?),
        };
        if remote == 0 {
            return Err("the machine's port cannot be 0; write LOCAL:REMOTE, e.g. 0:8080".into());
        }
        Ok(Ports { local, remote })
    }
}

/// Listens until interrupted, carrying each connection to the machine's port.
pub fn run(global: &GlobalArgs, args: ProxyArgs) -> Result<(), Error> {
    let out = global.output();
    let app = app_name(global)?;
    let api = client(global)?;
    let remote = args.ports.remote;
    let stdin_closed = args.watch_stdin.then(stdin_closed);
    block_on(async move {
        let machine = match args.select {
            true => Some(super::machine_pick::select_flag(&api, &app).await?.id),
            false => args.machine.clone(),
        };
        // Asked once before listening, so a stopped app or a wrong port fails now, plainly.
        let first = super::machine_pick::chosen(&api, &app, machine.as_deref()).await?;
        let target = api.proxy_target(&app, &first.id, remote).await?;
        let addr = SocketAddr::new(args.bind_addr, args.ports.local);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                what: "proxy",
                addr,
                source,
            })?;
        let listening = listener.local_addr().map_err(|source| Error::Bind {
            what: "proxy",
            addr,
            source,
        })?;
        if out.json {
            out.ndjson(&serde_json::json!({
                "listen": listening.to_string(),
                "machine": target.machine,
                "port": remote,
            }))?;
        } else if !args.quiet {
            let machine = match &machine {
                Some(id) => format!("machine {id}"),
                None => format!(
                    "the first started machine of {app} (now {})",
                    target.machine
                ),
            };
            out.note(&format!(
                "proxying {listening} to port {remote} of {machine}; Ctrl-C stops"
            ));
        }
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let (api, app, machine) = (api.clone(), app.clone(), machine.clone());
                        tokio::spawn(async move {
                            if let Err(e) = carry(&api, &app, machine.as_deref(), remote, stream).await {
                                not_proxied(out, peer, &e);
                            }
                        });
                    }
                    // A full descriptor table, say: that connection is lost, the proxy goes
                    // on after a pause (the error stays until a connection closes).
                    Err(e) => {
                        out.note(&format!("could not accept a connection: {e}"));
                        tokio::time::sleep(ACCEPT_PAUSE).await;
                    }
                },
                _ = tokio::signal::ctrl_c() => return Ok(()),
                () = until_told(stdin_closed.as_deref()) => return Ok(()),
            }
        }
    })
}

/// Returns once `told` is told; never without one.
async fn until_told(told: Option<&tokio::sync::Notify>) {
    match told {
        Some(told) => told.notified().await,
        None => std::future::pending().await,
    }
}

/// Told once standard input reaches its end (or cannot be read). Read on a thread of its
/// own, which does not hold up the exit as a runtime's blocking read would.
fn stdin_closed() -> std::sync::Arc<tokio::sync::Notify> {
    let closed = std::sync::Arc::new(tokio::sync::Notify::new());
    let tell = closed.clone();
    std::thread::spawn(move || {
        let mut sink = [0u8; 4096];
        let mut stdin = std::io::stdin().lock();
        while let Ok(1..) = std::io::Read::read(&mut stdin, &mut sink) {}
        // `notify_one` keeps the permit when nobody waits yet.
        tell.notify_one();
    });
    closed
}

/// Says on stderr that the connection from `peer` was dropped, and why: a line of text, or
/// under `--json` an error object as any command's, with the peer.
fn not_proxied(out: crate::output::Output, peer: std::net::SocketAddr, e: &Error) {
    if out.json {
        out.note(
            &serde_json::json!({
                "error": format!("connection from {peer} not proxied: {e}"),
                "code": e.code(),
                "hint": e.hint(),
                "peer": peer.to_string(),
            })
            .to_string(),
        );
    } else {
        out.note(&format!("connection from {peer} not proxied: {e}"));
    }
}

/// Carries one local connection to the machine's port until either side closes it.
async fn carry(
    api: &Client,
    app: &str,
    machine: Option<&str>,
    port: u16,
    mut local: TcpStream,
) -> Result<(), Error> {
    let _ = local.set_nodelay(true);
    let id = super::machine_pick::chosen(api, app, machine).await?.id;
    let mut remote = api.proxy_connect(app, &id, port).await?;
    // Either side closing ends it; an error here is a reset connection, not the proxy's.
    let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_read_as_flyctl_writes_them() {
        assert_eq!(
            "8080".parse(),
            Ok(Ports {
                local: 8080,
                remote: 8080
            })
        );
        assert_eq!(
            "15432:5432".parse(),
            Ok(Ports {
                local: 15432,
                remote: 5432
            })
        );
        assert_eq!(
            "0:9091".parse(),
            Ok(Ports {
                local: 0,
                remote: 9091
            })
        );
        assert!("0".parse::<Ports>().unwrap_err().contains("cannot be 0"));
        assert!("web:80"
            .parse::<Ports>()
            .unwrap_err()
            .contains("\"web\" is not a port"));
        assert!("70000".parse::<Ports>().is_err());
    }
}
