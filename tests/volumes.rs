//! `lakefly volumes` against a real daemon: an app's `[mounts]` data is listed with the
//! machine that mounts it, cannot be deleted while mounted, outlives `apps destroy` (which
//! says so), and is deleted whole by `volumes destroy`.

mod common;

use std::path::PathBuf;

use common::daemon::TestDaemon;
use common::files::app_with;
use common::{lakefly, Run};

const CONFIG: &str = r#"app = "vol"
[env]
  DATA_DIR = "/data/db"
[processes]
  app = "mkdir -p \"$DATA_DIR\" && head -c 20000 /dev/zero > \"$DATA_DIR/file\" && exec sleep 600"
[mounts]
  source = "data"
  destination = "/data"
"#;

/// A daemon whose state is in a temporary directory, beside the app `vol` with `CONFIG`.
struct Setup {
    _temp: tempfile::TempDir,
    state: PathBuf,
    d: TestDaemon,
    dir: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let state = temp.path().join("state");
        let d = TestDaemon::start_in(&state, &[]);
        let dir = app_with(temp.path(), "vol", &[("fly.toml", CONFIG)]);
        Setup {
            _temp: temp,
            state,
            d,
            dir,
        }
    }

    /// `lakefly --remote <the daemon> ARGS` in the app's directory.
    fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["--remote", self.d.api.as_str()];
        all.extend_from_slice(args);
        lakefly(&self.dir, &all)
    }
}

