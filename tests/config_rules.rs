//! Each normalization and validation rule of the config engine, on small fixtures.

use std::path::Path;

use lakefly::config::model::{AutoStop, CheckKind, ConcurrencyKind, RestartPolicy, Strategy};
use lakefly::config::{self, AppConfig, Loaded, Severity};

fn load(text: &str) -> Loaded {
    config::parse(text, Path::new("fly.toml"))
}

/// The config, asserting the text has no errors and no warnings.
fn clean(text: &str) -> AppConfig {
    let loaded = load(text);
    assert!(
        loaded.report.diagnostics.is_empty(),
        "{text}\n{:#?}",
        loaded.report.diagnostics
    );
    loaded.config
}

/// `(line, column, message, hint)` of each error.
fn errors(text: &str) -> Vec<(usize, usize, String, String)> {
    diagnostics(text, Severity::Error)
}

fn warnings(text: &str) -> Vec<(usize, usize, String, String)> {
    diagnostics(text, Severity::Warning)
}

fn diagnostics(text: &str, severity: Severity) -> Vec<(usize, usize, String, String)> {
    load(text)
        .report
        .diagnostics
        .into_iter()
        .filter(|d| d.severity == severity)
        .map(|d| {
            let p = d.position.expect("every diagnostic has a position");
            (p.line, p.column, d.message, d.hint.unwrap_or_default())
        })
        .collect()
}

fn one_error(text: &str) -> (usize, usize, String, String) {
    let mut errs = errors(text);
    assert_eq!(errs.len(), 1, "{text}\n{errs:#?}");
    errs.remove(0)
}

// ---- normalization ----

#[test]
fn kill_timeout_is_seconds_or_a_duration_and_is_lifted_from_experimental() {
    assert_eq!(
        clean("kill_timeout = 5").kill_timeout.unwrap().to_string(),
        "5s"
    );
    assert_eq!(
        clean("kill_timeout = \"1m30s\"")
            .kill_timeout
            .unwrap()
            .as_millis(),
        90_000
    );
    let lifted = clean("[experimental]\nkill_timeout = 120\n");
    assert_eq!(lifted.kill_timeout.unwrap().to_string(), "2m");
    // The top level wins over the legacy place.
    let both = clean("kill_timeout = 3\n[experimental]\nkill_timeout = 120\n");
    assert_eq!(both.kill_timeout.unwrap().to_string(), "3s");
}

#[test]
fn kill_signal_is_normalized_to_its_sig_name() {
    assert_eq!(
        clean("kill_signal = \"int\"").kill_signal.as_deref(),
        Some("SIGINT")
    );
    assert_eq!(
        clean("kill_signal = 'SIGTERM'").kill_signal.as_deref(),
        Some("SIGTERM")
    );
    let (line, col, msg, hint) = one_error("kill_signal = \"SIGWHAT\"");
    assert_eq!((line, col), (1, 15));
    assert_eq!(
        msg,
        "`kill_signal` \"SIGWHAT\" is not a signal lakefly can send"
    );
    assert!(hint.starts_with("use one of SIGINT, SIGTERM"));
}

#[test]
fn check_durations_are_milliseconds_when_bare() {
    let cfg = clean(
        "[[services]]\ninternal_port = 8080\n[[services.tcp_checks]]\ninterval = 10000\ntimeout = 2000\ngrace_period = \"5s\"\n",
    );
    let check = &cfg.services[0].tcp_checks[0];
    assert_eq!(check.kind, CheckKind::Tcp);
    assert_eq!(check.interval.unwrap().to_string(), "10s");
    assert_eq!(check.timeout.unwrap().to_string(), "2s");
    assert_eq!(check.grace_period.unwrap().to_string(), "5s");
}

#[test]
fn memory_accepts_megabytes_and_units_with_size_memory_memory_mb_precedence() {
    let cfg = clean("[[vm]]\nmemory = 512\n[[vm]]\nprocesses = [\"app\"]\nmemory = \"1gb\"\n");
    assert_eq!(cfg.vm[0].memory_mb, Some(512));
    assert_eq!(cfg.vm[1].memory_mb, Some(1024));
    let sized = clean("[[vm]]\nsize = \"shared-cpu-2x\"\n");
    assert_eq!(
        (sized.vm[0].cpus, sized.vm[0].memory_mb),
        (Some(2), Some(512))
    );
    let memory_wins = clean("[[vm]]\nsize = \"shared-cpu-2x\"\nmemory = \"2gb\"\n");
    assert_eq!(memory_wins.vm[0].memory_mb, Some(2048));
    let memory_mb_wins =
        clean("[[vm]]\nsize = \"shared-cpu-2x\"\nmemory = \"2gb\"\nmemory_mb = 4096\n");
    assert_eq!(memory_mb_wins.vm[0].memory_mb, Some(4096));
}

