//! A Python project: its requirements installed into the release's own virtualenv, and a
//! command for the framework it uses, as `fly launch`'s scanners choose one: Django behind
//! gunicorn (its migrations as the release command), FastAPI under uvicorn, Flask behind
//! gunicorn (else under its own `flask run`, unless the script starts its server), else
//! the entry script run as it is; a script with no requirements file at all is run as it
//! is too, when nothing else says what runs.

use std::fs;
use std::path::Path;

use super::detect::{read_optional, Plan};
use crate::error::Error;

/// Scripts an app is commonly started from, in the order they are looked for.
const ENTRY_SCRIPTS: [&str; 3] = ["app.py", "main.py", "server.py"];

/// [`crate::daemon::deploy::VENV`], as an ignore pattern at the app's root.
const VENV_IGNORED: &str = "/.venv/";

/// Adds what `dir`'s Python project needs to `plan`, if it is one.
pub(super) fn detect(dir: &Path, plan: &mut Plan) -> Result<(), Error> {
    let (source, what) = if dir.join("requirements.txt").is_file() {
        ("requirements.txt", "-r requirements.txt")
    } else if dir.join("pyproject.toml").is_file() {
        ("pyproject.toml", ".")
    } else {
        return Ok(());
    };
    let deps = read_optional(&dir.join(source))?.unwrap_or_default();
    plan.sources.push(source.into());
    // Into a virtualenv of the release's own: the host's Python may refuse installs
    // (PEP 668), and other apps and releases keep their own versions. The daemon puts
    // its `bin` first on the release's search path.
    let venv = crate::daemon::deploy::VENV;
    plan.builds(
        || format!("python3 -m venv {venv} && {venv}/bin/pip install {what}"),
        &[VENV_IGNORED, "__pycache__/"],
    );
    if !plan.processes.is_empty() {
        return Ok(());
    }
    let Some(command) = command(dir, &deps)? else {
        return Ok(());
    };
    if command.migrate {
        plan.release_command
            .get_or_insert_with(|| "python3 manage.py migrate --noinput".into());
    }
    plan.processes.insert("app".into(), command.line);
    plan.http_group = Some("app".into());
    Ok(())
}

/// A script of the standard library alone, with no requirements file (as this
/// repository's examples are): run as it is, when nothing else said what runs. It serves
/// HTTP when it reads `$PORT`; otherwise it is a worker, with no `[http_service]`.
pub(super) fn script(dir: &Path, plan: &mut Plan) -> Result<(), Error> {
    for script in ENTRY_SCRIPTS {
        let Some(text) = read_optional(&dir.join(script))? else {
            continue;
        };
        let group = crate::config::model::DEFAULT_GROUP;
        plan.sources.push(format!("{script}, a Python script"));
        plan.processes
            .insert(group.into(), format!("python3 {script}"));
        if text.contains("PORT") {
            plan.http_group = Some(group.into());
        }
        plan.left_out.push("__pycache__/");
        return Ok(());
    }
    Ok(())
}

/// How the app is started.
struct Command {
    line: String,
    /// Whether it is a Django project, whose migrations run once per release.
    migrate: bool,
}

fn command(dir: &Path, deps: &str) -> Result<Option<Command>, Error> {
    let has = |name: &str| depends_on(deps, name);
    let bind = "127.0.0.1:$PORT";
    if has("django") && dir.join("manage.py").is_file() {
        let line = match (has("gunicorn"), django_project(dir)?) {
            (true, Some(project)) => format!("gunicorn --bind {bind} {project}.wsgi"),
            _ => format!("python3 manage.py runserver {bind} --noreload"),
        };
        return Ok(Some(Command {
            line,
            migrate: true,
        }));
    }
    for script in ENTRY_SCRIPTS {
        let path = dir.join(script);
        let Some(text) = read_optional(&path)? else {
            continue;
        };
        let module = script.trim_end_matches(".py");
        let line = if let (true, Some(app)) = (has("uvicorn"), assigned(&text, "FastAPI(")) {
            format!("uvicorn {module}:{app} --host 127.0.0.1 --port $PORT")
        } else if let (true, Some(app)) = (has("gunicorn"), assigned(&text, "Flask(")) {
            format!("gunicorn --bind {bind} {module}:{app}")
        } else if let (true, Some(app), false) = (
            has("flask"),
            assigned(&text, "Flask("),
            text.contains(".run("),
        ) {
            // A Flask app whose script never starts a server (`app.run()`): Flask's own
            // command serves it; run as a script it would exit at once.
            format!("flask --app {module}:{app} run --host 127.0.0.1 --port $PORT")
        } else {
            format!("python3 {script}")
        };
        return Ok(Some(Command {
            line,
            migrate: false,
        }));
    }
    Ok(None)
}

