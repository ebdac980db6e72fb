//! `lakefly daemon install --systemd|--launchd`: writes the service definition that keeps
//! lakeflyd running on a host, in place of the hand-written unit or the tmux session. The
//! systemd unit is the hardened one shipped in `fly/lakeflyd.service`, with this host's
//! binary, addresses and user filled in; `--socket` adds `fly/lakeflyd.socket`, which
//! holds the edge's address open while lakeflyd restarts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;

use super::service_options::{ServiceOptions, WrittenDir};
use crate::daemon::inherited::{EDGE, EDGE_HTTPS};
use crate::error::Error;
use crate::output::Output;

/// The unit shipped with lakefly; `install --systemd` fills in its host-specific lines.
const SYSTEMD_TEMPLATE: &str = include_str!("../../fly/lakeflyd.service");
/// The socket unit shipped with lakefly; `install --systemd --socket` fills in its
/// address and service.
const SOCKET_TEMPLATE: &str = include_str!("../../fly/lakeflyd.socket");
/// Where systemd looks for units the administrator installs.
const SYSTEMD_PATH: &str = "/etc/systemd/system/lakeflyd.service";
/// The launchd job's label, and its file's name in `~/Library/LaunchAgents`.
const LAUNCHD_LABEL: &str = "dev.lakefly.lakeflyd";
/// Where lakeflyd is installed when no other is found.
const DEFAULT_BIN: &str = "/usr/local/bin/lakeflyd";

/// Write a service definition that runs lakeflyd on this host.
#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("manager").required(true).args(["systemd", "launchd"])),
    after_help = "After `--`, lakeflyd's own options for the service (checked now, as lakeflyd reads them).\n\nExamples:\n  sudo lakefly daemon install --systemd && sudo systemctl enable --now lakeflyd\n  sudo lakefly daemon install --systemd --edge 0.0.0.0:80 -- --domain apps.example.com\n  sudo lakefly daemon install --systemd --socket \\\n    && sudo systemctl enable --now lakeflyd.socket lakeflyd\n  lakefly daemon install --launchd\n  lakefly daemon install --systemd --output - | less"
)]
pub struct InstallArgs {
    /// A systemd unit (Linux), hardened: own user, ProtectSystem=strict, delegated cgroup.
    #[arg(long)]
    pub systemd: bool,
    /// A launchd agent (macOS), started at login and restarted when it fails.
    #[arg(long)]
    pub launchd: bool,
    /// Where to write it; `-` prints it [default: /etc/systemd/system/lakeflyd.service, or
    /// ~/Library/LaunchAgents/dev.lakefly.lakeflyd.plist].
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The lakeflyd the service runs [default: the one beside this lakefly, else
    /// /usr/local/bin/lakeflyd].
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// Address of the daemon's API.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4280")]
    pub api: SocketAddr,
    /// Address of the edge that routes traffic to apps.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4281")]
    pub edge: SocketAddr,
    /// systemd: the system user the daemon runs as.
    #[arg(long, value_name = "NAME", default_value = "lakefly", value_parser = user_name)]
    pub user: String,
    /// systemd: the secrets master key as a credential made with `systemd-creds encrypt`
    /// (without one, the key is a 0600 file in the state directory).
    #[arg(long, value_name = "FILE")]
    pub master_key_credential: Option<PathBuf>,
    /// systemd: also a socket unit for the edge's address, written beside the service
    /// (`lakeflyd.socket`, and `lakeflyd-https.socket` for `-- --edge-https`): systemd
    /// holds it open while lakeflyd restarts, so a client that connects during an upgrade
    /// waits and is answered instead of refused.
    #[arg(long, conflicts_with = "launchd")]
    pub socket: bool,
    /// systemd: run lakeflyd with `--live-restore` and `KillMode=process`, so a restart or
    /// an upgrade of lakeflyd leaves the apps running and the next start takes them back.
    #[arg(long, conflicts_with = "launchd")]
    pub live_restore: bool,
    /// Replace a file that is already there.
    #[arg(long)]
    pub force: bool,
    /// lakeflyd's own options for the service, after `--`: `-- --domain apps.example.com`.
    #[arg(last = true, value_name = "LAKEFLYD_OPTION")]
    pub lakeflyd: Vec<String>,
}

/// A user name systemd and useradd accept: a letter or `_`, then letters, digits, `_`, `-`.
fn user_name(name: &str) -> Result<String, String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && name.len() <= 32 {
        Ok(name.to_string())
    } else {
        Err(format!(
            "`{name}` is not a system user name: a lowercase letter or `_`, then lowercase letters, digits, `_` or `-`, at most 32"
        ))
    }
}

