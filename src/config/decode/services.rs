//! `[http_service]`, `[[services]]` and health checks from every place they appear.

use std::collections::BTreeMap;

use toml_edit::{Item, Value};

use super::reader::{BareUnit, Decoder, Field, TableReader};
use super::section_groups;
use crate::config::model::{
    AutoStop, Check, CheckKind, Concurrency, ConcurrencyKind, HttpService, Port, Service,
};

pub(super) fn http_service(d: &mut Decoder, f: Field, group: &str) -> Option<HttpService> {
    let mut t = d.table(f)?;
    let internal_port = t
        .require(
            d,
            "internal_port",
            "add internal_port = 8080 (the port your app listens on)",
        )
        .and_then(|f| d.port(&f));
    let force_https = t
        .get(d, "force_https")
        .and_then(|f| d.boolean(&f))
        .unwrap_or(false);
    let (auto_stop_machines, auto_start_machines, min_machines_running) = autoscale(d, &mut t);
    let processes = section_groups(d, &mut t, group);
    let concurrency = t.get(d, "concurrency").and_then(|f| concurrency(d, f));
    let checks = t
        .get(d, "checks")
        .map(|f| checks(d, f, CheckKind::Http))
        .unwrap_or_default();
    let http_options = t
        .get(d, "http_options")
        .map(|f| super::http_options::http_options(d, f))
        .unwrap_or_default();
    t.pass_through(&["tls_options", "proxy_proto_options", "force_instance_key"]);
    machine_checks_unapplied(d, &mut t);
    let extra = t.finish(d);
    Some(HttpService {
        http_options,
        internal_port: internal_port?,
        force_https,
        auto_stop_machines,
        auto_start_machines,
        min_machines_running,
        processes,
        concurrency,
        checks,
        extra,
    })
}

fn autoscale(
    d: &mut Decoder,
    t: &mut TableReader,
) -> (Option<AutoStop>, Option<bool>, Option<u32>) {
    let stop = t
        .get(d, "auto_stop_machines")
        .and_then(|f| auto_stop(d, &f));
    let start = t.get(d, "auto_start_machines").and_then(|f| d.boolean(&f));
    let min = t.get(d, "min_machines_running").and_then(|f| d.count(&f));
    (stop, start, min)
}

/// `true`/`false` or `"stop"`, `"suspend"`, `"off"`.
fn auto_stop(d: &mut Decoder, f: &Field) -> Option<AutoStop> {
    match f.item.as_bool() {
        Some(true) => Some(AutoStop::Stop),
        Some(false) => Some(AutoStop::Off),
        None => d.choice(
            f,
            &[
                ("off", AutoStop::Off),
                ("stop", AutoStop::Stop),
                ("suspend", AutoStop::Suspend),
                ("false", AutoStop::Off),
                ("true", AutoStop::Stop),
            ],
        ),
    }
}

/// `machine_checks` (top level, `[http_service]`, `[[services]]`): Fly runs each in a
/// test machine of the new image before it updates any machine; lakefly starts none, so a
/// file that counts on them is told what gates its deploys instead.
pub(super) fn machine_checks_unapplied(d: &mut Decoder, t: &mut TableReader) {
    t.kept_unapplied(
        d,
        "machine_checks",
        "lakefly starts no test machine before a deploy",
        "each new machine's health checks and its smoke check gate the rollout, and a failed \
         one leaves the old release running; a command that must pass before any machine \
         changes can be `[deploy] release_command`",
    );
}

