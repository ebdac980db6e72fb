//! Turns a parsed `fly.toml` into the normalized [`AppConfig`], accepting every legacy and
//! odd form flyctl accepts and reporting each problem with its place.

mod build;
mod http_options;
mod machines;
pub(crate) mod reader;
mod services;

use std::collections::BTreeMap;

use toml_edit::{Item, Value};

use self::reader::{BareUnit, Decoder, Field, TableReader};
use super::model::{AppConfig, Experimental};
use super::names;

/// Decodes the root table of a document.
pub(crate) fn decode_root<'a>(d: &mut Decoder<'a>, root: &'a Item) -> AppConfig {
    let field = Field {
        path: String::new(),
        item: root,
        span: None,
    };
    let Some(mut r) = d.table(field) else {
        return AppConfig::default();
    };
    let mut cfg = AppConfig::default();

    if let Some(f) = r.get(d, "app") {
        cfg.app = d.string(&f).filter(|name| app_name_ok(d, &f, name));
    }
    if let Some(f) = r.get(d, "primary_region") {
        cfg.primary_region = d.string(&f);
    }
    if let Some(f) = r.get(d, "kill_signal") {
        cfg.kill_signal = kill_signal(d, &f);
    }
    if let Some(f) = r.get(d, "kill_timeout") {
        cfg.kill_timeout = d.duration(&f, BareUnit::Seconds);
    }
    if let Some(f) = r.get(d, "swap_size_mb") {
        cfg.swap_size_mb = d.unsigned(&f);
    }
    if let Some(f) = r.get(d, "console_command") {
        cfg.console_command = d.string(&f);
    }
    // Process groups first: every later section resolves its default group from them.
    if let Some(f) = r.get(d, "processes") {
        cfg.processes = processes(d, f);
    }
    let default_group = cfg.default_group().to_string();

    if let Some(f) = r.get(d, "env") {
        cfg.env = env(d, f);
    }
    if let Some(f) = r.get(d, "build") {
        cfg.build = build::build(d, f);
    }
    if let Some(f) = r.get(d, "deploy") {
        cfg.deploy = build::deploy(d, f);
    }
    if let Some(f) = r.get(d, "experimental") {
        cfg.experimental = experimental(d, f, &mut cfg);
    }
    if let Some(f) = r.get(d, "http_service") {
        cfg.http_service = services::http_service(d, f, &default_group);
    }
    if let Some(f) = r.get(d, "services") {
        cfg.services = services::services(d, f, &default_group);
    }
    if let Some(f) = r.get(d, "checks") {
        cfg.checks = services::top_level_checks(d, f, &default_group);
    }
    for key in ["vm", "compute"] {
        if let Some(f) = r.get_as(d, key, "vm") {
            let start = cfg.vm.len();
            cfg.vm.extend(machines::vms(d, f, start));
        }
    }
    for key in ["mounts", "mount"] {
        if let Some(f) = r.get_as(d, key, "mounts") {
            let start = cfg.mounts.len();
            cfg.mounts
                .extend(machines::mounts(d, f, start, &default_group));
        }
    }
    for key in ["metrics", "metric"] {
        if let Some(f) = r.get_as(d, key, "metrics") {
            let start = cfg.metrics.len();
            cfg.metrics
                .extend(machines::metrics(d, f, start, &default_group));
        }
    }
    legacy_metrics(d, &mut r, &mut cfg, &default_group);
    if let Some(f) = r.get(d, "restart") {
        cfg.restart = machines::restarts(d, f, &default_group);
    }
    if let Some(f) = r.get(d, "statics") {
        cfg.statics = build::statics(d, f);
    }
    if let Some(f) = r.get(d, "files") {
        cfg.files = build::files(d, f, &default_group);
    }
    if let Some(f) = r.get(d, "jobs") {
        d.extension(&f, "[[jobs]]");
        cfg.jobs = build::jobs(d, f, &default_group);
    }
    // `container` names one of `machine_config`'s containers, which is warned about.
    r.pass_through(&["host_dedication_id", "build_target", "container"]);
    services::machine_checks_unapplied(d, &mut r);
    for key in ["machine_config", "containers"] {
        r.kept_unapplied(
            d,
            key,
            "lakefly runs each process group as one process on the host, not in Fly's containers",
            "give each container's command a [processes] entry (a sidecar becomes a group of its own)",
        );
    }
    cfg.extra = r.finish(d);
    cfg
}

