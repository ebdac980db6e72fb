//! `lakefly config validate | show | env | get | set | unset`.

use std::collections::BTreeSet;
use std::path::Path;

use clap::{Args, Subcommand};
use serde::Serialize;
use toml_edit::Item;

use super::GlobalArgs;
use crate::config::edit::{self, Editor, SetOutcome};
use crate::config::keypath::{KeyPath, Segment};
use crate::config::{self, Diagnostic, Report, Severity};
use crate::error::Error;
use crate::output::{self, Output};

/// Validate, show and edit fly.toml.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lakefly config validate --strict\n  lakefly config show --json\n  lakefly config get http_service.internal_port\n  lakefly config set http_service.internal_port=8080 kill_signal=SIGTERM\n  lakefly config unset deploy.release_command"
)]
pub struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// Config commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the config; exit 3 when it has errors.
    #[command(
        after_help = "Examples:\n  lakefly config validate\n  lakefly config validate --strict -c fly.production.toml"
    )]
    Validate {
        /// Treat warnings and lakefly extensions as errors (`-s`, as flyctl's).
        #[arg(short = 's', long)]
        strict: bool,
    },
    /// Print the normalized config, as the daemon reads it (JSON); with --release, the one
    /// a release runs.
    #[command(
        after_help = "Examples:\n  lakefly config show\n  lakefly config show -c fly.staging.toml | jq .services\n  lakefly config show --release          # what the current release runs\n  lakefly config show --release 3 | jq .vm"
    )]
    Show {
        /// Show the config release VERSION runs (default: the current one) instead of the
        /// file: with `deploy -e` values and sizes `scale` set.
        #[arg(
            long,
            value_name = "VERSION",
            num_args = 0..=1,
            default_missing_value = "0",
            value_parser = super::releases::version_arg
        )]
        release: Option<u64>,
        /// Print it as fly.toml (the normalized config, as `config save` writes it)
        /// instead of JSON, as flyctl's.
        #[arg(long)]
        toml: bool,
        /// flyctl's, for the file rather than the deployed config: what `config show`
        /// shows without --release.
        #[arg(long, hide = true, conflicts_with = "release")]
        local: bool,
        /// flyctl's YAML: refused, with the forms there are.
        #[arg(long, hide = true, conflicts_with = "toml")]
        yaml: bool,
    },
    /// Write the config a release runs into the config file (as `fly config save`);
    /// comments and layout are not kept.
    #[command(
        after_help = "What the release runs includes `deploy -e` values (in [env]) and the sizes `scale`\nset; never a secret. An existing file is overwritten only once confirmed (--yes).\n\nExamples:\n  lakefly config save -a hello\n  lakefly config save -a hello -c fly.production.toml --release 3 --yes"
    )]
    Save {
        /// Save the config release VERSION runs (default: the current one).
        #[arg(
            long,
            value_name = "VERSION",
            default_value_t = 0,
            hide_default_value = true,
            value_parser = super::releases::version_arg
        )]
        release: u64,
        /// Overwrite an existing file without asking.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Show the environment the app's current release runs with: `[env]` (with `deploy
    /// -e` values) and its secrets, by name only.
    #[command(
        after_help = "Machines also get $PORT, FLY_APP_NAME, FLY_MACHINE_ID (and FLY_ALLOC_ID), \
FLY_PROCESS_GROUP, PRIMARY_REGION and FLY_REGION (both primary_region), FLY_VM_MEMORY_MB \
([[vm]] memory), the LAKEFLY_* variables, and a Dockerfile's ENV where fly.toml does not \
set the name.\n\nExamples:\n  \
lakefly config env\n  lakefly config env -a hello --json | jq .env"
    )]
    Env,
    /// Print the value of one key as the file writes it.
    #[command(
        after_help = "Examples:\n  lakefly config get app\n  lakefly config get services[0].ports[0].port\n  lakefly config get env.\"DOTTED.NAME\""
    )]
    Get {
        /// Dotted key, e.g. http_service.internal_port.
        key: String,
    },
    /// Set keys, keeping every comment and all other formatting.
    #[command(
        after_help = "A VALUE that is valid TOML (8080, true, \"x\", [\"a\", \"b\"]) is stored as that\nvalue; anything else is stored as a string. --string always stores a string.\n\nExamples:\n  lakefly config set http_service.internal_port=8080\n  lakefly config set deploy.strategy=canary kill_timeout=\"30s\"\n  lakefly config set --string env.VERSION=1.10"
    )]
    Set {
        /// KEY=VALUE pairs.
        #[arg(required = true, value_name = "KEY=VALUE")]
        assignments: Vec<String>,
        /// Store every VALUE as a string, even when it reads as a number or boolean.
        #[arg(long)]
        string: bool,
    },
    /// Remove keys; a dotted or inline table left empty goes too (a `[header]` stays).
    #[command(
        after_help = "Examples:\n  lakefly config unset deploy.release_command\n  lakefly config unset env.DEBUG env.TRACE"
    )]
    Unset {
        /// Dotted keys.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
}

