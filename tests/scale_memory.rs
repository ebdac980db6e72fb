//! `[[vm]] memory` and `lakefly scale memory MB`: the limit is enforced on the machine's
//! processes (here without a delegated cgroup: their resident memory, watched), `scale
//! show` says so, and a change rolls a new release.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::TestDaemon;
use common::Run;

fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/hog")
}

fn cli(d: &TestDaemon, args: &[&str]) -> Run {
    let mut all = vec!["--remote", &d.api, "-a", "hog"];
    all.extend_from_slice(args);
    common::lakefly(&app_dir(), &all)
}

/// The first line of `lakefly ARGS --json` output that `wanted` picks, asked again until
/// there is one, or a failure at the deadline naming `what` was awaited.
fn wait_for_output_line<T>(
    d: &TestDaemon,
    args: &[&str],
    what: &str,
    wanted: impl Fn(&str) -> Option<T>,
) -> T {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let run = cli(d, args).expect_code(0);
        if let Some(found) = run.stdout.lines().find_map(&wanted) {
            return found;
        }
        assert!(Instant::now() < until, "no {what}:\n{}", run.stdout);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the app's logs hold `line`, or fails at the deadline.
fn wait_for_line(d: &TestDaemon, line: &str) {
    let args = ["logs", "--no-tail", "--json"];
    let what = format!("{line:?} in the logs");
    wait_for_output_line(d, &args, &what, |l| l.contains(line).then_some(()));
}

/// The app's `machine.exited` event that says the machine went over its memory limit,
/// waited for up to a deadline.
fn wait_for_oom_exit(d: &TestDaemon) -> serde_json::Value {
    let args = ["events", "--no-tail", "--kind", "machine.exited", "--json"];
    wait_for_output_line(d, &args, "machine.exited with oom_killed", |l| {
        serde_json::from_str::<serde_json::Value>(l)
            .ok()
            .filter(|e| e["data"]["oom_killed"] == true)
    })
}

/// The app's started machine.
fn started_machine(d: &TestDaemon) -> serde_json::Value {
    let machines = cli(d, &["machines", "list", "--json"])
        .expect_code(0)
        .json();
    machines
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["state"] == "started")
        .unwrap_or_else(|| panic!("no started machine: {machines}"))
        .clone()
}

/// Asks the app's started machine to fill 200 MB.
fn grow(d: &TestDaemon) {
    let started = started_machine(d);
    let id = started["id"].as_str().unwrap();
    cli(d, &["machines", "exec", id, "--", "touch", "grow"]).expect_code(0);
}

