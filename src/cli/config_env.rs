//! `lakefly config env`, as `fly config env`: the environment the app's current release
//! runs with, `[env]` (with `deploy -e` values) by value and secrets by name only.

use serde::Serialize;

use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::api::types::SecretInfo;
use crate::error::Error;
use crate::output::table::Table;

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Environment {
    /// The release whose `[env]` this is.
    release: u64,
    /// `[env]`, values as the release runs them.
    env: std::collections::BTreeMap<String, String>,
    /// The secrets, without their values.
    secrets: Vec<SecretInfo>,
}

/// Prints the current release's `[env]` and the app's secret names.
pub fn run(global: &GlobalArgs) -> Result<(), Error> {
    let out = global.output();
    let app = app_name(global)?;
    let api = client(global)?;
    let environment = block_on(async {
        let release = super::config::current_release(&api, &app).await?;
        let config = api.release_config(&app, release).await?;
        Ok(Environment {
            release,
            env: config.env,
            secrets: api.secrets(&app).await?,
        })
    })?;
    if out.json {
        return out.json(&environment);
    }
    let mut text = format!("Environment of release v{}\n", environment.release);
    if environment.env.is_empty() {
        text.push_str("(no [env])\n");
    } else {
        let mut table = Table::new(vec!["NAME", "VALUE"]);
        for (name, value) in &environment.env {
            table.row(vec![name.clone(), value.clone()]);
        }
        text.push_str(table.render().trim_end());
        text.push('\n');
    }
    text.push_str("\nSecrets (values are never shown)\n");
    if environment.secrets.is_empty() {
        text.push_str("(none)\n");
    } else {
        let mut table = Table::new(vec!["NAME", "DIGEST", "STATUS"]);
        for secret in &environment.secrets {
            table.row(vec![
                secret.name.clone(),
                secret.digest.clone().unwrap_or_else(|| "-".into()),
                secret.status.clone(),
            ]);
        }
        text.push_str(&table.render());
    }
    out.text(text.trim_end())
}