#[test]
fn single_tables_are_accepted_where_lists_are_expected() {
    let cfg = clean(
        "[services]\ninternal_port = 8080\n[[services.ports]]\nport = 80\n\
         [mount]\nsource = \"data\"\ndestination = \"/data\"\n\
         [compute]\nmemory = \"256mb\"\n\
         [metric]\nport = 9091\npath = \"/metrics\"\n",
    );
    assert_eq!(cfg.services.len(), 1);
    assert_eq!(cfg.mounts[0].destination, "/data");
    assert_eq!(cfg.vm[0].memory_mb, Some(256));
    assert_eq!(cfg.metrics[0].port, 9091);
    let both = clean("[[mounts]]\nsource = \"a\"\ndestination = \"/a\"\n[mount]\nsource = \"b\"\ndestination = \"/b\"\n");
    assert_eq!(
        both.mounts
            .iter()
            .map(|m| m.source.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
}

#[test]
fn processes_as_a_list_of_name_and_command() {
    let cfg = clean("processes = [{ name = \"web\", command = \"run web\" }, { name = \"worker\", command = \"run worker\" }]\n");
    assert_eq!(cfg.processes["web"], "run web");
    assert_eq!(cfg.processes["worker"], "run worker");
    assert!(clean("processes = []").processes.is_empty());
    let (_, _, msg, _) = one_error("processes = [{ name = \"web\" }]");
    assert_eq!(msg, "`processes[0]` needs both `name` and `command`");
}

#[test]
fn checks_as_a_list_with_names() {
    let cfg = clean(
        "[http_service]\ninternal_port = 8080\n[[checks]]\nname = \"alive\"\ntype = \"tcp\"\nport = 8080\n",
    );
    assert_eq!(cfg.checks["alive"].kind, CheckKind::Tcp);
    let (line, col, msg, _) = one_error("[[checks]]\ntype = \"tcp\"\nport = 80\n");
    assert_eq!((line, col), (1, 1));
    assert_eq!(msg, "`checks[0]` needs a `name`");
}

#[test]
fn env_lists_are_merged_and_values_stringified() {
    let cfg = clean("[[env]]\nA = \"1\"\nB = 2\n[[env]]\nB = true\nC = 1.5\n");
    assert_eq!(cfg.env["A"], "1");
    assert_eq!(cfg.env["B"], "true");
    assert_eq!(cfg.env["C"], "1.5");
    let cfg = clean("[env]\nPORT = 8080\nDEBUG = false\n");
    assert_eq!(
        (cfg.env["PORT"].as_str(), cfg.env["DEBUG"].as_str()),
        ("8080", "false")
    );
    let (_, _, msg, _) = one_error("[env]\nLIST = [1, 2]\n");
    assert_eq!(
        msg,
        "env value `env.LIST` must be a string, number or boolean"
    );
}

#[test]
fn concurrency_as_soft_comma_hard() {
    let cfg = clean("[[services]]\ninternal_port = 8080\nconcurrency = \"20,25\"\n");
    let c = cfg.services[0].concurrency.as_ref().unwrap();
    assert_eq!(
        (c.kind, c.soft_limit, c.hard_limit),
        (ConcurrencyKind::Requests, Some(20), Some(25))
    );
    let (_, _, msg, _) = one_error("[[services]]\ninternal_port = 8080\nconcurrency = \"lots\"\n");
    assert_eq!(
        msg,
        "`services[0].concurrency` \"lots\" is not \"soft,hard\""
    );
}

#[test]
fn ports_and_internal_port_may_be_strings_and_use_underscores() {
    let cfg = clean("[[services]]\ninternal_port = \"8080\"\n[[services.ports]]\nport = \"443\"\nhandlers = [\"tls\", \"http\"]\n");
    assert_eq!(cfg.services[0].internal_port, Some(8080));
    assert_eq!(cfg.services[0].ports[0].port, Some(443));
    assert_eq!(
        clean("[http_service]\ninternal_port = 8_080\n")
            .http_service
            .unwrap()
            .internal_port,
        8080
    );
}

#[test]
fn headers_as_a_table_or_a_list_of_name_value() {
    let cfg = clean(
        "[[services]]\ninternal_port = 80\n[[services.http_checks]]\npath = \"/\"\nheaders = [{ name = \"X-A\", value = \"1\" }]\n\
         [[services.http_checks]]\npath = \"/b\"\n[services.http_checks.headers]\nX-B = \"2\"\n",
    );
    assert_eq!(cfg.services[0].http_checks[0].headers["X-A"], "1");
    assert_eq!(cfg.services[0].http_checks[1].headers["X-B"], "2");
}

#[test]
fn build_target_has_two_spellings() {
    let dashed = clean("[build]\nbuild-target = \"prod\"\n");
    assert_eq!(dashed.build.unwrap().build_target.as_deref(), Some("prod"));
    let underscored = clean("[build]\nbuild_target = \"prod\"\n");
    assert_eq!(
        underscored.build.unwrap().build_target.as_deref(),
        Some("prod")
    );
}

#[test]
fn legacy_metrics_port_and_path() {
    let cfg = clean("metrics_port = 9091\nmetrics_path = \"/m\"\n");
    assert_eq!(
        (cfg.metrics[0].port, cfg.metrics[0].path.as_str()),
        (9091, "/m")
    );
    let cfg = clean("[experimental]\nmetrics_port = 9090\n");
    assert_eq!(
        (cfg.metrics[0].port, cfg.metrics[0].path.as_str()),
        (9090, "/metrics")
    );
}

#[test]
fn dotted_keys_are_tables() {
    let cfg = clean("vm.size = \"shared-cpu-1x\"\nhttp_service.internal_port = 3000\n");
    assert_eq!(cfg.vm[0].size.as_deref(), Some("shared-cpu-1x"));
    assert_eq!(cfg.http_service.unwrap().internal_port, 3000);
}

#[test]
fn experimental_cmd_and_entrypoint_as_string_or_list() {
    let cfg = clean("[experimental]\ncmd = \"serve\"\nentrypoint = [\"/bin/app\", \"--flag\"]\n");
    let exp = cfg.experimental.unwrap();
    assert_eq!(exp.cmd, ["serve"]);
    assert_eq!(exp.entrypoint, ["/bin/app", "--flag"]);
}

#[test]
fn sections_without_processes_mean_the_default_group() {
    let no_groups = clean("[http_service]\ninternal_port = 8080\n");
    assert_eq!(no_groups.http_service.unwrap().processes, ["app"]);
    let with_app = clean("[processes]\nworker = \"w\"\napp = \"a\"\n[[mounts]]\nsource = \"d\"\ndestination = \"/d\"\n");
    assert_eq!(with_app.mounts[0].processes, ["app"]);
    let first_by_name =
        clean("[processes]\nweb = \"w\"\napi = \"a\"\n[[services]]\ninternal_port = 1\n");
    assert_eq!(first_by_name.services[0].processes, ["api"]);
    // A [[vm]] without processes is the fallback for every group, as in flyctl.
    let vm = clean("[processes]\nweb = \"w\"\n[[vm]]\nmemory = 256\n[[vm]]\nprocesses = [\"web\"]\nmemory = 512\n");
    assert!(vm.vm[0].processes.is_empty());
}

#[test]
fn auto_stop_machines_as_bool_or_word() {
    let get = |v: &str| {
        clean(&format!(
            "[http_service]\ninternal_port = 1\nauto_stop_machines = {v}\n"
        ))
        .http_service
        .unwrap()
        .auto_stop_machines
    };
    assert_eq!(get("true"), Some(AutoStop::Stop));
    assert_eq!(get("false"), Some(AutoStop::Off));
    assert_eq!(get("\"suspend\""), Some(AutoStop::Suspend));
    assert_eq!(get("'off'"), Some(AutoStop::Off));
}

#[test]
fn unknown_keys_are_kept_and_reported_with_the_closest_known_key() {
    let text =
        "app = \"a\"\n[[services]]\ninternal_port = 1\nmin_machine_running = 1\n[custom]\nx = 1\n";
    let loaded = load(text);
    assert_eq!(loaded.config.services[0].extra["min_machine_running"], 1);
    assert_eq!(loaded.config.extra["custom"]["x"], 1);
    let warns = warnings(text);
    assert_eq!(warns[0].0, 4);
    assert_eq!(warns[0].2, "unknown key `services[0].min_machine_running`");
    assert_eq!(warns[0].3, "did you mean `min_machines_running`?");
    assert_eq!(warns[1].2, "unknown key `custom`");
}

#[test]
fn deploy_settings_and_lakefly_extensions() {
    let loaded = load(
        "[build]\ncommand = \"make\"\n[deploy]\nstrategy = \"Canary\"\nmax_unavailable = 0.5\nwait_timeout = \"2m\"\n\
         [[jobs]]\nname = \"nightly\"\ncommand = \"./cleanup\"\nschedule = \"0 3 * * *\"\n",
    );
    assert!(
        loaded.report.diagnostics.is_empty(),
        "{:?}",
        loaded.report.diagnostics
    );
    let deploy = loaded.config.deploy.unwrap();
    assert_eq!(deploy.strategy, Some(Strategy::Canary));
    assert_eq!(deploy.max_unavailable, Some(0.5));
    assert_eq!(
        loaded.config.build.unwrap().command.as_deref(),
        Some("make")
    );
    assert_eq!(loaded.config.jobs[0].processes, ["app"]);
    let ext: Vec<_> = loaded
        .extensions
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        ext,
        [
            "[build] command is a lakefly extension that Fly.io does not read",
            "[[jobs]] is a lakefly extension that Fly.io does not read"
        ]
    );
}

// ---- validation ----

#[test]
fn app_name_format() {
    let (line, col, msg, hint) = one_error("app = \"My_App\"\n");
    assert_eq!((line, col), (1, 7));
    assert_eq!(
        msg,
        "app name \"My_App\" may only hold lowercase letters, digits and dashes"
    );
    assert!(hint.starts_with("use 1 to 63 lowercase letters"));
    assert_eq!(
        one_error("app = \"-x\"").2,
        "app name \"-x\" may not start or end with a dash"
    );
}

#[test]
fn port_ranges() {
    let (line, col, msg, hint) = one_error("[http_service]\ninternal_port = 70000\n");
    assert_eq!((line, col), (2, 17));
    assert_eq!(msg, "port 70000 is out of range");
    assert_eq!(hint, "ports are whole numbers from 1 to 65535");
    assert_eq!(
        one_error("[[services]]\ninternal_port = 0\n").2,
        "port 0 is out of range"
    );
    let (_, _, msg, _) = one_error(
        "[[services]]\ninternal_port = 1\n[[services.ports]]\nstart_port = 9000\nend_port = 8000\n",
    );
    assert_eq!(
        msg,
        "`services[0].ports[0]` range starts at 9000, after its end 8000"
    );
}

#[test]
fn duration_syntax() {
    let (line, col, msg, hint) = one_error("kill_timeout = \"5 seconds\"\n");
    assert_eq!((line, col), (1, 16));
    assert_eq!(
        msg,
        "`kill_timeout` is not a valid duration: unknown unit \"seconds\" in \"5 seconds\""
    );
    assert!(hint.contains("\"1m30s\""));
    assert_eq!(
        one_error("[deploy]\nwait_timeout = \"10\"\n").2,
        "`deploy.wait_timeout` is not a valid duration: missing unit in \"10\""
    );
    assert_eq!(
        one_error("kill_timeout = -1").2,
        "`kill_timeout` cannot be negative"
    );
}

#[test]
fn size_syntax() {
    let (line, col, msg, _) = one_error("[[vm]]\nmemory = \"lots\"\n");
    assert_eq!((line, col), (2, 10));
    assert_eq!(
        msg,
        "`vm[0].memory` is not a valid size: expected a number in \"lots\""
    );
    assert_eq!(
        one_error("[[vm]]\nmemory = \"1 potato\"\n").2,
        "`vm[0].memory` is not a valid size: unknown unit \"potato\" in \"1 potato\""
    );
    assert_eq!(
        one_error("[[vm]]\nmemory = 0\n").2,
        "`vm[0]` memory cannot be zero"
    );
}

#[test]
fn strategy_values() {
    let (line, col, msg, hint) = one_error("[deploy]\nstrategy = \"rolling-eyes\"\n");
    assert_eq!((line, col), (2, 12));
    assert_eq!(
        msg,
        "`deploy.strategy` \"rolling-eyes\" is not one of rolling, immediate, canary, bluegreen"
    );
    assert_eq!(hint, "did you mean \"rolling\"?");
}

#[test]
fn restart_policy_values() {
    let cfg = clean("[[restart]]\npolicy = \"always\"\nretries = 3\n");
    assert_eq!(
        (cfg.restart[0].policy, cfg.restart[0].max_retries),
        (RestartPolicy::Always, Some(3))
    );
    let (_, _, msg, hint) = one_error("[[restart]]\npolicy = \"sometimes\"\n");
    assert_eq!(
        msg,
        "`restart[0].policy` \"sometimes\" is not one of always, on-failure, never"
    );
    assert_eq!(hint, "use one of always, on-failure, never");
}

#[test]
fn referenced_process_groups_exist() {
    let text = "[processes]\nweb = \"w\"\n[http_service]\ninternal_port = 1\nprocesses = [\"api\"]\n\
                [[vm]]\nprocesses = [\"wrker\"]\n[[mounts]]\nsource = \"d\"\ndestination = \"/d\"\nprocesses = [\"db\"]\n\
                [[services]]\ninternal_port = 2\nprocesses = [\"web\", \"x\"]\n";
    let errs = errors(text);
    let got: Vec<_> = errs.iter().map(|e| (e.0, e.2.as_str())).collect();
    assert_eq!(
        got,
        [
            (
                5,
                "`http_service` names process group \"api\", which is not defined"
            ),
            (
                7,
                "`vm[0]` names process group \"wrker\", which is not defined"
            ),
            (
                11,
                "`mounts[0]` names process group \"db\", which is not defined"
            ),
            (
                14,
                "`services[0]` names process group \"x\", which is not defined"
            ),
        ]
    );
    assert_eq!(errs[0].3, "defined groups: web");
    let implicit = one_error("[http_service]\ninternal_port = 1\nprocesses = [\"web\"]\n");
    assert_eq!(
        implicit.3,
        "this config defines no [processes], so its only group is `app`"
    );
}

#[test]
fn checks_have_a_port() {
    let (line, _, msg, _) = one_error("[checks.alive]\ntype = \"tcp\"\n");
    assert_eq!(line, 1);
    assert_eq!(
        msg,
        "check \"alive\" has no `port` and the app declares no internal_port"
    );
    let warns = warnings("[http_service]\ninternal_port = 8080\n[checks.admin]\ntype = \"http\"\nport = 9000\npath = \"/\"\n");
    assert_eq!(warns[0].0, 5);
    assert_eq!(
        warns[0].2,
        "check \"admin\" uses port 9000, which is no service's internal_port"
    );
}

#[test]
fn mount_destinations_are_absolute() {
    let (line, col, msg, hint) =
        one_error("[[mounts]]\nsource = \"data\"\ndestination = \"data\"\n");
    assert_eq!((line, col), (3, 15));
    assert_eq!(msg, "mount destination \"data\" is not an absolute path");
    assert_eq!(hint, "write destination = \"/data\"");
}

#[test]
fn duplicate_names() {
    let groups = one_error(
        "processes = [{ name = \"web\", command = \"a\" }, { name = \"web\", command = \"b\" }]",
    );
    assert_eq!(groups.2, "process group \"web\" is defined twice");
    let checks = one_error("[http_service]\ninternal_port = 1\n[[checks]]\nname = \"a\"\ntype = \"tcp\"\n[[checks]]\nname = \"a\"\ntype = \"tcp\"\n");
    assert_eq!(
        (checks.0, checks.2.as_str()),
        (6, "check \"a\" is defined twice")
    );
    let jobs = one_error(
        "[[jobs]]\nname = \"j\"\ncommand = \"a\"\n[[jobs]]\nname = \"j\"\ncommand = \"b\"\n",
    );
    assert_eq!(
        (jobs.0, jobs.2.as_str()),
        (5, "job name \"j\" is used twice")
    );
    let mounts = one_error("[[mounts]]\nsource = \"a\"\ndestination = \"/d\"\n[[mounts]]\nsource = \"b\"\ndestination = \"/d\"\n");
    assert_eq!(mounts.2, "group \"app\" already has a mount at \"/d\"");
    let ports = one_error("[[services]]\ninternal_port = 1\n[[services.ports]]\nport = 80\n[[services]]\ninternal_port = 2\n[[services.ports]]\nport = 80\n");
    assert_eq!(
        ports.2,
        "public port 80/tcp is used twice (first at `services[0].ports[0].port`)"
    );
}

#[test]
fn invalid_toml_names_line_and_column() {
    let (line, col, msg, hint) = one_error("app = \"a\"\n[env]\nA = \"1\"\nA = \"2\"\n");
    assert_eq!((line, col), (4, 1));
    assert_eq!(
        msg,
        "invalid TOML: key `A` of [env] is defined twice, first on line 3"
    );
    assert_eq!(
        hint,
        "a key is set once in its table: keep line 3 or line 4, and delete the other"
    );
    let (line, col, msg, hint) =
        one_error("[env]\nA = \"1\"\n[http_service]\ninternal_port = 1\n[env]\nB = \"2\"\n");
    assert_eq!((line, col), (5, 2));
    assert_eq!(
        msg,
        "invalid TOML: table [env] is defined twice, first on line 1"
    );
    assert_eq!(
        hint,
        "a table is defined once: move what line 5 sets into the table of line 1, and delete line 5"
    );
    let (line, col, _, _) = one_error("app = \"a\n");
    assert_eq!((line, col), (1, 9));
}

#[test]
fn wrong_types_say_what_was_expected() {
    let (_, _, msg, hint) = one_error("app = 5");
    assert_eq!(msg, "`app` must be a string, found an integer");
    assert_eq!(hint, "write it in quotes: app = \"...\"");
    assert_eq!(
        one_error("[http_service]\ninternal_port = 1\nforce_https = \"yes\"\n").2,
        "`http_service.force_https` must be true or false, found a string"
    );
    assert_eq!(
        one_error("services = 3").2,
        "`services` must be a table or a list of tables, found an integer"
    );
}

#[test]
fn jobs_need_one_action_and_a_valid_schedule() {
    assert_eq!(
        one_error("[[jobs]]\nname = \"j\"\n").2,
        "`jobs[0]` needs `command` or `path`"
    );
    assert_eq!(
        one_error("[[jobs]]\nname = \"j\"\ncommand = \"a\"\npath = \"/b\"\n").2,
        "`jobs[0]` sets both `command` and `path`"
    );
    let cron = one_error("[[jobs]]\nname = \"j\"\ncommand = \"a\"\nschedule = \"every day\"\n");
    assert_eq!(cron.0, 4);
    assert!(
        cron.2
            .starts_with("`jobs[0].schedule` \"every day\" is not a cron expression"),
        "{}",
        cron.2
    );
    // A schedule's hours are read in its time_zone: one the host knows, and only with a
    // schedule.
    let nightly = "[[jobs]]\nname = \"j\"\ncommand = \"a\"\nschedule = \"0 3 * * *\"\n";
    let berlin = clean(&format!("{nightly}time_zone = \"Europe/Berlin\"\n")).jobs;
    assert_eq!(berlin[0].time_zone.as_deref(), Some("Europe/Berlin"));
    let zone = one_error(&format!("{nightly}time_zone = \"Berlin\"\n"));
    assert_eq!(zone.0, 5);
    assert!(
        zone.2.starts_with(
            "`jobs[0].time_zone`: time_zone \"Berlin\" is not a zone this host knows: use an IANA name"
        ),
        "{}",
        zone.2
    );
    assert_eq!(
        one_error(
            "[[jobs]]\nname = \"j\"\ncommand = \"a\"\ninterval = \"1h\"\ntime_zone = \"UTC\"\n"
        )
        .2,
        "`jobs[0]` sets `time_zone` without a `schedule`"
    );
    // The daemon refuses an interval under 1s; the config says so at its line.
    let fast = one_error("[[jobs]]\nname = \"j\"\ncommand = \"a\"\ninterval = \"500ms\"\n");
    assert_eq!(
        (fast.0, fast.2.as_str()),
        (
            4,
            "`jobs[0].interval` is 500ms; a job's interval is at least 1s"
        )
    );
    let http = clean("[[jobs]]\nname = \"refresh\"\nmethod = \"post\"\npath = \"/discovery/refresh\"\ninterval = \"10m\"\n").jobs;
    assert_eq!(
        (
            http[0].method.as_deref(),
            http[0].interval.unwrap().to_string()
        ),
        (Some("POST"), "10m".to_string())
    );
}

#[test]
fn every_error_in_a_file_is_reported_at_once() {
    let errs = errors("app = \"Bad\"\nkill_timeout = \"x\"\n[deploy]\nstrategy = \"no\"\n");
    assert_eq!(errs.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 4]);
}