#[test]
fn volumes_are_listed_kept_while_mounted_and_past_the_app_then_deleted_on_request() {
    let setup = Setup::new();
    let (state, run) = (&setup.state, |args: &[&str]| setup.run(args));
    run(&["deploy"]).expect_code(0);
    let data = state.join("volumes/vol/data");
    assert!(data.join("db/file").is_file());

    let machines = run(&["machines", "list", "--json"]).expect_code(0).json();
    let machine = machines[0]["id"].as_str().unwrap().to_string();
    let listed = run(&["volumes", "list", "--json"]).expect_code(0).json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["name"], "data");
    assert_eq!(listed[0]["path"], data.to_str().unwrap());
    assert!(
        listed[0]["used_bytes"].as_u64().unwrap() >= 20_000,
        "{listed}"
    );
    assert_eq!(listed[0]["mounted_by"][0]["machine"], machine.as_str());
    assert_eq!(listed[0]["mounted_by"][0]["destination"], "/data");
    let table = run(&["volumes", "list"]).expect_code(0).stdout;
    assert!(
        table.contains(&format!("{machine} at /data")) && table.contains("KiB"),
        "{table}"
    );

    // Mounted: refused (conflict), naming the machine and the way out; nothing deleted.
    let refused = run(&["volumes", "destroy", "data", "--yes"]).expect_code(6);
    assert!(
        refused.stderr.contains(&machine) && refused.stderr.contains("[mounts]"),
        "{}",
        refused.stderr
    );
    assert!(data.join("db/file").is_file());
    // Without --yes and without a terminal to ask on, nothing happens either.
    let unconfirmed = run(&["volumes", "destroy", "data"]);
    assert_ne!(unconfirmed.code, 0, "{}", unconfirmed.stderr);

    // The app goes; its data stays, and the destroy says where.
    let destroyed = run(&["apps", "destroy", "vol", "--yes"]).expect_code(0);
    assert!(
        destroyed.stderr.contains("kept its volume data")
            && destroyed.stderr.contains("lakefly volumes list -a vol"),
        "{}",
        destroyed.stderr
    );
    assert!(data.join("db/file").is_file());
    let listed = run(&["volumes", "list", "-a", "vol", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(listed[0]["name"], "data");
    assert_eq!(listed[0]["mounted_by"], serde_json::json!([]));
    // Listed with every app's, where one finds data nobody remembers the app of.
    let all = run(&["volumes", "list", "--all", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(
        (
            &all[0]["app"],
            &all[0]["name"],
            all.as_array().map(Vec::len)
        ),
        (
            &serde_json::json!("vol"),
            &serde_json::json!("data"),
            Some(1)
        ),
        "{all}"
    );
    let table = run(&["volumes", "list", "--all"]).expect_code(0).stdout;
    assert!(
        table.starts_with("APP") && table.contains("\nvol  data "),
        "{table}"
    );
    // A new app of the same name is told what it will find.
    let again = run(&["apps", "create", "vol"]).expect_code(0);
    assert!(
        again
            .stderr
            .contains("has volume left from an earlier app of that name (data)"),
        "{}",
        again.stderr
    );
    let missing = run(&["volumes", "destroy", "nope", "-a", "vol", "--yes"]).expect_code(5);
    assert!(missing.stderr.contains("no volume"), "{}", missing.stderr);

    let deleted = run(&["volumes", "destroy", "data", "-a", "vol", "--yes", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(deleted["destroyed"], "data");
    assert!(!state.join("volumes/vol").exists());
    let listed = run(&["volumes", "list", "-a", "vol", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(listed, serde_json::json!([]));
    let destroyed = run(&["apps", "destroy", "vol", "--yes"]).expect_code(0);
    assert!(!destroyed.stderr.contains("kept"), "{}", destroyed.stderr);
    // Nothing of the app is left to list.
    run(&["volumes", "list", "-a", "vol"]).expect_code(5);
}

#[test]
fn a_volume_made_before_the_first_deploy_is_the_one_its_machines_mount() {
    let setup = Setup::new();
    let (state, run) = (&setup.state, |args: &[&str]| setup.run(args));
    // As Fly's docs have it: the app, then its volume, then the deploy.
    run(&["volumes", "create", "data"]).expect_code(5);
    run(&["apps", "create", "vol"]).expect_code(0);
    // flyctl's flags for Fly's volumes are noted (zones, snapshots) or refused before
    // anything is made (more than one, from a snapshot).
    for (flag, why) in [
        ("--count=2", "one directory per name"),
        ("--snapshot-id=vs_1", "lakefly takes no volume snapshots"),
        ("--fs-type=raw", "only ext4"),
    ] {
        let refused = run(&["volumes", "create", "data", flag]).expect_code(2);
        assert!(refused.stderr.contains(why), "{flag}: {}", refused.stderr);
    }
    assert!(!state.join("volumes/vol/data").exists());
    let made = run(&[
        "volumes",
        "create",
        "data",
        "--size",
        "3",
        "-r",
        "ams",
        "-y",
        "--require-unique-zone=false",
        "--snapshot-retention",
        "5",
        "--fs-type",
        "ext4",
    ])
    .expect_code(0);
    for note in [
        "note: --require-unique-zone changes nothing: one host is one zone",
        "note: --snapshot-retention changes nothing: lakefly takes no volume snapshots",
    ] {
        assert!(made.stderr.contains(note), "{note}: {}", made.stderr);
    }
    let data = state.join("volumes/vol/data");
    assert!(
        made.stderr.contains(&format!(
            "created volume data of app vol at {}",
            data.display()
        )) && made.stderr.contains("--size 3 is not enforced"),
        "{}",
        made.stderr
    );
    assert!(data.is_dir());
    std::fs::write(data.join("seed"), "from before").unwrap();
    let listed = run(&["volumes", "list", "--json"]).expect_code(0).json();
    assert_eq!(
        (&listed[0]["name"], &listed[0]["mounted_by"]),
        (&serde_json::json!("data"), &serde_json::json!([])),
        "{listed}"
    );

    // One by that name is there: said, and left as it is.
    let again = run(&["volumes", "create", "data", "--json"]).expect_code(6);
    let error: serde_json::Value = serde_json::from_str(again.stderr.trim()).unwrap();
    assert_eq!(error["code"], "volume_exists", "{error}");
    assert!(data.join("seed").is_file());
    let bad = run(&["volumes", "create", "../x"]).expect_code(2);
    assert!(
        bad.stderr.contains("'../x'") && bad.stderr.contains("as [mounts] source names it"),
        "{}",
        bad.stderr
    );

    run(&["deploy"]).expect_code(0);
    assert!(data.join("seed").is_file() && data.join("db/file").is_file());
    let events = run(&["events", "--no-tail", "--json"])
        .expect_code(0)
        .stdout;
    assert!(events.contains("\"volume.created\""), "{events}");
}
