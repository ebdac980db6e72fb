//! `lakefly apps destroy` while traffic still comes: a request the edge would start a
//! machine for (auto_start_machines, the group scaled to zero) starts none behind the
//! destroy, which would leave its process running with no record once the app is gone,
//! and is answered 503 at once rather than after `--auto-start-wait`.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::TestDaemon;
use common::files::{app_with, OK_PY};
use common::process::alive;

/// Serves 200 on `$PORT`, its pid first written to `$MARK_DIR/<machine id>`.
const APP: &str = r#"import os
from ok import serve

open(os.path.join(os.environ["MARK_DIR"], os.environ["LAKEFLY_MACHINE_ID"]), "w").write(str(os.getpid()))
serve()
"#;

/// `web` serves with auto start; `worker` ignores SIGTERM, so the destroy spends its
/// kill_timeout stopping it, with the app still there.
const CONFIG: &str = r#"app = "gone"
kill_signal = "SIGTERM"
kill_timeout = "3s"
[processes]
  web = "python3 app.py"
  worker = "sh -c 'trap \"\" TERM; while true; do sleep 0.1; done'"
[http_service]
  internal_port = 8080
  processes = ["web"]
  auto_start_machines = true
"#;

#[test]
fn a_request_while_the_app_is_destroyed_starts_no_machine_behind_it() {
    let temp = tempfile::tempdir().unwrap();
    // A request waits this long for a machine being started for it, but not for one that
    // will not be.
    let d = TestDaemon::start_in(&temp.path().join("state"), &["--auto-start-wait", "10m"]);
    let marks = temp.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    let app = app_with(
        temp.path(),
        "gone",
        &[OK_PY, ("app.py", APP), ("fly.toml", CONFIG)],
    );
    let mark_dir = format!("MARK_DIR={}", marks.display());
    d.cli(&app, &["deploy", "-e", &mark_dir]).expect_code(0);
    d.cli(&app, &["scale", "count", "web=0", "--yes"])
        .expect_code(0);

    let destroy = common::lakefly_spawn(
        Path::new("."),
        &["--remote", &d.api, "apps", "destroy", "gone", "--yes"],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = d.cli(&app, &["status", "--json"]);
        if status.code == 0 && status.json()["machines"][0]["state"] == "stopping" {
            break;
        }
        assert!(Instant::now() < deadline, "the worker never began stopping");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The worker is being stopped and the app is still there: a request for it now finds
    // no web machine to send it to.
    let mut request = std::net::TcpStream::connect(d.edge_addr()).unwrap();
    request
        .write_all(b"GET / HTTP/1.1\r\nHost: gone.localhost\r\n\r\n")
        .unwrap();

    // Answered at once: no machine is being started for it.
    request
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = [0; 12];
    request.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 503");

    let destroyed = common::Run::from(destroy.wait_with_output().unwrap());
    destroyed.expect_code(0);
    for mark in std::fs::read_dir(&marks).unwrap() {
        let mark = mark.unwrap();
        let pid: u64 = std::fs::read_to_string(mark.path())
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            !alive(pid),
            "machine {:?} of the destroyed app still runs (pid {pid})",
            mark.file_name()
        );
    }
}