#[test]
fn http_options_idle_timeout_is_seconds_or_a_duration_above_zero() {
    let base = "[http_service]\ninternal_port = 8080\n[http_service.http_options]\n";
    let idle = |value: &str| {
        clean(&format!("{base}idle_timeout = {value}\n"))
            .http_service
            .expect("an http_service")
            .http_options
            .idle_timeout
            .map(|t| t.to_string())
    };
    assert_eq!(
        idle("600").as_deref(),
        Some("10m"),
        "a bare number is seconds, as in Fly"
    );
    assert_eq!(idle("\"90s\"").as_deref(), Some("1m30s"));
    let zero = one_error(&format!("{base}idle_timeout = 0\n"));
    assert_eq!(zero.0, 4);
    assert_eq!(
        zero.2,
        "`http_service.http_options.idle_timeout` must be above zero"
    );
    let port = clean(
        "[[services]]\ninternal_port = 8080\n[[services.ports]]\nport = 8001\nhandlers = [\"http\"]\n[services.ports.http_options]\nidle_timeout = 5\n",
    );
    assert_eq!(
        port.services[0].ports[0]
            .http_options
            .idle_timeout
            .map(|t| t.to_string())
            .as_deref(),
        Some("5s")
    );
}

#[test]
fn http_options_response_pristine_is_a_boolean() {
    let base = "[http_service]\ninternal_port = 8080\n[http_service.http_options.response]\n";
    let pristine = |value: &str| {
        clean(&format!("{base}pristine = {value}\n"))
            .http_service
            .expect("an http_service")
            .http_options
            .response_pristine
    };
    assert!(pristine("true"));
    assert!(!pristine("false"));
    let wrong = one_error(&format!("{base}pristine = \"yes\"\n"));
    assert_eq!(wrong.0, 4);
    assert!(
        wrong
            .2
            .contains("http_service.http_options.response.pristine"),
        "{wrong:?}"
    );
}