#[test]
fn the_memory_limit_is_enforced_shown_and_changed_by_a_release() {
    let d = TestDaemon::start();
    cli(&d, &["deploy"]).expect_code(0);
    // Runtimes that reserve far more address space than they use (Node's V8 reserves
    // gigabytes) start under a limit of what is resident; one that fills more is killed.
    grow(&d);
    wait_for_line(&d, "over its 128 MB limit");
    // Its exit says why, as Fly's `oom_killed`: in the event and in the machine's status.
    let exited = wait_for_oom_exit(&d);
    assert_eq!(exited["data"]["signal"], "SIGKILL", "{exited}");
    let id = exited["data"]["machine"].as_str().unwrap();
    let status = cli(&d, &["machines", "status", id]).expect_code(0);
    assert!(
        status
            .stdout
            .contains("Last exit  SIGKILL (over its memory limit) at "),
        "{}",
        status.stdout
    );

    let show = cli(&d, &["scale", "show", "--json"]).expect_code(0).json();
    assert_eq!(show[0]["memory_mb"], 128, "{show}");
    assert_eq!(show[0]["memory_enforced"], "resident_watch", "{show}");
    // CPU limits need a delegated cgroup with the cpu controller; here there is none,
    // and `scale show` says the count is not held rather than let it pass for a limit.
    assert_eq!(
        (&show[0]["cpus"], &show[0]["cpus_enforced"]),
        (&1.into(), &false.into()),
        "{show}"
    );
    let table = cli(&d, &["scale", "show"]).expect_code(0);
    assert!(
        table.stdout.contains("128 MB (resident_watch)")
            && table.stdout.contains("1 (not limited here)"),
        "{}",
        table.stdout
    );

    let run = cli(&d, &["scale", "memory", "512"]).expect_code(0);
    assert!(
        run.stderr.contains("app: memory 128 MB -> 512 MB"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("release v2 is live"), "{}", run.stderr);
    grow(&d);
    wait_for_line(&d, "allocated 200 MB");
    let show = cli(&d, &["scale", "show", "--json"]).expect_code(0).json();
    assert_eq!(show[0]["memory_mb"], 512, "{show}");

    // A size with its unit, as flyctl takes it: the same 512 MB.
    let same = cli(&d, &["scale", "memory", "0.5GB"]).expect_code(0);
    assert!(same.stderr.contains("already scaled"), "{}", same.stderr);

    // Bad input changes nothing: refused as a usage error before the daemon is asked,
    // and by the daemon for an API client.
    let small = cli(&d, &["scale", "memory", "8"]).expect_code(2);
    assert!(
        small.stderr.contains("8 MB is too little memory"),
        "{}",
        small.stderr
    );
    let api = common::api::Api::new(&d);
    let request = serde_json::json!({ "memory_mb": 8 });
    let path = "/v1/apps/hog/scale/memory";
    let (status, body) = tokio::runtime::Runtime::new().unwrap().block_on(api.send(
        reqwest::Method::POST,
        path,
        Some(request),
    ));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("8 MB is too little memory")),
        "{body}"
    );
    let unknown = cli(&d, &["scale", "memory", "256", "-g", "nogroup"]);
    assert_ne!(unknown.code, 0);
    assert!(
        unknown.stderr.contains("\"nogroup\" does not exist"),
        "{}",
        unknown.stderr
    );
    let no_such_size = cli(&d, &["scale", "vm", "huge-9x"]).expect_code(2);
    assert!(
        no_such_size.stderr.contains("known sizes: shared-cpu-1x"),
        "{}",
        no_such_size.stderr
    );
    let releases = cli(&d, &["releases", "--json"]).expect_code(0).json();
    assert_eq!(releases.as_array().unwrap().len(), 2, "{releases}");

    // A size preset sets CPUs and memory together, as `fly scale vm` does.
    let run = cli(&d, &["scale", "vm", "shared-cpu-2x"]).expect_code(0);
    assert!(
        run.stderr
            .contains("app: 1 CPU, 512 MB -> shared-cpu-2x (2 CPUs, 512 MB)")
            && run.stderr.contains("release v3 is live"),
        "{}",
        run.stderr
    );
    let show = cli(&d, &["scale", "show", "--json"]).expect_code(0).json();
    assert_eq!(
        (&show[0]["size"], &show[0]["cpus"], &show[0]["memory_mb"]),
        (&"shared-cpu-2x".into(), &2.into(), &512.into()),
        "{show}"
    );
    let started = started_machine(&d);
    assert_eq!(started["spec"]["cpus"], 2, "{started}");
    let same = cli(&d, &["scale", "vm", "shared-cpu-2x", "--vm-memory", "512"]).expect_code(0);
    assert!(
        same.stderr
            .contains("already scaled: app is shared-cpu-2x (2 CPUs, 512 MB)"),
        "{}",
        same.stderr
    );
}

