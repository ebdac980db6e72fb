//! `lakefly launch`: a commented `fly.toml` for a directory, from what is in it.

mod compiled;
pub mod detect;
pub mod lakeflyignore;
mod python;
mod ruby;

use std::fmt::Write;

pub use detect::{detect, Plan};

/// Turns a directory name into a valid app name (`My_App` → `my-app`).
pub fn app_name_from_dir(dir_name: &str) -> String {
    let mut name: String = dir_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name: String = name.trim_matches('-').chars().take(63).collect();
    let name = name.trim_end_matches('-').to_string();
    if name.is_empty() {
        "app".into()
    } else {
        name
    }
}

/// Writes the `fly.toml` text for `plan`, with comments that say where each part came from.
pub fn render(app: &str, plan: &Plan) -> String {
    let mut s = String::new();
    let from = if plan.sources.is_empty() {
        "nothing recognizable: edit [processes] below".to_string()
    } else {
        plan.sources.join(", ")
    };
    let _ = writeln!(
        s,
        "# fly.toml for {app}, written by `lakefly launch` from {from}."
    );
    let _ = writeln!(
        s,
        "# Reference: Fly.io's fly.toml format; lakefly-only keys are marked.\n"
    );
    let _ = writeln!(s, "app = {}", quote(app));
    let _ = writeln!(s, "kill_signal = \"SIGTERM\"");
    let _ = writeln!(s, "kill_timeout = \"10s\"\n");
    if plan.build_command.is_some() || plan.dockerfile.is_some() {
        let _ = writeln!(s, "[build]");
        if let Some(dockerfile) = &plan.dockerfile {
            let _ = writeln!(
                s,
                "  # The final stage's WORKDIR, COPY, ENV and CMD are applied without Docker."
            );
            let _ = writeln!(s, "  dockerfile = {}", quote(dockerfile));
        }
        if let Some(command) = &plan.build_command {
            let _ = writeln!(
                s,
                "  # lakefly extension: runs once per release, in the unpacked app."
            );
            let _ = writeln!(s, "  command = {}", quote(command));
        }
        s.push('\n');
    }
    let _ = writeln!(s, "[deploy]");
    let _ = writeln!(s, "  strategy = \"rolling\"");
    if let Some(command) = &plan.release_command {
        let _ = writeln!(
            s,
            "  # Once per release, before any machine changes; a failure stops the deploy."
        );
        let _ = writeln!(s, "  release_command = {}", quote(command));
    }
    s.push('\n');
    let _ = writeln!(s, "[env]");
    let _ = writeln!(
        s,
        "  # Plain settings; use `lakefly secrets set` for credentials."
    );
    for (name, value) in &plan.env {
        let _ = writeln!(s, "  {name} = {}", quote(value));
    }
    s.push('\n');
    if !plan.processes.is_empty() {
        let _ = writeln!(s, "[processes]");
        for (name, command) in &plan.processes {
            let _ = writeln!(s, "  {name} = {}", quote(command));
        }
        s.push('\n');
    } else if plan.dockerfile.is_none() {
        let _ = writeln!(s, "[processes]");
        let _ = writeln!(
            s,
            "  # Nothing told lakefly how to start the app: write its command here."
        );
        let _ = writeln!(s, "  app = \"./start.sh\"\n");
    }
    if let Some(group) = &plan.http_group {
        let _ = writeln!(s, "[http_service]");
        let _ = writeln!(
            s,
            "  # The app should listen on $PORT; lakefly maps internal_port onto it."
        );
        let _ = writeln!(s, "  internal_port = {}", plan.internal_port);
        let _ = writeln!(s, "  force_https = false");
        let _ = writeln!(s, "  auto_stop_machines = \"off\"");
        let _ = writeln!(s, "  auto_start_machines = true");
        let _ = writeln!(s, "  min_machines_running = 1");
        let _ = writeln!(s, "  processes = [{}]\n", quote(group));
        let _ = writeln!(s, "  [[http_service.checks]]");
        let _ = writeln!(s, "    grace_period = \"10s\"");
        let _ = writeln!(s, "    interval = \"15s\"");
        let _ = writeln!(s, "    timeout = \"2s\"");
        let _ = writeln!(s, "    method = \"GET\"");
        let _ = writeln!(s, "    path = \"/\"\n");
    }
    for (guest_path, url_prefix) in &plan.statics {
        let _ = writeln!(s, "[[statics]]");
        let _ = writeln!(
            s,
            "  # Served by lakefly's edge from the release's files; the app answers the rest."
        );
        let _ = writeln!(s, "  guest_path = {}", quote(guest_path));
        let _ = writeln!(s, "  url_prefix = {}\n", quote(url_prefix));
    }
    let _ = writeln!(s, "[[restart]]");
    let _ = writeln!(s, "  policy = \"on-failure\"");
    let _ = writeln!(s, "  max_retries = 10");
    s
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml_edit::Value::from(s).to_string()
}

/// What `detect` makes of a directory holding `files` (paths with their text), for tests.
#[cfg(test)]
fn plan_for(files: &[(&str, &str)]) -> Plan {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    detect(dir.path()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_become_app_names() {
        assert_eq!(app_name_from_dir("My_App"), "my-app");
        assert_eq!(app_name_from_dir("--x--y--"), "x-y");
        assert_eq!(app_name_from_dir("___"), "app");
        assert_eq!(app_name_from_dir(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn every_rendered_plan_is_valid_without_warnings() {
        let mut plans = vec![Plan::default()];
        let mut full = Plan {
            internal_port: 8080,
            build_command: Some(
                "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt".into(),
            ),
            http_group: Some("web".into()),
            sources: vec!["Procfile".into()],
            release_command: Some("python3 manage.py migrate".into()),
            env: [("NODE_ENV".to_string(), "production".to_string())].into(),
            ..Plan::default()
        };
        full.processes
            .insert("web".into(), "gunicorn -b 0.0.0.0:$PORT app:app".into());
        full.processes
            .insert("worker".into(), "python3 worker.py".into());
        plans.push(full);
        plans.push(plan_for(&[("index.html", "<h1>hi</h1>")]));
        plans.push(plan_for(&[("main.py", "import os\nos.environ['PORT']\n")]));
        plans.push(plan_for(&[("main.py", "print('working')\n")]));
        plans.push(Plan {
            internal_port: 3000,
            dockerfile: Some("Dockerfile".into()),
            http_group: Some("app".into()),
            ..Plan::default()
        });
        for plan in plans {
            let text = render("demo", &plan);
            let loaded = crate::config::parse(&text, std::path::Path::new("fly.toml"));
            assert!(
                loaded.report.diagnostics.is_empty(),
                "{text}\n{:?}",
                loaded.report
            );
        }
    }
}
