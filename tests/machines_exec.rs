//! `lakefly machines exec`: a command run once in a machine's environment (directory,
//! `[env]`, secrets, `$PORT`), its output passed on and its exit code kept; bounded in time
//! and in output, its whole process group killed at the end, recorded without arguments.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::TestDaemon;
use common::Run;
use serde_json::Value;

/// A secret the tests set, to find in the command's environment and nowhere else.
const SECRET: &str = "s3cr3t-for-exec";

/// A daemon with the hello app deployed and a secret set; the machine's id.
fn deployed() -> (TestDaemon, String) {
    let d = TestDaemon::start();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello/fly.toml");
    let config = config.to_str().unwrap();
    common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "deploy", "-c", config],
    )
    .expect_code(0);
    let secret = format!("API_KEY={SECRET}");
    common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "secrets", "set", "-a", "hello", &secret],
    )
    .expect_code(0);
    let machines: Value = common::lakefly(
        Path::new("."),
        &[
            "--remote", &d.api, "machines", "list", "-a", "hello", "--json",
        ],
    )
    .expect_code(0)
    .json();
    let id = machines[0]["id"].as_str().unwrap().to_string();
    (d, id)
}

/// `lakefly machines exec ID ARGS...` against `d`.
fn exec(d: &TestDaemon, id: &str, args: &[&str]) -> Run {
    let mut all = vec!["--remote", &d.api, "machines", "exec", "-a", "hello", id];
    all.extend_from_slice(args);
    common::lakefly(Path::new("."), &all)
}

/// Waits (up to a deadline) until process `pid` is gone; it should not outlive `what`.
fn wait_gone(pid: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "pid {pid} outlived {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_command_runs_in_the_machines_environment_and_keeps_its_exit_code() {
    let (d, id) = deployed();
    let run = exec(
        &d,
        &id,
        &[
            "--",
            "echo \"$FLY_MACHINE_ID $GREETING $API_KEY $PORT\"; ls; echo to-stderr >&2",
        ],
    )
    .expect_code(0);
    let mut lines = run.stdout.lines();
    let vars: Vec<&str> = lines.next().unwrap().split(' ').collect();
    assert_eq!(&vars[..3], [id.as_str(), "hello", SECRET], "{}", run.stdout);
    assert!(
        vars[3].parse::<u16>().is_ok(),
        "the machine's $PORT: {}",
        run.stdout
    );
    let files: Vec<&str> = lines.collect();
    assert!(
        files.contains(&"app.py"),
        "runs in the release's files: {files:?}"
    );
    assert_eq!(run.stderr, "to-stderr\n");

    let failed = exec(&d, &id, &["exit", "3"]).expect_code(3);
    assert_eq!(
        failed.stderr,
        format!("error: the command on machine {id} exited 3\n")
    );
    exec(&d, &id, &["--", "kill -TERM $$"]).expect_code(128 + 15);
    // Several words are one command's, each as it is (as `docker exec` takes them); one
    // is a shell command line, as above.
    let words = exec(
        &d,
        &id,
        &["--", "sh", "-c", "echo \"$GREETING\" \"$0\"", "it's *"],
    )
    .expect_code(0);
    assert_eq!(words.stdout, "hello it's *\n");

    // Recorded by program name only: arguments may be credentials.
    exec(&d, &id, &["echo", "--password", SECRET]).expect_code(0);
    let events = common::lakefly(
        Path::new("."),
        &[
            "--remote",
            &d.api,
            "events",
            "-a",
            "hello",
            "--no-tail",
            "--kind",
            "machine.exec",
            "--json",
        ],
    )
    .expect_code(0);
    let last: Value = serde_json::from_str(events.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["data"]["program"], "echo");
    assert_eq!(last["data"]["exit_code"], 0);
    assert_eq!(events.stdout.lines().count(), 5, "{}", events.stdout);
    assert!(!events.stdout.contains(SECRET), "{}", events.stdout);
}

#[test]
fn a_command_out_of_time_is_killed_with_all_it_started() {
    let (d, id) = deployed();
    let run = exec(
        &d,
        &id,
        &[
            "--timeout",
            "1s",
            "--",
            "sleep 300 & echo $! > exec-bg.pid; wait",
        ],
    )
    .expect_code(124);
    assert!(
        run.stderr
            .contains("did not finish within 1s and was killed"),
        "{}",
        run.stderr
    );
    // The background sleep went with it.
    let pidfile = exec(&d, &id, &["cat", "exec-bg.pid"]).expect_code(0);
    let pid = pidfile.stdout.trim().to_string();
    assert!(!pid.is_empty());
    wait_gone(&pid, "its exec");
}

