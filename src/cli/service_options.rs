//! The lakeflyd options `lakefly daemon install` writes into the service after its own
//! (`install --systemd --edge 0.0.0.0:80 -- --domain apps.example.com ...`). They are read
//! with lakeflyd's own parser at install time, so a mistyped flag or a missing value fails
//! here and not at `systemctl start`, and looked at for what the service must allow: a
//! port below 1024, a log file outside the state directory, files it can see.

use std::net::SocketAddr;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use super::daemon::RunArgs;
use crate::error::Error;

/// lakeflyd's command line, as `lakeflyd` reads it.
#[derive(Debug, Parser)]
#[command(name = "lakeflyd")]
struct Lakeflyd {
    #[command(flatten)]
    run: RunArgs,
}

/// lakeflyd options the service sets itself, by clap id, and why they are not passed on:
/// the first two in every service, the rest in a systemd unit.
const SET_BY_INSTALL: &[(&str, &str)] = &[
    ("api", "give it to install: `daemon install --api ADDR`"),
    ("edge", "give it to install: `daemon install --edge ADDR`"),
    (
        "live_restore",
        "give it to install: `daemon install --live-restore` (the unit's KillMode follows it)",
    ),
    (
        "state",
        "the service keeps its state in /var/lib/lakefly (StateDirectory=)",
    ),
    (
        "log_format",
        "the service logs JSON lines, which the journal reads",
    ),
];

/// Directories systemd's `ProtectHome=yes` hides from the service.
const HIDDEN_HOMES: &[&str] = &["/home", "/root", "/run/user"];

/// Where the service's state lives, writable under `ProtectSystem=strict`.
const STATE_DIR: &str = "/var/lib/lakefly";
/// Where systemd makes a unit's `LogsDirectory=`.
const LOGS_DIR: &str = "/var/log";

