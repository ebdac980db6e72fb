//! `[build] command`: it runs in the release's tree before any machine; one that fails
//! fails the release with what it printed, leaves no tree behind (what it wrote may be
//! what fills the disk), and the release before keeps running.

mod common;

use std::path::Path;

use common::daemon::TestDaemon;

#[test]
fn a_failing_build_fails_the_release_says_why_and_leaves_no_tree() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let d = TestDaemon::start_in(&state, &[]);
    let app = temp.path().join("app");
    std::fs::create_dir(&app).unwrap();
    let config = app.join("fly.toml");
    let write = |build: &str| {
        let text = format!(
            "app = \"built\"\n[build]\n  command = \"{build}\"\n[processes]\n  app = \"sleep 600\"\n"
        );
        std::fs::write(&config, text).unwrap();
    };
    let deploy = || {
        common::lakefly(
            Path::new("."),
            &["--remote", &d.api, "deploy", "-c", config.to_str().unwrap()],
        )
    };
    write("echo built > out");
    deploy().expect_code(0);

    write("head -c 200000 /dev/zero > junk; echo no compiler found >&2; exit 2");
    let run = deploy().expect_code(7);
    assert!(run.stderr.contains("[build] command"), "{}", run.stderr);
    assert!(run.stderr.contains("no compiler found"), "{}", run.stderr);
    assert!(run.stderr.contains("v1 keeps running"), "{}", run.stderr);
    let releases = state.join("releases/built");
    assert!(
        releases.join("1/out").exists(),
        "the running release's tree is kept"
    );
    assert!(
        !releases.join("2").exists(),
        "the failed build's tree is left behind"
    );
}
