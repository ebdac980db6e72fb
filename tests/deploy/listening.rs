//! Machines that listen somewhere else than `$PORT` (a fixed port, the internal port,
//! IPv6 only, nowhere): the deploy fails with where they listen and the fix.

use super::common::daemon::TestDaemon;
use super::common::files::{app_with, hello_copy};
use super::deploy;

#[test]
fn an_app_on_a_fixed_port_fails_with_the_port_it_listens_on_and_the_fix() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    let fixed = super::common::free_port();
    super::common::files::edit_file(
        &app.join("app.py"),
        "port = int(os.environ.get(\"PORT\", \"8080\"))",
        &format!("port = {fixed}  # ignores $PORT"),
    );
    super::common::files::edit_file(
        &app.join("fly.toml"),
        "strategy = \"rolling\"",
        "strategy = \"rolling\"\n  wait_timeout = \"6s\"",
    );
    let run = deploy(&d, &app, &[]).expect_code(7);
    // Said while it waits, not only once wait_timeout ends the release.
    assert!(
        run.stderr.contains(&format!(
            "is not healthy yet; it listens on port {fixed}, not on $PORT ("
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("it listens on port {fixed}, not on $PORT (")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "make the app listen on the port in $PORT (lakefly maps internal_port 8080 onto it)"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn an_app_on_its_internal_port_instead_of_port_fails_at_once_with_the_fix() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    // As a Dockerfile's CMD that binds its EXPOSEd port, or a hard-coded `:8080`: the
    // port fly.toml's internal_port names, which lakefly maps onto $PORT.
    let internal = super::common::free_port();
    super::common::files::edit_file(
        &app.join("app.py"),
        "port = int(os.environ.get(\"PORT\", \"8080\"))",
        &format!("port = {internal}  # its internal_port, whatever $PORT says"),
    );
    super::common::files::edit_file(
        &app.join("fly.toml"),
        "internal_port = 8080",
        &format!("internal_port = {internal}"),
    );
    // wait_timeout is long: the release fails because the machine cannot become healthy,
    // not because the time ran out.
    let run = deploy(&d, &app, &["--wait-timeout", "2m"]).expect_code(7);
    assert!(
        run.stderr.contains(&format!(
            "cannot become healthy; it listens on port {internal}, not on $PORT ("
        )) && run.stderr.contains(&format!(
            "e.g. `--bind :${{PORT:-{internal}}}` keeps {internal} outside lakefly"
        )) && !run.stderr.contains("not healthy within"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_app_that_never_listens_is_said_to_listen_nowhere_when_its_time_runs_out() {
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    std::fs::write(
        app.join("app.py"),
        "import time\nprint('connecting to the database...', flush=True)\ntime.sleep(600)\n",
    )
    .unwrap();
    let run = deploy(&d, &app, &["--wait-timeout", "3s"]).expect_code(7);
    assert!(
        run.stderr.contains(
            "was not healthy within 3s; it listens on no TCP port, and lakefly waited for one on $PORT ("
        ) && run.stderr.contains("connecting to the database..."),
        "{}",
        run.stderr
    );
}

#[test]
fn an_app_on_the_ipv6_loopback_only_fails_with_where_it_listens_and_the_fix() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipping: this host has no IPv6 loopback");
        return;
    }
    let d = TestDaemon::start();
    let (_dir, app) = hello_copy();
    // As Node's `listen(port, "localhost")` does where localhost is ::1 first.
    super::common::files::edit_file(&app.join("app.py"), "    ThreadingHTTPServer((\"127.0.0.1\", port), Handler).serve_forever()",
            "    import socket\n    ThreadingHTTPServer.address_family = socket.AF_INET6\n    ThreadingHTTPServer((\"::1\", port), Handler).serve_forever()",
        );
    let run = deploy(&d, &app, &["--wait-timeout", "6s"]).expect_code(7);
    assert!(
        run.stderr
            .contains("is not healthy yet; it listens on [::1]:")
            && run.stderr.contains(
                "only, which lakefly's checks and edge do not reach (they connect to 127.0.0.1:"
            )
            && run
                .stderr
                .contains("make the app listen on 0.0.0.0, 127.0.0.1 or [::]"),
        "{}",
        run.stderr
    );
}

/// An app that also binds a fixed metrics port: the second machine of its group cannot.
const METERED_APP: &str = r#"
import os
from http.server import HTTPServer
from ok import Ok, serve
try:
    metrics = HTTPServer(("127.0.0.1", int(os.environ["METRICS_PORT"])), Ok)
except OSError:
    if os.environ.get("TOLERANT") != "1":
        raise
serve()
"#;

#[test]
fn more_machines_than_a_port_of_their_own_allows_are_explained() {
    let d = TestDaemon::start();
    let temp = tempfile::tempdir().unwrap();
    let metrics = super::common::free_port();
    let config = |tolerant: bool| {
        format!(
            "app = \"metered\"\n[env]\n  METRICS_PORT = \"{metrics}\"\n  TOLERANT = \"{}\"\n\
             [processes]\n  app = \"python3 app.py\"\n[http_service]\n  internal_port = 8080\n\
             [metrics]\n  port = {metrics}\n  path = \"/metrics\"\n",
            u8::from(tolerant)
        )
    };
    let app = app_with(
        temp.path(),
        "metered",
        &[
            ("fly.toml", &config(false)),
            ("app.py", METERED_APP),
            super::common::files::OK_PY,
        ],
    );
    deploy(&d, &app, &[]).expect_code(0);
    let note = format!("each machine of group app binds port {metrics} (metrics[0]) itself");
    let scale =
        |n: &str| super::common::lakefly(&app, &["--remote", &d.api, "scale", "count", n, "--yes"]);
    let failed = scale("2").expect_code(1);
    assert!(failed.stderr.contains(&note), "{}", failed.stderr);
    // An app that lives with it scales, and each deploy of two machines says why one of
    // them has no metrics.
    std::fs::write(app.join("fly.toml"), config(true)).unwrap();
    deploy(&d, &app, &[]).expect_code(0);
    scale("2").expect_code(0);
    std::fs::write(app.join("app.py"), format!("{METERED_APP}\n# v3\n")).unwrap();
    let redeployed = deploy(&d, &app, &[]).expect_code(0);
    assert!(redeployed.stderr.contains(&note), "{}", redeployed.stderr);
}
