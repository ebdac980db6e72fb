//! The API over HTTPS (`lakeflyd --api-tls-cert`): the CLI's requests and its live event
//! stream reach it through an `https://` remote, verified against the host's CA store
//! (`SSL_CERT_FILE` here), and a certificate the client cannot verify is refused.

mod common;

use common::daemon::TestDaemon;
use common::follow::Follower;
use common::tls::fixture;

/// A daemon serving its API over HTTPS with the test certificate.
fn https_daemon(temp: &tempfile::TempDir) -> TestDaemon {
    let (cert, key) = (fixture("cert.pem"), fixture("key.pem"));
    TestDaemon::start_in(
        &temp.path().join("state"),
        &["--api-tls-cert", &cert, "--api-tls-key", &key],
    )
}

#[test]
fn the_cli_talks_to_an_https_api_it_can_verify() {
    let temp = tempfile::tempdir().unwrap();
    let d = https_daemon(&temp);
    assert!(
        d.api.starts_with("https://"),
        "the ready line says {}",
        d.api
    );
    let trusted = [("SSL_CERT_FILE", fixture("ca.pem"))];
    let trusted: Vec<(&str, &str)> = trusted.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = common::lakefly_env(
        temp.path(),
        &["--remote", &d.api, "apps", "create", "secure", "--json"],
        &trusted,
    )
    .expect_code(0);
    assert_eq!(run.json()["name"], "secure", "{}", run.stdout);
    let run = common::lakefly_env(
        temp.path(),
        &["--remote", &d.api, "apps", "list", "--json"],
        &trusted,
    )
    .expect_code(0);
    assert!(run.stdout.contains("\"secure\""), "{}", run.stdout);

    // Signed by a CA the client does not trust: refused, and said why.
    let other_ca = fixture("ca2.pem");
    let untrusted = [("SSL_CERT_FILE", other_ca.as_str())];
    let run = common::lakefly_env(
        temp.path(),
        &["--remote", &d.api, "apps", "list"],
        &untrusted,
    )
    .expect_code(8);
    assert!(run.stderr.contains("UnknownIssuer"), "{}", run.stderr);
    assert!(
        run.stderr.contains("SSL_CERT_FILE"),
        "the hint says how to trust it: {}",
        run.stderr
    );

    // Asked in plain HTTP: the answer is TLS, and the hint gives the address to use.
    let plain = d.api.replacen("https://", "http://", 1);
    let run = common::lakefly(temp.path(), &["--remote", &plain, "apps", "list"]);
    assert!(
        run.stderr.contains(&format!(
            "hint: it answers with TLS there: use {} (",
            d.api.trim_end_matches('/')
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn the_event_stream_follows_over_https() {
    let temp = tempfile::tempdir().unwrap();
    let d = https_daemon(&temp);
    let ca = fixture("ca.pem");
    let follower = Follower::start_with(
        &d.api,
        &["--all-apps", "--since", "0"],
        &[("SSL_CERT_FILE", ca.as_str())],
    );
    let events = follower.until(|_| true);
    assert_eq!(events[0]["kind"], "daemon.started", "{events:?}");
}

#[test]
fn an_api_certificate_that_cannot_be_used_stops_lakeflyd_naming_the_flag() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let run = common::lakeflyd_in(
        &state,
        &[
            "--api-tls-cert",
            &fixture("ca.pem"),
            "--api-tls-key",
            &fixture("key.pem"),
        ],
    )
    .expect_code(2);
    assert!(run.stderr.contains("the API's TLS key"), "{}", run.stderr);
    assert!(run.stderr.contains("--api-tls-cert"), "{}", run.stderr);
}

/// `lakefly console` upgrades its connection over HTTPS too: a remote host's terminal.
#[test]
fn a_console_works_over_https() {
    let temp = tempfile::tempdir().unwrap();
    let d = https_daemon(&temp);
    let ca = fixture("ca.pem");
    let trusted = [("SSL_CERT_FILE", ca.as_str())];
    let app = temp.path().join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(
        app.join("fly.toml"),
        "app = \"remote\"\n[processes]\n  app = \"sleep 600\"\n",
    )
    .unwrap();
    common::lakefly_env(&app, &["--remote", &d.api, "deploy"], &trusted).expect_code(0);
    let steps = serde_json::json!([["", "echo \"o\"\"k=$((6*7))\"; exit 3\r"]]);
    let shown = common::terminal::drive(
        &steps,
        &["--remote", &d.api, "-a", "remote", "console"],
        &[("SSL_CERT_FILE", &ca)],
    );
    assert!(
        shown.contains("ok=42") && shown.ends_with("exit=3\n"),
        "{shown}"
    );
}

/// For monitoring: the API certificate's expiry (the fixture's notAfter) in `/metrics`, as
/// the edge's are; lakeflyd renews neither.
#[test]
fn the_api_certificates_expiry_is_in_the_metrics() {
    let temp = tempfile::tempdir().unwrap();
    let d = https_daemon(&temp);
    let port: u16 = d.api.rsplit(':').next().unwrap().parse().unwrap();
    let request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let (answer, _) = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(common::tls::exchange(port, "127.0.0.1", request));
    let series = format!(
        "lakefly_api_certificate_expiry_timestamp_seconds{{file=\"{}\"}} 4949154584",
        fixture("cert.pem")
    );
    assert!(answer.contains(&series), "{series} in:\n{answer}");
}
