//! Looking at a directory to learn how its app runs: a `Procfile`, a `package.json` start
//! script, a Python project (`python.rs`), a Ruby one (`ruby.rs`), a Go module or Rust
//! package (`compiled.rs`), a `Dockerfile`, or a static site (an `index.html`).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::error::Error;

/// What `launch` learned about an app directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Process groups: name to command.
    pub processes: BTreeMap<String, String>,
    /// The group that serves HTTP, if one does.
    pub http_group: Option<String>,
    /// Port the app listens on when it does not read `$PORT`.
    pub internal_port: u16,
    /// `[build] command` to run once per release.
    pub build_command: Option<String>,
    /// `[deploy] release_command`: a Procfile's `release` line, as Heroku runs it once
    /// per release rather than as a process.
    pub release_command: Option<String>,
    /// A Dockerfile whose final stage says what runs.
    pub dockerfile: Option<String>,
    /// `[env]` settings the kind of app expects in production.
    pub env: BTreeMap<String, String>,
    /// What the plan was derived from, for the file's comments and the user.
    pub sources: Vec<String>,
    /// Secrets the app needs whose values are in files of the directory that stay out of
    /// the bundle (Rails' `config/master.key`): name and path relative to the directory.
    pub secret_files: BTreeMap<String, String>,
    /// Ignore patterns (`.lakeflyignore`) for what must stay out of the bundle: what the
    /// build makes in the release itself (`node_modules/`, `/.venv/`), whose developer's
    /// copies need not be uploaded and may not work on the host (links into their own
    /// Python, binaries for another system), and files whose value becomes a secret.
    pub left_out: Vec<&'static str>,
    /// `[[statics]]` the edge serves itself: `guest_path` and `url_prefix`.
    pub statics: Vec<(&'static str, &'static str)>,
}

impl Plan {
    /// Makes `command` the build command, and `made` what it makes in the release, unless
    /// a build command was chosen already.
    pub(super) fn builds(&mut self, command: impl FnOnce() -> String, made: &[&'static str]) {
        if self.build_command.is_none() {
            self.build_command = Some(command());
            self.left_out.extend_from_slice(made);
        }
    }
}

/// The port lakefly maps `$PORT` onto when nothing says otherwise (Fly's default).
const DEFAULT_PORT: u16 = 8080;

/// Inspects `dir`; files that are present but unreadable are errors, absent ones are not.
pub fn detect(dir: &Path) -> Result<Plan, Error> {
    let mut plan = Plan {
        internal_port: DEFAULT_PORT,
        ..Plan::default()
    };
    if let Some(text) = read_optional(&dir.join("Procfile"))? {
        plan.sources.push("Procfile".into());
        for (name, command) in procfile(&text) {
            if name == "release" {
                plan.release_command = Some(command);
            } else {
                plan.processes.insert(name, command);
            }
        }
        if plan.processes.contains_key("web") {
            plan.http_group = Some("web".into());
        }
    }
    if let Some(text) = read_optional(&dir.join("package.json"))? {
        let scripts = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("scripts").cloned());
        let has = |name: &str| scripts.as_ref().and_then(|s| s.get(name)).is_some();
        plan.sources.push("package.json".into());
        let lockfile = dir.join("package-lock.json").exists();
        // As Fly's Node Dockerfile and Heroku run Node: in production, with the dev
        // dependencies a build step needs installed all the same.
        let install = if lockfile { "npm ci" } else { "npm install" };
        plan.builds(
            || match has("build") {
                true => format!("{install} --include=dev && npm run build"),
                false => install.to_string(),
            },
            &["node_modules/"],
        );
        plan.env.insert("NODE_ENV".into(), "production".into());
        if plan.processes.is_empty() && has("start") {
            plan.processes.insert("app".into(), "npm start".into());
            plan.http_group = Some("app".into());
        }
    }
    super::python::detect(dir, &mut plan)?;
    super::ruby::detect(dir, &mut plan)?;
    super::compiled::go(dir, &mut plan)?;
    super::compiled::rust(dir, &mut plan)?;
    if let Some(text) = read_optional(&dir.join("Dockerfile"))? {
        plan.sources.push("Dockerfile".into());
        if let Some(port) = dockerfile_expose(&text) {
            plan.internal_port = port;
        }
        if plan.processes.is_empty() {
            plan.dockerfile = Some("Dockerfile".into());
            plan.http_group = Some(crate::config::model::DEFAULT_GROUP.into());
        }
    }
    if plan.processes.is_empty() && plan.dockerfile.is_none() {
        super::python::script(dir, &mut plan)?;
    }
    if plan.processes.is_empty() && plan.dockerfile.is_none() && dir.join("index.html").is_file() {
        static_site(&mut plan);
    }
    Ok(plan)
}