#[test]
fn output_streams_whole_and_one_json_answer_is_cut_at_a_mebibyte() {
    let (d, id) = deployed();
    let big = "head -c 3000000 /dev/zero | tr '\\0' a";
    // Passed on as written: all of it, however much.
    let run = exec(&d, &id, &["--", big]).expect_code(0);
    assert_eq!(run.stdout.len(), 3_000_000);
    assert!(run.stdout.bytes().all(|b| b == b'a'));
    assert_eq!(run.stderr, "");
    // One JSON answer keeps a mebibyte of each stream and says it cut the rest.
    let json: Value = exec(&d, &id, &["--json", "--", big]).expect_code(0).json();
    assert_eq!(json["stdout"].as_str().map(str::len), Some(1024 * 1024));
    assert_eq!(json["truncated"], true);
    let json: Value = exec(&d, &id, &["--json", "--", "printf x; exit 2"])
        .expect_code(2)
        .json();
    assert_eq!(
        (
            json["stdout"].as_str(),
            json["exit_code"].as_i64(),
            json["truncated"].as_bool()
        ),
        (Some("x"), Some(2), Some(false))
    );
}

#[test]
fn stdin_is_passed_on_only_when_asked_and_byte_for_byte() {
    let (d, id) = deployed();
    let args = |extra: &[&str]| {
        let mut all = vec!["--remote", &d.api, "machines", "exec", "-a", "hello"];
        all.extend_from_slice(extra);
        all.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |extra: &[&str], input: &[u8]| {
        let all = args(extra);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        common::lakefly_stdin(Path::new("."), &all, input)
    };
    // A script piped in runs with the machine's environment.
    let script = b"import os\nprint('greeting', os.environ['GREETING'])\n";
    let ran = run(&["-i", &id, "--", "python3", "-"], script).expect_code(0);
    assert_eq!(ran.stdout, "greeting hello\n");
    // Binary input arrives whole: a NUL, a byte that is not UTF-8, no trailing newline.
    let counted = run(
        &["--stdin", &id, "--", "od -An -tx1 | tr -d ' \\n'"],
        b"a\0\xffb",
    )
    .expect_code(0);
    assert_eq!(counted.stdout, "6100ff62");
    // Without -i the command reads nothing, and lakefly leaves its stdin unread.
    let unasked = run(&[&id, "--", "wc -c"], b"not for the command").expect_code(0);
    assert_eq!(unasked.stdout.trim(), "0");
    // Over the limit: refused before anything is sent.
    let big = vec![b'x'; 16 * 1024 * 1024 + 1];
    let refused = run(&["-i", &id, "--", "wc -c"], &big).expect_code(2);
    assert!(
        refused
            .stderr
            .contains("--stdin: standard input is over 16 MiB")
            && refused
                .stderr
                .contains("hint: ship larger files with the release"),
        "{}",
        refused.stderr
    );
}

#[test]
fn bad_targets_and_limits_are_refused() {
    let (d, id) = deployed();
    let missing = exec(&d, "0000", &["true"]).expect_code(5);
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.stderr
    );
    let long = exec(&d, &id, &["--timeout", "2h", "true"]).expect_code(2);
    assert!(
        long.stderr.contains("--timeout") && long.stderr.contains("at most 1h"),
        "{}",
        long.stderr
    );
    let empty = common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "machines", "exec", "-a", "hello", &id],
    )
    .expect_code(2);
    assert!(empty.stderr.contains("COMMAND"), "{}", empty.stderr);
}