pub(super) fn services(d: &mut Decoder, f: Field, group: &str) -> Vec<Service> {
    let mut out = Vec::new();
    for mut t in d.tables(f, 0) {
        // An empty `[services]` section is how some generated files say "no services".
        if t.field.item.as_table_like().is_some_and(|tl| tl.is_empty()) {
            continue;
        }
        let protocol = match t.get(d, "protocol") {
            Some(f) => d.choice(&f, &[("tcp", "tcp"), ("udp", "udp")]),
            None => Some("tcp"),
        };
        let internal_port = t.get(d, "internal_port").and_then(|f| d.port(&f));
        let ports = t.get(d, "ports").map(|f| ports(d, f)).unwrap_or_default();
        let concurrency = t.get(d, "concurrency").and_then(|f| concurrency(d, f));
        let tcp_checks = t
            .get(d, "tcp_checks")
            .map(|f| checks(d, f, CheckKind::Tcp))
            .unwrap_or_default();
        let http_checks = t
            .get(d, "http_checks")
            .map(|f| checks(d, f, CheckKind::Http))
            .unwrap_or_default();
        let processes = section_groups(d, &mut t, group);
        let (auto_stop_machines, auto_start_machines, min_machines_running) = autoscale(d, &mut t);
        t.pass_through(&["script_checks"]);
        machine_checks_unapplied(d, &mut t);
        let extra = t.finish(d);
        out.push(Service {
            protocol: protocol.unwrap_or("tcp").to_string(),
            internal_port,
            ports,
            concurrency,
            tcp_checks,
            http_checks,
            processes,
            auto_stop_machines,
            auto_start_machines,
            min_machines_running,
            extra,
        });
    }
    out
}

fn ports(d: &mut Decoder, f: Field) -> Vec<Port> {
    let mut out = Vec::new();
    for mut t in d.tables(f, 0) {
        let port = t.get(d, "port").and_then(|f| d.port(&f));
        let start_port = t.get(d, "start_port").and_then(|f| d.port(&f));
        let end_port = t.get(d, "end_port").and_then(|f| d.port(&f));
        let handlers = t
            .get(d, "handlers")
            .and_then(|f| d.string_list(&f))
            .unwrap_or_default();
        let force_https = t
            .get(d, "force_https")
            .and_then(|f| d.boolean(&f))
            .unwrap_or(false);
        let table = t.field.clone();
        match (port, start_port, end_port) {
            (None, None, None) => d.error(
                &table,
                format!("`{}` has no `port`", table.path),
                Some("add port = 80, or start_port and end_port for a range".into()),
            ),
            (_, Some(start), Some(end)) if start > end => d.error(
                &table,
                format!(
                    "`{}` range starts at {start}, after its end {end}",
                    table.path
                ),
                Some("swap start_port and end_port".into()),
            ),
            _ => {}
        }
        let http_options = t
            .get(d, "http_options")
            .map(|f| super::http_options::http_options(d, f))
            .unwrap_or_default();
        t.pass_through(&["tls_options", "proxy_proto_options"]);
        let extra = t.finish(d);
        out.push(Port {
            http_options,
            port,
            start_port,
            end_port,
            handlers,
            force_https,
            extra,
        });
    }
    out
}

/// `[concurrency]` as a table, or the legacy `"soft,hard"` string.
fn concurrency(d: &mut Decoder, f: Field) -> Option<Concurrency> {
    if let Some(s) = f.item.as_str() {
        let parsed = s
            .split_once(',')
            .and_then(|(soft, hard)| Some((soft.trim().parse().ok()?, hard.trim().parse().ok()?)));
        return match parsed {
            Some((soft, hard)) => Some(Concurrency {
                kind: ConcurrencyKind::Requests,
                soft_limit: Some(soft),
                hard_limit: Some(hard),
                extra: Default::default(),
            }),
            None => {
                d.error(
                    &f,
                    format!("`{}` {s:?} is not \"soft,hard\"", f.path),
                    Some("write concurrency = { type = \"connections\", soft_limit = 20, hard_limit = 25 }".into()),
                );
                None
            }
        };
    }
    let mut t = d.table(f)?;
    let kind = match t.get(d, "type") {
        Some(f) => d.choice(
            &f,
            &[
                ("connections", ConcurrencyKind::Connections),
                ("requests", ConcurrencyKind::Requests),
            ],
        ),
        None => Some(ConcurrencyKind::Connections),
    };
    let soft_limit = t.get(d, "soft_limit").and_then(|f| d.count(&f));
    let hard_limit = t.get(d, "hard_limit").and_then(|f| {
        let limit = d.count(&f)?;
        if limit == 0 {
            // Every request would be refused: over the hard limit of every machine.
            d.error(
                &f,
                format!("`{}` must be at least 1", f.path),
                Some("a machine at its hard limit takes no more; leave it out for no limit, or write e.g. hard_limit = 25".into()),
            );
            return None;
        }
        Some(limit)
    });
    if let (Some(soft), Some(hard)) = (soft_limit, hard_limit) {
        if soft > hard {
            let table = t.field.clone();
            d.warn(
                &table,
                format!("`{}` soft_limit {soft} is above hard_limit {hard}", table.path),
                Some("the soft limit is where the edge starts preferring other machines; keep it at or below the hard limit".into()),
            );
        }
    }
    let extra = t.finish(d);
    Some(Concurrency {
        kind: kind?,
        soft_limit,
        hard_limit,
        extra,
    })
}

