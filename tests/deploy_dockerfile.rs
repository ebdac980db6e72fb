//! `lakefly deploy --dockerfile PATH`, as flyctl's: the release reads that Dockerfile
//! (`Dockerfile.production` beside the development one) instead of `[build] dockerfile` or
//! the `Dockerfile` beside fly.toml; a path outside the app directory, whose files are all
//! a release has, is refused before anything is uploaded. `--build-target` picks its stage.

mod common;

use common::daemon::TestDaemon;
use common::files::app_with;

const CONFIG: &str = "app = \"docked\"\n[http_service]\n  internal_port = 8080\n";

#[test]
fn dockerfile_names_the_file_the_release_reads() {
    let d = TestDaemon::start();
    let temp = tempfile::tempdir().unwrap();
    let app = app_with(
        temp.path(),
        "docked",
        &[
            ("fly.toml", CONFIG),
            ("Dockerfile", "FROM python:3.11-slim\nCMD [\"false\"]\n"),
            (
                "Dockerfile.production",
                "FROM python:3.11-slim AS web\nCMD python3 -m http.server $PORT --bind 127.0.0.1\n\
                 FROM web AS broken\nCMD [\"false\"]\n",
            ),
        ],
    );
    std::fs::write(temp.path().join("Dockerfile.elsewhere"), "FROM scratch\n").unwrap();
    let deploy = |dockerfile: &str| {
        let args = ["--remote", &d.api, "deploy", "--dockerfile", dockerfile];
        let args = [&args[..], &["--build-target", "web"]].concat();
        common::lakefly(&app, &args)
    };

    let run = deploy("Dockerfile.production").expect_code(0);
    assert!(
        run.stderr.contains("runs `python3 -m http.server $PORT"),
        "{}",
        run.stderr
    );

    let outside = deploy("../Dockerfile.elsewhere").expect_code(2);
    assert!(
        outside
            .stderr
            .contains("error: --dockerfile ../Dockerfile.elsewhere is outside the app directory")
            && outside.stderr.contains("hint: a release holds only"),
        "{}",
        outside.stderr
    );
    let missing = deploy("Dockerfile.prod").expect_code(2);
    assert!(
        missing
            .stderr
            .contains("error: --dockerfile Dockerfile.prod: "),
        "{}",
        missing.stderr
    );
    // Neither refusal made a release.
    let releases = common::lakefly(&app, &["--remote", &d.api, "releases", "--json"]);
    assert_eq!(releases.expect_code(0).json().as_array().unwrap().len(), 1);
}
