//! What runs: a normalized config turned into one [`MachineSpec`] per process group, with
//! the group's checks gathered from every place `fly.toml` puts them, its internal port,
//! mounts, restart policy and environment.

use std::collections::BTreeMap;
use std::path::Path;

use super::model::{AppConfig, Check, Metrics, RestartPolicy};
use crate::api::types::{MachineSpec, MountSpec};
use crate::dockerfile::DEFAULT_DOCKERFILE;

/// Why a group cannot be turned into a machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Nothing says what the group runs.
    #[error("nothing says what process group {0:?} runs")]
    NoCommand(String),
}

/// Whether a section's `processes` list covers `group` (sections name at least one group
/// after normalization; `[[vm]]` may name none and then covers all).
fn covers(processes: &[String], group: &str) -> bool {
    processes.is_empty() || processes.iter().any(|p| p == group)
}

/// The command line of `group`: its `[processes]` entry, else `experimental.exec`, else
/// `experimental.entrypoint` followed by `experimental.cmd`. `None` when the config leaves
/// it to a Dockerfile (which the deploy reads): an empty `[processes]` entry does, as
/// flyctl runs the image's `CMD` for one.
pub fn command_for(cfg: &AppConfig, group: &str) -> Option<String> {
    if let Some(command) = processes_entry(cfg, group) {
        return Some(command.to_string());
    }
    let exp = cfg.experimental.as_ref()?;
    let argv: Vec<&String> = if !exp.exec.is_empty() {
        exp.exec.iter().collect()
    } else {
        exp.entrypoint.iter().chain(&exp.cmd).collect()
    };
    (!argv.is_empty()).then(|| crate::shell_words::join(&argv))
}

/// The `[processes]` command of `group`; an empty entry is none (it runs the image's
/// `CMD`, as flyctl has it).
pub fn processes_entry<'a>(cfg: &'a AppConfig, group: &str) -> Option<&'a str> {
    (cfg.processes.get(group))
        .filter(|command| !command.trim().is_empty())
        .map(String::as_str)
}

/// What the groups without a command of their own would run, deployed from `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runnable {
    /// Every group has a command, or the config names a Dockerfile (the daemon reads it).
    AsConfigured,
    /// The `Dockerfile` in `dir`, which the config does not name: flyctl builds that one.
    BesideConfig,
    /// Nothing: `group` has no command, and no Dockerfile gives it one.
    Nothing {
        /// The first such group.
        group: String,
        /// What the config has instead.
        why: NothingToRun,
    },
}

/// Why a group has nothing to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NothingToRun {
    /// `[build] image`: lakefly runs no container images.
    #[error("[build] image {0:?} is a container image, which lakefly does not run (no container engine)")]
    Image(String),
    /// `[build] builder` or `buildpacks`.
    #[error("[build] builder and buildpacks need a container engine, which lakefly does not use")]
    Buildpacks,
    /// `[build] dockerfile` names a file the app's directory does not hold.
    #[error("[build] dockerfile {name:?} is not {} {}", in_or_inside(*.outside), .dir.display())]
    DockerfileMissing {
        /// As the config gives it.
        name: String,
        /// The app's directory, which is what is uploaded.
        dir: std::path::PathBuf,
        /// Whether it points outside that directory.
        outside: bool,
    },
    /// The group's `[processes]` entry is empty, which leaves it to a Dockerfile's `CMD`
    /// (as flyctl runs the image's), and the app's directory has none.
    #[error("its [processes] entry is empty, which runs a Dockerfile's CMD, and there is no {DEFAULT_DOCKERFILE} in {}", .0.display())]
    EmptyCommand(std::path::PathBuf),
    /// No command anywhere, and no Dockerfile in the app's directory.
    #[error("no [processes] entry, no experimental.cmd, no {DEFAULT_DOCKERFILE} in {}", .0.display())]
    NoCommand(std::path::PathBuf),
}

