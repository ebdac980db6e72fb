//! `lakefly scale count N | GROUP=N... [--yes]`, `lakefly scale memory MB`, `lakefly scale
//! vm SIZE` and `lakefly scale show`.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};

use super::remote::{app_name, block_on, client, confirm};
use super::GlobalArgs;
use crate::api::client::Client;
use crate::api::scale::memory_limit;
use crate::api::types::{GroupScale, HealthState, MemoryChange, VmChange, VmSize};
use crate::error::Error;
use crate::output::table::Table;
use crate::output::Output;

/// Change or show how many machines each process group runs.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lakefly scale count 2\n  lakefly scale count web=2 worker=1 --yes\n  lakefly scale count +1 -g worker\n  lakefly scale memory 512 -g worker\n  lakefly scale vm shared-cpu-2x\n  lakefly scale show"
)]
pub struct ScaleArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ScaleCommand,
}

/// Scale commands.
#[derive(Debug, Subcommand)]
pub enum ScaleCommand {
    /// Set machine counts: N, +N, -N (for one group) or GROUP=N (for several).
    #[command(allow_negative_numbers = true)]
    Count {
        /// Counts.
        #[arg(required = true, value_name = "N|GROUP=N")]
        counts: Vec<String>,
        /// The group a bare N applies to (default: `app`, or the only group).
        #[arg(short = 'g', long = "process-group", value_name = "GROUP")]
        group: Option<String>,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
        /// flyctl's flags with nothing to do here (noted), or refused with what to do.
        #[command(flatten)]
        flyctl: super::flyctl_flags::ScaleCountFlags,
    },
    /// Set a group's memory limit; a new release rolls it out (followed live).
    Memory {
        /// The limit: MB (512) or a size with its unit (1gb); at least 32 MB.
        #[arg(value_name = "MB", value_parser = memory_mb)]
        memory_mb: u64,
        /// The group (default: `app`, or the only group).
        #[arg(short = 'g', long = "process-group", value_name = "GROUP")]
        group: Option<String>,
        /// Do not follow the release.
        #[arg(long)]
        detach: bool,
    },
    /// Set a group's size (`shared-cpu-2x`: its CPUs and memory); a new release rolls it
    /// out (followed live).
    Vm {
        /// The size.
        #[arg(value_name = "SIZE", value_parser = size_name)]
        size: String,
        /// Memory instead of the size's: MB (2048) or a size with its unit (2gb); at least
        /// 32 MB.
        #[arg(long = "vm-memory", alias = "memory", value_name = "MB", value_parser = memory_mb)]
        memory_mb: Option<u64>,
        /// The group (default: `app`, or the only group).
        #[arg(short = 'g', long = "process-group", value_name = "GROUP")]
        group: Option<String>,
        /// Do not follow the release.
        #[arg(long)]
        detach: bool,
    },
    /// Show each group's machines, size and memory.
    Show,
}

/// A size lakefly knows, or the list of them.
pub(super) fn size_name(s: &str) -> Result<String, String> {
    match crate::config::sizes::preset(s) {
        Some(_) => Ok(s.to_string()),
        None => Err(format!("known sizes: {}", crate::config::sizes::names())),
    }
}

/// A memory limit, in MB or with a unit (`512`, `512mb`, `1gb`, `1.5g`) as flyctl reads
/// it and as fly.toml's `memory`, refused as [`memory_limit`] refuses it before the daemon
/// is asked.
pub(super) fn memory_mb(s: &str) -> Result<u64, String> {
    let mb = crate::config::units::parse_size_mb(s).map_err(|e| {
        format!("not a memory size ({e}): write MB (512) or a size with its unit (512mb, 1gb)")
    })?;
    memory_limit(mb).map_err(|e| e.to_string())
}