/// Whether a requirements file or `pyproject.toml` names `package` (a requirement starts
/// with it, then a version, extras, a marker or nothing).
fn depends_on(deps: &str, package: &str) -> bool {
    deps.split(|c: char| c.is_whitespace() || "\"',[]".contains(c))
        .map(str::to_ascii_lowercase)
        .any(|token| {
            token.strip_prefix(package).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(['=', '<', '>', '!', '~', ';'])
            })
        })
}

/// The name a line of `text` binds to a call of `constructor` (`app = Flask(__name__)`).
fn assigned(text: &str, constructor: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        let name = name.trim();
        let valid = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        (valid && value.trim_start().starts_with(constructor)).then(|| name.to_string())
    })
}

/// The Django project package: the directory beside `manage.py` that holds `wsgi.py`.
fn django_project(dir: &Path) -> Result<Option<String>, Error> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io("read", dir, e))?;
    Ok(entries
        .flatten()
        .filter(|entry| entry.path().join("wsgi.py").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .min())
}

#[cfg(test)]
mod tests {
    use crate::launch::plan_for;

    #[test]
    fn django_runs_behind_gunicorn_and_migrates_once_per_release() {
        let plan = plan_for(&[
            ("requirements.txt", "Django>=5.0,<6\ngunicorn==22.0.0\n"),
            ("manage.py", ""),
            ("shop/wsgi.py", ""),
        ]);
        assert_eq!(
            plan.processes["app"],
            "gunicorn --bind 127.0.0.1:$PORT shop.wsgi"
        );
        assert_eq!(
            plan.release_command.as_deref(),
            Some("python3 manage.py migrate --noinput")
        );
    }

    #[test]
    fn fastapi_and_flask_run_under_their_servers_and_a_script_as_it_is() {
        let fastapi = plan_for(&[
            (
                "pyproject.toml",
                "[project]\ndependencies = [\"fastapi\", \"uvicorn[standard]>=0.30\"]\n",
            ),
            ("main.py", "from fastapi import FastAPI\napi = FastAPI()\n"),
        ]);
        assert_eq!(
            fastapi.processes["app"],
            "uvicorn main:api --host 127.0.0.1 --port $PORT"
        );
        let flask = plan_for(&[
            ("requirements.txt", "flask\ngunicorn\n"),
            ("app.py", "from flask import Flask\napp = Flask(__name__)\n"),
        ]);
        assert_eq!(
            flask.processes["app"],
            "gunicorn --bind 127.0.0.1:$PORT app:app"
        );
        // Without gunicorn, Flask's own server, as the script starts it.
        let script = plan_for(&[
            ("requirements.txt", "flask-cors\n"),
            ("app.py", "app = Flask(__name__)\n"),
        ]);
        assert_eq!(script.processes["app"], "python3 app.py");
        assert_eq!(script.release_command, None);
        // Flask without gunicorn: `flask run`, unless the script runs the server itself.
        let bare = plan_for(&[
            (
                "requirements.txt",
                "flask==3.0.0
",
            ),
            (
                "app.py",
                "from flask import Flask
web = Flask(__name__)
",
            ),
        ]);
        assert_eq!(
            bare.processes["app"],
            "flask --app app:web run --host 127.0.0.1 --port $PORT"
        );
        let runs_itself = plan_for(&[
            (
                "requirements.txt",
                "flask==3.0.0
",
            ),
            (
                "app.py",
                "app = Flask(__name__)
if __name__ == \"__main__\":\n    app.run(port=int(os.environ[\"PORT\"]))\n",
            ),
        ]);
        assert_eq!(runs_itself.processes["app"], "python3 app.py");
    }

    #[test]
    fn a_script_with_no_requirements_runs_as_it_is_serving_http_when_it_reads_port() {
        let server = plan_for(&[(
            "main.py",
            "import http.server, os\nport = int(os.environ[\"PORT\"])\n",
        )]);
        assert_eq!(server.processes["app"], "python3 main.py");
        assert_eq!(server.http_group.as_deref(), Some("app"));
        assert_eq!(server.build_command, None);
        assert!(server.left_out.contains(&"__pycache__/"));
        let worker = plan_for(&[("server.py", "while True:\n    work()\n")]);
        assert_eq!(worker.processes["app"], "python3 server.py");
        assert_eq!(worker.http_group, None);
        // What runs is said elsewhere: a Dockerfile, a Procfile.
        let docker = plan_for(&[("main.py", "PORT"), ("Dockerfile", "FROM python:3.12\n")]);
        assert!(docker.processes.is_empty() && docker.dockerfile.is_some());
        let procfile = plan_for(&[("main.py", "PORT"), ("Procfile", "web: python3 -m web\n")]);
        assert_eq!(
            procfile.processes.values().collect::<Vec<_>>(),
            ["python3 -m web"]
        );
    }
}