/// Runs a config command.
pub fn run(global: &GlobalArgs, args: ConfigArgs) -> Result<(), Error> {
    let out = global.output();
    let path = &global.config_path();
    match args.command {
        ConfigCommand::Validate { strict } => validate(out, path, strict),
        ConfigCommand::Show { yaml: true, .. } => Err(Error::BadFlag {
            flag: "--yaml",
            message: "is not a form lakefly prints".into(),
            hint: "`config show` prints JSON, or fly.toml's TOML with --toml".into(),
        }),
        ConfigCommand::Show {
            release: None,
            toml,
            ..
        } => show(out, path, global.app.as_deref(), toml),
        ConfigCommand::Show {
            release: Some(version),
            toml,
            ..
        } => show_release(out, global, version, toml),
        ConfigCommand::Env => super::config_env::run(global),
        ConfigCommand::Save { release, yes } => super::config_save::run(global, release, yes),
        ConfigCommand::Get { key } => get(out, path, &key),
        ConfigCommand::Set {
            assignments,
            string,
        } => {
            let edits = assignments
                .iter()
                .map(|a| parse_assignment(a, string))
                .collect::<Result<Vec<_>, _>>()?;
            apply(out, path, Change::Set(edits))
        }
        ConfigCommand::Unset { keys } => {
            let keys = keys
                .iter()
                .map(|k| parse_key(k))
                .collect::<Result<Vec<_>, _>>()?;
            apply(out, path, Change::Unset(keys))
        }
    }
}

/// The `--json` output of `config validate`.
#[derive(Debug, Serialize)]
struct ValidateJson<'a> {
    file: &'a Path,
    valid: bool,
    errors: usize,
    warnings: usize,
    diagnostics: &'a [config::Diagnostic],
}

fn validate(out: Output, path: &Path, strict: bool) -> Result<(), Error> {
    let loaded = config::load(path)?;
    let mut report = loaded.report;
    // What `deploy` from the file's directory would refuse: a group with nothing to run.
    // A warning, once the file has no error: it is valid, and may be deployed from where
    // its Dockerfile is.
    let dir = config::app_dir(path);
    let runnable = config::plan::runnable(&loaded.config, dir);
    if let (false, config::plan::Runnable::Nothing { group, why }) = (report.has_errors(), runnable)
    {
        report.diagnostics.push(Diagnostic {
            severity: Severity::Warning,
            key: match why {
                config::plan::NothingToRun::DockerfileMissing { .. } => "build.dockerfile",
                _ => "processes",
            }
            .to_string(),
            message: format!(
                "`lakefly deploy` from {} would refuse this: nothing says what process group {group:?} runs: {why}",
                dir.display()
            ),
            hint: Some(config::plan::runnable_hint(&group, path, &why)),
            position: None,
            snippet: None,
        });
    }
    if strict {
        report.diagnostics.extend(loaded.extensions);
        report.escalate_warnings();
        report.sort();
    }
    let errors = report.errors().count();
    let warnings = report.warnings().count();
    if out.json {
        out.json(&ValidateJson {
            file: path,
            valid: errors == 0,
            errors,
            warnings,
            diagnostics: &report.diagnostics,
        })?;
    }
    if errors > 0 {
        return Err(Error::InvalidConfig(Box::new(report)));
    }
    if !out.json {
        print_warnings(out, &report);
        let summary = match warnings {
            0 => format!("{} is valid", path.display()),
            1 => format!("{} is valid, with 1 warning", path.display()),
            n => format!("{} is valid, with {n} warnings", path.display()),
        };
        out.text(&summary)?;
    }
    Ok(())
}

fn print_warnings(out: Output, report: &Report) {
    if report.warnings().next().is_some() {
        let rendered = output::error::render_report(report);
        out.note(rendered.trim_end());
    }
}

fn show(out: Output, path: &Path, app: Option<&str>, toml: bool) -> Result<(), Error> {
    let (mut cfg, report) = config::load(path)?.into_valid()?;
    if !out.json {
        print_warnings(out, &report);
    }
    if let Some(app) = app {
        cfg.app = Some(app.to_string());
    }
    print_config(out, &cfg, toml)
}

