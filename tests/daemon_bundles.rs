//! Bundle uploads: content-addressed, digest-verified, size-limited, and every entry checked;
//! a refused upload answers 4xx with a JSON error and stores nothing. `lakefly deploy`
//! refuses what the daemon would before sending it, and leaves out what no bundle holds.

mod common;

use common::bundle::{sha256, tar_zst, Entry};
use common::daemon::TestDaemon;

async fn put(d: &TestDaemon, digest: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let resp = common::http_client()
        .put(d.url(&format!("/v1/bundles/{digest}")))
        .body(body)
        .send()
        .await
        .expect("PUT bundle");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

async fn head(d: &TestDaemon, digest: &str) -> u16 {
    common::http_client()
        .head(d.url(&format!("/v1/bundles/{digest}")))
        .send()
        .await
        .expect("HEAD bundle")
        .status()
        .as_u16()
}

/// A deploy refused by the client left nothing on the daemon: no bundle, no app.
fn assert_nothing_reached(d: &TestDaemon, app: &std::path::Path) {
    assert_nothing_stored(d);
    let apps = d
        .cli(app, &["apps", "list", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(apps, serde_json::json!([]));
}

/// Nothing half-written is left behind by a refused upload.
fn assert_nothing_stored(d: &TestDaemon) {
    let dir = d.state.join("bundles");
    let stored: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name())
                .filter(|n| n != ".incoming")
                .collect()
        })
        .unwrap_or_default();
    assert!(stored.is_empty(), "stored: {stored:?}");
    let incoming: Vec<_> = std::fs::read_dir(dir.join(".incoming"))
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(incoming.is_empty(), "temp files left: {incoming:?}");
}

#[tokio::test]
async fn a_good_bundle_is_stored_once_and_found_by_head() {
    let d = TestDaemon::start();
    let bundle = tar_zst(&[
        Entry::Dir("app/"),
        Entry::File("app/main.py", b"print('hi')\n"),
        Entry::Symlink("app/current", "main.py"),
        Entry::Symlink("app/up", "../app/main.py"),
    ]);
    let digest = sha256(&bundle);
    assert_eq!(head(&d, &digest).await, 404);
    let (status, body) = put(&d, &digest, bundle.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["entries"], 4);
    assert_eq!(body["unpacked_bytes"], 12);
    assert_eq!(head(&d, &digest).await, 200);
    let (again, _) = put(&d, &digest, bundle).await;
    assert_eq!(again, 200, "an unchanged bundle is not stored twice");
}

#[tokio::test]
async fn a_digest_mismatch_is_refused() {
    let d = TestDaemon::start();
    let bundle = tar_zst(&[Entry::File("a", b"a")]);
    let wrong = sha256(b"something else");
    let (status, body) = put(&d, &wrong, bundle.clone()).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "digest_mismatch");
    assert_eq!(
        body["error"],
        format!("the bundle's SHA-256 is {}, not {wrong}", sha256(&bundle))
    );
    assert_nothing_stored(&d);
}

#[tokio::test]
async fn an_oversized_bundle_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_in(&temp.path().join("state"), &["--bundle-max-bytes", "1000"]);
    // Incompressible content, so the archive itself exceeds the limit.
    let noise: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let bundle = tar_zst(&[Entry::File("noise.bin", &noise)]);
    assert!(bundle.len() > 1000);
    let (status, body) = put(&d, &sha256(&bundle), bundle).await;
    assert_eq!(status, 413);
    assert_eq!(body["code"], "bundle_too_large");
    assert_nothing_stored(&d);
}

#[tokio::test]
async fn hostile_archives_are_refused_with_the_entry_named() {
    let d = TestDaemon::start();
    let cases: Vec<(Vec<Entry>, &str)> = vec![
        (vec![Entry::File("../evil", b"x")], "entry \"../evil\" climbs out with `..`"),
        (vec![Entry::File("a/../../evil", b"x")], "entry \"a/../../evil\" climbs out with `..`"),
        (vec![Entry::File("/etc/cron.d/evil", b"x")], "entry \"/etc/cron.d/evil\" is absolute"),
        (vec![Entry::Symlink("link", "../../outside")], "link \"link\" points outside the bundle (\"../../outside\")"),
        (vec![Entry::Symlink("etc", "/etc")], "link \"etc\" points outside the bundle (\"/etc\")"),
        (vec![Entry::HardLink("hard", "../secret")], "link \"hard\" points outside the bundle (\"../secret\")"),
        (
            vec![Entry::CharDevice("dev/null")],
            "entry \"dev/null\" is a character device; bundles hold only files, directories and links",
        ),
    ];
    for (entries, message) in cases {
        let bundle = tar_zst(&entries);
        let (status, body) = put(&d, &sha256(&bundle), bundle).await;
        assert_eq!(status, 400, "{message}: {body}");
        assert_eq!(body["code"], "unsafe_bundle");
        assert_eq!(body["error"], message);
    }
    assert_nothing_stored(&d);
}

#[tokio::test]
async fn bytes_that_are_not_a_bundle_or_a_bad_digest_are_refused() {
    let d = TestDaemon::start();
    let junk = b"definitely not zstd".to_vec();
    let (status, body) = put(&d, &sha256(&junk), junk).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "unsafe_bundle");
    let (status, body) = put(&d, "not-a-digest", b"x".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "bad_request");
    assert_nothing_stored(&d);
}

