//! The shipped systemd units, and the ones `lakefly daemon install --systemd [--socket]`
//! writes, pass `systemd-analyze verify` without a warning; `--launchd` writes a
//! well-formed agent; under the journal, lakeflyd's log lines carry their priority.

mod common;

use std::path::Path;
use std::process::Command;

/// `systemd-analyze verify` finds nothing to say about `path` (skipped without it).
fn verifies_cleanly(path: &Path) {
    if !common::have_tool("systemd-analyze") {
        return;
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Unknown keys only warn (exit 0), so the output must be empty too.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze warned:\n{stderr}"
    );
}

/// `lakefly daemon install --systemd` writing `path`, for this build's lakeflyd, with
/// `extra` flags.
fn install_systemd(dir: &Path, path: &Path, extra: &[&str]) -> common::Run {
    let mut args = vec![
        "daemon",
        "install",
        "--systemd",
        "--output",
        path.to_str().unwrap(),
        "--bin",
        env!("CARGO_BIN_EXE_lakeflyd"),
    ];
    args.extend_from_slice(extra);
    common::lakefly(dir, &args)
}

#[test]
fn systemd_unit_verifies_cleanly() {
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fly/lakeflyd.service"))
            .unwrap();
    // Verify against the binary this build produced; the unit's own path is the install path.
    let unit = unit.replace("/usr/local/bin/lakeflyd", env!("CARGO_BIN_EXE_lakeflyd"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lakeflyd.service");
    std::fs::write(&path, unit).unwrap();
    verifies_cleanly(&path);
}

#[test]
fn the_shipped_socket_unit_verifies_with_the_service() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fly");
    let dir = tempfile::tempdir().unwrap();
    let service = std::fs::read_to_string(root.join("lakeflyd.service"))
        .unwrap()
        .replace("/usr/local/bin/lakeflyd", env!("CARGO_BIN_EXE_lakeflyd"));
    std::fs::write(dir.path().join("lakeflyd.service"), service).unwrap();
    let socket = std::fs::read_to_string(root.join("lakeflyd.socket")).unwrap();
    // The name lakeflyd takes the socket by (`inherited::EDGE`).
    assert!(socket.contains("\nFileDescriptorName=edge\n"), "{socket}");
    let path = dir.path().join("lakeflyd.socket");
    std::fs::write(&path, socket).unwrap();
    verifies_cleanly(&path);
}

#[test]
fn daemon_install_systemd_writes_a_unit_for_this_host_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lakeflyd.service");
    let install = |extra: &[&str]| {
        let host = ["--user", "svc_lakefly", "--api", "127.0.0.1:5280"];
        install_systemd(dir.path(), &path, &[&host[..], extra].concat())
    };
    let run = install(&[]).expect_code(0);
    assert!(
        run.stderr.contains("systemctl enable --now lakeflyd"),
        "{}",
        run.stderr
    );
    let unit = std::fs::read_to_string(&path).unwrap();
    assert!(
        unit.contains(&format!(
            "ExecStart={} --state /var/lib/lakefly --api 127.0.0.1:5280 --edge 127.0.0.1:4281",
            env!("CARGO_BIN_EXE_lakeflyd")
        )),
        "{unit}"
    );
    assert!(
        unit.contains("\nUser=svc_lakefly\nGroup=svc_lakefly\n"),
        "{unit}"
    );
    // Its group's members may deploy without a token; other users of the host may not.
    assert!(
        unit.contains(" --edge 127.0.0.1:4281 --local-group svc_lakefly --log-format json"),
        "{unit}"
    );
    assert!(
        run.stderr.contains("usermod -aG svc_lakefly USER"),
        "{}",
        run.stderr
    );
    assert!(
        unit.contains("\nNoNewPrivileges=yes\n"),
        "the hardening stays:\n{unit}"
    );
    assert!(
        unit.contains("\n# LoadCredentialEncrypted="),
        "no credential given:\n{unit}"
    );
    verifies_cleanly(&path);

    // An existing unit is kept unless --force says otherwise.
    let run = install(&["--master-key-credential", "/etc/lakefly/key.cred"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert!(!std::fs::read_to_string(&path)
        .unwrap()
        .contains("/etc/lakefly/key.cred"));
    install(&[
        "--master-key-credential",
        "/etc/lakefly/key.cred",
        "--force",
    ])
    .expect_code(0);
    let unit = std::fs::read_to_string(&path).unwrap();
    assert!(
        unit.contains("\nLoadCredentialEncrypted=lakefly-master-key:/etc/lakefly/key.cred\n"),
        "{unit}"
    );
    verifies_cleanly(&path);
}

/// An edge on port 80 needs CAP_NET_BIND_SERVICE to bind as the service's user: the unit
/// grants it (lakeflyd's machines do not inherit it), unless a socket unit binds the port.
#[test]
fn daemon_install_systemd_grants_the_bind_capability_for_a_port_below_1024() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lakeflyd.service");
    install_systemd(dir.path(), &path, &["--edge", "0.0.0.0:80"]).expect_code(0);
    let unit = std::fs::read_to_string(&path).unwrap();
    assert!(
        unit.contains("# lakeflyd binds port 80 (--edge), below 1024")
            && unit.contains("\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n"),
        "{unit}"
    );
    verifies_cleanly(&path);
    let run = install_systemd(
        dir.path(),
        &path,
        &["--edge", "0.0.0.0:80", "--socket", "--force"],
    )
    .expect_code(0);
    let unit = std::fs::read_to_string(&path).unwrap();
    assert!(
        !unit.contains("AmbientCapabilities"),
        "{unit}\n{}",
        run.stderr
    );
    install_systemd(dir.path(), &path, &["--force"]).expect_code(0);
    let unit = std::fs::read_to_string(&path).unwrap();
    assert!(!unit.contains("AmbientCapabilities"), "{unit}");
}

/// lakeflyd's own options after `--` go into the unit as given, with what they need of it
/// (a capability for a low HTTPS port, the access log's directory writable); ones lakeflyd
/// would refuse fail the install, and nothing is written.
#[test]
fn daemon_install_systemd_passes_lakeflyds_own_options_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lakeflyd.service");
    let files = dir.path().join("etc");
    std::fs::create_dir(&files).unwrap();
    let cert = files.join("tls.pem");
    let key = files.join("tls.key");
    std::fs::write(&cert, "").unwrap();
    std::fs::write(&key, "").unwrap();
    let log_dir = dir.path().join("log");
    let passed = [
        "--domain",
        "apps.example.com",
        "--edge-https",
        "0.0.0.0:443",
        "--edge-tls-cert",
        cert.to_str().unwrap(),
        "--edge-tls-key",
        key.to_str().unwrap(),
        "--edge-access-log",
        &format!("{}/access.log", log_dir.display()),
    ];
    let run = install_systemd(dir.path(), &path, &[&["--"][..], &passed].concat()).expect_code(0);
    // The access log's directory is not there yet: said, as the service would fail.
    assert!(
        run.stderr.contains(&format!(
            "warning: --edge-access-log: {}",
            log_dir.display()
        )),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("--edge-tls-cert:"), "{}", run.stderr);
    let unit = std::fs::read_to_string(&path).unwrap();
    let exec = unit
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("ExecStart");
    assert!(
        exec.ends_with(&format!(" --log-format json {}", passed.join(" "))),
        "{exec}"
    );
    assert!(
        unit.contains("# lakeflyd binds port 443 (--edge-https), below 1024")
            && unit.contains("\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n"),
        "{unit}"
    );
    assert!(
        unit.contains(&format!("\nReadWritePaths={}\n", log_dir.display())),
        "{unit}"
    );
    std::fs::create_dir(&log_dir).unwrap();
    verifies_cleanly(&path);
    // Under /var/log, systemd makes the log's directory for the service's user.
    let logs = install_systemd(
        dir.path(),
        &path,
        &[
            "--force",
            "--",
            "--edge-access-log",
            "/var/log/lakefly-test/access.log",
        ],
    )
    .expect_code(0);
    assert!(!logs.stderr.contains("warning"), "{}", logs.stderr);
    let logged = std::fs::read_to_string(&path).unwrap();
    assert!(
        logged.contains("\nLogsDirectory=lakefly-test\n"),
        "{logged}"
    );
    assert!(!logged.contains("ReadWritePaths=/var/log"), "{logged}");
    verifies_cleanly(&path);
    install_systemd(
        dir.path(),
        &path,
        &[&["--force", "--"][..], &passed].concat(),
    )
    .expect_code(0);

    // What lakeflyd would not start with fails here, naming it; the unit stays as it was.
    for (words, says) in [
        (
            &["--edge-htps", "0.0.0.0:443"][..],
            "similar argument exists: '--edge-https'",
        ),
        (
            &["--edge-https", "0.0.0.0:443"][..],
            "--edge-tls-cert <FILE>",
        ),
        (
            &["--api", "0.0.0.0:4280"][..],
            "--api is set by the install",
        ),
        (
            &["--token-file", "tokens"][..],
            "--token-file tokens: a relative path",
        ),
        (&["--token-file", "/root/tokens"][..], "ProtectHome"),
    ] {
        let args = [&["--force", "--"][..], words].concat();
        let run = install_systemd(dir.path(), &path, &args).expect_code(2);
        assert!(run.stderr.contains(says), "{words:?}: {}", run.stderr);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), unit);
    }
    // An API beyond loopback needs a token file, as lakeflyd does.
    let run =
        install_systemd(dir.path(), &path, &["--force", "--api", "0.0.0.0:4280"]).expect_code(2);
    assert!(run.stderr.contains("-- --token-file"), "{}", run.stderr);
    let tokens = files.join("tokens");
    std::fs::write(&tokens, "primary-token-0123456789\n").unwrap();
    let args = [
        "--force",
        "--api",
        "0.0.0.0:4280",
        "--",
        "--token-file",
        tokens.to_str().unwrap(),
    ];
    install_systemd(dir.path(), &path, &args).expect_code(0);
    // With tokens, every user needs one: no group is served without (lakeflyd refuses both).
    let unit = std::fs::read_to_string(&path).unwrap();
    let exec = unit
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("ExecStart");
    assert!(!exec.contains("--local-group"), "{exec}");
    verifies_cleanly(&path);
}