/// `config` as JSON, or with `toml` as fly.toml's TOML (not under `--json`, whose
/// stdout is JSON).
fn print_config(out: Output, config: &config::AppConfig, toml: bool) -> Result<(), Error> {
    if !toml || out.json {
        return out.json(config);
    }
    let text = crate::config::save::to_toml(config).map_err(|e| Error::BadFlag {
        flag: "--toml",
        message: format!("cannot write this config as TOML: {e}"),
        hint: "show it as JSON (without --toml)".into(),
    })?;
    out.text(text.trim_end())
}

/// The config release `version` of the app runs (0: the current release).
fn show_release(out: Output, global: &GlobalArgs, version: u64, toml: bool) -> Result<(), Error> {
    let app = super::remote::app_name(global)?;
    let api = super::remote::client(global)?;
    let config = super::remote::block_on(async {
        let version = match version {
            0 => current_release(&api, &app).await?,
            n => n,
        };
        Ok(api.release_config(&app, version).await?)
    })?;
    print_config(out, &config, toml)
}

/// The version of `app`'s current release (or the one rolling out when none is yet).
pub(super) async fn current_release(
    api: &crate::api::client::Client,
    app: &str,
) -> Result<u64, Error> {
    match api.status(app).await?.release {
        Some(release) => Ok(release.version),
        None => Err(Error::NoRelease {
            app: app.to_string(),
        }),
    }
}

fn get(out: Output, path: &Path, key: &str) -> Result<(), Error> {
    let key_path = parse_key(key)?;
    let text = config::read(path)?;
    let editor = open_editor(&text, path)?;
    let item = editor
        .get(&key_path)
        .map_err(|source| Error::Edit {
            key: key.to_string(),
            source,
        })?
        .filter(|item| !item.is_none())
        .ok_or_else(|| Error::KeyNotSet {
            key: key_path.to_string(),
            file: path.to_path_buf(),
        })?;
    if out.json {
        return out.json(&config::decode::reader::to_json(item));
    }
    if let Some(fragment) = table_fragment(&key_path, item) {
        return out.text(fragment.trim_end());
    }
    out.text(&item_text(item))
}

/// A `[table]` as fly.toml holds it, header and sub-tables (`[[http_service.checks]]`)
/// included, when it is reached by keys alone.
fn table_fragment(key_path: &KeyPath, item: &Item) -> Option<String> {
    let Item::Table(table) = item else {
        return None;
    };
    let mut keys = Vec::new();
    for segment in key_path.segments() {
        match segment {
            Segment::Key(key) => keys.push(key.as_str()),
            Segment::Index(_) => return None,
        }
    }
    let (last, parents) = keys.split_last()?;
    let mut root = toml_edit::Table::new();
    let mut at = &mut root;
    for key in parents {
        let mut parent = toml_edit::Table::new();
        parent.set_implicit(true);
        at = at
            .entry(key)
            .or_insert(Item::Table(parent))
            .as_table_mut()?;
    }
    let mut table = table.clone();
    // Dotted keys in the file (`deploy.strategy = ...`) read best under a header here.
    table.set_dotted(false);
    table.decor_mut().clear();
    at.insert(last, Item::Table(table));
    Some(toml_edit::DocumentMut::from(root).to_string())
}

/// How `config get` prints a value for people: strings bare, everything else as TOML.
fn item_text(item: &Item) -> String {
    match item {
        Item::Value(toml_edit::Value::String(s)) => s.value().clone(),
        Item::Value(v) => {
            let mut v = v.clone();
            v.decor_mut().clear();
            v.to_string()
        }
        Item::Table(t) => t.to_string().trim_end().to_string(),
        other => other.to_string().trim().to_string(),
    }
}

fn parse_key(key: &str) -> Result<KeyPath, Error> {
    key.parse().map_err(|source| Error::InvalidKey {
        key: key.to_string(),
        source,
    })
}

fn parse_assignment(
    arg: &str,
    force_string: bool,
) -> Result<(KeyPath, String, toml_edit::Value), Error> {
    let (key, value) = arg.split_once('=').ok_or_else(|| Error::NotAnAssignment {
        arg: arg.to_string(),
    })?;
    let key_path = parse_key(key.trim())?;
    Ok((
        key_path,
        value.to_string(),
        edit::parse_value(value, force_string),
    ))
}

fn open_editor(text: &str, path: &Path) -> Result<Editor, Error> {
    Editor::parse(text).map_err(|_| {
        // The loader reports the syntax error with its line and column.
        Error::InvalidConfig(Box::new(config::parse(text, path).report))
    })
}

/// An edit requested on the command line.
enum Change {
    Set(Vec<(KeyPath, String, toml_edit::Value)>),
    Unset(Vec<KeyPath>),
}

/// What happened to one key, for `--json`.
#[derive(Debug, Serialize)]
struct KeyChange {
    key: String,
    outcome: &'static str,
}