fn app_name_ok(d: &mut Decoder, f: &Field, name: &str) -> bool {
    if name.is_empty() {
        d.warn(
            f,
            "`app` is empty",
            Some("set app = \"my-app\", or pass -a NAME to each command".into()),
        );
        return false;
    }
    match names::check_app_name(name) {
        Ok(()) => true,
        Err(problem) => {
            d.error(
                f,
                format!("app name {name:?} {problem}"),
                Some(names::APP_NAME_HINT.into()),
            );
            false
        }
    }
}

/// Signals Fly accepts for `kill_signal`, normalized to their `SIG` names.
const SIGNALS: [&str; 8] = [
    "SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGSTOP", "SIGHUP",
];

fn kill_signal(d: &mut Decoder, f: &Field) -> Option<String> {
    let raw = d.string(f)?;
    let upper = raw.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if SIGNALS.contains(&name.as_str()) {
        Some(name)
    } else {
        d.error(
            f,
            format!("`kill_signal` {raw:?} is not a signal lakefly can send"),
            Some(format!("use one of {}", SIGNALS.join(", "))),
        );
        None
    }
}

/// `[processes]` as a table of commands, or the legacy list of `{name, command}`.
fn processes(d: &mut Decoder, f: Field) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match f.item {
        Item::Value(Value::Array(a)) if a.is_empty() => {}
        Item::ArrayOfTables(_) | Item::Value(Value::Array(_)) => {
            for mut t in d.tables(f, 0) {
                let name = t.get(d, "name").and_then(|n| d.string(&n));
                let command = t.get(d, "command").and_then(|c| d.string(&c));
                match (name, command) {
                    (Some(name), Some(command)) => {
                        insert_group(d, &t.field, &mut out, name, command);
                    }
                    _ => d.error(
                        &t.field,
                        format!("`{}` needs both `name` and `command`", t.path()),
                        Some("write name = \"web\" and command = \"...\"".into()),
                    ),
                }
                t.finish(d);
            }
        }
        _ => {
            let Some(mut t) = d.table(f) else {
                return out;
            };
            for (name, field) in t.entries() {
                if let Some(command) = d.string(&field) {
                    // For rules about a group's command (one naming a mount).
                    d.record(&field);
                    insert_group(d, &field, &mut out, name, command);
                }
            }
        }
    }
    out
}

fn insert_group(
    d: &mut Decoder,
    f: &Field,
    out: &mut BTreeMap<String, String>,
    name: String,
    command: String,
) {
    if let Err(problem) = names::check_group_name(&name) {
        d.error(
            f,
            format!("process group name {name:?} {problem}"),
            Some(names::GROUP_NAME_HINT.into()),
        );
    } else {
        backgrounded(d, f, &name, &command);
        match out.entry(name) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(command);
            }
            std::collections::btree_map::Entry::Occupied(taken) => d.error(
                f,
                format!("process group {:?} is defined twice", taken.key()),
                Some("give each group its own name".into()),
            ),
        }
    }
}

/// Warns of a command ending in `&` (a start script's `nohup server &`): it puts its
/// server in the background, so the shell lakefly started exits at once, the machine with it.
fn backgrounded(d: &mut Decoder, f: &Field, group: &str, command: &str) {
    let command = command.trim_end();
    if command.ends_with('&') && !command.ends_with("&&") {
        d.warn(
            f,
            format!(
                "process group {group:?} runs its command in the background (`&`): the \
                 machine's process exits at once and the machine stops"
            ),
            Some(
                "drop the `&` (and any nohup): lakefly keeps the process running, restarts it \
                 and keeps its output"
                    .into(),
            ),
        );
    }
}

/// `[env]` as a table, or a list of tables that are merged in order; non-string values
/// are written as TOML would print them.
fn env(d: &mut Decoder, f: Field) -> BTreeMap<String, String> {
    let tables = match f.item {
        Item::ArrayOfTables(_) | Item::Value(Value::Array(_)) => d.tables(f, 0),
        _ => d.table(f).into_iter().collect(),
    };
    let mut out = BTreeMap::new();
    for mut t in tables {
        for (name, field) in t.entries() {
            let value = match field.item.as_value() {
                Some(Value::String(s)) => s.value().clone(),
                Some(Value::Integer(i)) => i.value().to_string(),
                Some(Value::Float(x)) => x.value().to_string(),
                Some(Value::Boolean(b)) => b.value().to_string(),
                Some(Value::Datetime(dt)) => dt.value().to_string(),
                _ => {
                    d.error(
                        &field,
                        format!(
                            "env value `{}` must be a string, number or boolean",
                            field.path
                        ),
                        Some(format!("write {name} = \"...\"")),
                    );
                    continue;
                }
            };
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                d.error(
                    &field,
                    format!("{name:?} is not a valid environment variable name"),
                    Some("use letters, digits and underscores".into()),
                );
                continue;
            }
            out.insert(name, value);
        }
    }
    out
}