#[test]
fn daemon_install_systemd_live_restore_stops_lakeflyd_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lakeflyd.service");
    install_systemd(dir.path(), &path, &["--live-restore"]).expect_code(0);
    let unit = std::fs::read_to_string(&path).unwrap();
    let exec = unit
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("ExecStart");
    assert!(exec.ends_with(" --live-restore"), "{exec}");
    assert!(unit.contains("\nKillMode=process\n"), "{unit}");
    assert!(!unit.contains("KillMode=mixed"), "{unit}");
    assert!(!unit.contains("it stops its machines"), "{unit}");
    // A restart must put lakeflyd back in a cgroup that machines' controllers would block.
    assert!(!unit.contains("\nDelegate="), "{unit}");
    assert!(unit.contains("# --live-restore: no Delegate=."), "{unit}");
    assert!(
        !unit.contains("The service's cgroup is lakeflyd's"),
        "{unit}"
    );
    verifies_cleanly(&path);
}

#[test]
fn daemon_install_systemd_socket_writes_a_socket_unit_for_the_edge_beside_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let service = dir.path().join("lakeflyd.service");
    let socket = dir.path().join("lakeflyd.socket");
    let install = |extra: &[&str]| {
        let socket = ["--socket", "--edge", "127.0.0.1:5281"];
        install_systemd(dir.path(), &service, &[&socket[..], extra].concat())
    };
    let run = install(&[]).expect_code(0);
    assert!(
        run.stderr
            .contains("systemctl enable --now lakeflyd.socket lakeflyd"),
        "{}",
        run.stderr
    );
    let unit = std::fs::read_to_string(&socket).unwrap();
    assert!(unit.contains("\nListenStream=127.0.0.1:5281\n"), "{unit}");
    // The name lakeflyd takes the socket by (`inherited::EDGE`), for this service.
    assert!(unit.contains("\nFileDescriptorName=edge\n"), "{unit}");
    assert!(unit.contains("\nService=lakeflyd.service\n"), "{unit}");
    verifies_cleanly(&service);
    verifies_cleanly(&socket);

    // Either file already there: nothing is written without --force.
    std::fs::remove_file(&service).unwrap();
    let run = install(&[]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("lakeflyd.socket"), "{}", run.stderr);
    assert!(!service.exists(), "no half of the pair is written");
    install(&["--force"]).expect_code(0);
    assert!(service.exists());

    // With an HTTPS edge, systemd holds its socket too, under the name lakeflyd takes it
    // by (`inherited::EDGE_HTTPS`); bound by systemd, port 443 needs no capability.
    let cert = dir.path().join("tls.pem");
    std::fs::write(&cert, "").unwrap();
    let https = [
        "--force",
        "--",
        "--edge-https",
        "0.0.0.0:443",
        "--edge-tls-cert",
        cert.to_str().unwrap(),
        "--edge-tls-key",
        cert.to_str().unwrap(),
    ];
    let run = install(&https).expect_code(0);
    assert!(
        run.stderr
            .contains("systemctl enable --now lakeflyd.socket lakeflyd-https.socket lakeflyd"),
        "{}",
        run.stderr
    );
    let https_socket = dir.path().join("lakeflyd-https.socket");
    let unit = std::fs::read_to_string(&https_socket).unwrap();
    assert!(unit.contains("\nListenStream=0.0.0.0:443\n"), "{unit}");
    assert!(unit.contains("\nFileDescriptorName=edge-https\n"), "{unit}");
    assert!(unit.contains("\nService=lakeflyd.service\n"), "{unit}");
    assert!(
        !std::fs::read_to_string(&service)
            .unwrap()
            .contains("AmbientCapabilities"),
        "systemd binds 443"
    );
    verifies_cleanly(&https_socket);

    // A socket is for systemd only; printed, both units show.
    common::lakefly(dir.path(), &["daemon", "install", "--launchd", "--socket"]).expect_code(2);
    let run = common::lakefly(
        dir.path(),
        &[
            "daemon",
            "install",
            "--systemd",
            "--socket",
            "--output",
            "-",
        ],
    )
    .expect_code(0);
    assert!(run.stdout.contains("\nExecStart="), "{}", run.stdout);
    assert!(
        run.stdout.contains("\nListenStream=127.0.0.1:4281\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn daemon_install_prints_with_output_dash_and_refuses_a_bad_user() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::lakefly(
        dir.path(),
        &["daemon", "install", "--systemd", "--output", "-"],
    )
    .expect_code(0);
    assert!(
        run.stdout.starts_with("# systemd unit for lakeflyd"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("\nUser=lakefly\n"), "{}", run.stdout);

    let run = common::lakefly(
        dir.path(),
        &[
            "daemon",
            "install",
            "--systemd",
            "--user",
            "Root;",
            "--output",
            "-",
        ],
    )
    .expect_code(2);
    assert!(run.stderr.contains("--user"), "{}", run.stderr);
    // One of the two managers must be named.
    let run = common::lakefly(dir.path(), &["daemon", "install"]).expect_code(2);
    assert!(run.stderr.contains("--systemd"), "{}", run.stderr);
}

#[test]
fn daemon_install_names_the_proxy_settings_the_service_will_not_have() {
    let dir = tempfile::tempdir().unwrap();
    let install = |proxy: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lakefly"));
        command.current_dir(dir.path()).env("NO_COLOR", "1").args([
            "daemon",
            "install",
            "--systemd",
            "--output",
            "-",
        ]);
        for name in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            command.env_remove(name);
        }
        common::Run::from(command.envs(proxy.iter().copied()).output().unwrap()).expect_code(0)
    };
    let run = install(&[
        ("HTTPS_PROXY", "http://deploy:hunter2@proxy.corp:3128"),
        ("NO_PROXY", "localhost,.corp"),
        ("http_proxy", ""),
    ]);
    assert!(
        run.stderr
            .contains("sets HTTPS_PROXY and NO_PROXY, which the service does not inherit"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("systemctl edit lakeflyd"),
        "{}",
        run.stderr
    );
    // Names only: the proxy's password is printed nowhere, nor put in the unit.
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    assert!(!run.stdout.contains("hunter2"), "{}", run.stdout);

    let run = install(&[]);
    assert!(!run.stderr.contains("PROXY"), "{}", run.stderr);
}

