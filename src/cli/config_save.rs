//! `lakefly config save`, as `fly config save`: the config a release runs, written as the
//! config file, for a laptop with no copy of it (or one that drifted from what runs).

use super::remote::{app_name, block_on, client, confirm};
use super::GlobalArgs;
use crate::error::Error;

/// Writes release `version`'s config (0: the current release's) to the `-c` path.
pub fn run(global: &GlobalArgs, version: u64, yes: bool) -> Result<(), Error> {
    let out = global.output();
    let path = &global.config_path();
    let app = app_name(global)?;
    let api = client(global)?;
    let (version, mut config) = block_on(async {
        let version = match version {
            0 => super::config::current_release(&api, &app).await?,
            n => n,
        };
        Ok((version, api.release_config(&app, version).await?))
    })?;
    config.app.get_or_insert_with(|| app.clone());
    let text = crate::config::save::to_toml(&config)
        .map_err(|e| Error::io("write", path, std::io::Error::other(e)))?;
    if path.exists() {
        let question = format!(
            "{} exists; overwrite it with release v{version}'s config?",
            path.display()
        );
        confirm(&question, yes)?;
    }
    let header = format!(
        "# The config release v{version} of {app} runs, as `lakefly config save` wrote it:\n\
         # comments and layout of the file it was deployed from are not kept.\n\n"
    );
    crate::atomic_write::write(path, format!("{header}{text}").as_bytes(), 0o644)?;
    if out.json {
        return out.json(&serde_json::json!({
            "path": path,
            "app": app,
            "release": version,
        }));
    }
    out.note(&format!(
        "wrote {} from release v{version} of {app}",
        path.display()
    ));
    Ok(())
}