/// Writes (or prints) the service definition `args` describe.
pub fn run(out: Output, args: &InstallArgs) -> Result<(), Error> {
    let bin = lakeflyd_path(args.bin.as_deref())?;
    let options = ServiceOptions::parse(&args.lakeflyd, args.api, args.systemd)?;
    let (text, default_path) = if args.systemd {
        (
            systemd_unit(args, &options, &bin),
            PathBuf::from(SYSTEMD_PATH),
        )
    } else {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .ok_or(Error::NoHome {
                needs: "the launchd agent's log (~/Library/Logs/lakeflyd.log)",
            })?;
        let agents = home.join("Library/LaunchAgents");
        let log = home.join("Library/Logs/lakeflyd.log");
        (
            launchd_plist(args, &options, &bin, &log),
            agents.join(format!("{LAUNCHD_LABEL}.plist")),
        )
    };
    let path = args.output.clone().unwrap_or(default_path);
    let printed = path == Path::new("-");
    // The socket unit goes beside the service, named after it, so systemd pairs them.
    let service_name = if printed {
        "lakeflyd.service".to_string()
    } else {
        file_name(&path)
    };
    let stem = service_name
        .strip_suffix(".service")
        .unwrap_or(&service_name);
    // The edge's socket, and the HTTPS edge's when lakeflyd serves one.
    let sockets: Vec<(String, PathBuf)> = if args.socket {
        let https = options.run.edge_https.map(|at| (at, EDGE_HTTPS, "-https"));
        [Some((args.edge, EDGE, "")), https]
            .into_iter()
            .flatten()
            .map(|(at, fd_name, suffix)| {
                let unit = socket_unit(at, fd_name, &service_name);
                (unit, path.with_file_name(format!("{stem}{suffix}.socket")))
            })
            .collect()
    } else {
        Vec::new()
    };
    if printed {
        let mut text = text.trim_end().to_string();
        for (socket, socket_path) in &sockets {
            text.push_str(&format!(
                "\n\n# ---- {} ----\n{}",
                file_name(socket_path),
                socket.trim_end()
            ));
        }
        out.text(&text)?;
        warn_of_missing(out, args, &options, &bin);
        return Ok(());
    }
    let mut files = vec![(text, path.clone())];
    files.extend(sockets.iter().cloned());
    // Nothing is written unless every file may be.
    if let Some((_, taken)) = files.iter().find(|(_, p)| p.exists() && !args.force) {
        return Err(Error::AlreadyExists {
            path: taken.clone(),
            flag: "--force",
        });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    }
    for (text, path) in &files {
        crate::atomic_write::write(path, text.as_bytes(), 0o644)?;
    }
    let socket_paths: Vec<&PathBuf> = sockets.iter().map(|(_, path)| path).collect();
    if out.json {
        return out.json(&serde_json::json!({
            "path": path,
            "socket": socket_paths.first(),
            "sockets": socket_paths,
            "manager": if args.systemd { "systemd" } else { "launchd" },
            "bin": bin,
            "lakeflyd_options": options.words,
        }));
    }
    for (_, path) in &files {
        out.note(&format!("==> wrote {}", path.display()));
    }
    let next = if args.systemd {
        let mut units: Vec<String> = socket_paths.iter().map(|p| file_name(p)).collect();
        units.push("lakeflyd".to_string());
        let units = units.join(" ");
        let members = match local_group(args, &options) {
            Some(group) => format!(
                "\n      usermod -aG {group} USER   (for each user who deploys here: the API serves the group's members without a token)"
            ),
            None => String::new(),
        };
        format!(
            "next: useradd --system --home /var/lib/lakefly {user}   (once){members}\n      \
             systemctl daemon-reload && systemctl enable --now {units}\n      \
             systemctl reload lakeflyd reads renewed TLS certificates; journalctl -u lakeflyd shows its log",
            user = args.user
        )
    } else {
        format!(
            "next: launchctl bootstrap gui/$(id -u) {}\n      its log: ~/Library/Logs/lakeflyd.log",
            path.display()
        )
    };
    out.note(&next);
    warn_of_missing(out, args, &options, &bin);
    Ok(())
}

