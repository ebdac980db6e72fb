//! `lakefly open [PATH]`: the app's web address in a browser, as `fly open`.

use std::io::IsTerminal;

use clap::Args;

use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::error::Error;

/// Open the app in a browser: its HTTPS address if the edge serves one, else its HTTP one.
#[derive(Debug, Args)]
#[command(
    after_help = "The address is printed on stdout either way; a browser is started only when stdout is\na terminal: $BROWSER if set, else xdg-open (open on macOS).\n\nExamples:\n  lakefly open\n  lakefly open /admin -a shop\n  curl \"$(lakefly open /health)\""
)]
pub struct OpenArgs {
    /// A path on the app.
    #[arg(default_value = "/")]
    pub path: String,
}

/// Prints the address of `path` on the app and, on a terminal, opens it.
pub fn run(global: &GlobalArgs, args: OpenArgs) -> Result<(), Error> {
    let out = global.output();
    let app = app_name(global)?;
    let api = client(global)?;
    let status = block_on(async { Ok(api.status(&app).await?) })?;
    let base = web_url(&status.urls).ok_or_else(|| Error::NotServed { app: app.clone() })?;
    let url = with_path(base, &args.path);
    if out.json {
        return out.json(&serde_json::json!({ "app": app, "url": url }));
    }
    out.text(&url)?;
    if std::io::stdout().is_terminal() {
        if let Err(why) = launch(&url) {
            out.note(&format!(
                "note: no browser started ({why}); the address is above"
            ));
        }
    }
    Ok(())
}

/// The address a browser should open among `urls`: the first HTTPS one, else the first
/// HTTP one (raw TCP and UDP ports are not for browsers).
fn web_url(urls: &[String]) -> Option<&str> {
    let first = |scheme: &str| urls.iter().find(|u| u.starts_with(scheme));
    first("https://")
        .or_else(|| first("http://"))
        .map(String::as_str)
}

/// `base` (which ends in `/`) with `path` on it.
fn with_path(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// Starts a browser on `url` and waits for the launcher (xdg-open hands over and exits).
fn launch(url: &str) -> Result<(), String> {
    let browser = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| {
            if cfg!(target_os = "macos") {
                "open".into()
            } else {
                "xdg-open".into()
            }
        });
    let status = std::process::Command::new(&browser)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("{browser}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{browser} {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_preferred_and_ports_of_other_schemes_are_not_opened() {
        let urls = |list: &[&str]| list.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        let served = urls(&[
            "http://shop.localhost:4281/",
            "https://shop.localhost:4443/",
            "tcp://shop.localhost:5432",
        ]);
        assert_eq!(web_url(&served), Some("https://shop.localhost:4443/"));
        let plain = urls(&["tcp://shop.localhost:5432", "http://shop.localhost:8001/"]);
        assert_eq!(web_url(&plain), Some("http://shop.localhost:8001/"));
        assert_eq!(web_url(&urls(&["udp://shop.localhost:53"])), None);
        assert_eq!(
            with_path("http://shop.localhost:4281/", "admin/x"),
            "http://shop.localhost:4281/admin/x"
        );
        assert_eq!(with_path("http://a/", "/"), "http://a/");
    }
}