/// Runs a scale command.
pub fn run(global: &GlobalArgs, args: ScaleArgs) -> Result<(), Error> {
    let out = global.output();
    let app = app_name(global)?;
    let api = client(global)?;
    let groups = block_on(async { Ok(api.scale_show(&app).await?) })?;
    match args.command {
        ScaleCommand::Show => {
            if out.json {
                return out.json(&groups);
            }
            let mut table = Table::new(vec!["GROUP", "COUNT", "RUNNING", "SIZE", "MEMORY", "CPUS"]);
            for g in groups {
                table.row(vec![
                    g.process_group,
                    g.count.to_string(),
                    g.running.to_string(),
                    g.size.unwrap_or_else(|| "-".into()),
                    match (g.memory_mb, g.memory_enforced) {
                        (Some(mb), Some(how)) => format!("{mb} MB ({how})"),
                        (Some(mb), None) => format!("{mb} MB"),
                        (None, _) => "-".into(),
                    },
                    match (g.cpus, g.cpus_enforced) {
                        (Some(n), Some(false)) => format!("{n} (not limited here)"),
                        (Some(n), _) => n.to_string(),
                        (None, _) => "-".into(),
                    },
                ]);
            }
            out.text(&table.render())
        }
        ScaleCommand::Memory {
            memory_mb,
            group,
            detach,
        } => {
            let request = crate::api::types::MemoryRequest {
                process_group: group,
                memory_mb,
            };
            let change = Resize {
                send: api.scale_memory(&app, &request),
                release: |c: &MemoryChange| c.release,
                what: |c: &MemoryChange| {
                    let from = c.from.map_or("no limit".into(), |mb| format!("{mb} MB"));
                    format!("{}: memory {from} -> {} MB", c.process_group, c.to)
                },
                now: |c: &MemoryChange| format!("{} has {} MB", c.process_group, c.to),
            };
            block_on(change.follow(out, &api, &app, detach))
        }
        ScaleCommand::Vm {
            size,
            memory_mb,
            group,
            detach,
        } => {
            let request = crate::api::types::VmRequest {
                process_group: group,
                size,
                memory_mb,
            };
            let change = Resize {
                send: api.scale_vm(&app, &request),
                release: |c: &VmChange| c.release,
                what: |c: &VmChange| {
                    format!(
                        "{}: {} -> {}",
                        c.process_group,
                        shown(&c.from),
                        shown(&c.to)
                    )
                },
                now: |c: &VmChange| format!("{} is {}", c.process_group, shown(&c.to)),
            };
            block_on(change.follow(out, &api, &app, detach))
        }
        ScaleCommand::Count {
            counts,
            group,
            yes,
            flyctl,
        } => {
            flyctl.note(&out);
            let targets = targets(&groups, &counts, group.as_deref())?;
            let current: BTreeMap<&str, u32> = groups
                .iter()
                .map(|g| (g.process_group.as_str(), g.count))
                .collect();
            let plan: Vec<String> = targets
                .iter()
                .filter_map(|(g, n)| {
                    let now = current.get(g.as_str()).copied().unwrap_or(0);
                    (now != *n).then(|| format!("{g}: {now} -> {n}"))
                })
                .collect();
            if !plan.is_empty() {
                if !out.json {
                    out.note(&format!("scale {app}: {}", plan.join(", ")));
                }
                confirm(&format!("scale {app} ({})?", plan.join(", ")), yes)?;
            }
            // Sent even when the counts read above match: the daemon decides (a rollout
            // under way shows its old machines beside the new ones, and refuses a scale).
            let result = block_on(async {
                let request = api.scale(&app, targets);
                if out.json {
                    return Ok(request.await?);
                }
                // It answers once every machine is in place: show each as it gets there
                // (without the event stream, the answer alone).
                match super::release_follow::subscribe(&api, &app).await {
                    Ok(events) => Ok(with_progress(out, request, events).await?),
                    Err(_) => Ok(request.await?),
                }
            })?;
            if out.json {
                return out.json(&serde_json::json!({ "changed": result }));
            }
            if result.is_empty() {
                out.note("already scaled: nothing to change");
            }
            for (g, change) in result {
                out.note(&format!(
                    "==> {g}: {} -> {} machines",
                    change.from, change.to
                ));
            }
            Ok(())
        }
    }
}

/// What a scale request answers: each group's change.
type Changes = BTreeMap<String, crate::api::types::ScaleChange>;

/// Awaits `request`, noting on stderr each machine the scale adds, sees healthy or
/// removes. The answer can overtake the last events on their own stream, so once it is in,
/// the steps it implies are awaited too (briefly: a stream that broke shows no more).
async fn with_progress(
    out: Output,
    request: impl std::future::Future<Output = Result<Changes, crate::api::client::ClientError>>,
    events: impl futures_util::Stream<Item = crate::api::follow::Item>,
) -> Result<Changes, crate::api::client::ClientError> {
    use futures_util::StreamExt;
    tokio::pin!(request, events);
    let mut seen = Steps::default();
    let changes = loop {
        tokio::select! {
            done = &mut request => break done?,
            Some(crate::api::follow::Item::Event(event)) = events.next() => {
                seen.note(out, &event);
            }
        }
    };
    let added: usize = changes
        .values()
        .map(|c| c.to.saturating_sub(c.from) as usize)
        .sum();
    let removed: usize = changes
        .values()
        .map(|c| c.from.saturating_sub(c.to) as usize)
        .sum();
    let deadline = tokio::time::sleep(STEPS_AFTER_ANSWER);
    tokio::pin!(deadline);
    while !seen.shows(added, removed) {
        tokio::select! {
            _ = &mut deadline => break,
            item = events.next() => match item {
                Some(crate::api::follow::Item::Event(event)) => seen.note(out, &event),
                Some(_) => {}
                None => break,
            },
        }
    }
    Ok(changes)
}