/// Checks on a service: a list of tables (or a single table) of one kind.
fn checks(d: &mut Decoder, f: Field, kind: CheckKind) -> Vec<Check> {
    let mut out = Vec::new();
    for mut t in d.tables(f, 0) {
        let explicit = t.get(d, "type").and_then(|f| check_kind(d, &f));
        if let Some(check) = check(d, &mut t, explicit.unwrap_or_else(|| kind.clone()), None) {
            out.push(check);
        }
    }
    out
}

/// Top-level `[checks.NAME]`, or the list form `checks = [{ name = "...", ... }]`.
pub(super) fn top_level_checks(d: &mut Decoder, f: Field, group: &str) -> BTreeMap<String, Check> {
    let mut named: Vec<(String, TableReader)> = Vec::new();
    match f.item {
        Item::ArrayOfTables(_) | Item::Value(Value::Array(_)) => {
            for mut t in d.tables(f, 0) {
                let table = t.field.clone();
                match t.get(d, "name").and_then(|n| d.string(&n)) {
                    Some(name) => named.push((name, t)),
                    None => d.error(
                        &table,
                        format!("`{}` needs a `name`", table.path),
                        Some("add name = \"health\"".into()),
                    ),
                }
            }
        }
        _ => {
            let Some(mut t) = d.table(f) else {
                return BTreeMap::new();
            };
            for (name, field) in t.entries() {
                if let Some(reader) = d.table(field) {
                    named.push((name, reader));
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    for (name, mut t) in named {
        let table = t.field.clone();
        let kind = match t.get(d, "type") {
            Some(f) => check_kind(d, &f),
            None => {
                let inferred = if t.field.item.get("path").is_some() {
                    CheckKind::Http
                } else {
                    CheckKind::Tcp
                };
                let word = if inferred == CheckKind::Http {
                    "http"
                } else {
                    "tcp"
                };
                d.warn(
                    &table,
                    format!("check {name:?} has no `type`; lakefly treats it as {word}"),
                    Some(format!("add type = \"{word}\"")),
                );
                Some(inferred)
            }
        };
        let Some(kind) = kind else {
            t.finish(d);
            continue;
        };
        if let Some(check) = check(d, &mut t, kind, Some(group)) {
            match out.entry(name) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(check);
                }
                std::collections::btree_map::Entry::Occupied(taken) => d.error(
                    &table,
                    format!("check {:?} is defined twice", taken.key()),
                    Some("give each check its own name".into()),
                ),
            }
        }
    }
    out
}

fn check_kind(d: &mut Decoder, f: &Field) -> Option<CheckKind> {
    let raw = d.string(f)?;
    match raw.trim().to_ascii_lowercase().as_str() {
        "http" => Some(CheckKind::Http),
        "tcp" => Some(CheckKind::Tcp),
        other => {
            d.warn(
                f,
                format!("check type {raw:?} is not one lakefly runs; the check is ignored"),
                Some("use type = \"http\" or \"tcp\"".into()),
            );
            Some(CheckKind::Other(other.to_string()))
        }
    }
}

/// The fields every check shares; `group` is set for top-level checks, which name groups.
fn check(
    d: &mut Decoder,
    t: &mut TableReader,
    kind: CheckKind,
    group: Option<&str>,
) -> Option<Check> {
    let port = t.get(d, "port").and_then(|f| d.port(&f));
    let path = t.get(d, "path").and_then(|f| d.string(&f));
    let method = t
        .get(d, "method")
        .and_then(|f| d.string(&f))
        .map(|m| m.to_ascii_uppercase());
    let protocol = t
        .get(d, "protocol")
        .and_then(|f| d.choice(&f, &[("http", "http"), ("https", "https")]))
        .map(str::to_string);
    let tls_skip_verify = t.get(d, "tls_skip_verify").and_then(|f| d.boolean(&f));
    let headers = t
        .get(d, "headers")
        .map(|f| headers(d, f))
        .unwrap_or_default();
    let interval = t
        .get(d, "interval")
        .and_then(|f| super::duration_above_zero(d, &f, BareUnit::Millis, "interval = \"15s\""));
    let timeout = t
        .get(d, "timeout")
        .and_then(|f| super::duration_above_zero(d, &f, BareUnit::Millis, "timeout = \"2s\""));
    // Zero is fine here: check from the start.
    let grace_period = t
        .get(d, "grace_period")
        .and_then(|f| d.duration(&f, BareUnit::Millis));
    let restart_limit = t.get(d, "restart_limit").and_then(|f| d.count(&f));
    let processes = match group {
        Some(group) => section_groups(d, t, group),
        None => Vec::new(),
    };
    if let (Some(interval), Some(timeout)) = (interval, timeout) {
        if timeout > interval {
            let table = t.field.clone();
            d.warn(
                &table,
                format!(
                    "`{}` timeout {timeout} is longer than its interval {interval}",
                    table.path
                ),
                Some(
                    "checks do not overlap, so the interval stretches; keep timeout below interval"
                        .into(),
                ),
            );
        }
    }
    t.pass_through(&["tls_server_name", "kind", "command", "args", "name"]);
    let extra = t.finish(d);
    if kind == CheckKind::Http && path.is_none() {
        // Fly checks `/` when no path is given; say so rather than guess silently.
        let table = t.field.clone();
        d.warn(
            &table,
            format!(
                "http check `{}` has no `path`; lakefly checks /",
                table.path
            ),
            Some("add path = \"/health\" or another cheap endpoint".into()),
        );
    }
    Some(Check {
        kind,
        port,
        path,
        method,
        protocol,
        tls_skip_verify,
        headers,
        interval,
        timeout,
        grace_period,
        restart_limit,
        processes,
        extra,
    })
}

/// Headers as a table (`{ Name = "v" }`), or Fly's machine-API list
/// `[{ name = "Name", value = "v" }]` (also `values = [...]`, joined with `, `).
fn headers(d: &mut Decoder, f: Field) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match f.item {
        Item::ArrayOfTables(_) | Item::Value(Value::Array(_)) => {
            for mut t in d.tables(f, 0) {
                let name = t.get(d, "name").and_then(|n| d.string(&n));
                let value = match (t.get(d, "value"), t.get(d, "values")) {
                    (Some(v), _) => d.string(&v),
                    (None, Some(vs)) => d.string_list(&vs).map(|vs| vs.join(", ")),
                    (None, None) => None,
                };
                let table = t.field.clone();
                t.finish(d);
                match (name, value) {
                    (Some(name), Some(value)) => {
                        out.insert(name, value);
                    }
                    _ => d.error(
                        &table,
                        format!("header `{}` needs `name` and `value`", table.path),
                        Some("write { name = \"X-Check\", value = \"1\" }".into()),
                    ),
                }
            }
        }
        _ => {
            let Some(mut t) = d.table(f) else {
                return out;
            };
            for (name, field) in t.entries() {
                let value = match field.item.as_value() {
                    Some(Value::Array(_)) => d.string_list(&field).map(|vs| vs.join(", ")),
                    _ => d.string(&field),
                };
                if let Some(value) = value {
                    out.insert(name, value);
                }
            }
        }
    }
    out
}