/// Deploys `bundle` as app `app` through the API with `config`; the answer's status and body.
async fn deploy_through_api(
    d: &TestDaemon,
    app: &str,
    bundle: Vec<u8>,
    config: serde_json::Value,
) -> (u16, serde_json::Value) {
    let digest = sha256(&bundle);
    assert_eq!(put(d, &digest, bundle).await.0, 201);
    let client = common::http_client();
    let created = client
        .post(d.url("/v1/apps"))
        .json(&serde_json::json!({ "name": app }))
        .send()
        .await
        .expect("POST /v1/apps");
    assert!(created.status().is_success(), "{created:?}");
    let resp = client
        .post(d.url(&format!("/v1/apps/{app}/deploys")))
        .json(&serde_json::json!({ "config": config, "bundle": digest }))
        .send()
        .await
        .expect("POST deploys");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// The newest release of `app` once it is complete or failed (30 s at most).
async fn settled_release(d: &TestDaemon, app: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let releases: serde_json::Value = common::http_client()
            .get(d.url(&format!("/v1/apps/{app}/releases")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some("complete" | "failed") = releases[0]["status"].as_str() {
            return releases[0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "{releases}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_timeouts_sent_through_the_api_are_taken_as_unset() {
    let d = TestDaemon::start();
    // fly.toml and the CLI refuse zero; a script calling the API may still send it, and a
    // release must not fail at once for it.
    let config = serde_json::json!({
        "app": "zeros",
        "processes": { "app": "exec sleep 60" },
        "deploy": {
            "release_command": "sleep 0.2",
            "release_command_timeout": "0s",
            "wait_timeout": "0s",
        },
    });
    let bundle = tar_zst(&[Entry::File("README", b"x\n")]);
    let (status, body) = deploy_through_api(&d, "zeros", bundle, config).await;
    assert_eq!(status, 202, "{body}");
    let release = settled_release(&d, "zeros").await;
    assert_eq!(release["status"], "complete", "{release}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_through_the_api_runs_the_dockerfile_at_the_bundles_root() {
    let d = TestDaemon::start();
    // A config that names no Dockerfile, as most fly.toml files: flyctl builds the root one.
    let config = serde_json::json!({ "app": "api-df" });
    let dockerfile = Entry::File("Dockerfile", b"FROM python:3.11-slim\nCMD [\"python3\", \"-c\", \"import time; print('from the Dockerfile', flush=True); time.sleep(60)\"]\n");
    let (status, body) =
        deploy_through_api(&d, "api-df", tar_zst(&[dockerfile]), config.clone()).await;
    assert_eq!(status, 202, "{body}");
    let release = settled_release(&d, "api-df").await;
    assert_eq!(release["status"], "complete", "{release}");

    // Without one, it is refused before anything runs.
    let none = tar_zst(&[Entry::File("app.py", b"print(1)\n")]);
    let (status, body) = deploy_through_api(&d, "api-none", none, config).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"], "nothing says what process group \"app\" runs",
        "{body}"
    );
}

#[test]
fn lakefly_deploy_names_a_link_out_of_the_app_and_a_pipe_it_leaves_out() {
    let d = TestDaemon::start();
    let (_dir, app) = common::files::hello_copy();
    std::os::unix::fs::symlink("../../shared/.env", app.join(".env")).unwrap();
    let refused = d.cli(&app, &["deploy", "--json"]).expect_code(1);
    let error: serde_json::Value = serde_json::from_str(refused.stderr.trim()).unwrap();
    assert_eq!(error["code"], "link_outside", "{error}");
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains("`.env` in .lakeflyignore"),
        "{error}"
    );
    // Refused before anything reached the daemon.
    assert_nothing_reached(&d, &app);

    std::fs::write(app.join(".lakeflyignore"), ".env\n").unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(app.join("queue"))
        .status()
        .unwrap();
    assert!(made.success());
    let deployed = d.cli(&app, &["deploy", "--detach"]).expect_code(0);
    assert!(
        deployed
            .stderr
            .contains("warning: left out queue (named pipes, sockets and devices"),
        "{}",
        deployed.stderr
    );
}

#[test]
fn lakefly_deploy_refuses_a_bundle_over_the_daemons_limit_before_sending_it() {
    let temp = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_in(
        &temp.path().join("state"),
        &["--bundle-max-bytes", "100000"],
    );
    let (_dir, app) = common::files::hello_copy();
    // Incompressible, and more than socket buffers hold: sent anyway, the daemon's early
    // 413 would reach the client as a broken pipe mid-upload.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..4_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(app.join("data.bin"), noise).unwrap();
    let refused = d.cli(&app, &["deploy"]).expect_code(1);
    assert!(
        refused
            .stderr
            .contains("KiB, more than the 97 KiB the daemon at")
            && refused.stderr.contains(
                "hint: leave build output, dependencies and data out with .lakeflyignore"
            )
            && refused.stderr.contains("--bundle-max-bytes (now 100000)"),
        "{}",
        refused.stderr
    );
    // Nothing reached the daemon: no bundle, not even the app.
    assert_nothing_reached(&d, &app);

    // Left out, the rest deploys.
    std::fs::write(app.join(".lakeflyignore"), "data.bin\n").unwrap();
    d.cli(&app, &["deploy", "--detach"]).expect_code(0);
}
