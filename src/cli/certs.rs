//! `lakefly certs add HOSTNAME | list | show HOSTNAME | remove HOSTNAME`: host names
//! routed to the app besides `<app>.<domain>`, flyctl's `fly certs`, and paths under a host
//! name (`www.example.com/discovery`, as an nginx `location`). lakeflyd serves them over
//! HTTPS with whichever of its `--edge-tls-cert` certificates covers the host.

use clap::{Args, Subcommand};

use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::api::types::Hostname;
use crate::error::Error;
use crate::output::table::Table;

/// Route your own host names (www.example.com) to the app.
#[derive(Debug, Args)]
#[command(
    after_help = "The edge routes a request to the app when its Host is the name (HTTP on the edge address, \
HTTPS on --edge-https). Point the name's DNS at the host, and give lakeflyd a certificate that \
covers it (--edge-tls-cert, repeatable) for HTTPS.\n\nA path after the name (www.example.com/discovery) routes only \
the requests under that path to the app, as an nginx `location /discovery/` block does, whichever app has the host \
itself (its own name <app>.<domain> too); the longest path wins, and the path goes on unchanged.\n\nExamples:\n  \
lakefly certs add www.example.com\n  lakefly certs add '*.example.com'\n  lakefly certs add www.example.com/discovery -a discovery\n  \
lakefly certs list --json\n  lakefly certs remove www.example.com"
)]
pub struct CertsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CertsCommand,
}

/// Host name commands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Route a host name to the app (`*.example.com`: every name one label under it), or a
    /// path under one (`www.example.com/discovery`).
    Add {
        /// The host name: www.example.com or *.example.com, optionally with a path.
        hostname: String,
    },
    /// List the app's host names.
    #[command(visible_alias = "ls")]
    List,
    /// Show one host name and the certificate that serves it.
    Show {
        /// The host name.
        hostname: String,
    },
    /// Stop routing a host name to the app.
    #[command(alias = "delete", alias = "rm")]
    Remove {
        /// The host name.
        hostname: String,
    },
}

/// Runs a certs command.
pub fn run(global: &GlobalArgs, args: CertsArgs) -> Result<(), Error> {
    let out = global.output();
    // A bad name is refused before any daemon is reached (or started).
    let hostname = match &args.command {
        CertsCommand::Add { hostname }
        | CertsCommand::Show { hostname }
        | CertsCommand::Remove { hostname } => checked(hostname)?,
        CertsCommand::List => String::new(),
    };
    let app = app_name(global)?;
    let api = client(global)?;
    match args.command {
        CertsCommand::Add { .. } => {
            let added = block_on(async { Ok(api.add_hostname(&app, &hostname).await?) })?;
            if out.json {
                return out.json(&added);
            }
            out.note(&format!("{} routes to app {}", added.hostname, added.app));
            out.note(&https_note(&added));
            Ok(())
        }
        CertsCommand::List => {
            let list = block_on(async { Ok(api.hostnames(&app).await?) })?;
            if out.json {
                return out.json(&list);
            }
            let mut table = Table::new(vec!["HOSTNAME", "CERTIFICATE", "EXPIRES", "ADDED"]);
            for h in list {
                let cert = h.certificate.unwrap_or_else(|| "-".into());
                let expires = h.certificate_expires.unwrap_or_else(|| "-".into());
                table.row(vec![h.hostname, cert, expires, h.created_at]);
            }
            out.text(&table.render())
        }
        CertsCommand::Show { .. } => {
            let shown = block_on(async { Ok(api.hostname(&app, &hostname).await?) })?;
            if out.json {
                return out.json(&shown);
            }
            let mut table = Table::new(vec!["FIELD", "VALUE"]);
            table.row(vec!["hostname".into(), shown.hostname.clone()]);
            table.row(vec!["app".into(), shown.app.clone()]);
            table.row(vec!["added".into(), shown.created_at.clone()]);
            let cert = shown.certificate.clone().unwrap_or_else(|| "-".into());
            table.row(vec!["certificate".into(), cert]);
            if let Some(expires) = &shown.certificate_expires {
                table.row(vec!["expires".into(), expires.clone()]);
            }
            out.text(&table.render())?;
            out.note(&https_note(&shown));
            Ok(())
        }
        CertsCommand::Remove { .. } => {
            block_on(async { Ok(api.remove_hostname(&app, &hostname).await?) })?;
            if out.json {
                return out.json(&serde_json::json!({ "removed": hostname, "app": app }));
            }
            out.note(&format!("{hostname} no longer routes to app {app}"));
            Ok(())
        }
    }
}

/// The host name as the daemon keeps it (lowercase, no trailing dot), if it is one; checked
/// here too, so a slash or a port cannot reach the request path.
fn checked(hostname: &str) -> Result<String, Error> {
    let name = crate::config::names::canonical_hostname(hostname);
    crate::config::names::check_hostname(&name).map_err(|problem| Error::InvalidHostname {
        hostname: hostname.to_string(),
        problem,
    })?;
    Ok(name)
}

/// What HTTPS requests for the name get.
fn https_note(h: &Hostname) -> String {
    match &h.certificate {
        Some(cert) => format!("HTTPS for {} is served with {cert}", h.hostname),
        // A certificate is for the host, whatever path after it is routed.
        None => format!(
            "no edge certificate covers {}: give lakeflyd one with --edge-tls-cert (repeatable) for HTTPS",
            crate::config::names::split_route(&h.hostname).0
        ),
    }
}
