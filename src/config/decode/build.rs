//! `[build]`, `[deploy]`, `[[statics]]`, `[[files]]` and `[[jobs]]`.

use std::collections::BTreeMap;

use super::reader::{BareUnit, Decoder, Field};
use super::{duration_above_zero, section_groups};
use crate::config::model::{Build, Deploy, FileSpec, Job, Static, Strategy};

pub(super) fn build(d: &mut Decoder, f: Field) -> Option<Build> {
    let mut t = d.table(f)?;
    let mut b = Build {
        builder: t.string(d, "builder"),
        image: t.string(d, "image"),
        dockerfile: t.string(d, "dockerfile"),
        ignorefile: t.string(d, "ignorefile"),
        ..Build::default()
    };
    for key in ["build-target", "build_target"] {
        if let Some(f) = t.get_as(d, key, "build_target") {
            b.build_target = b.build_target.or(d.string(&f));
        }
    }
    if let Some(f) = t.get(d, "buildpacks") {
        b.buildpacks = d.string_list(&f).unwrap_or_default();
    }
    if let Some(f) = t.get(d, "args") {
        b.args = string_table(d, f);
    }
    if let Some(f) = t.get(d, "command") {
        d.extension(&f, "[build] command");
        b.command = d.string(&f);
    }
    t.pass_through(&[
        "settings",
        "builtin",
        "dockerignorefile",
        "docker_build_target",
    ]);
    b.extra = t.finish(d);
    Some(b)
}

/// A table whose values must all be strings (`[build.args]`).
fn string_table(d: &mut Decoder, f: Field) -> BTreeMap<String, String> {
    let Some(mut t) = d.table(f) else {
        return BTreeMap::new();
    };
    t.entries()
        .into_iter()
        .filter_map(|(k, f)| d.string(&f).map(|v| (k, v)))
        .collect()
}

pub(super) fn deploy(d: &mut Decoder, f: Field) -> Option<Deploy> {
    let mut t = d.table(f)?;
    let mut dep = Deploy::default();
    if let Some(f) = t.get(d, "strategy") {
        dep.strategy = d.choice(&f, &Strategy::ALL);
    }
    dep.release_command = t.string(d, "release_command");
    if let Some(f) = t.get(d, "release_command_timeout") {
        dep.release_command_timeout = duration_above_zero(
            d,
            &f,
            BareUnit::Seconds,
            "release_command_timeout = \"10m\"",
        );
    }
    if let Some(f) = t.get(d, "wait_timeout") {
        dep.wait_timeout = duration_above_zero(d, &f, BareUnit::Seconds, "wait_timeout = \"5m\"");
    }
    if let Some(f) = t.get(d, "max_unavailable") {
        dep.max_unavailable = d.number(&f).filter(|&n| {
            let ok = n > 0.0;
            if !ok {
                d.error(
                    &f,
                    format!("`deploy.max_unavailable` must be above 0, found {n}"),
                    Some("use a fraction such as 0.33, or a count such as 1".into()),
                );
            }
            ok
        });
    }
    t.pass_through(&["release_command_vm", "seed_command"]);
    dep.extra = t.finish(d);
    Some(dep)
}

pub(super) fn statics(d: &mut Decoder, f: Field) -> Vec<Static> {
    let mut out = Vec::new();
    for mut t in d.tables(f, 0) {
        let guest_path = required_string(d, &mut t, "guest_path", "/app/public");
        let url_prefix = required_string(d, &mut t, "url_prefix", "/static");
        t.pass_through(&["index_document"]);
        t.kept_unapplied(
            d,
            "tigris_bucket",
            "the edge serves statics from the release's own files at `guest_path`",
            "ship the files with the app under `guest_path` (or have the app serve the bucket)",
        );
        let extra = t.finish(d);
        if let (Some(guest_path), Some(url_prefix)) = (guest_path, url_prefix) {
            out.push(Static {
                guest_path,
                url_prefix,
                extra,
            });
        }
    }
    out
}