/// A directory beside its state that lakeflyd writes in (the access log's), and how the
/// unit makes it writable.
#[derive(Debug, PartialEq, Eq)]
pub enum WrittenDir<'a> {
    /// Under /var/log: systemd makes it, its user's (`LogsDirectory=`, this part of it).
    Logs(&'a Path),
    /// Elsewhere: it must be there, and is made writable (`ReadWritePaths=`).
    Other(&'a Path),
}

/// The options the service passes on to lakeflyd, checked.
#[derive(Debug)]
pub struct ServiceOptions {
    /// As given, one word each.
    pub words: Vec<String>,
    /// lakeflyd's reading of them (its defaults for the rest).
    pub run: RunArgs,
    /// For a systemd unit (else a launchd agent).
    systemd: bool,
}

impl ServiceOptions {
    /// Reads `words` as lakeflyd would, refusing what the service cannot run with:
    /// an option lakeflyd does not take or the install sets itself, a relative path (a
    /// service starts in `/`), a file a systemd unit hides (`systemd`), or an API beyond
    /// loopback (`api`) without a token file.
    pub fn parse(words: &[String], api: SocketAddr, systemd: bool) -> Result<Self, Error> {
        let argv = std::iter::once("lakeflyd").chain(words.iter().map(String::as_str));
        let matches = Lakeflyd::command()
            .try_get_matches_from(argv)
            .map_err(refused_by_lakeflyd)?;
        let command = Lakeflyd::command();
        // A launchd agent sets only the addresses; the rest are lakeflyd's defaults.
        let owned = if systemd {
            SET_BY_INSTALL
        } else {
            &SET_BY_INSTALL[..2]
        };
        for (id, why) in owned {
            if matches.value_source(id) == Some(ValueSource::CommandLine) {
                let flag = command
                    .get_arguments()
                    .find(|arg| arg.get_id() == id)
                    .and_then(|arg| arg.get_long())
                    .unwrap_or(id);
                return Err(Error::ServiceOption {
                    message: format!("--{flag} is set by the install, not passed on after `--`"),
                    hint: (*why).to_string(),
                });
            }
        }
        let run = Lakeflyd::from_arg_matches(&matches)
            .map_err(refused_by_lakeflyd)?
            .run;
        let options = ServiceOptions {
            words: words.to_vec(),
            run,
            systemd,
        };
        for (flag, path) in options.files() {
            if !path.is_absolute() {
                return Err(Error::ServiceOption {
                    message: format!("{flag} {}: a relative path", path.display()),
                    hint: "a service starts in /: give the absolute path".into(),
                });
            }
            if systemd && HIDDEN_HOMES.iter().any(|home| path.starts_with(home)) {
                return Err(Error::ServiceOption {
                    message: format!(
                        "{flag} {}: the unit's ProtectHome=yes hides home directories from lakeflyd",
                        path.display()
                    ),
                    hint: "keep the service's files under /etc/lakefly (readable by its user)"
                        .into(),
                });
            }
        }
        if !api.ip().is_loopback() && options.run.token_file.is_none() {
            return Err(Error::ServiceOption {
                message: format!(
                    "lakeflyd refuses to serve the API on {api} without a token: anyone who reaches it could run commands on this host"
                ),
                hint: "pass it a token file: `daemon install ... -- --token-file /etc/lakefly/tokens` (one token per line, 16+ characters), or keep --api on 127.0.0.1".into(),
            });
        }
        Ok(options)
    }

    /// The files lakeflyd is told to read or write, with the flag naming each.
    pub fn files(&self) -> Vec<(&'static str, &Path)> {
        let run = &self.run;
        let single = [
            ("--token-file", &run.token_file),
            ("--edge-access-log", &run.edge_access_log),
            ("--api-tls-cert", &run.api_tls_cert),
            ("--api-tls-key", &run.api_tls_key),
        ];
        let mut files: Vec<(&'static str, &Path)> = single
            .into_iter()
            .filter_map(|(flag, path)| Some((flag, path.as_deref()?)))
            .collect();
        for (flag, paths) in [
            ("--edge-tls-cert", &run.edge_tls_cert),
            ("--edge-tls-key", &run.edge_tls_key),
        ] {
            files.extend(paths.iter().map(|path| (flag, path.as_path())));
        }
        files
    }

    /// What is not there (yet) of the files lakeflyd reads and of the directory its
    /// access log goes in (unless systemd makes it): it will not start without them.
    pub fn missing(&self) -> Vec<(&'static str, &Path)> {
        let made_by_systemd = matches!(self.written_dir(), Some(WrittenDir::Logs(_)));
        self.files()
            .into_iter()
            .filter_map(|(flag, path)| match flag {
                "--edge-access-log" if made_by_systemd => None,
                "--edge-access-log" => Some((flag, path.parent().unwrap_or(path))),
                _ => Some((flag, path)),
            })
            .filter(|(_, path)| !path.exists())
            .collect()
    }

    /// A directory lakeflyd writes in beside its state: the access log's, unless it is in
    /// the state directory.
    pub fn written_dir(&self) -> Option<WrittenDir<'_>> {
        let dir = (self.run.edge_access_log.as_deref())
            .and_then(Path::parent)
            .filter(|dir| !dir.starts_with(STATE_DIR))?;
        match dir.strip_prefix(LOGS_DIR) {
            Ok(logs) if self.systemd && !logs.as_os_str().is_empty() => {
                Some(WrittenDir::Logs(logs))
            }
            _ => Some(WrittenDir::Other(dir)),
        }
    }
}

/// lakeflyd's parser refused the options: what it says, without its usage lines.
fn refused_by_lakeflyd(error: clap::Error) -> Error {
    use clap::error::ErrorKind;
    let message = match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            "--help and --version are not options for a service".to_string()
        }
        _ => {
            // What clap says before its usage line, on one line: the error, the items it
            // lists (missing flags), then its tips in brackets.
            let rendered = error.render().to_string();
            let mut lines = rendered
                .lines()
                .map(str::trim)
                .take_while(|line| !line.starts_with("Usage:"))
                .filter(|line| !line.is_empty());
            let first = lines.next().unwrap_or_default();
            let mut said = first.strip_prefix("error: ").unwrap_or(first).to_string();
            let (tips, items): (Vec<&str>, Vec<&str>) =
                lines.partition(|line| line.starts_with("tip: "));
            if !items.is_empty() {
                said = format!("{said} {}", items.join(", "));
            }
            if !tips.is_empty() {
                let tips: Vec<&str> = tips.iter().map(|tip| &tip["tip: ".len()..]).collect();
                said = format!("{said} ({})", tips.join("; "));
            }
            said
        }
    };
    Error::ServiceOption {
        message,
        hint: "the options after `--` are lakeflyd's own, as `lakeflyd --help` lists them".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<ServiceOptions, Error> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        ServiceOptions::parse(&words, "127.0.0.1:4280".parse().unwrap(), true)
    }

    fn refusal(words: &[&str]) -> String {
        match parse(words) {
            Err(Error::ServiceOption { message, hint }) => format!("{message} | {hint}"),
            other => panic!("{words:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn lakeflyds_own_parser_reads_them() {
        let options = parse(&[
            "--domain",
            "apps.example.com",
            "--edge-https=0.0.0.0:443",
            "--edge-tls-cert",
            "/etc/lakefly/tls.pem",
            "--edge-tls-key",
            "/etc/lakefly/tls.key",
        ])
        .unwrap();
        assert_eq!(options.run.domain, "apps.example.com");
        assert_eq!(options.run.edge_https, Some("0.0.0.0:443".parse().unwrap()));
        assert_eq!(options.words[2], "--edge-https=0.0.0.0:443");
        assert_eq!(options.files().len(), 2);
        // Nothing given: lakeflyd's defaults.
        assert_eq!(parse(&[]).unwrap().run.domain, "localhost");
    }

    #[test]
    fn what_lakeflyd_would_refuse_is_refused_at_install() {
        let typo = refusal(&["--edge-htps", "0.0.0.0:443"]);
        assert!(
            typo.contains("'--edge-htps' found (a similar argument exists: '--edge-https')"),
            "{typo}"
        );
        assert!(typo.contains("lakeflyd --help"), "{typo}");
        let no_key = refusal(&["--edge-https", "0.0.0.0:443"]);
        assert!(no_key.contains("not provided: --edge-tls-"), "{no_key}");
        assert!(no_key.contains("<FILE>, --edge-tls-"), "{no_key}");
        let port = refusal(&["--edge-https", "0.0.0.0:99999"]);
        assert!(port.contains("99999"), "{port}");
        assert!(refusal(&["--help"]).contains("not options for a service"));
    }

    #[test]
    fn what_the_install_sets_is_not_passed_on() {
        for (words, flag) in [
            (&["--api", "0.0.0.0:4280"][..], "--api"),
            (&["--state", "/srv/lakefly"][..], "--state"),
            (&["--log-format", "human"][..], "--log-format"),
            (&["--live-restore"][..], "--live-restore"),
        ] {
            let why = refusal(words);
            assert!(
                why.starts_with(&format!("{flag} is set by the install")),
                "{why}"
            );
        }
    }

    #[test]
    fn files_must_be_absolute_and_visible_to_the_service() {
        let relative = refusal(&["--token-file", "tokens"]);
        assert!(
            relative.contains("--token-file tokens: a relative path"),
            "{relative}"
        );
        let home = refusal(&["--token-file", "/root/tokens"]);
        assert!(home.contains("ProtectHome"), "{home}");
        // launchd runs as the user, in whose home the files may well be, and sets only
        // the addresses.
        let api = "127.0.0.1:4280".parse().unwrap();
        let words: Vec<String> = [
            "--token-file",
            "/Users/me/tokens",
            "--state",
            "/Users/me/lf",
        ]
        .map(String::from)
        .to_vec();
        assert!(ServiceOptions::parse(&words, api, false).is_ok());
        let edge = vec!["--edge".to_string(), "127.0.0.1:1".to_string()];
        assert!(ServiceOptions::parse(&edge, api, false).is_err());
    }

    #[test]
    fn an_api_beyond_loopback_needs_a_token_file() {
        let api = "0.0.0.0:4280".parse().unwrap();
        match ServiceOptions::parse(&[], api, true) {
            Err(Error::ServiceOption { message, hint }) => {
                assert!(message.contains("0.0.0.0:4280"), "{message}");
                assert!(hint.contains("--token-file"), "{hint}");
            }
            other => panic!("{other:?}"),
        }
        let words = vec!["--token-file".into(), "/etc/lakefly/tokens".into()];
        assert!(ServiceOptions::parse(&words, api, true).is_ok());
    }

    #[test]
    fn an_access_log_outside_the_state_needs_its_directory_writable() {
        // Under /var/log, systemd makes the directory, the service user's.
        let log = parse(&["--edge-access-log", "/var/log/lakefly/edge/access.log"]).unwrap();
        assert_eq!(
            log.written_dir(),
            Some(WrittenDir::Logs(Path::new("lakefly/edge")))
        );
        assert!(log.missing().is_empty(), "{:?}", log.missing());
        let flat = parse(&["--edge-access-log", "/var/log/access.log"]).unwrap();
        assert_eq!(
            flat.written_dir(),
            Some(WrittenDir::Other(Path::new("/var/log")))
        );
        let srv = parse(&["--edge-access-log", "/srv/logs/access.log"]).unwrap();
        assert_eq!(
            srv.written_dir(),
            Some(WrittenDir::Other(Path::new("/srv/logs")))
        );
        // The log is made by lakeflyd; its directory must be there.
        let dir = std::env::temp_dir()
            .join("lakefly-no-such-dir")
            .join("access.log");
        let words = ["--edge-access-log", dir.to_str().unwrap()];
        assert_eq!(
            parse(&words).unwrap().missing(),
            [("--edge-access-log", dir.parent().unwrap())]
        );
        let words = ["--edge-access-log", "/tmp/access.log"];
        assert!(parse(&words).unwrap().missing().is_empty());
        let inside = parse(&["--edge-access-log", "/var/lib/lakefly/access.log"]).unwrap();
        assert_eq!(inside.written_dir(), None);
    }
}