/// Says what the service will not start without that is not there yet, and whose files
/// it reads.
fn warn_of_missing(out: Output, args: &InstallArgs, options: &ServiceOptions, bin: &Path) {
    if !bin.exists() {
        out.note(&format!(
            "warning: {} does not exist yet; install lakeflyd there, or pass --bin",
            bin.display()
        ));
    }
    for (flag, path) in options.missing() {
        out.note(&format!(
            "warning: {flag}: {} does not exist yet; lakeflyd will not start without it",
            path.display()
        ));
    }
    if let Some(note) = proxy_left_behind(args.systemd, set_proxy_variables()) {
        out.note(&note);
    }
    let reads_files = (options.files().iter()).any(|(flag, _)| *flag != "--edge-access-log");
    if args.systemd && reads_files {
        out.note(&format!(
            "note: the service reads its files as user {}: give it read access (certbot's live/ is root's alone: copy them in a deploy hook)",
            args.user
        ));
    }
}

/// The proxy variables this shell sets (not empty), which builds use: lakeflyd passes
/// its own on to `[build] command`.
fn set_proxy_variables() -> Vec<&'static str> {
    (crate::daemon::runtime::process::HOST_PROXY.iter().copied())
        .filter(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
        .collect()
}

/// What to say when this shell has proxy settings (`names`) that the service will not:
/// a service manager starts lakeflyd with an environment of its own, so builds that
/// fetch through the proxy here would go without it there. Names only: a proxy's
/// address may carry a password.
fn proxy_left_behind(systemd: bool, names: Vec<&str>) -> Option<String> {
    let (last, first) = names.split_last()?;
    let names = if first.is_empty() {
        last.to_string()
    } else {
        format!("{} and {last}", first.join(", "))
    };
    let how = if systemd {
        "`systemctl edit lakeflyd` and set them under [Service] with Environment=NAME=VALUE \
         (or EnvironmentFile= a 0600 file when the proxy's address holds a password: \
         `systemctl show` prints Environment= to every user)"
    } else {
        "set them in the agent's EnvironmentVariables"
    };
    Some(format!(
        "note: this shell sets {names}, which the service does not inherit: builds \
         (`[build] command`: npm install, pip install) would fetch without the proxy; {how}"
    ))
}

/// The lakeflyd to run: `--bin` (made absolute), else the one beside this executable,
/// else the usual install path.
fn lakeflyd_path(given: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(bin) = given {
        return std::path::absolute(bin).map_err(|e| Error::io("resolve", bin, e));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("lakeflyd")))
        .filter(|bin| bin.is_file());
    Ok(beside.unwrap_or_else(|| PathBuf::from(DEFAULT_BIN)))
}

/// What a `--live-restore` unit says in place of `Delegate=`.
const LIVE_RESTORE_NO_DELEGATE: &str = "\
# --live-restore: no Delegate=. Machines outlive lakeflyd in this service's cgroup, where a
# restart must place lakeflyd again, which cgroup v2 refuses beside controllers enabled
# for machines. Memory limits are held by watching resident memory; CPU is not limited.
";