/// As Fly keeps a machine's size when fly.toml names none, a deploy of a fly.toml without
/// `[[vm]]` keeps what `scale memory` set, and says so; one with `[[vm]]` sets its own.
#[test]
fn a_deploy_without_vm_keeps_the_size_scale_set() {
    let d = TestDaemon::start();
    let (_dir, app) = common::files::hello_copy();
    let hello = |args: &[&str]| {
        let mut all = vec!["--remote", &d.api, "-a", "hello"];
        all.extend_from_slice(args);
        common::lakefly(&app, &all)
    };
    hello(&["deploy"]).expect_code(0);
    hello(&["scale", "memory", "256"]).expect_code(0);
    let again = hello(&["deploy"]).expect_code(0);
    assert!(
        again
            .stderr
            .contains("fly.toml has no [[vm]]: the sizes the app ran with are kept (app: 256 MB)"),
        "{}",
        again.stderr
    );
    let show = hello(&["scale", "show", "--json"]).expect_code(0).json();
    assert_eq!(show[0]["memory_mb"], 256, "{show}");
    // The deployed config says so where the file does not: `config show --release`.
    let deployed = hello(&["config", "show", "--release"])
        .expect_code(0)
        .json();
    assert_eq!(deployed["vm"][0]["memory_mb"], 256, "{deployed}");
    let local = hello(&["config", "show"]).expect_code(0).json();
    assert!(local.get("vm").is_none(), "{local}");
    // As fly.toml's TOML (flyctl's `--toml`), read back as the same config; YAML is not
    // a form lakefly prints.
    let toml = hello(&["config", "show", "--release", "--toml"]).expect_code(0);
    assert!(toml.stdout.contains("\n[[vm]]\n"), "{}", toml.stdout);
    let (reread, _) = lakefly::config::parse(&toml.stdout, std::path::Path::new("fly.toml"))
        .into_valid()
        .expect("valid TOML");
    assert_eq!(serde_json::to_value(&reread).unwrap(), deployed);
    let yaml = hello(&["config", "show", "--yaml"]).expect_code(2);
    assert!(yaml.stderr.contains("--toml"), "{}", yaml.stderr);
    let first = hello(&["config", "show", "--release", "1"])
        .expect_code(0)
        .json();
    assert!(first.get("vm").is_none(), "{first}");
    let missing = hello(&["config", "show", "--release", "99"]).expect_code(5);
    assert!(
        missing.stderr.contains("has no release v99")
            && missing.stderr.contains("lakefly releases"),
        "{}",
        missing.stderr
    );
    // `config save` writes it as a file that reads back to the same config, for a laptop
    // without the file; an existing one is replaced only when confirmed.
    let elsewhere = tempfile::tempdir().unwrap();
    let saved = elsewhere.path().join("fly.toml");
    let save = ["--remote", &d.api, "-a", "hello", "config", "save", "-c"];
    let save: Vec<&str> = save
        .iter()
        .copied()
        .chain([saved.to_str().unwrap()])
        .collect();
    common::lakefly(elsewhere.path(), &save).expect_code(0);
    let reread = common::lakefly(elsewhere.path(), &["config", "show"])
        .expect_code(0)
        .json();
    assert_eq!(
        reread,
        deployed,
        "{}",
        std::fs::read_to_string(&saved).unwrap()
    );
    let again = common::lakefly(elsewhere.path(), &save).expect_code(2);
    assert!(
        again.stderr.contains("exists; overwrite it"),
        "{}",
        again.stderr
    );
    let with_yes: Vec<&str> = save
        .iter()
        .copied()
        .chain(["--release", "1", "--yes"])
        .collect();
    common::lakefly(elsewhere.path(), &with_yes).expect_code(0);
    let first_saved = common::lakefly(elsewhere.path(), &["config", "show"])
        .expect_code(0)
        .json();
    assert_eq!(first_saved, first);

    let toml = std::fs::read_to_string(app.join("fly.toml")).unwrap();
    std::fs::write(
        app.join("fly.toml"),
        format!("{toml}\n[[vm]]\n  memory = \"512mb\"\n"),
    )
    .unwrap();
    let sized = hello(&["deploy"]).expect_code(0);
    assert!(!sized.stderr.contains("are kept"), "{}", sized.stderr);
    let show = hello(&["scale", "show", "--json"]).expect_code(0).json();
    assert_eq!(show[0]["memory_mb"], 512, "{show}");
}
