//! `lakefly console`: a terminal in a machine's environment, over an upgraded connection
//! to a real daemon. It is a terminal (`tty`, its size, resized on request), it has the
//! machine's environment, it passes its command's exit code on, it outlives the client's
//! request timeout, and a client that hangs up takes what it ran with it.

mod common;

use std::time::{Duration, Instant};

use common::api::Api;
use common::daemon::TestDaemon;
use lakefly::api::client::Client;
use lakefly::api::console::{ConsoleRequest, Frame};
use serde_json::json;
use tokio::io::{ReadHalf, WriteHalf};

const DEADLINE: Duration = Duration::from_secs(20);

type Session = (ReadHalf<reqwest::Upgraded>, WriteHalf<reqwest::Upgraded>);

/// A daemon with app `con` and one machine; its id.
async fn machine(d: &TestDaemon) -> String {
    let api = Api::new(d);
    api.create_app("con").await;
    let spec = json!({
        "command": "exec sleep 600",
        "process_group": "app",
        "env": { "GREETING": "hello there" },
    });
    api.create_machine("con", spec).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn open(d: &TestDaemon, id: &str, command: Option<&str>) -> Session {
    // Shorter than the session below lasts: only the handshake has the request timeout.
    let client = Client::with_timeout(&d.api, Duration::from_secs(1)).unwrap();
    let request = ConsoleRequest {
        command: command.map(str::to_string),
        cols: 100,
        rows: 40,
        term: Some("dumb".into()),
    };
    let stream = client.console("con", id, &request).await.unwrap();
    tokio::io::split(stream)
}

async fn send(session: &mut Session, frame: Frame) {
    frame.write(&mut session.1).await.unwrap();
}

/// Reads output until it holds `wanted` (returned, all of it so far), or fails at the
/// deadline; an `Exit` on the way is kept in `exit`.
async fn until(session: &mut Session, seen: &mut String, wanted: &str, exit: &mut Option<i32>) {
    let deadline = Instant::now() + DEADLINE;
    while !seen.contains(wanted) {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, Frame::read(&mut session.0))
            .await
            .unwrap_or_else(|_| panic!("no {wanted:?} within {DEADLINE:?}; output: {seen:?}"))
            .unwrap();
        match frame {
            Some(Frame::Output(bytes)) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Some(Frame::Exit(code)) => {
                *exit = Some(code);
                assert!(
                    seen.contains(wanted),
                    "exit {code} before {wanted:?}: {seen:?}"
                );
            }
            other => panic!("{other:?} before {wanted:?}; output: {seen:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_is_a_terminal_in_the_machines_environment() {
    let d = TestDaemon::start();
    let id = machine(&d).await;
    // The default command: the machine user's interactive shell.
    let mut session = open(&d, &id, None).await;
    let (mut seen, mut exit) = (String::new(), None);
    let line = b"tty; stty size; echo \"[$GREETING] [$LAKEFLY_MACHINE_ID]\"\n".to_vec();
    send(&mut session, Frame::Input(line)).await;
    until(
        &mut session,
        &mut seen,
        &format!("[hello there] [{id}]"),
        &mut exit,
    )
    .await;
    assert!(seen.contains("/dev/pts/"), "{seen:?}");
    assert!(seen.contains("40 100"), "{seen:?}");

    // Resized, then asked again; then a pause past the client's request timeout, and the
    // command's exit code comes back.
    send(
        &mut session,
        Frame::Resize {
            cols: 120,
            rows: 50,
        },
    )
    .await;
    let line = b"stty size; sleep 1.5; exit 3\n".to_vec();
    send(&mut session, Frame::Input(line)).await;
    until(&mut session, &mut seen, "50 120", &mut exit).await;
    let deadline = Instant::now() + DEADLINE;
    while exit.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, Frame::read(&mut session.0)).await {
            Ok(Ok(Some(Frame::Exit(code)))) => exit = Some(code),
            Ok(Ok(Some(Frame::Output(_)))) => {}
            other => panic!("no exit: {other:?}; output: {seen:?}"),
        }
    }
    assert_eq!(exit, Some(3));
    assert_eq!(Frame::read(&mut session.0).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_takes_the_consoles_processes_with_it() {
    let d = TestDaemon::start();
    let id = machine(&d).await;
    let mut session = open(&d, &id, Some("sh")).await;
    let (mut seen, mut exit) = (String::new(), None);
    // A job in the background too: the hangup reaches the whole session. (The terminal
    // echoes the line as typed, `pi""ds=`; only the shell's answer says `pids=`.)
    let line = b"sleep 600 & echo \"pi\"\"ds=$$,$!\" \"e\"\"nd\"\n".to_vec();
    send(&mut session, Frame::Input(line)).await;
    until(&mut session, &mut seen, " end", &mut exit).await;
    let pids: Vec<i32> = seen
        .split("pids=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .split(',')
        .map(|p| p.trim().parse().unwrap())
        .collect();
    drop(session);
    let deadline = Instant::now() + DEADLINE;
    for pid in pids {
        let pid = nix::unistd::Pid::from_raw(pid);
        while nix::sys::signal::kill(pid, None).is_ok() && !is_zombie(pid) {
            assert!(
                Instant::now() < deadline,
                "{pid} still runs after the hangup"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A command that closed its terminal (so nothing more will show) still goes when the
/// client hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_closed_its_terminal_goes_when_the_client_hangs_up() {
    let d = TestDaemon::start();
    let id = machine(&d).await;
    let command = "echo \"pid=$$ end\"; exec </dev/null >/dev/null 2>&1; exec sleep 600";
    let mut session = open(&d, &id, Some(command)).await;
    let (mut seen, mut exit) = (String::new(), None);
    until(&mut session, &mut seen, " end", &mut exit).await;
    let pid: i32 = seen
        .split("pid=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    drop(session);
    let pid = nix::unistd::Pid::from_raw(pid);
    let deadline = Instant::now() + DEADLINE;
    while nix::sys::signal::kill(pid, None).is_ok() && !is_zombie(pid) {
        assert!(
            Instant::now() < deadline,
            "{pid} still runs after the hangup"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_zombie(pid: nix::unistd::Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// `lakefly console` with a piped stdin: no terminal, the output on stdout, the command's
/// exit code passed on; with no started machine, beside a stopped one (`ssh console`: a
/// clear refusal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_command_passes_the_exit_code_on() {
    let d = TestDaemon::start();
    let id = machine(&d).await;
    let cli = |args: &[&str], input: &'static [u8]| {
        let mut all = vec![
            "--remote".to_string(),
            d.api.clone(),
            "-a".into(),
            "con".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            common::lakefly_stdin(std::path::Path::new("."), &refs, input)
        })
    };
    let run = cli(&["console", "-C", "echo \"[$GREETING]\"; exit 4"], b"")
        .await
        .unwrap()
        .expect_code(4);
    assert!(run.stdout.contains("[hello there]"), "{}", run.stdout);
    assert!(
        run.stderr
            .contains(&format!("the command on machine {id} exited 4")),
        "{}",
        run.stderr
    );
    // flyctl's `ssh console` flags for what a machine here has not: noted, or refused
    // before anything runs.
    let run = cli(
        &[
            "ssh",
            "console",
            "--container",
            "web",
            "-r",
            "ams",
            "-C",
            "true",
        ],
        b"",
    )
    .await
    .unwrap()
    .expect_code(0);
    assert!(
        run.stderr
            .contains("note: --container changes nothing: a machine here is")
            && run.stderr.contains("note: --region changes nothing"),
        "{}",
        run.stderr
    );
    let run = cli(&["ssh", "console", "-u", "root", "-C", "true"], b"")
        .await
        .unwrap()
        .expect_code(2);
    assert!(
        run.stderr.contains("runs as the machine's user"),
        "{}",
        run.stderr
    );
    // Piped in, a script runs without a terminal (as `machines exec -i`), to its end.
    let run = cli(
        &["console", "--machine", &id],
        b"tty || echo \"no terminal in $(pwd)\"\n",
    )
    .await
    .unwrap()
    .expect_code(0);
    assert!(
        run.stdout.contains("not a tty\nno terminal in /"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("stdin is not a terminal"),
        "{}",
        run.stderr
    );

    let stopped = Api::new(&d)
        .send(
            reqwest::Method::POST,
            &format!("/v1/apps/con/machines/{id}/stop"),
            None,
        )
        .await;
    assert_eq!(stopped.0, 200, "{:?}", stopped.1);
    // As `fly console`, which needs no machine that runs: the stopped one's directory and
    // environment, and it stays stopped (an app stopped by auto_stop has its console).
    let run = cli(&["console", "-C", "echo \"[$GREETING]\""], b"")
        .await
        .unwrap()
        .expect_code(0);
    assert!(run.stdout.contains("[hello there]"), "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!(
            "note: no machine of con runs: the console runs with stopped machine {id}'s"
        )),
        "{}",
        run.stderr
    );
    let now = Api::new(&d).machine("con", &id).await;
    assert_eq!(now["state"], "stopped", "{now}");
    // `ssh console`, as `fly ssh console`, reaches a machine that runs.
    let run = cli(&["ssh", "console"], b"").await.unwrap().expect_code(5);
    assert!(
        run.stderr.contains("app con has no started machine")
            && run.stderr.contains("hint: `lakefly machines list`"),
        "{}",
        run.stderr
    );
}

/// As `fly console`: without `-C`, the app's `console_command`, its path under the
/// Dockerfile's WORKDIR mapped onto the release's tree (as `/rails/bin/rails console`);
/// `ssh console`, as `fly ssh console`, a shell there instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_command_the_console_runs_the_apps_console_command() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let app = common::files::app_with(
        dir.path(),
        "cc",
        &[
            (
                "fly.toml",
                "app = \"cc\"\nconsole_command = \"/srv/bin/console --quiet\"\n[processes]\n  app = \"exec sleep 600\"\n",
            ),
            ("Dockerfile", "FROM debian\nWORKDIR /srv\nCOPY . .\n"),
        ],
    );
    std::fs::create_dir(app.join("bin")).unwrap();
    std::fs::write(
        app.join("bin/console"),
        "#!/bin/sh\nread line\necho \"console $1: $line in $(pwd)\"\n",
    )
    .unwrap();
    let mut mode = std::fs::metadata(app.join("bin/console"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
    std::fs::set_permissions(app.join("bin/console"), mode).unwrap();
    let api = d.api.clone();
    let run = tokio::task::spawn_blocking(move || {
        let config = app.join("fly.toml");
        let config = config.to_str().unwrap();
        common::lakefly(
            std::path::Path::new("."),
            &["--remote", &api, "deploy", "-c", config],
        )
        .expect_code(0);
        let console = common::lakefly_stdin(
            std::path::Path::new("."),
            &["--remote", &api, "-a", "cc", "console"],
            b"hi\n",
        );
        // `fly ssh console` opens a shell whatever console_command says; so does lakefly's.
        let ssh = common::lakefly_stdin(
            std::path::Path::new("."),
            &["--remote", &api, "-a", "cc", "ssh", "console"],
            b"echo \"a shell in $(basename \"$(pwd)\")\"\n",
        );
        (console, ssh)
    })
    .await
    .unwrap();
    let (run, ssh) = run;
    let run = run.expect_code(0);
    assert!(
        run.stdout.starts_with("console --quiet: hi in /")
            && run.stdout.trim_end().ends_with("-tree"),
        "{}",
        run.stdout
    );
    let ssh = ssh.expect_code(0);
    assert!(
        ssh.stdout.starts_with("a shell in ") && ssh.stdout.trim_end().ends_with("-tree"),
        "{}",
        ssh.stdout
    );
}

/// `lakefly console` on a terminal, driven as a person would type (`tests/apps/terminal`):
/// the remote terminal has the local one's size, Ctrl-C interrupts the remote program and
/// not lakefly (raw mode), and `exit 7` is lakefly's exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_command_on_a_terminal_is_that_terminal() {
    let d = TestDaemon::start();
    let id = machine(&d).await;
    let steps = json!([
        ["", "echo \"ma\"\"rk=$(stty size)\"\r"],
        ["mark=43 132", "echo \"sl\"\"eeping\"; sleep 30\r"],
        ["sleeping\r\n", "\u{3}"],
        ["^C", "echo \"af\"\"ter=$?\"\r"],
        ["after=130", "exit 7\r"],
    ]);
    let api = d.api.clone();
    let shown = tokio::task::spawn_blocking(move || {
        let args = ["--remote", &api, "-a", "con", "console", "--machine", &id];
        common::terminal::drive(&steps, &args, &[])
    })
    .await
    .unwrap();
    assert!(shown.contains("after=130"), "{shown}");
    assert!(
        shown.contains("exited 7") && shown.ends_with("exit=7\n"),
        "{shown}"
    );
}

/// `ssh console -s`, as flyctl's: the started machines are listed and the one whose number
/// is typed is the one the shell runs in; without a terminal to ask on, it is said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_asks_which_machine_on_the_terminal() {
    let d = TestDaemon::start();
    let first = machine(&d).await;
    let second = Api::new(&d)
        .create_machine(
            "con",
            json!({ "command": "exec sleep 600", "process_group": "app" }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let steps = json!([
        ["machine [1-2]: ", "2\r"],
        ["", "echo \"ma\"\"chine=$FLY_MACHINE_ID\"; exit\r"],
        ["machine=", ""],
    ]);
    let api = d.api.clone();
    let (shown, piped) = tokio::task::spawn_blocking(move || {
        let args = ["--remote", &api, "-a", "con", "ssh", "console", "-s"];
        let shown = common::terminal::drive(&steps, &args, &[]);
        let piped = common::lakefly_stdin(std::path::Path::new("."), &args[..], b"echo hi\n")
            .expect_code(2);
        (shown, piped)
    })
    .await
    .unwrap();
    let listed_second = shown
        .lines()
        .find_map(|l| l.strip_prefix("2  "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no second row: {shown}"));
    assert!(
        [first.as_str(), second.as_str()].contains(&listed_second),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("machine={listed_second}")),
        "{shown}"
    );
    assert!(
        piped
            .stderr
            .starts_with("error: --select asks which machine on a terminal")
            && piped.stderr.contains("--machine ID"),
        "{}",
        piped.stderr
    );

    // A command that takes several machines takes several answers: both, by a range.
    let steps = json!([["machines [1-2; several as 1,2 or 1-2 or all]: ", "1-2\r"]]);
    let api = d.api.clone();
    let shown = tokio::task::spawn_blocking(move || {
        let args = ["--remote", &api, "-a", "con", "machines", "stop"];
        common::terminal::drive(&steps, &args, &[])
    })
    .await
    .unwrap();
    for id in [&first, &second] {
        assert!(
            shown.contains(&format!("machine {id} is stopped")),
            "{shown}"
        );
    }
    assert!(shown.trim_end().ends_with("exit=0"), "{shown}");
}
