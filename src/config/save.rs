//! A normalized config written back as `fly.toml` (`lakefly config save`, as `fly config
//! save`): what a release runs, for a laptop that has no copy of the file. Comments and
//! the file's own layout are not kept (the daemon keeps the model, not the text); the
//! sections come in the model's order and are indented as flyctl writes them.

use serde_json::{Map, Value};
use toml_edit::{DocumentMut, Item, Table};

use super::AppConfig;

/// How much each level of table nesting indents its keys, as in flyctl's files.
const INDENT: &str = "  ";

/// `config` as fly.toml text that reads back to the same config.
pub fn to_toml(config: &AppConfig) -> Result<String, toml_edit::ser::Error> {
    let mut value =
        serde_json::to_value(config).map_err(|e| toml_edit::ser::Error::Custom(e.to_string()))?;
    as_file_keys(&mut value);
    let mut document: DocumentMut = toml_edit::ser::to_string_pretty(&value)?
        .parse()
        .map_err(|e: toml_edit::TomlError| toml_edit::ser::Error::Custom(e.to_string()))?;
    indent(document.as_table_mut(), 0);
    Ok(document.to_string())
}

/// Indents the keys of a table `depth` levels down by that many steps, and its header by
/// one step less (`[http_service]` at the margin, `  [[http_service.checks]]` under it).
fn indent(table: &mut Table, depth: usize) {
    if depth > 0 {
        let before = table
            .decor()
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or("")
            .trim_end_matches(' ')
            .to_string();
        table
            .decor_mut()
            .set_prefix(format!("{before}{}", INDENT.repeat(depth - 1)));
    }
    for (mut key, item) in table.iter_mut() {
        match item {
            Item::Value(_) => key.leaf_decor_mut().set_prefix(INDENT.repeat(depth)),
            Item::Table(inner) => indent(inner, depth + 1),
            Item::ArrayOfTables(array) => array.iter_mut().for_each(|t| indent(t, depth + 1)),
            Item::None => {}
        }
    }
}

/// Puts back the keys the file has where the model holds them otherwise: what it does
/// not know is kept under `extra` (the file has it in place), a mount's size is
/// `initial_size_mb` (the file's `initial_size` with a unit), and `http_options`'
/// `response_headers` and `response_pristine` are `response.headers` (`false` removes
/// a header) and `response.pristine`.
fn as_file_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(extra)) = map.remove("extra") {
                for (key, kept) in extra {
                    map.entry(key).or_insert(kept);
                }
            }
            if let Some(mb) = map.remove("initial_size_mb") {
                map.insert("initial_size".into(), Value::String(format!("{mb}mb")));
            }
            let mut response = Map::new();
            if let Some(Value::Object(headers)) = map.remove("response_headers") {
                let headers = headers.into_iter().map(|(name, set)| {
                    (
                        name,
                        if set.is_null() {
                            Value::Bool(false)
                        } else {
                            set
                        },
                    )
                });
                response.insert("headers".into(), Value::Object(headers.collect()));
            }
            if let Some(pristine) = map.remove("response_pristine") {
                response.insert("pristine".into(), pristine);
            }
            if !response.is_empty() {
                map.insert("response".into(), Value::Object(response));
            }
            map.values_mut().for_each(as_file_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(as_file_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// `text`'s config, saved and read back: both, and the saved text.
    fn round_trip(text: &str, path: &Path) -> Result<(AppConfig, AppConfig, String), String> {
        let loaded = super::super::parse(text, path);
        let saved = to_toml(&loaded.config).map_err(|e| format!("cannot write: {e}"))?;
        let again = super::super::parse(&saved, Path::new("saved.toml"));
        match again.report.diagnostics.first() {
            Some(d) if again.report.has_errors() => Err(format!("{}\n{saved}", d.message)),
            _ => Ok((loaded.config, again.config, saved)),
        }
    }

    #[test]
    fn what_the_model_holds_its_own_way_is_written_as_the_file_has_it() {
        let text = r#"app = "crafted"
kill_timeout = "30s"
swap_size_mb = 512
[build]
  command = "pip install -r requirements.txt"
  builtin = "python"
[env]
  WORKERS = 3
[processes]
  web = "gunicorn app:app"
  worker = "python worker.py"
[http_service]
  internal_port = 8080
  processes = ["web"]
  [http_service.http_options.response]
    pristine = true
    [http_service.http_options.response.headers]
      X-Frame-Options = "DENY"
      Server = false
[[mounts]]
  source = "data"
  destination = "/data"
  initial_size = "10gb"
[[jobs]]
  name = "nightly"
  command = "python nightly.py"
  schedule = "0 3 * * *"
"#;
        let (loaded, again, saved) = round_trip(text, Path::new("fly.toml")).unwrap();
        assert_eq!(again, loaded, "{saved}");
        // In the file's own words, not the model's.
        for key in [
            "initial_size = \"10240mb\"",
            "pristine = true",
            "Server = false",
            "builtin = ",
        ] {
            assert!(saved.contains(key), "{key} in:\n{saved}");
        }
        assert!(
            !saved.contains("extra") && !saved.contains("initial_size_mb"),
            "{saved}"
        );
    }

    #[test]
    fn sections_come_in_the_usual_order_indented_as_flyctl_writes_them() {
        let text = r#"app = "ordered"
[http_service]
internal_port = 8080
[[http_service.checks]]
path = "/health"
[processes]
web = "python3 app.py"
[env]
B = "2"
A = "1"
"#;
        let (_, _, saved) = round_trip(text, Path::new("fly.toml")).unwrap();
        let at = |needle: &str| {
            saved
                .find(needle)
                .unwrap_or_else(|| panic!("no {needle:?} in:\n{saved}"))
        };
        // The model's order: [env] and [processes] before the services, as `fly launch`
        // writes them (names within [env] sorted).
        assert!(at("\n[env]") < at("\n[processes]"), "{saved}");
        assert!(at("\n[processes]") < at("\n[http_service]"), "{saved}");
        assert!(at("A = ") < at("B = "), "{saved}");
        for line in [
            "\n  web = \"python3 app.py\"\n",
            "\n  internal_port = 8080\n",
            "\n  [[http_service.checks]]\n",
            "\n    path = \"/health\"\n",
        ] {
            at(line);
        }
        assert!(saved.starts_with("app = \"ordered\"\n"), "{saved}");
    }

    #[test]
    fn every_valid_corpus_file_reads_back_the_same_once_saved() {
        // Where the integration tests find it (`tests/common`), skipped as there without it.
        let dir = std::env::var_os("LAKEFLY_FLY_TOML_CORPUS").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/fly-toml"),
            std::path::PathBuf::from,
        );
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("skipping: no corpus at {}", dir.display());
            return;
        };
        let (mut checked, mut failures) = (0, Vec::new());
        for path in entries.flatten().map(|e| e.path()) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if super::super::parse(&text, &path).report.has_errors() {
                continue;
            }
            checked += 1;
            match round_trip(&text, &path) {
                Ok((loaded, again, _)) if loaded == again => {}
                Ok((_, _, saved)) => failures.push(format!("{}: differs\n{saved}", path.display())),
                Err(e) => failures.push(format!("{}: {e}", path.display())),
            }
        }
        assert!(checked > 50, "only {checked} corpus files were valid");
        assert!(
            failures.is_empty(),
            "{} of {checked}:\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
}