/// Whether every group of `cfg` has something to run when deployed from `dir`.
pub fn runnable(cfg: &AppConfig, dir: &Path) -> Runnable {
    let build = cfg.build.as_ref();
    // flyctl builds the Dockerfile beside fly.toml when nothing else says how to build,
    // and every group runs in that image, with or without a command of its own.
    let beside =
        !build.is_some_and(|b| b.names_a_source()) && dir.join(DEFAULT_DOCKERFILE).is_file();
    let Some(group) = cfg
        .group_names()
        .into_iter()
        .find(|group| command_for(cfg, group).is_none())
    else {
        return if beside {
            Runnable::BesideConfig
        } else {
            Runnable::AsConfigured
        };
    };
    if let Some(name) = build.and_then(|b| b.dockerfile.as_deref()) {
        // Only the app's directory is uploaded: a Dockerfile the daemon cannot find there
        // is named now, not after the upload.
        let path = Path::new(name);
        let inside = path.is_relative()
            && !path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir));
        if inside && dir.join(path).is_file() {
            return Runnable::AsConfigured;
        }
        return Runnable::Nothing {
            group: group.to_string(),
            why: NothingToRun::DockerfileMissing {
                name: name.to_string(),
                dir: dir.to_path_buf(),
                outside: !inside,
            },
        };
    }
    // Without a command, the Dockerfile beside is the one thing here that could run
    // (lakefly has no buildpacks or images), whatever else the config says.
    if dir.join(DEFAULT_DOCKERFILE).is_file() {
        return Runnable::BesideConfig;
    }
    let buildpacks = build.is_some_and(|b| b.builder.is_some() || !b.buildpacks.is_empty());
    let why = match build.and_then(|b| b.image.clone()) {
        Some(image) => NothingToRun::Image(image),
        None if buildpacks => NothingToRun::Buildpacks,
        None if cfg.processes.contains_key(group) => NothingToRun::EmptyCommand(dir.to_path_buf()),
        None => NothingToRun::NoCommand(dir.to_path_buf()),
    };
    Runnable::Nothing {
        group: group.to_string(),
        why,
    }
}

fn in_or_inside(outside: bool) -> &'static str {
    if outside {
        "inside"
    } else {
        "in"
    }
}

/// How to give a group something to run.
pub fn runnable_hint(group: &str, config: &Path, why: &NothingToRun) -> String {
    if let NothingToRun::DockerfileMissing { .. } = why {
        return format!(
            "[build] dockerfile is read from the directory holding {}, and only that directory is uploaded: fix the path, move the Dockerfile there, or give {group} a command in [processes]",
            config.display()
        );
    }
    format!(
        "give it a command in [processes] ({group} = \"python3 app.py\"), or put a Dockerfile with a CMD beside {}",
        config.display()
    )
}

/// The port `group` listens on: `http_service.internal_port` when it serves the HTTP
/// service, else the first `[[services]]` entry that names it and has one.
pub fn internal_port_for(cfg: &AppConfig, group: &str) -> Option<u16> {
    cfg.http_service
        .as_ref()
        .filter(|h| covers(&h.processes, group))
        .map(|h| h.internal_port)
        .or_else(|| {
            cfg.services
                .iter()
                .filter(|s| covers(&s.processes, group))
                .find_map(|s| s.internal_port)
        })
}

/// The ports `group`'s processes bind themselves, each with what names it: every
/// `[[services]]` internal port of the group besides the one lakefly maps onto `$PORT`, and
/// `[[metrics]]` ports. Machines share the host's network, so two machines of the group
/// cannot both bind one (on Fly each machine has an address of its own).
pub fn own_ports(cfg: &AppConfig, group: &str) -> Vec<String> {
    let mapped = internal_port_for(cfg, group);
    let mut ports: Vec<String> = Vec::new();
    let mut add = |port: u16, what: String| {
        if Some(port) != mapped && !ports.iter().any(|p| p.starts_with(&format!("{port} "))) {
            ports.push(format!("{port} ({what})"));
        }
    };
    for (i, service) in cfg.services.iter().enumerate() {
        if let (true, Some(port)) = (covers(&service.processes, group), service.internal_port) {
            add(port, format!("services[{i}]"));
        }
    }
    for (i, metrics) in cfg.metrics.iter().enumerate() {
        if covers(&metrics.processes, group) {
            add(metrics.port, format!("metrics[{i}]"));
        }
    }
    ports
}