#[test]
fn a_client_that_goes_away_takes_its_command_with_it() {
    let (d, id) = deployed();
    let mut client = std::process::Command::new(env!("CARGO_BIN_EXE_lakefly"))
        .args([
            "--remote", &d.api, "machines", "exec", "-a", "hello", &id, "--",
        ])
        .arg("echo $$ > exec-wait.pid; exec sleep 300")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        let run = exec(&d, &id, &["cat", "exec-wait.pid"]);
        if run.code == 0 && !run.stdout.trim().is_empty() {
            break run.stdout.trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the command never started: {}",
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    client.kill().unwrap();
    client.wait().unwrap();
    wait_gone(&pid, "its client");
}

#[test]
fn output_arrives_while_the_command_runs() {
    use std::io::BufRead;
    let (d, id) = deployed();
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("open");
    // The command prints, then waits for the test to open the gate: "first" can only be
    // read before the command ends if it is passed on as it is written.
    let command = format!(
        "echo first; while [ ! -e '{}' ]; do sleep 0.02; done; echo second >&2; exit 3",
        gate.display()
    );
    let mut client = std::process::Command::new(env!("CARGO_BIN_EXE_lakefly"))
        .args([
            "--remote",
            &d.api,
            "machines",
            "exec",
            "-a",
            "hello",
            &id,
            "--timeout",
            "1m",
            "--",
            &command,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = client.stdout.take().unwrap();
    let (first_line, first) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = first_line.send(line);
    });
    let line = first.recv_timeout(Duration::from_secs(20));
    if line.is_err() {
        let _ = client.kill();
    }
    assert_eq!(
        line.as_deref(),
        Ok("first\n"),
        "output held back until the end"
    );
    assert!(
        client.try_wait().unwrap().is_none(),
        "the command still waits for its gate"
    );
    std::fs::write(&gate, "").unwrap();
    let ended = client.wait_with_output().unwrap();
    assert_eq!(ended.status.code(), Some(3), "the command's exit code");
    let stderr = String::from_utf8_lossy(&ended.stderr);
    assert!(stderr.starts_with("second\n"), "{stderr}");
    assert!(stderr.contains("exited 3"), "{stderr}");
}

#[test]
fn lakeflyd_stopping_kills_running_commands_and_says_so() {
    let (mut d, id) = deployed();
    // A quiet command in each kind of answer: output as it comes, and one JSON object.
    let start = |pidfile: &str, json: bool| {
        let mut args = vec!["--remote", &d.api, "machines", "exec", "-a", "hello", &id];
        if json {
            args.insert(0, "--json");
        }
        let command = format!("echo $$ > {pidfile}; exec sleep 300");
        std::process::Command::new(env!("CARGO_BIN_EXE_lakefly"))
            .args(&args)
            .args(["--timeout", "5m", "--", &command])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let clients = [
        start("stop-streamed.pid", false),
        start("stop-json.pid", true),
    ];
    let pids: Vec<String> = ["stop-streamed.pid", "stop-json.pid"]
        .iter()
        .map(|pidfile| {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let run = exec(&d, &id, &["cat", pidfile]);
                if run.code == 0 && !run.stdout.trim().is_empty() {
                    break run.stdout.trim().to_string();
                }
                assert!(Instant::now() < deadline, "{pidfile}: {}", run.stderr);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .collect();
    // Stopping does not wait out the commands' five minutes.
    assert!(d.stop().success());
    for (client, pid) in clients.into_iter().zip(&pids) {
        let ended = client.wait_with_output().unwrap();
        assert_eq!(ended.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&ended.stderr);
        assert!(stderr.contains("lakeflyd is stopping"), "{stderr}");
        wait_gone(pid, "lakeflyd");
    }
}

/// The variables of `pid`'s environment.
fn environ_of(pid: u64) -> std::collections::BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0)
        .filter_map(|var| {
            let var = String::from_utf8_lossy(var);
            let (name, value) = var.split_once('=')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

#[test]
fn a_machine_finds_flys_runtime_variables() {
    let d = TestDaemon::start();
    let (_dir, app) = common::files::hello_copy();
    let config = app.join("fly.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "app = \"hello\"",
        "app = \"hello\"\nprimary_region = \"ams\"",
        1,
    ) + "\n[[vm]]\n  memory = \"512mb\"\n";
    std::fs::write(&config, text).unwrap();
    d.cli(&app, &["deploy"]).expect_code(0);
    let status = d.cli(&app, &["status", "--json"]).expect_code(0).json();
    let machine = &status["machines"][0];
    let id = machine["id"].as_str().unwrap();
    let env = environ_of(machine["pid"].as_u64().unwrap());
    let get = |name: &str| env.get(name).map(String::as_str);
    assert_eq!(get("FLY_MACHINE_ID"), Some(id));
    assert_eq!(get("FLY_ALLOC_ID"), Some(id));
    // One host is the app's one region: its primary.
    assert_eq!(get("PRIMARY_REGION"), Some("ams"));
    assert_eq!(get("FLY_REGION"), Some("ams"));
    assert_eq!(get("FLY_VM_MEMORY_MB"), Some("512"));
    assert_eq!(get("FLY_APP_NAME"), Some("hello"));
    assert_eq!(get("FLY_PROCESS_GROUP"), Some("app"));

    // A command run beside it sees the same.
    let run = exec(
        &d,
        id,
        &["--", "echo $FLY_ALLOC_ID $FLY_REGION $FLY_VM_MEMORY_MB"],
    )
    .expect_code(0);
    assert_eq!(run.stdout.trim(), format!("{id} ams 512"));
}