/// How long the steps of a scale that has answered may take to arrive.
const STEPS_AFTER_ANSWER: std::time::Duration = std::time::Duration::from_secs(3);

/// The steps of a scale shown so far.
#[derive(Default)]
struct Steps {
    created: std::collections::BTreeSet<String>,
    healthy: std::collections::BTreeSet<String>,
    removed: usize,
}

impl Steps {
    /// Shows `event` if it is a step of a scale (a machine created, healthy or removed),
    /// and counts it.
    fn note(&mut self, out: Output, event: &crate::api::types::Event) {
        use crate::api::kind;
        let Some(machine) = event.data["machine"].as_str() else {
            return;
        };
        let step = match event.kind.as_str() {
            kind::MACHINE_CREATED => {
                self.created.insert(machine.to_string());
                let group = event.data["process_group"].as_str().unwrap_or("?");
                format!("    created machine {machine} ({group})")
            }
            kind::MACHINE_HEALTH if event.data["health"] == HealthState::Passing.as_str() => {
                self.healthy.insert(machine.to_string());
                format!("    machine {machine} is healthy")
            }
            kind::MACHINE_DESTROYED => {
                self.removed += 1;
                format!("    removed machine {machine}")
            }
            _ => return,
        };
        out.note(&step);
    }

    /// Whether every step of adding `added` machines and removing `removed` was shown.
    fn shows(&self, added: usize, removed: usize) -> bool {
        self.created.len() >= added
            && self.created.iter().all(|m| self.healthy.contains(m))
            && self.removed >= removed
    }
}

/// A size change to send, and how to read what it did.
struct Resize<F, R, W, N> {
    /// The request.
    send: F,
    /// The release it started, if any.
    release: R,
    /// What it changes (`web: memory 256 MB -> 512 MB`).
    what: W,
    /// What the group has when nothing changed (`web has 512 MB`).
    now: N,
}

impl<T, F, R, W, N> Resize<F, R, W, N>
where
    T: serde::Serialize,
    F: std::future::Future<Output = Result<T, crate::api::client::ClientError>>,
    R: Fn(&T) -> Option<u64>,
    W: Fn(&T) -> String,
    N: Fn(&T) -> String,
{
    /// Sends the change (following the app's events from before, unless `detach`), says
    /// what changes, and follows the release it starts until it is live or failed.
    async fn follow(self, out: Output, api: &Client, app: &str, detach: bool) -> Result<(), Error> {
        let stream = match detach {
            true => None,
            false => Some(super::release_follow::subscribe(api, app).await?),
        };
        let change = self.send.await?;
        let release = (self.release)(&change);
        if out.json && (release.is_none() || stream.is_none()) {
            return out.json(&change);
        }
        let Some(version) = release else {
            out.note(&format!("already scaled: {}", (self.now)(&change)));
            return Ok(());
        };
        if !out.json {
            out.note(&(self.what)(&change));
        }
        match stream {
            Some(stream) => super::release_follow::watch(out, app, version, stream).await,
            None => super::release_follow::detached(out, app, version),
        }
    }
}

/// `shared-cpu-2x (2 CPUs, 512 MB)`, or what of it is set.
fn shown(size: &VmSize) -> String {
    let mut parts = Vec::new();
    if let Some(cpus) = size.cpus {
        parts.push(format!("{cpus} CPU{}", if cpus == 1 { "" } else { "s" }));
    }
    if let Some(mb) = size.memory_mb {
        parts.push(format!("{mb} MB"));
    }
    match (&size.size, parts.is_empty()) {
        (Some(name), true) => name.clone(),
        (Some(name), false) => format!("{name} ({})", parts.join(", ")),
        (None, true) => "no size".to_string(),
        (None, false) => parts.join(", "),
    }
}