#[test]
fn daemon_install_launchd_writes_an_agent_plist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents/dev.lakefly.lakeflyd.plist");
    common::lakefly(
        dir.path(),
        &[
            "daemon",
            "install",
            "--launchd",
            "--output",
            path.to_str().unwrap(),
            "--bin",
            "/opt/lake & fly/lakeflyd",
            "--",
            "--domain",
            "apps<&>.test",
        ],
    )
    .expect_code(0);
    // Read back with Python's plist parser: well-formed, and the values survive escaping.
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plist: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plist["Label"], "dev.lakefly.lakeflyd");
    assert_eq!(
        plist["ProgramArguments"],
        serde_json::json!([
            "/opt/lake & fly/lakeflyd",
            "--api",
            "127.0.0.1:4280",
            "--edge",
            "127.0.0.1:4281",
            "--domain",
            "apps<&>.test"
        ])
    );
    assert_eq!(plist["KeepAlive"]["SuccessfulExit"], false);
}

#[test]
fn daemon_install_launchd_without_home_says_home_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.plist");
    let run = common::Run::from(
        Command::new(env!("CARGO_BIN_EXE_lakefly"))
            .current_dir(dir.path())
            .env_remove("HOME")
            .env("NO_COLOR", "1")
            .args(["daemon", "install", "--launchd", "--output"])
            .arg(&path)
            .output()
            .unwrap(),
    )
    .expect_code(1);
    assert!(run.stderr.contains("HOME is not set"), "{}", run.stderr);
    assert!(run.stderr.contains("set HOME"), "{}", run.stderr);
    assert!(!path.exists(), "nothing is written");
}

/// Under systemd (stderr is the journal's stream), each log line starts with its syslog
/// priority, so `journalctl -p warning` finds a crash, and carries no time of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_journal_log_lines_carry_their_priority() {
    let temp = tempfile::tempdir().unwrap();
    let log = temp.path().join("journal");
    let d = common::daemon::TestDaemon::start_under_journal(&temp.path().join("state"), &log);
    let api = common::api::Api::new(&d);
    api.create_app("crashes").await;
    let spec = serde_json::json!({ "command": "exit 3", "restart": "never" });
    let id = api.create_machine("crashes", spec).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let crash = format!("machine.exited code=3 machine={id}");
    tokio::task::block_in_place(|| common::daemon::wait_logged(&log, &crash));
    let logged = std::fs::read_to_string(&log).unwrap();
    let line = logged.lines().find(|l| l.contains(&crash)).unwrap();
    assert!(line.starts_with("<4> WARN lakefly::events:"), "{line}");
    let started = logged
        .lines()
        .find(|l| l.contains("lakeflyd started"))
        .unwrap();
    assert!(started.starts_with("<6> INFO "), "{started}");
}
