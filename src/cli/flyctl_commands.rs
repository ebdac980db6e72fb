//! flyctl's commands that lakefly has no command for (Fly's networking, managed
//! databases, organizations, images; `machine clone`, `volumes extend`): typed from habit,
//! each is refused with what does its job on one host, where clap alone would suggest the
//! nearest name it knows (`lakefly ips` → "a similar subcommand exists: 'apps'").

use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::error::Error;

const SERVED_AT: &str = "an app is served on the daemon's edge address: `lakefly status` shows its URL, and `lakefly certs add HOST` routes your own host names to it";
const NO_PRIVATE_NETWORK: &str = "machines are processes on the daemon's host, with no private network: `lakefly proxy` reaches a machine's port from here, `lakefly console` opens a shell beside it";
const NO_MANAGED_SERVICES: &str = "lakefly runs your own processes: run the database or store as an app of its own (its data on a [mounts] volume) and give its address to the apps that use it with `lakefly secrets set`";
const NO_IMAGES: &str = "lakefly deploys the app's files, not images: `lakefly deploy` uploads them, `lakefly releases` lists what each release runs";
const SFTP: &str = "a machine's files are its release directory on the daemon's host: `lakefly console` opens a shell there, `lakefly machines exec ID -- cat FILE` reads one";
const ONE_HOST: &str = "a daemon is one host, one region: `lakefly daemon status` and `lakefly status` say how it and the app are";

/// flyctl's top-level commands lakefly has not, each with what to use instead.
const INSTEAD: &[(&[&str], &str)] = &[
    (&["ips"], SERVED_AT),
    (&["services"], "`lakefly status` shows where the app is served, `lakefly config show` its services"),
    (&["dig", "ping", "wireguard", "wg"], NO_PRIVATE_NETWORK),
    (&["sftp"], SFTP),
    (
        &["postgres", "pg", "mpg", "redis", "mysql", "consul", "storage", "tigris", "extensions", "ext", "litefs-cloud", "lfsc"],
        NO_MANAGED_SERVICES,
    ),
    (&["image", "registry"], NO_IMAGES),
    (&["regions", "platform", "incidents", "doctor", "move"], ONE_HOST),
    (&["orgs", "tokens"], "a daemon has no organizations: its API tokens (`lakeflyd --token-file`, `lakefly auth login`) say who may use it"),
    (&["agent"], "lakefly talks to the daemon itself: there is no agent to run"),
    (&["dashboard"], "`lakefly watch` is a live table of the app's machines, health and jobs; `lakefly open` opens the app"),
    (&["history"], "`lakefly releases` lists the app's releases, `lakefly events` what happened to it"),
    (&["info"], "`lakefly status` shows the app's release, address and machines"),
    (&["metrics"], "the daemon serves its Prometheus figures at `/metrics` on its API address"),
    (&["curl"], "curl the URL `lakefly status` shows"),
    (&["create"], "`lakefly apps create NAME` creates an app"),
    (&["destroy"], "`lakefly apps destroy NAME` destroys an app"),
    (&["suspend"], STOP_INSTEAD),
    (&["resume"], START_INSTEAD),
];

const STOP_INSTEAD: &str = "`lakefly machines stop ID` stops a machine (`lakefly machines list -q | xargs lakefly machines stop` every one); `lakefly scale count 0` keeps none";
const START_INSTEAD: &str = "`lakefly machines start ID` starts a stopped machine";
const ONE_MORE: &str =
    "every machine of a group runs its release: `lakefly scale count +1 -g GROUP` adds one";
const BY_RELEASE: &str = "a machine runs what its release says: change fly.toml and `lakefly deploy`, or `lakefly scale memory` / `scale vm` for its size";

/// flyctl's subcommands of commands lakefly has (by the command's names), which it has
/// not, each with what to use instead.
const INSTEAD_UNDER: &[(&[&str], &[&str], &str)] = &[
    (&["machines", "machine", "m"], &["clone", "create"], ONE_MORE),
    (&["machines", "machine", "m"], &["run"], "lakefly runs the app's release, not images: `lakefly machines exec ID -- CMD` runs a command beside a machine, `lakefly console` opens a shell, [[jobs]] run commands on a schedule"),
    (&["machines", "machine", "m"], &["update"], BY_RELEASE),
    (&["machines", "machine", "m"], &["suspend"], STOP_INSTEAD),
    (&["machines", "machine", "m"], &["leases"], "the daemon orders the changes to an app's machines itself: there are no leases to clear"),
    (&["machines", "machine", "m"], &["cordon", "uncordon"], "`lakefly machines stop ID` takes a machine out of the edge's rotation (its requests in progress finish first), `machines start ID` puts it back"),
    (&["machines", "machine", "m"], &["proxy"], "`lakefly proxy LOCAL[:REMOTE] --machine ID` reaches a port of the machine from here"),
    (&["machines", "machine", "m"], &["egress-ip"], "machines are processes on the daemon's host: what they connect to sees the host's own address"),
    (&["machines", "machine", "m"], &["place"], ONE_HOST),
    (&["secrets"], &["sync"], "lakefly asks the daemon for the app's secrets each time (`lakefly secrets list`): there is nothing to sync"),
    (&["secrets"], &["keys"], "the daemon encrypts secrets with its own master key (`lakeflyd secrets rotate-key` rotates it); there are no signing or encryption keys of the app's to manage"),
    (&["volumes", "volume", "vol"], &["update"], "a volume is a directory on the daemon's host: it has no snapshot or scheduling settings to update"),
    (&["volumes", "volume", "vol"], &["show"], "`lakefly volumes list` shows each volume: space used, the machines that mount it, and its path"),
    (&["volumes", "volume", "vol"], &["extend"], "a volume is a directory on the daemon's host, with the room its disk has: there is nothing to extend"),
    (&["volumes", "volume", "vol"], &["fork", "snapshots"], "a volume is a directory on the daemon's host (`lakefly volumes list` shows its path): copy it, or `lakeflyd backup` the daemon's state"),
    (&["certs"], &["check", "setup"], "`lakefly certs show HOST` shows a host name and the certificate that serves it; point the name's DNS at the daemon's host yourself"),
    (&["certs"], &["import"], "the daemon serves the certificates it is started with (`lakeflyd --edge-tls-cert FILE --edge-tls-key FILE`, repeated for several; a SIGHUP reloads them); `lakefly certs add HOST` routes the name"),
    (&["ssh"], &["sftp"], SFTP),
    (&["ssh"], &["issue", "log"], "no SSH is involved: `lakefly console` and `lakefly ssh console` reach a machine through the daemon's API, with its token"),
    (&["apps", "app"], &["move"], ONE_HOST),
    (&["apps", "app"], &["suspend"], STOP_INSTEAD),
    (&["apps", "app"], &["resume"], START_INSTEAD),
    (&["apps", "app"], &["errors"], "lakefly has no error tracker: `lakefly logs` shows what the app printed, `lakefly events --kind machine.exited` when it crashed"),
];