/// A directory of files to serve, as `fly launch` takes one with an `index.html`: the
/// edge serves them itself (`[[statics]]`), and a small file server on `$PORT` answers
/// the health check and whatever is not a file.
fn static_site(plan: &mut Plan) {
    plan.sources.push("index.html, a static site".into());
    let group = crate::config::model::DEFAULT_GROUP;
    plan.processes.insert(
        group.into(),
        "python3 -m http.server $PORT --bind 127.0.0.1".into(),
    );
    plan.http_group = Some(group.into());
    plan.statics.push(("/", "/"));
}

/// A file's text, `None` when it does not exist.
pub(super) fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// `name: command` lines; comments and blank lines are skipped.
fn procfile(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, command)| (name.trim().to_string(), command.trim().to_string()))
        .filter(|(name, command)| {
            crate::config::names::check_group_name(name).is_ok() && !command.is_empty()
        })
        .collect()
}

/// The first port of the final stage's last `EXPOSE`.
fn dockerfile_expose(text: &str) -> Option<u16> {
    let lines: Vec<&str> = text.lines().collect();
    let stage_start = lines
        .iter()
        .rposition(|l| l.trim_start().to_ascii_uppercase().starts_with("FROM "))
        .unwrap_or(0);
    lines[stage_start..]
        .iter()
        .filter_map(|l| {
            let l = l.trim();
            let (instr, rest) = l.split_once(char::is_whitespace)?;
            instr.eq_ignore_ascii_case("EXPOSE").then_some(rest)
        })
        .next_back()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
}

#[cfg(test)]
mod tests {
    use crate::launch::plan_for;

    #[test]
    fn procfile_types_become_groups_and_web_serves_http() {
        let plan = plan_for(&[(
            "Procfile",
            "# comment\nweb: gunicorn app:app\nworker: celery -A app worker\nrelease: python manage.py migrate\n\n",
        )]);
        assert_eq!(plan.processes["web"], "gunicorn app:app");
        assert_eq!(plan.processes["worker"], "celery -A app worker");
        assert_eq!(plan.http_group.as_deref(), Some("web"));
        // Heroku runs `release` once per release, not as a process.
        assert!(!plan.processes.contains_key("release"));
        assert_eq!(
            plan.release_command.as_deref(),
            Some("python manage.py migrate")
        );
    }

    #[test]
    fn node_start_script_and_build() {
        let plan = plan_for(&[
            (
                "package.json",
                r#"{"scripts": {"start": "node server.js", "build": "tsc"}}"#,
            ),
            ("package-lock.json", "{}"),
        ]);
        assert_eq!(plan.processes["app"], "npm start");
        assert_eq!(
            plan.build_command.as_deref(),
            Some("npm ci --include=dev && npm run build")
        );
        assert_eq!(plan.env["NODE_ENV"], "production");
    }

    #[test]
    fn python_with_requirements() {
        let plan = plan_for(&[("requirements.txt", "flask\n"), ("app.py", "")]);
        assert_eq!(plan.processes["app"], "python3 app.py");
        assert_eq!(
            plan.build_command.as_deref(),
            Some("python3 -m venv .venv && .venv/bin/pip install -r requirements.txt")
        );
    }

    #[test]
    fn dockerfile_final_stage_port() {
        let plan = plan_for(&[(
            "Dockerfile",
            "FROM node AS build\nEXPOSE 3000\nFROM python:3.11\nEXPOSE 8001/tcp\nCMD [\"python3\", \"app.py\"]\n",
        )]);
        assert_eq!(plan.internal_port, 8001);
        assert_eq!(plan.dockerfile.as_deref(), Some("Dockerfile"));
        assert!(plan.processes.is_empty());
    }

    #[test]
    fn an_index_html_alone_is_a_static_site_and_beside_an_app_is_its_page() {
        let site = plan_for(&[("index.html", "<h1>hi</h1>"), ("style.css", "")]);
        assert_eq!(
            site.processes["app"],
            "python3 -m http.server $PORT --bind 127.0.0.1"
        );
        assert_eq!(site.http_group.as_deref(), Some("app"));
        assert_eq!(site.statics, [("/", "/")]);
        let node = plan_for(&[
            ("index.html", ""),
            (
                "package.json",
                r#"{"scripts": {"start": "node server.js"}}"#,
            ),
        ]);
        assert_eq!(node.processes["app"], "npm start");
        assert!(node.statics.is_empty());
    }

    #[test]
    fn empty_dir_finds_nothing() {
        let plan = plan_for(&[]);
        assert!(plan.processes.is_empty() && plan.dockerfile.is_none() && plan.sources.is_empty());
    }
}