pub(super) fn files(d: &mut Decoder, f: Field, group: &str) -> Vec<FileSpec> {
    let mut out = Vec::new();
    for mut t in d.tables(f, 0) {
        let guest_path = required_string(d, &mut t, "guest_path", "/etc/app/config.json");
        let local_path = t.string(d, "local_path");
        let secret_name = t.string(d, "secret_name");
        let raw_value = t.string(d, "raw_value");
        let sources = [&local_path, &secret_name, &raw_value]
            .iter()
            .filter(|s| s.is_some())
            .count();
        if sources != 1 {
            let table = t.field.clone();
            d.error(
                &table,
                format!(
                    "`{}` needs exactly one of local_path, secret_name, raw_value",
                    t.path()
                ),
                None,
            );
        }
        let processes = section_groups(d, &mut t, group);
        let extra = t.finish(d);
        if let Some(guest_path) = guest_path {
            out.push(FileSpec {
                guest_path,
                local_path,
                secret_name,
                raw_value,
                processes,
                extra,
            });
        }
    }
    out
}

pub(super) fn jobs(d: &mut Decoder, f: Field, group: &str) -> Vec<Job> {
    let mut out = Vec::new();
    for mut t in d.tables(f, 0) {
        let table = t.field.clone();
        let name = required_string(d, &mut t, "name", "cleanup");
        let command = t.string(d, "command");
        let method = t.string(d, "method").map(|m| m.to_ascii_uppercase());
        let path = t.string(d, "path");
        let schedule = t.get(d, "schedule").and_then(|f| {
            let expr = d.string(&f)?;
            match crate::api::jobs::parse_schedule(&expr) {
                Ok(_) => Some(expr),
                Err(e) => {
                    d.error(
                        &f,
                        format!("`{}` {e}", f.path),
                        Some("use 5 fields (minute hour day month weekday), e.g. \"0 3 * * *\", or interval = \"6h\"".into()),
                    );
                    None
                }
            }
        });
        let time_zone = t.get(d, "time_zone").and_then(|f| {
            let zone = d.string(&f)?;
            match crate::api::jobs::schedule_zone(Some(&zone)) {
                Ok(_) => Some(zone),
                Err(e) => {
                    d.error(&f, format!("`{}`: {e}", f.path), None);
                    None
                }
            }
        });
        let interval = t.get(d, "interval").and_then(|f| {
            let interval = d.duration(&f, BareUnit::Seconds)?;
            if interval < crate::api::jobs::MIN_INTERVAL {
                d.error(
                    &f,
                    format!(
                        "`{}` is {interval}; a job's interval is at least {}",
                        f.path,
                        crate::api::jobs::MIN_INTERVAL
                    ),
                    Some("use a longer interval, e.g. \"30s\" or \"10m\"".into()),
                );
                return None;
            }
            Some(interval)
        });
        let timeout = t
            .get(d, "timeout")
            .and_then(|f| d.duration(&f, BareUnit::Seconds));
        let retries = t.get(d, "retries").and_then(|f| d.count(&f));
        let processes = section_groups(d, &mut t, group);
        match (&command, &path) {
            (Some(_), Some(_)) => d.error(
                &table,
                format!("`{}` sets both `command` and `path`", table.path),
                Some("a job runs a command or calls an HTTP path, not both".into()),
            ),
            (None, None) => d.error(
                &table,
                format!("`{}` needs `command` or `path`", table.path),
                Some(
                    "set command = \"...\" to run a command, or path = \"/...\" to call the app"
                        .into(),
                ),
            ),
            _ => {}
        }
        if time_zone.is_some() && schedule.is_none() {
            d.error(
                &table,
                format!("`{}` sets `time_zone` without a `schedule`", table.path),
                Some("time_zone says how a cron schedule's hours are read; an interval or a manual job has none".into()),
            );
        }
        if schedule.is_some() && interval.is_some() {
            d.error(
                &table,
                format!("`{}` sets both `schedule` and `interval`", table.path),
                Some("keep one: a cron schedule or a fixed interval".into()),
            );
        }
        let extra = t.finish(d);
        if let Some(name) = name {
            out.push(Job {
                name,
                command,
                method,
                path,
                schedule,
                time_zone,
                interval,
                timeout,
                retries,
                processes,
                extra,
            });
        }
    }
    out
}

/// A string key that must be present; reports its absence on the table.
pub(super) fn required_string(
    d: &mut Decoder,
    t: &mut super::reader::TableReader,
    key: &'static str,
    example: &str,
) -> Option<String> {
    t.require(d, key, &format!("add {key} = \"{example}\""))
        .and_then(|f| d.string(&f))
}