/// The refusal of `err`, clap's for a command it does not know, when flyctl has that
/// command there; `args` are the command line's (without the program).
pub fn refusal(err: &clap::Error, args: &[String], known: &clap::Command) -> Option<Error> {
    if err.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(name)) = err.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    // What stands first is the command: the unknown word itself, or a command lakefly
    // has, of which the word is then a subcommand.
    let first = args.iter().find(|arg| {
        *arg == name
            || known.get_subcommands().any(|c| {
                c.get_name() == arg.as_str() || c.get_all_aliases().any(|a| a == arg.as_str())
            })
    })?;
    let instead = if first == name {
        INSTEAD
            .iter()
            .find(|(names, _)| names.contains(&name.as_str()))
            .map(|(_, instead)| *instead)
    } else {
        INSTEAD_UNDER
            .iter()
            .find(|(groups, names, _)| {
                groups.contains(&first.as_str()) && names.contains(&name.as_str())
            })
            .map(|(_, _, instead)| *instead)
    }?;
    let command = match first == name {
        true => name.clone(),
        false => format!("{first} {name}"),
    };
    Some(Error::FlyctlOnly { command, instead })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::cli::Cli;

    fn refused(line: &str) -> Option<Error> {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let err = Cli::try_parse_from(std::iter::once("lakefly".to_string()).chain(args.clone()))
            .expect_err("not a lakefly command line");
        refusal(&err, &args, &Cli::command())
    }

    #[test]
    fn a_flyctl_command_lakefly_has_not_is_refused_with_what_to_use() {
        let err = refused("ips list -a web").expect("refused as flyctl's");
        assert_eq!(
            err.to_string(),
            "lakefly has no `ips` command (it is flyctl's)"
        );
        assert!(
            err.hint().is_some_and(|h| h.contains("lakefly status")),
            "{err:?}"
        );
        assert_eq!(err.exit_code(), crate::error::exit::USAGE);
        assert!(refused("--remote prod postgres attach").is_some());
        assert!(refused("-a web suspend").is_some());
    }

    #[test]
    fn a_flyctl_subcommand_lakefly_has_not_is_refused_under_its_command() {
        let err = refused("-a web m clone 3779b97f4a7c15").expect("refused as flyctl's");
        assert_eq!(
            err.to_string(),
            "lakefly has no `m clone` command (it is flyctl's)"
        );
        assert!(
            err.hint().is_some_and(|h| h.contains("scale count +1")),
            "{err:?}"
        );
        assert!(refused("volumes extend vol_123 -s 10").is_some());
        assert!(refused("certs check www.example.com").is_some());
        assert!(refused("ssh sftp shell").is_some());
        assert!(refused("apps errors -a web").is_some());
        assert!(refused("secrets sync").is_some());
        assert!(refused("machine egress-ip allocate 3779b97f4a7c15").is_some());
    }

    #[test]
    fn other_unknown_words_keep_claps_message() {
        // Not flyctl's.
        assert!(refused("frobnicate").is_none());
        assert!(refused("machines frobnicate").is_none());
        // flyctl's word, but not under this command.
        assert!(refused("apps ips").is_none());
        assert!(refused("volumes clone").is_none());
    }

    #[test]
    fn no_listed_command_is_one_lakefly_has() {
        let cli = Cli::command();
        for (names, _) in INSTEAD {
            for name in *names {
                assert!(
                    cli.find_subcommand(name).is_none(),
                    "`{name}` is a lakefly command: drop it from INSTEAD"
                );
            }
        }
        for (groups, names, _) in INSTEAD_UNDER {
            for group in *groups {
                let group = (cli.get_subcommands())
                    .find(|c| c.get_name() == *group || c.get_all_aliases().any(|a| a == *group))
                    .unwrap_or_else(|| panic!("`{group}` is no lakefly command"));
                for name in *names {
                    assert!(
                        group.find_subcommand(name).is_none(),
                        "`{} {name}` is a lakefly command: drop it from INSTEAD_UNDER",
                        group.get_name()
                    );
                }
            }
        }
    }
}
