//! Bundle uploads: content-addressed, digest-verified, size-limited, and every entry checked;
//! a refused upload answers 4xx with a JSON error and stores nothing.

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