/// `[experimental]`; its `kill_timeout`/`kill_signal` are lifted to the top level when
/// the top level does not set them.
fn experimental(d: &mut Decoder, f: Field, cfg: &mut AppConfig) -> Option<Experimental> {
    let mut t = d.table(f)?;
    let mut exp = Experimental::default();
    let list = |d: &mut Decoder, t: &mut TableReader, key: &'static str| {
        t.get(d, key)
            .and_then(|f| d.string_list(&f))
            .unwrap_or_default()
    };
    exp.cmd = list(d, &mut t, "cmd");
    exp.entrypoint = list(d, &mut t, "entrypoint");
    exp.exec = list(d, &mut t, "exec");
    if let Some(f) = t.get(d, "auto_rollback") {
        exp.auto_rollback = d.boolean(&f);
    }
    if let Some(f) = t.get(d, "kill_timeout") {
        let timeout = d.duration(&f, BareUnit::Seconds);
        cfg.kill_timeout = cfg.kill_timeout.or(timeout);
    }
    if let Some(f) = t.get(d, "kill_signal") {
        let signal = kill_signal(d, &f);
        cfg.kill_signal = cfg.kill_signal.take().or(signal);
    }
    t.pass_through(&[
        "private_network",
        "enable_consul",
        "enable_etcd",
        "enable_6pn",
        "lazy_load_images",
        "attached",
        "machine_config",
        "use_zstd",
        "allowed_public_ports",
        "metrics_port",
        "metrics_path",
    ]);
    exp.extra = t.finish(d);
    Some(exp)
}

/// `metrics_port`/`metrics_path` at the top level or in `[experimental]`, from before
/// `[metrics]` existed.
fn legacy_metrics(d: &mut Decoder, root: &mut TableReader, cfg: &mut AppConfig, group: &str) {
    let port = root.get(d, "metrics_port");
    let path = root.get(d, "metrics_path");
    let (port, path) = match (port, path) {
        (None, None) => {
            let exp = cfg.experimental.as_ref();
            let from_exp = |k: &str| exp.and_then(|e| e.extra.get(k)).cloned();
            match (from_exp("metrics_port"), from_exp("metrics_path")) {
                (Some(port), path) => {
                    let port = port
                        .as_u64()
                        .or_else(|| port.as_str().and_then(|s| s.parse().ok()));
                    let path = path.and_then(|p| p.as_str().map(str::to_string));
                    (port.and_then(|p| u16::try_from(p).ok()), path)
                }
                _ => return,
            }
        }
        (port, path) => (
            port.and_then(|f| d.port(&f)),
            path.and_then(|f| d.string(&f)),
        ),
    };
    if let Some(port) = port {
        cfg.metrics.push(super::model::Metrics {
            port,
            path: path.unwrap_or_else(|| "/metrics".into()),
            processes: vec![group.to_string()],
            extra: Default::default(),
        });
    }
}

/// `processes = [...]` on a section; empty or absent means the default group.
pub(crate) fn section_groups(
    d: &mut Decoder,
    t: &mut TableReader,
    default_group: &str,
) -> Vec<String> {
    let listed = t
        .get(d, "processes")
        .and_then(|f| d.string_list(&f))
        .unwrap_or_default();
    if listed.is_empty() {
        vec![default_group.to_string()]
    } else {
        listed
    }
}

/// A time limit or period (bare numbers in `bare_unit`, as Fly writes them, or a duration
/// string) above zero: nothing finishes within zero, and a check every zero seconds would
/// never stop checking. `example` shows a good value in the hint.
pub(super) fn duration_above_zero(
    d: &mut Decoder,
    f: &Field,
    bare_unit: BareUnit,
    example: &str,
) -> Option<crate::config::units::Duration> {
    let limit = d.duration(f, bare_unit)?;
    if limit.as_millis() == 0 {
        d.error(
            f,
            format!("`{}` must be above zero", f.path),
            Some(format!(
                "leave it out for the default, or write e.g. {example}"
            )),
        );
        return None;
    }
    Some(limit)
}