/// The shipped unit with this host's lines in it.
fn systemd_unit(args: &InstallArgs, options: &ServiceOptions, bin: &Path) -> String {
    let mut exec = format!(
        "ExecStart={} --state /var/lib/lakefly --api {} --edge {}",
        exec_word(&bin.display().to_string()),
        args.api,
        args.edge,
    );
    if let Some(group) = local_group(args, options) {
        exec.push_str(&format!(" --local-group {group}"));
    }
    exec.push_str(" --log-format json");
    if args.live_restore {
        exec.push_str(" --live-restore");
    }
    for word in &options.words {
        exec.push(' ');
        exec.push_str(&exec_word(word));
    }
    let credential = match &args.master_key_credential {
        Some(file) => format!(
            "LoadCredentialEncrypted=lakefly-master-key:{}",
            systemd_word(&file.display().to_string())
        ),
        None => "# LoadCredentialEncrypted=lakefly-master-key:/etc/lakefly/master-key.cred  \
                 (--master-key-credential; without it the key is a 0600 file in the state dir)"
            .to_string(),
    };
    let mut unit = String::with_capacity(SYSTEMD_TEMPLATE.len() + 256);
    // Under live restore the template's delegated cgroup (its comment, then `Delegate=`)
    // gives way: a restart must place lakeflyd in the service's cgroup again, which cgroup
    // v2 refuses while it has controllers enabled for machines still running below it.
    let mut in_delegation = false;
    for line in SYSTEMD_TEMPLATE.lines() {
        if args.live_restore {
            // The template's word on KillMode=mixed, which live restore replaces.
            if line.starts_with("# Stop the daemon first") {
                continue;
            }
            if line.starts_with("# The service's cgroup is lakeflyd's") {
                in_delegation = true;
            }
            if in_delegation {
                if line.starts_with("Delegate=") {
                    in_delegation = false;
                    unit.push_str(LIVE_RESTORE_NO_DELEGATE);
                }
                continue;
            }
        }
        let line = match line.split_once('=').map(|(key, _)| key) {
            Some("ExecStart") => exec.clone(),
            Some("User") => format!("User={}", args.user),
            Some("Group") => format!("Group={}", args.user),
            Some("LoadCredentialEncrypted") => credential.clone(),
            // ProtectSystem=strict leaves only the state writable: the access log's
            // directory is added.
            Some("ReadWritePaths") => match options.written_dir() {
                Some(WrittenDir::Logs(logs)) => format!(
                    "{line}\n# --edge-access-log writes here; systemd makes it, the service user's.\nLogsDirectory={}",
                    systemd_word(&logs.display().to_string())
                ),
                Some(WrittenDir::Other(dir)) => format!(
                    "{line}\n# --edge-access-log writes here.\nReadWritePaths={}",
                    systemd_word(&dir.display().to_string())
                ),
                None => line.to_string(),
            },
            Some("NoNewPrivileges") => match low_ports(args, options) {
                Some(why) => format!(
                    "{line}\n# lakeflyd binds {why}, below 1024, which takes this capability;\n\
                     # its machines do not inherit it.\nAmbientCapabilities=CAP_NET_BIND_SERVICE"
                ),
                None => line.to_string(),
            },
            // Only lakeflyd is stopped: its machines run on in the service's cgroup for
            // the next start to take back.
            Some("KillMode") if args.live_restore => {
                "# --live-restore: only lakeflyd stops; the machines run on for its next start.\nKillMode=process".to_string()
            }
            _ => line.to_string(),
        };
        unit.push_str(&line);
        unit.push('\n');
    }
    unit
}

/// The group whose members may use the service's API without a token: its own group (the
/// user's name, as `useradd` makes it), unless lakeflyd's options take tokens or name one.
fn local_group<'a>(args: &'a InstallArgs, options: &ServiceOptions) -> Option<&'a str> {
    let run = &options.run;
    (run.token_file.is_none() && run.local_group.is_none()).then_some(args.user.as_str())
}

/// The ports below 1024 lakeflyd binds itself (the API's, the edges' unless socket units
/// bind them), as "port 80 (--edge)", if any.
fn low_ports(args: &InstallArgs, options: &ServiceOptions) -> Option<String> {
    let edge = (!args.socket).then_some((args.edge.port(), "--edge"));
    let https = (options.run.edge_https)
        .filter(|_| !args.socket)
        .map(|at| (at.port(), "--edge-https"));
    let low: Vec<String> = [Some((args.api.port(), "--api")), edge, https]
        .into_iter()
        .flatten()
        .filter(|(port, _)| *port < 1024)
        .map(|(port, flag)| format!("port {port} ({flag})"))
        .collect();
    (!low.is_empty()).then(|| low.join(" and "))
}

