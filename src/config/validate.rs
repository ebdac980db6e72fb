//! Rules that need the whole normalized config: references between sections, ports that
//! checks rely on, and names that must be unique. Rules about a single value live in the
//! decoder, next to where the value is read.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::decode::reader::Decoder;
use super::diagnostic::Severity;
use super::model::{AppConfig, CheckKind};

/// Runs every cross-section rule, adding diagnostics to `d`.
pub(crate) fn check(d: &mut Decoder, cfg: &AppConfig) {
    group_references(d, cfg);
    check_ports(d, cfg);
    one_vm_per_group(d, cfg);
    unique_public_ports(d, cfg);
    unique_mount_destinations(d, cfg);
    commands_naming_mounts(d, cfg);
    unique_job_names(d, cfg);
    files_not_written(d, cfg);
    gpus_not_given(d, cfg);
}

fn report(d: &mut Decoder, severity: Severity, key: &str, message: String, hint: Option<String>) {
    let span: Option<Range<usize>> = d.spans.get(key).cloned().or_else(|| {
        // Fall back to the closest enclosing key that was written in the file.
        let mut k = key;
        while let Some(cut) = k.rfind(['.', '[']) {
            k = &k[..cut];
            if let Some(s) = d.spans.get(k) {
                return Some(s.clone());
            }
        }
        None
    });
    let diagnostic = d.diagnostic(severity, key, span.as_ref(), message, hint);
    d.diagnostics.push(diagnostic);
}

/// `[[files]]` is kept but not applied: an app that expects the file finds it missing, so
/// it is said rather than passed over.
fn files_not_written(d: &mut Decoder, cfg: &AppConfig) {
    for (i, file) in cfg.files.iter().enumerate() {
        report(
            d,
            Severity::Warning,
            &format!("files[{i}]"),
            format!(
                "[[files]] is not applied: lakefly does not write {:?} into machines",
                file.guest_path
            ),
            Some(
                "put the file in the app's directory (it is uploaded with the app), or keep its \
                 content in a secret the app reads (`lakefly secrets set NAME=- < file`)"
                    .into(),
            ),
        );
    }
}

/// `[[vm]] gpus` and `gpu_kind` are kept but not applied: machines are the host's
/// processes and see all its GPUs, so a model that expects eight finds what the host has.
fn gpus_not_given(d: &mut Decoder, cfg: &AppConfig) {
    for (i, vm) in cfg.vm.iter().enumerate() {
        let key = match (vm.gpus, &vm.gpu_kind) {
            (Some(_), _) => format!("vm[{i}].gpus"),
            (None, Some(_)) => format!("vm[{i}].gpu_kind"),
            (None, None) => continue,
        };
        report(
            d,
            Severity::Warning,
            &key,
            "GPUs are not given out: machines run on the host and see all of its GPUs".into(),
            Some(
                "to give a process group particular GPUs, set CUDA_VISIBLE_DEVICES (NVIDIA) \
                 or ROCR_VISIBLE_DEVICES (AMD) in [env]"
                    .into(),
            ),
        );
    }
}

/// Every `processes = [...]` list names groups that exist.
fn group_references(d: &mut Decoder, cfg: &AppConfig) {
    let groups = cfg.group_names();
    let mut refs: Vec<(String, &[String])> = Vec::new();
    if let Some(h) = &cfg.http_service {
        refs.push(("http_service".into(), &h.processes));
    }
    refs.extend(
        cfg.services
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("services[{i}]"), &s.processes[..])),
    );
    refs.extend(
        cfg.vm
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("vm[{i}]"), &v.processes[..])),
    );
    refs.extend(
        cfg.mounts
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("mounts[{i}]"), &m.processes[..])),
    );
    refs.extend(
        cfg.metrics
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("metrics[{i}]"), &m.processes[..])),
    );
    refs.extend(
        cfg.restart
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("restart[{i}]"), &r.processes[..])),
    );
    refs.extend(
        cfg.files
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("files[{i}]"), &f.processes[..])),
    );
    refs.extend(
        cfg.jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (format!("jobs[{i}]"), &j.processes[..])),
    );
    refs.extend(cfg.checks.iter().map(|(name, c)| {
        (
            super::decode::reader::join("checks", name),
            &c.processes[..],
        )
    }));

    let defined = if cfg.processes.is_empty() {
        "this config defines no [processes], so its only group is `app`".to_string()
    } else {
        format!("defined groups: {}", groups.join(", "))
    };
    for (section, listed) in refs {
        for (i, group) in listed.iter().enumerate() {
            if !groups.contains(&group.as_str()) {
                report(
                    d,
                    Severity::Error,
                    &format!("{section}.processes[{i}]"),
                    format!("`{section}` names process group {group:?}, which is not defined"),
                    Some(defined.clone()),
                );
            }
        }
    }
}

/// Every check has a port to talk to.
fn check_ports(d: &mut Decoder, cfg: &AppConfig) {
    let internal_ports: BTreeSet<u16> = cfg
        .http_service
        .iter()
        .map(|h| h.internal_port)
        .chain(cfg.services.iter().filter_map(|s| s.internal_port))
        .collect();
    for (name, check) in &cfg.checks {
        let key = super::decode::reader::join("checks", name);
        if matches!(check.kind, CheckKind::Other(_)) {
            continue;
        }
        match check.port {
            None if internal_ports.is_empty() => report(
                d,
                Severity::Error,
                &key,
                format!("check {name:?} has no `port` and the app declares no internal_port"),
                Some("add port = 8080 to the check (the port the app listens on)".into()),
            ),
            Some(port) if !internal_ports.contains(&port) => report(
                d,
                Severity::Warning,
                &format!("{key}.port"),
                format!("check {name:?} uses port {port}, which is no service's internal_port"),
                Some(format!(
                    "lakefly maps only internal_port onto $PORT, so the app must listen on {port} itself"
                )),
            ),
            _ => {}
        }
    }
    for (i, s) in cfg.services.iter().enumerate() {
        if s.internal_port.is_none() && (!s.tcp_checks.is_empty() || !s.http_checks.is_empty()) {
            // Fly fills in 0 and the checks never pass; lakefly skips them and says so.
            report(
                d,
                Severity::Warning,
                &format!("services[{i}]"),
                format!("`services[{i}]` has checks but no `internal_port`, so they cannot run"),
                Some("add internal_port = 8080 (the port your app listens on)".into()),
            );
        }
    }
}