#[test]
fn files_are_kept_but_said_not_to_be_written() {
    let text = "app = \"x\"\n[[files]]\n  guest_path = \"/etc/app.json\"\n  raw_value = \"e30K\"\n";
    let found = warnings(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    let (line, _, message, hint) = &found[0];
    assert_eq!(*line, 2, "{found:#?}");
    assert!(
        message.contains("[[files]] is not applied") && message.contains("/etc/app.json"),
        "{message}"
    );
    assert!(hint.contains("lakefly secrets set"), "{hint}");
    assert_eq!(load(text).config.files.len(), 1);
}

#[test]
fn machine_checks_machine_config_and_bucket_statics_are_kept_but_said_not_to_be_applied() {
    let text = r#"app = "x"
machine_config = "cli-config.json"
[[machine_checks]]
  command = ["true"]
[http_service]
  internal_port = 8080
  [[http_service.machine_checks]]
    command = ["curl", "-f", "http://[$FLY_TEST_MACHINE_IP]:8080"]
[[services]]
  internal_port = 9000
  [[services.machine_checks]]
    command = ["true"]
[[statics]]
  guest_path = "/app/public"
  url_prefix = "/"
  tigris_bucket = "assets"
"#;
    let found = warnings(text);
    let at = |key: &str| {
        found
            .iter()
            .find(|(_, _, message, _)| message.starts_with(&format!("`{key}` is not applied")))
            .unwrap_or_else(|| panic!("no warning for {key}: {found:#?}"))
    };
    assert_eq!(at("machine_config").0, 2);
    assert_eq!(at("machine_checks").0, 3);
    let (line, _, message, hint) = at("http_service.machine_checks");
    assert_eq!(*line, 7);
    assert!(message.contains("no test machine"), "{message}");
    assert!(hint.contains("release_command"), "{hint}");
    assert_eq!(at("services[0].machine_checks").0, 11);
    assert_eq!(at("statics[0].tigris_bucket").0, 16);
    assert_eq!(found.len(), 5, "{found:#?}");
    // Kept: `config save` and `config show` still have them.
    let cfg = load(text).config;
    assert!(cfg.extra.contains_key("machine_checks"));
    assert!(cfg.extra.contains_key("machine_config"));
    let http = cfg.http_service.expect("an http_service");
    assert!(http.extra.contains_key("machine_checks"));
    assert!(cfg.statics[0].extra.contains_key("tigris_bucket"));
}

#[test]
fn gpus_are_kept_but_said_not_to_be_given_out() {
    let text = "app = \"x\"\n[[vm]]\n  size = \"performance-8x\"\n  gpus = 8\n  gpu_kind = \"a100-pcie-40gb\"\n";
    let found = warnings(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    let (line, _, message, hint) = &found[0];
    assert_eq!(*line, 4, "{found:#?}");
    assert!(message.contains("GPUs are not given out"), "{message}");
    assert!(hint.contains("CUDA_VISIBLE_DEVICES"), "{hint}");
    assert_eq!(load(text).config.vm[0].gpus, Some(8));
}

#[test]
fn a_process_sent_to_the_background_is_warned_of_at_its_line() {
    let text = "app = \"x\"\n[processes]\n  web = \"nohup python3 app.py > out.log 2>&1 &\"\n  worker = \"make && ./worker\"\n  both = \"./sidecar & exec ./server\"\n";
    let found = warnings(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    let (line, _, message, hint) = &found[0];
    assert_eq!(*line, 3, "{found:#?}");
    assert!(
        message.contains("process group \"web\" runs its command in the background"),
        "{message}"
    );
    assert!(hint.contains("drop the `&`"), "{hint}");
}

#[test]
fn limits_and_periods_of_zero_are_errors_at_their_line() {
    let text = "app = \"x\"\n[deploy]\n  wait_timeout = 0\n  release_command_timeout = \"0s\"\n\
[http_service]\n  internal_port = 8080\n  [http_service.concurrency]\n    hard_limit = 0\n\
  [[http_service.checks]]\n    interval = 0\n    timeout = \"0s\"\n    grace_period = 0\n";
    let found = errors(text);
    let at: Vec<(usize, &str)> = found.iter().map(|(l, _, m, _)| (*l, m.as_str())).collect();
    assert_eq!(
        at,
        [
            (3, "`deploy.wait_timeout` must be above zero"),
            (4, "`deploy.release_command_timeout` must be above zero"),
            (
                8,
                "`http_service.concurrency.hard_limit` must be at least 1"
            ),
            (10, "`http_service.checks[0].interval` must be above zero"),
            (11, "`http_service.checks[0].timeout` must be above zero"),
        ],
        "a zero grace period is fine: {found:#?}"
    );
    assert!(
        found[1].3.contains("release_command_timeout = \"10m\""),
        "{found:#?}"
    );
}

#[test]
fn a_command_naming_its_mounts_destination_is_warned_with_the_way_to_reach_the_volume() {
    let text = "[processes]\napp = \"sqlite3 /data/app.db .dump\"\nworker = \"python3 w.py --db /database\"\n[mounts]\nsource = \"my-data\"\ndestination = \"/data\"\n";
    let warned = warnings(text);
    assert_eq!(warned.len(), 1, "{warned:#?}");
    let (line, _, message, hint) = &warned[0];
    assert_eq!(*line, 2, "at the command: {warned:#?}");
    assert!(message.contains("names \"/data\""), "{message}");
    assert!(
        hint.contains("data/...") && hint.contains("$LAKEFLY_MOUNT_MY_DATA"),
        "{hint}"
    );
    // `/database` is another name; a mount of another group is not that group's.
    let other_group = "[processes]\napp = \"a\"\nworker = \"cat /data/x\"\n[mounts]\nsource = \"d\"\ndestination = \"/data\"\nprocesses = [\"app\"]\n";
    assert!(
        warnings(other_group).is_empty(),
        "{:#?}",
        warnings(other_group)
    );
    // A job's command gets its group's mounts as the group's does.
    let job = "[processes]\napp = \"a\"\n[mounts]\nsource = \"d\"\ndestination = \"/data\"\n[[jobs]]\nname = \"vacuum\"\ncommand = \"sqlite3 /data/app.db vacuum\"\nschedule = \"@daily\"\n";
    let warned = warnings(job);
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert_eq!(warned[0].0, 8, "at the job's command: {warned:#?}");
    assert!(warned[0].2.contains("job \"vacuum\""), "{warned:#?}");
    for named in [
        "ls /data",
        "x --db=/data/a",
        "cd '/data' && run",
        "run >/data/log",
    ] {
        let text = format!(
            "[processes]\napp = \"{named}\"\n[mounts]\nsource = \"d\"\ndestination = \"/data/\"\n"
        );
        assert_eq!(warnings(&text).len(), 1, "{named}");
    }
}
