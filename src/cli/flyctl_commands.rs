//! flyctl's top-level commands that lakefly has no command for (Fly's networking, managed
//! databases, organizations, images): typed from habit, each is refused with what does
//! its job on one host, where clap alone would suggest the nearest name it knows
//! (`lakefly ips` → "a similar subcommand exists: 'apps'").

use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::error::Error;

const SERVED_AT: &str = "an app is served on the daemon's edge address: `lakefly status` shows its URL, and `lakefly certs add HOST` routes your own host names to it";
const NO_PRIVATE_NETWORK: &str = "machines are processes on the daemon's host, with no private network: `lakefly proxy` reaches a machine's port from here, `lakefly console` opens a shell beside it";
const NO_MANAGED_SERVICES: &str = "lakefly runs your own processes: run the database or store as an app of its own (its data on a [mounts] volume) and give its address to the apps that use it with `lakefly secrets set`";
const NO_IMAGES: &str = "lakefly deploys the app's files, not images: `lakefly deploy` uploads them, `lakefly releases` lists what each release runs";
const ONE_HOST: &str = "a daemon is one host, one region: `lakefly daemon status` and `lakefly status` say how it and the app are";

/// flyctl's commands lakefly has not, each with what to use instead.
const INSTEAD: &[(&[&str], &str)] = &[
    (&["ips"], SERVED_AT),
    (&["services"], "`lakefly status` shows where the app is served, `lakefly config show` its services"),
    (&["dig", "ping", "wireguard", "wg"], NO_PRIVATE_NETWORK),
    (&["sftp"], "a machine's files are its release directory on the daemon's host: `lakefly console` opens a shell there, `lakefly machines exec ID -- cat FILE` reads one"),
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
    (&["suspend"], "`lakefly machines stop ID` stops a machine (`lakefly machines list -q | xargs lakefly machines stop` every one); `lakefly scale count 0` keeps none"),
    (&["resume"], "`lakefly machines start ID` starts a stopped machine"),
];

/// The refusal of `err`, clap's for a top-level command it does not know, when flyctl has
/// that command; `args` are the command line's (without the program).
pub fn refusal(err: &clap::Error, args: &[String], known: &clap::Command) -> Option<Error> {
    if err.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(name)) = err.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    // Only where it stands as the command: a word lakefly knows coming first makes it
    // that command's subcommand (`lakefly apps ips`), left to clap's message.
    let first = args.iter().find(|arg| {
        *arg == name
            || known.get_subcommands().any(|c| {
                c.get_name() == arg.as_str() || c.get_all_aliases().any(|a| a == arg.as_str())
            })
    })?;
    if first != name {
        return None;
    }
    let (_, instead) = INSTEAD
        .iter()
        .find(|(names, _)| names.contains(&name.as_str()))?;
    Some(Error::FlyctlOnly {
        command: name.clone(),
        instead,
    })
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
    fn other_unknown_words_keep_claps_message() {
        // Not flyctl's.
        assert!(refused("frobnicate").is_none());
        // flyctl's word, but under a command lakefly has.
        assert!(refused("apps ips").is_none());
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
    }
}