/// The `[[metrics]]` endpoints `group`'s machines serve.
pub fn metrics_for<'a>(cfg: &'a AppConfig, group: &str) -> Vec<&'a Metrics> {
    cfg.metrics
        .iter()
        .filter(|metrics| covers(&metrics.processes, group))
        .collect()
}

/// Whether `port`, `group`'s internal port, is only ever named by `protocol = "udp"`
/// services.
pub fn udp_only(cfg: &AppConfig, group: &str, port: u16) -> bool {
    let http = cfg
        .http_service
        .as_ref()
        .is_some_and(|h| covers(&h.processes, group) && h.internal_port == port);
    let mut naming = cfg
        .services
        .iter()
        .filter(|s| covers(&s.processes, group) && s.internal_port == Some(port))
        .peekable();
    !http && naming.peek().is_some() && naming.all(|s| s.protocol.eq_ignore_ascii_case("udp"))
}

/// Every check that applies to `group`, by a name that says where it came from:
/// `http_service.checks[0]`, `services[1].tcp_checks[0]`, or the top-level check's name.
pub fn checks_for(cfg: &AppConfig, group: &str) -> BTreeMap<String, Check> {
    let mut out = BTreeMap::new();
    if let Some(h) = cfg
        .http_service
        .as_ref()
        .filter(|h| covers(&h.processes, group))
    {
        for (i, check) in h.checks.iter().enumerate() {
            let mut check = check.clone();
            check.port = check.port.or(Some(h.internal_port));
            out.insert(format!("http_service.checks[{i}]"), check);
        }
    }
    for (i, service) in cfg.services.iter().enumerate() {
        if !covers(&service.processes, group) {
            continue;
        }
        for (kind, checks) in [
            ("tcp_checks", &service.tcp_checks),
            ("http_checks", &service.http_checks),
        ] {
            for (j, check) in checks.iter().enumerate() {
                let mut check = check.clone();
                check.port = check.port.or(service.internal_port);
                out.insert(format!("services[{i}].{kind}[{j}]"), check);
            }
        }
    }
    for (name, check) in &cfg.checks {
        if covers(&check.processes, group) {
            let mut check = check.clone();
            check.port = check.port.or_else(|| internal_port_for(cfg, group));
            out.insert(name.clone(), check);
        }
    }
    out
}

/// The mounts of `group`.
pub fn mounts_for(cfg: &AppConfig, group: &str) -> Vec<MountSpec> {
    cfg.mounts
        .iter()
        .filter(|m| covers(&m.processes, group))
        .map(|m| MountSpec {
            source: m.source.clone(),
            destination: m.destination.clone(),
        })
        .collect()
}

/// The restart policy of `group`: the `[[restart]]` entry that names it.
pub fn restart_for(cfg: &AppConfig, group: &str) -> (Option<RestartPolicy>, Option<u32>) {
    cfg.restart
        .iter()
        .find(|r| covers(&r.processes, group))
        .map_or((None, None), |r| (Some(r.policy), r.max_retries))
}

/// The machine spec of `group`. `fallback_command` is what a Dockerfile says to run, for
/// configs that leave the command to one.
pub fn machine_spec(
    cfg: &AppConfig,
    group: &str,
    fallback_command: Option<&str>,
    release_version: Option<u64>,
) -> Result<MachineSpec, PlanError> {
    let command = command_for(cfg, group)
        .or_else(|| fallback_command.map(str::to_string))
        .ok_or_else(|| PlanError::NoCommand(group.to_string()))?;
    let (restart, max_retries) = restart_for(cfg, group);
    let internal_port = internal_port_for(cfg, group);
    Ok(MachineSpec {
        process_group: group.to_string(),
        command,
        env: machine_env(cfg),
        workdir: None,
        kill_signal: cfg.kill_signal.clone(),
        kill_timeout: cfg.kill_timeout,
        restart,
        max_retries,
        internal_port,
        udp_only: internal_port.is_some_and(|port| udp_only(cfg, group, port)),
        release_version,
        mounts: mounts_for(cfg, group),
        checks: checks_for(cfg, group),
        memory_mb: vm_for(cfg, group).and_then(|v| v.memory_mb),
        cpus: vm_for(cfg, group).and_then(|v| v.cpus),
        swap_mb: cfg.swap_size_mb,
        console_command: cfg.console_command.clone(),
    })
}