/// The shipped socket unit for `service`, listening on `at` for the listener lakeflyd
/// knows by `fd_name` (`inherited::EDGE`, `inherited::EDGE_HTTPS`).
fn socket_unit(at: SocketAddr, fd_name: &str, service: &str) -> String {
    let mut unit = String::with_capacity(SOCKET_TEMPLATE.len() + 64);
    for line in SOCKET_TEMPLATE.lines() {
        let line = match line.split_once('=').map(|(key, _)| key) {
            Some("ListenStream") => format!("ListenStream={at}"),
            Some("FileDescriptorName") => format!("FileDescriptorName={fd_name}"),
            Some("Description") if fd_name == EDGE_HTTPS => {
                "Description=lakefly HTTPS edge socket".to_string()
            }
            Some("Service") => format!("Service={service}"),
            Some("PartOf") => format!("PartOf={service}"),
            _ => line.to_string(),
        };
        unit.push_str(&line);
        unit.push('\n');
    }
    unit
}

/// The last part of a path, as text.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `text` as one word of a systemd setting: quoted when it holds a space, a quote or a
/// backslash, with `%` doubled so systemd reads no specifier in it.
fn systemd_word(text: &str) -> String {
    let text = text.replace('%', "%%");
    if text
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        text
    }
}

/// `text` as one word of an `Exec` line, where systemd also expands `$NAME`.
fn exec_word(text: &str) -> String {
    systemd_word(&text.replace('$', "$$"))
}

/// A launchd agent: started at login, restarted when it exits with an error.
fn launchd_plist(args: &InstallArgs, options: &ServiceOptions, bin: &Path, log: &Path) -> String {
    let program: Vec<String> = [
        bin.display().to_string(),
        "--api".into(),
        args.api.to_string(),
        "--edge".into(),
        args.edge.to_string(),
    ]
    .iter()
    .chain(&options.words)
    .map(|arg| format!("        <string>{}</string>", xml_escape(arg)))
    .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
    <key>Label</key>
    <string>{LAUNCHD_LABEL}</string>
    <key>ProgramArguments</key>
    <array>
{program}
    </array>
    <key>RunAtLoad</key>
    <true/>
    <key>KeepAlive</key>
    <dict>
        <key>SuccessfulExit</key>
        <false/>
    </dict>
    <key>ExitTimeOut</key>
    <integer>90</integer>
    <key>StandardErrorPath</key>
    <string>{log}</string>
    <key>ProcessType</key>
    <string>Background</string>
</dict>
</plist>
"#,
        program = program.join("\n"),
        log = xml_escape(&log.display().to_string()),
    )
}

/// `text` safe between XML tags.
fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_useradds_rules() {
        assert!(user_name("lakefly").is_ok());
        assert!(user_name("_svc-1").is_ok());
        for bad in ["", "Root", "1abc", "a b", "x;rm"] {
            let error = user_name(bad).unwrap_err();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
    }

    #[test]
    fn words_are_quoted_for_systemd() {
        assert_eq!(systemd_word("/usr/bin/lakeflyd"), "/usr/bin/lakeflyd");
        assert_eq!(
            systemd_word("/opt/my apps/lakeflyd"),
            "\"/opt/my apps/lakeflyd\""
        );
        // Specifiers and variables are systemd's: a literal `%` or `$` is doubled.
        assert_eq!(systemd_word("/etc/100%/key"), "/etc/100%%/key");
        assert_eq!(exec_word("/srv/$app/%h"), "/srv/$$app/%%h");
    }

    #[test]
    fn proxy_settings_the_service_lacks_are_named() {
        assert_eq!(proxy_left_behind(true, Vec::new()), None);
        let one = proxy_left_behind(true, vec!["https_proxy"]).unwrap();
        assert!(one.contains("sets https_proxy, which"), "{one}");
        assert!(one.contains("systemctl edit lakeflyd"), "{one}");
        let three = proxy_left_behind(false, vec!["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"]);
        let three = three.unwrap();
        assert!(
            three.contains("sets HTTP_PROXY, HTTPS_PROXY and NO_PROXY, which"),
            "{three}"
        );
        assert!(three.contains("EnvironmentVariables"), "{three}");
    }

    #[test]
    fn xml_text_is_escaped() {
        assert_eq!(xml_escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }
}