/// Turns `N`, `+N`, `-N`, `GROUP=N`, `GROUP=+N` into target counts per group.
fn targets(
    groups: &[GroupScale],
    args: &[String],
    group: Option<&str>,
) -> Result<BTreeMap<String, u32>, Error> {
    let names: Vec<&str> = groups.iter().map(|g| g.process_group.as_str()).collect();
    let valid = names.join(", ");
    let bad = |message: String| Error::BadScale {
        message,
        hint: format!("write N, +N, -N or GROUP=N; this app's groups: {valid}"),
    };
    let default_group = || -> Result<String, Error> {
        if let Some(g) = group {
            return Ok(g.to_string());
        }
        if names.contains(&"app") {
            return Ok("app".into());
        }
        match names.as_slice() {
            [only] => Ok(only.to_string()),
            _ => Err(bad("a bare count needs a group: the app has several".into())),
        }
    };
    let mut out = BTreeMap::new();
    for arg in args {
        let (name, amount) = match arg.split_once('=') {
            Some((g, n)) => (g.trim().to_string(), n.trim()),
            None => (default_group()?, arg.trim()),
        };
        let Some(current) = groups
            .iter()
            .find(|g| g.process_group == name)
            .map(|g| g.count)
        else {
            return Err(bad(format!("process group {name:?} does not exist")));
        };
        let target = if let Some(n) = amount.strip_prefix('+') {
            n.parse::<u32>().ok().map(|n| current.saturating_add(n))
        } else if let Some(n) = amount.strip_prefix('-') {
            match n.parse::<u32>() {
                Ok(n) if n <= current => Some(current - n),
                Ok(n) => {
                    return Err(bad(format!(
                        "{name} has {current} machines; it cannot lose {n}"
                    )))
                }
                Err(_) => None,
            }
        } else {
            amount.parse::<u32>().ok()
        };
        let target = target.ok_or_else(|| bad(format!("{arg:?} is not a count")))?;
        out.insert(name, target);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_mb_or_a_size_with_its_unit_as_flyctl_reads_it() {
        assert_eq!(memory_mb("512"), Ok(512));
        assert_eq!(memory_mb("1gb"), Ok(1024));
        assert_eq!(memory_mb("2G"), Ok(2048));
        assert_eq!(memory_mb("768MB"), Ok(768));
        assert_eq!(memory_mb("1.5g"), Ok(1536));
        let unit = memory_mb("12xb").unwrap_err();
        assert!(unit.contains("\"x\"") && unit.contains("1gb"), "{unit}");
        let small = memory_mb("16mb").unwrap_err();
        assert!(small.contains("16 MB is too little memory"), "{small}");
    }

    fn groups(pairs: &[(&str, u32)]) -> Vec<GroupScale> {
        pairs
            .iter()
            .map(|(g, n)| GroupScale {
                process_group: g.to_string(),
                count: *n,
                running: *n,
                size: None,
                memory_mb: None,
                memory_enforced: None,
                cpus: None,
                cpus_enforced: None,
            })
            .collect()
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn counts_absolute_relative_and_per_group() {
        let g = groups(&[("app", 1), ("worker", 3)]);
        assert_eq!(
            targets(&g, &args(&["2"]), None).unwrap(),
            BTreeMap::from([("app".into(), 2)])
        );
        assert_eq!(
            targets(&g, &args(&["+2"]), Some("worker")).unwrap(),
            BTreeMap::from([("worker".into(), 5)])
        );
        assert_eq!(
            targets(&g, &args(&["-1"]), Some("worker")).unwrap(),
            BTreeMap::from([("worker".into(), 2)])
        );
        assert_eq!(
            targets(&g, &args(&["app=0", "worker=1"]), None).unwrap(),
            BTreeMap::from([("app".into(), 0), ("worker".into(), 1)])
        );
    }

    #[test]
    fn mistakes_name_the_valid_groups() {
        let g = groups(&[("web", 1), ("worker", 1)]);
        let err = targets(&g, &args(&["db=1"]), None).unwrap_err();
        assert_eq!(err.to_string(), "process group \"db\" does not exist");
        assert_eq!(
            err.hint().unwrap(),
            "write N, +N, -N or GROUP=N; this app's groups: web, worker"
        );
        assert!(
            targets(&g, &args(&["2"]), None).is_err(),
            "a bare count is ambiguous here"
        );
        assert!(targets(&g, &args(&["web=-2"]), None).is_err());
        assert!(targets(&g, &args(&["web=lots"]), None).is_err());
    }
}
