//! The example apps' configs are clean: no errors, no warnings.

mod common;

use std::path::Path;

#[test]
fn every_example_config_validates_without_warnings() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let config = entry.unwrap().path().join("fly.toml");
        if !config.exists() {
            continue;
        }
        let run = common::lakefly(
            Path::new("."),
            &[
                "config",
                "validate",
                "--json",
                "-c",
                config.to_str().unwrap(),
            ],
        )
        .expect_code(0);
        assert_eq!(
            run.json()["warnings"],
            0,
            "{}: {}",
            config.display(),
            run.stdout
        );
        seen += 1;
    }
    assert!(seen >= 2, "found only {seen} example configs");
}