#[derive(Debug, Serialize)]
struct EditJson<'a> {
    file: &'a Path,
    written: bool,
    changes: Vec<KeyChange>,
}

/// Whether `save_app_name` can edit the file at `path` (none there is fine): asked before
/// the app is made, so a file it cannot edit leaves no app behind.
pub(super) fn check_editable(path: &Path) -> Result<(), Error> {
    if path.exists() {
        open_editor(&config::read(path)?, path)?;
        return Ok(());
    }
    // None there: the file is written beside it, in a directory that must be one.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::io(
            "write into",
            dir,
            std::io::ErrorKind::NotADirectory.into(),
        )),
        Err(e) => Err(Error::io("write into", dir, e)),
    }
}

/// Sets the config file's `app` to `name` (`apps create --save`), as `config set` would,
/// or writes a file with only that where there is none; whether the file changed.
pub(super) fn save_app_name(path: &Path, name: &str) -> Result<bool, Error> {
    if !path.exists() {
        let text = format!("app = {}\n", toml_edit::Value::from(name));
        crate::atomic_write::write(path, text.as_bytes(), 0o644)?;
        return Ok(true);
    }
    let set = Change::Set(vec![(
        parse_key("app")?,
        name.to_string(),
        toml_edit::Value::from(name),
    )]);
    let (_, written) = edit(path, &set)?;
    Ok(written)
}

/// Applies edits, refuses them if they add errors to the config, and writes atomically.
fn apply(out: Output, path: &Path, change: Change) -> Result<(), Error> {
    let (changes, written) = edit(path, &change)?;
    if out.json {
        return out.json(&EditJson {
            file: path,
            written,
            changes,
        });
    }
    for c in &changes {
        let line = match (c.outcome, &change) {
            ("added" | "changed", Change::Set(edits)) => {
                let shown = edits
                    .iter()
                    .find(|(k, ..)| k.to_string() == c.key)
                    .map(|(_, raw, _)| raw.as_str())
                    .unwrap_or_default();
                format!("{} {} = {shown}", c.outcome, c.key)
            }
            ("unchanged", _) => format!("{} already has that value", c.key),
            ("not set", _) => format!("{} was not set", c.key),
            (outcome, _) => format!("{outcome} {}", c.key),
        };
        out.note(&line);
    }
    if written {
        out.note(&format!("wrote {}", path.display()));
    }
    Ok(())
}

/// Applies edits to the file at `path`, refuses them if they add errors to the config,
/// and writes it atomically: what happened to each key, and whether the file changed.
fn edit(path: &Path, change: &Change) -> Result<(Vec<KeyChange>, bool), Error> {
    let text = config::read(path)?;
    let mut editor = open_editor(&text, path)?;
    let mut changes = Vec::new();
    match change {
        Change::Set(edits) => {
            for (key, _, value) in edits {
                let outcome = editor
                    .set(key, value.clone())
                    .map_err(|source| Error::Edit {
                        key: key.to_string(),
                        source,
                    })?;
                let outcome = match outcome {
                    SetOutcome::Added => "added",
                    SetOutcome::Changed => "changed",
                    SetOutcome::Unchanged => "unchanged",
                };
                changes.push(KeyChange {
                    key: key.to_string(),
                    outcome,
                });
            }
        }
        Change::Unset(keys) => {
            for key in keys {
                let removed = editor.unset(key).map_err(|source| Error::Edit {
                    key: key.to_string(),
                    source,
                })?;
                changes.push(KeyChange {
                    key: key.to_string(),
                    outcome: if removed { "removed" } else { "not set" },
                });
            }
        }
    }
    let new_text = editor.to_text();
    let written = new_text != text;
    if written {
        refuse_new_errors(&text, &new_text, path)?;
        crate::atomic_write::write(path, new_text.as_bytes(), 0o644)?;
    }
    Ok((changes, written))
}

/// Fails when `new_text` has errors that `old_text` did not, so an edit never breaks a
/// working config (and a broken one can still be fixed one key at a time).
fn refuse_new_errors(old_text: &str, new_text: &str, path: &Path) -> Result<(), Error> {
    let fingerprint = |r: &Report| -> BTreeSet<(String, String)> {
        r.errors()
            .map(|d| (d.key.clone(), d.message.clone()))
            .collect()
    };
    let before = fingerprint(&config::parse(old_text, path).report);
    let mut after = config::parse(new_text, path).report;
    after.diagnostics.retain(|d| {
        d.severity == Severity::Error && !before.contains(&(d.key.clone(), d.message.clone()))
    });
    if after.diagnostics.is_empty() {
        Ok(())
    } else {
        Err(Error::EditRefused(Box::new(after)))
    }
}