/// A machine's `[env]`: the file's, with `PRIMARY_REGION` from `primary_region`, as flyctl
/// puts it in every machine's config (where it wins over an `[env]` entry of that name).
fn machine_env(cfg: &AppConfig) -> std::collections::BTreeMap<String, String> {
    let mut env = cfg.env.clone();
    if let Some(region) = cfg.primary_region.as_ref().filter(|r| !r.is_empty()) {
        env.insert("PRIMARY_REGION".to_string(), region.clone());
    }
    env
}

/// The `[[vm]]` that sizes `group`: its own, else the one for every group.
pub fn vm_for<'a>(cfg: &'a AppConfig, group: &str) -> Option<&'a crate::config::model::Vm> {
    cfg.vm
        .iter()
        .find(|v| v.processes.iter().any(|p| p == group))
        .or_else(|| cfg.vm.iter().find(|v| v.processes.is_empty()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn cfg(text: &str) -> AppConfig {
        let loaded = crate::config::parse(text, Path::new("fly.toml"));
        assert!(!loaded.report.has_errors(), "{:?}", loaded.report);
        loaded.config
    }

    #[test]
    fn checks_come_from_every_place_with_the_right_port() {
        let c = cfg(r#"
            [processes]
            web = "serve"
            worker = "work"
            [http_service]
            internal_port = 8080
            processes = ["web"]
            [[http_service.checks]]
            path = "/health"
            [[services]]
            internal_port = 9000
            processes = ["worker"]
            [[services.tcp_checks]]
            interval = "5s"
            [checks.admin]
            type = "http"
            port = 8081
            path = "/"
            processes = ["web"]
        "#);
        let web = checks_for(&c, "web");
        assert_eq!(
            web.keys().collect::<Vec<_>>(),
            ["admin", "http_service.checks[0]"]
        );
        assert_eq!(web["http_service.checks[0]"].port, Some(8080));
        assert_eq!(web["admin"].port, Some(8081));
        let worker = checks_for(&c, "worker");
        assert_eq!(
            worker.keys().collect::<Vec<_>>(),
            ["services[0].tcp_checks[0]"]
        );
        assert_eq!(worker["services[0].tcp_checks[0]"].port, Some(9000));
        assert_eq!(internal_port_for(&c, "web"), Some(8080));
        assert_eq!(internal_port_for(&c, "worker"), Some(9000));
    }

    #[test]
    fn a_spec_per_group_with_command_env_restart_and_mounts() {
        let c = cfg(r#"
            kill_signal = "SIGTERM"
            kill_timeout = 30
            swap_size_mb = 512
            [env]
            MODE = "prod"
            [processes]
            app = "python3 app.py"
            [[mounts]]
            source = "data"
            destination = "/data"
            [[restart]]
            policy = "always"
            retries = 3
        "#);
        let spec = machine_spec(&c, "app", None, Some(4)).unwrap();
        assert_eq!(spec.command, "python3 app.py");
        assert_eq!(spec.env["MODE"], "prod");
        assert_eq!(spec.kill_signal.as_deref(), Some("SIGTERM"));
        assert_eq!(spec.kill_timeout.unwrap().to_string(), "30s");
        assert_eq!(spec.swap_mb, Some(512));
        assert_eq!(
            (spec.restart, spec.max_retries),
            (Some(RestartPolicy::Always), Some(3))
        );
        assert_eq!(
            spec.mounts,
            [MountSpec {
                source: "data".into(),
                destination: "/data".into()
            }]
        );
        assert_eq!(spec.release_version, Some(4));
        assert!(!spec.env.contains_key("PRIMARY_REGION"));
    }

    #[test]
    fn primary_region_reaches_the_environment_over_an_env_entry() {
        let c = cfg(r#"
            primary_region = "ams"
            [env]
            PRIMARY_REGION = "ord"
            [processes]
            app = "serve"
        "#);
        let spec = machine_spec(&c, "app", None, None).unwrap();
        assert_eq!(spec.env["PRIMARY_REGION"], "ams");
    }

    #[test]
    fn a_port_only_udp_services_name_is_udp_only() {
        let c = cfg(r#"
            [processes]
            dns = "dns"
            web = "web"
            both = "both"
            [[services]]
            protocol = "udp"
            internal_port = 53
            processes = ["dns", "both"]
            [[services]]
            protocol = "tcp"
            internal_port = 53
            processes = ["both"]
            [http_service]
            internal_port = 8080
            processes = ["web"]
        "#);
        assert!(udp_only(&c, "dns", 53));
        assert!(
            !udp_only(&c, "both", 53),
            "TCP on the same port can be probed"
        );
        assert!(!udp_only(&c, "web", 8080));
        assert!(machine_spec(&c, "dns", None, None).unwrap().udp_only);
    }

    #[test]
    fn experimental_entrypoint_and_cmd_make_a_quoted_command_line() {
        let c =
            cfg("[experimental]\nentrypoint = [\"/bin/server\"]\ncmd = [\"--name\", \"my app\"]\n");
        assert_eq!(
            command_for(&c, "app").as_deref(),
            Some("/bin/server --name 'my app'")
        );
        let exec = cfg("[experimental]\nexec = [\"run\", \"it's\"]\n");
        assert_eq!(command_for(&exec, "app").as_deref(), Some(r"run 'it'\''s'"));
    }

    #[test]
    fn a_group_with_no_command_is_an_error_unless_a_dockerfile_gives_one() {
        let c = cfg("[build]\ndockerfile = \"Dockerfile\"\n");
        assert_eq!(
            machine_spec(&c, "app", None, None),
            Err(PlanError::NoCommand("app".into()))
        );
        assert_eq!(
            machine_spec(&c, "app", Some("python3 main.py"), None)
                .unwrap()
                .command,
            "python3 main.py"
        );
    }

    #[test]
    fn an_empty_processes_entry_leaves_the_command_to_a_dockerfile_as_flyctl_does() {
        let c = cfg("[processes]\n  app = \"\"\n  worker = \"  \"\n  web = \"serve\"\n");
        assert_eq!(command_for(&c, "app"), None);
        assert_eq!(command_for(&c, "worker"), None);
        assert_eq!(command_for(&c, "web").as_deref(), Some("serve"));
        let dir = tempfile::tempdir().unwrap();
        let Runnable::Nothing { group, why } = runnable(&c, dir.path()) else {
            panic!("nothing runs app without a Dockerfile");
        };
        assert_eq!(group, "app");
        assert!(
            why.to_string()
                .starts_with("its [processes] entry is empty, which runs a Dockerfile's CMD"),
            "{why}"
        );
        std::fs::write(dir.path().join("Dockerfile"), "FROM x\nCMD [\"serve\"]\n").unwrap();
        assert_eq!(runnable(&c, dir.path()), Runnable::BesideConfig);
    }

    #[test]
    fn own_ports_are_the_ports_besides_the_one_mapped_onto_port() {
        let c = cfg(r#"
app = "x"
[processes]
  web = "serve"
  worker = "work"
[http_service]
  internal_port = 8080
  processes = ["web"]
[[services]]
  internal_port = 8080
  processes = ["web"]
[[services]]
  internal_port = 5432
  processes = ["web"]
[metrics]
  port = 9091
  path = "/metrics"
"#);
        assert_eq!(
            own_ports(&c, "web"),
            ["5432 (services[1])", "9091 (metrics[0])"]
        );
        // Sections without `processes` are the default (first) group's.
        assert!(own_ports(&c, "worker").is_empty());
    }
}