/// At most one `[[vm]]` names each group, and at most one names none (the fallback).
fn one_vm_per_group(d: &mut Decoder, cfg: &AppConfig) {
    const FALLBACK: &str = "";
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, vm) in cfg.vm.iter().enumerate() {
        if vm.processes.is_empty() {
            if let Some(first) = seen.insert(FALLBACK, i) {
                report(
                    d,
                    Severity::Error,
                    &format!("vm[{i}]"),
                    format!("vm[{first}] and vm[{i}] both name no process group"),
                    Some("only one [[vm]] may leave out `processes`; it sizes every group without its own".into()),
                );
            }
        }
        for group in &vm.processes {
            if let Some(first) = seen.insert(group, i) {
                report(
                    d,
                    Severity::Error,
                    &format!("vm[{i}]"),
                    format!("group {group:?} gets a size from both vm[{first}] and vm[{i}]"),
                    Some("keep one [[vm]] per process group".into()),
                );
            }
        }
    }
}

/// No two services claim the same public port and protocol.
fn unique_public_ports(d: &mut Decoder, cfg: &AppConfig) {
    let mut seen: BTreeMap<(&str, u16), String> = BTreeMap::new();
    for (i, s) in cfg.services.iter().enumerate() {
        for (j, p) in s.ports.iter().enumerate() {
            let Some(port) = p.port else { continue };
            let key = format!("services[{i}].ports[{j}].port");
            if let Some(first) = seen.insert((s.protocol.as_str(), port), key.clone()) {
                report(
                    d,
                    Severity::Error,
                    &key,
                    format!(
                        "public port {port}/{} is used twice (first at `{first}`)",
                        s.protocol
                    ),
                    Some("each public port can belong to one service".into()),
                );
            }
        }
    }
}

/// No group mounts two volumes at the same place.
fn unique_mount_destinations(d: &mut Decoder, cfg: &AppConfig) {
    let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (i, m) in cfg.mounts.iter().enumerate() {
        for group in &m.processes {
            if !seen.insert((group, m.destination.as_str())) {
                report(
                    d,
                    Severity::Error,
                    &format!("mounts[{i}].destination"),
                    format!("group {group:?} already has a mount at {:?}", m.destination),
                    Some("give each mount its own destination".into()),
                );
            }
        }
    }
}

/// A command that names its machines' mount's destination (`/data/app.db`), a group's
/// or a job's, reads the host's path of that name: machines share the host's filesystem,
/// so the volume is not there. (Environment values naming it are rewritten; a command is
/// not.)
fn commands_naming_mounts(d: &mut Decoder, cfg: &AppConfig) {
    // Each command: its key, what it is, and the groups whose mounts it gets.
    let groups = cfg.processes.iter().map(|(group, command)| {
        let key = format!("processes.{group}");
        let what = format!("the command of group {group:?}");
        (key, what, command, std::slice::from_ref(group))
    });
    let jobs = cfg.jobs.iter().enumerate().filter_map(|(i, job)| {
        let command = job.command.as_ref()?;
        let what = format!("the command of job {:?}", job.name);
        Some((
            format!("jobs[{i}].command"),
            what,
            command,
            &job.processes[..],
        ))
    });
    let commands: Vec<_> = groups.chain(jobs).collect();
    for m in &cfg.mounts {
        for (key, what, command, in_groups) in &commands {
            if !in_groups.iter().any(|g| m.processes.contains(g))
                || !names_path(command, &m.destination)
            {
                continue;
            }
            let relative = m.destination.trim_start_matches('/');
            let variable = super::names::mount_variable(&m.source);
            report(
                d,
                Severity::Warning,
                key,
                format!(
                    "{what} names {:?}, where volume {:?} is mounted in a container; lakefly \
                     machines share the host's filesystem, so that path is not the volume",
                    m.destination, m.source
                ),
                Some(format!(
                    "write the path relative to the app's directory ({relative}/..., a link to \
                     the volume), or use ${variable}"
                )),
            );
        }
    }
}

/// Whether `text` holds `path` as a path of its own or a directory of one: not as part of
/// a longer name (`/database` for `/data`).
fn names_path(text: &str, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return false;
    }
    text.match_indices(path).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + path.len()..].chars().next();
        let starts = before.is_none_or(|c| c.is_whitespace() || "'\"=:(<>".contains(c));
        let ends = after.is_none_or(|c| c.is_whitespace() || "/'\";)&|<>".contains(c));
        starts && ends
    })
}

/// Job names are unique: they are how `lakefly jobs trigger` finds a job.
fn unique_job_names(d: &mut Decoder, cfg: &AppConfig) {
    let mut seen = BTreeSet::new();
    for (i, job) in cfg.jobs.iter().enumerate() {
        if !seen.insert(job.name.as_str()) {
            report(
                d,
                Severity::Error,
                &format!("jobs[{i}].name"),
                format!("job name {:?} is used twice", job.name),
                Some("give each job its own name".into()),
            );
        }
    }
}
