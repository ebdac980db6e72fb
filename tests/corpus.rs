//! The real-world fly.toml corpus: every file that is valid TOML validates, every file
//! that is not fails with exit 3 and its line and column, and edits keep every other byte.

mod common;

use std::fs;
use std::path::Path;

use common::{corpus_files, lakefly};

/// Whether `text` is syntactically valid TOML: the oracle for which files must pass.
fn is_valid_toml(text: &str) -> bool {
    text.parse::<toml_edit::DocumentMut>().is_ok()
}

#[test]
fn every_valid_file_validates_and_every_invalid_one_fails_with_its_place() {
    let files = corpus_files();
    let mut invalid = 0;
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        let path = file.to_str().unwrap();
        let run = lakefly(
            Path::new("."),
            &["config", "validate", "-c", path, "--json"],
        );
        if is_valid_toml(&text) {
            let run = run.expect_code(0);
            assert_eq!(run.json()["valid"], true, "{path}");
        } else {
            invalid += 1;
            let run = run.expect_code(3);
            let report = run.json();
            let first = &report["diagnostics"][0];
            assert!(
                first["line"].as_u64().unwrap() > 0 && first["column"].as_u64().unwrap() > 0,
                "{path}: {report}"
            );
            assert!(
                first["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("invalid TOML"),
                "{path}: {report}"
            );
            let err: serde_json::Value = serde_json::from_str(run.stderr.trim()).unwrap();
            assert_eq!(err["code"], "config_invalid");
        }
    }
    if let Some(name) = files
        .iter()
        .find(|f| f.ends_with("datasektionen__haj__fly.production.toml"))
    {
        // The shipped corpus's one invalid file: `ZFINGER_URL` defined twice in [env].
        let run = lakefly(
            Path::new("."),
            &["config", "validate", "-c", name.to_str().unwrap()],
        )
        .expect_code(3);
        assert!(
            run.stderr
                .contains("datasektionen__haj__fly.production.toml:20:3"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("key `ZFINGER_URL` of [env] is defined twice, first on line 17"),
            "{}",
            run.stderr
        );
        assert!(invalid >= 1);
    }
}

#[test]
fn set_then_unset_of_a_new_key_gives_every_file_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for file in corpus_files() {
        let original = fs::read(&file).unwrap();
        if !is_valid_toml(&String::from_utf8_lossy(&original)) {
            continue;
        }
        let copy = dir.path().join(file.file_name().unwrap());
        fs::write(&copy, &original).unwrap();
        let c = copy.to_str().unwrap();
        for key in ["lakefly_probe", "deploy.lakefly_probe", "env.LAKEFLY_PROBE"] {
            lakefly(
                dir.path(),
                &["config", "set", "-c", c, &format!("{key}=42")],
            )
            .expect_code(0);
            assert_ne!(
                fs::read(&copy).unwrap(),
                original,
                "{}: set {key} changed nothing",
                file.display()
            );
            lakefly(dir.path(), &["config", "unset", "-c", c, key]).expect_code(0);
            let back = fs::read(&copy).unwrap();
            assert!(
                back == original,
                "{}: set+unset {key} changed the file:\n{}",
                file.display(),
                String::from_utf8_lossy(&back)
            );
        }
    }
}

#[test]
fn set_of_an_existing_key_changes_only_that_values_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for file in corpus_files() {
        let original = fs::read_to_string(&file).unwrap();
        let Ok(doc) = original.parse::<toml_edit::Document<String>>() else {
            continue;
        };
        // The first of these keys the file sets, with a new value of the same type.
        let candidates = [
            ("app", "\"renamed-app\""),
            ("primary_region", "\"ams\""),
            ("kill_timeout", "7"),
            ("swap_size_mb", "64"),
        ];
        let Some((key, new_value, span)) = candidates.iter().find_map(|(key, new)| {
            let item = doc.get(key)?;
            let span = item.as_value()?.span()?;
            Some((*key, *new, span))
        }) else {
            continue;
        };
        let copy = dir.path().join(file.file_name().unwrap());
        fs::write(&copy, &original).unwrap();
        lakefly(
            dir.path(),
            &[
                "config",
                "set",
                "-c",
                copy.to_str().unwrap(),
                &format!("{key}={new_value}"),
            ],
        )
        .expect_code(0);
        let expected = format!(
            "{}{new_value}{}",
            &original[..span.start],
            &original[span.end..]
        );
        let got = fs::read_to_string(&copy).unwrap();
        if original[span.clone()] != *new_value {
            assert_eq!(got, expected, "{}", file.display());
        }
        checked += 1;
    }
    if !corpus_files().is_empty() {
        assert!(checked >= 50, "only {checked} files had a key to change");
    }
}
