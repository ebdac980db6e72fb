//! `lakefly launch` end to end: a Rails app's `config/master.key` becomes, as `fly launch`
//! makes it, the app's `RAILS_MASTER_KEY` secret (staged, so the first release applies
//! it), its value never printed; a Python app's own virtualenv stays home; a directory of
//! web pages is served as a static site; `--no-deploy` creates the app, as flyctl does, and
//! an app another project runs is not launched over.

mod common;

use common::daemon::TestDaemon;
use common::files::app_with;

const KEY: &str = "5f2c0ffee5f2c0ffee5f2c0ffee5f2c0";

fn rails_app(root: &std::path::Path) -> std::path::PathBuf {
    app_with(
        root,
        "shop",
        &[
            ("Gemfile", "gem \"rails\"\n"),
            (".gitignore", "/config/master.key\n"),
        ],
    );
    let app = root.join("shop");
    for (file, text) in [
        ("bin/rails", "#!/bin/sh\n"),
        ("config/application.rb", ""),
        ("config/master.key", &format!("{KEY}\n")),
    ] {
        let path = app.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    app
}

#[test]
fn a_rails_master_key_becomes_the_apps_secret() {
    let d = TestDaemon::start();
    let root = tempfile::tempdir().unwrap();
    let app = rails_app(root.path());

    // Without a deploy: the way to set it is said.
    let run = common::lakefly(
        &app,
        &[
            "--remote",
            &d.api,
            "launch",
            "--name",
            "shop",
            "--no-deploy",
        ],
    )
    .expect_code(0);
    assert!(
        run.stderr.contains(
            "RAILS_MASTER_KEY must be a secret: `lakefly secrets set RAILS_MASTER_KEY=- < config/master.key`"
        ),
        "{}",
        run.stderr
    );

    // With one: staged before the release starts (which fails here, with no Ruby to
    // build with, or runs on a host that has one); the release applies it either way.
    let run = common::lakefly(
        &app,
        &["--remote", &d.api, "launch", "--name", "shop", "--force"],
    );
    assert!(
        run.stderr
            .contains("staged RAILS_MASTER_KEY from config/master.key as secret"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(KEY) && !run.stdout.contains(KEY));
    // The .gitignore keeps it out of the bundle here; the file launch writes would too.
    let ignore = std::fs::read_to_string(app.join(".lakeflyignore")).unwrap();
    assert!(ignore.contains("\n/config/master.key\n"), "{ignore}");
    let secrets = common::lakefly(
        &app,
        &[
            "--remote", &d.api, "secrets", "list", "-a", "shop", "--json",
        ],
    )
    .expect_code(0)
    .json();
    let listed = secrets.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{secrets}");
    assert_eq!(listed[0]["name"], "RAILS_MASTER_KEY");
    assert_eq!(listed[0]["status"], "deployed", "{secrets}");
    assert!(!secrets.to_string().contains(KEY));
}

#[test]
fn a_python_apps_own_virtualenv_stays_out_of_the_bundle_and_the_release_makes_its_own() {
    let d = TestDaemon::start();
    let root = tempfile::tempdir().unwrap();
    let server = "import http.server, os\nhttp.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), http.server.SimpleHTTPRequestHandler).serve_forever()\n";
    let app = app_with(
        root.path(),
        "py",
        &[("requirements.txt", ""), ("app.py", server)],
    );
    // A developer's virtualenv, which links to their own Python by an absolute path: no
    // bundle may carry that link, and the host would not have that Python anyway.
    let venv = std::process::Command::new("python3")
        .args(["-m", "venv", "--without-pip", ".venv"])
        .current_dir(&app)
        .status()
        .unwrap();
    assert!(venv.success());
    std::fs::write(app.join(".venv/mine"), "the developer's").unwrap();

    let run = common::lakefly(&app, &["--remote", &d.api, "launch", "--name", "py"]).expect_code(0);
    assert!(
        run.stderr.contains(
            "added /.venv/, __pycache__/ to .lakeflyignore: uploads leave them out (the build makes them on the host)"
        ) && run.stderr.contains("release v1 is live"),
        "{}",
        run.stderr
    );
    let ignore = std::fs::read_to_string(app.join(".lakeflyignore")).unwrap();
    assert!(ignore.ends_with("\n/.venv/\n__pycache__/\n"), "{ignore}");
    // The release's virtualenv is the one its build made.
    let release = d.state.join("releases/py/1");
    assert!(release.join(".venv/bin/python3").exists());
    assert!(!release.join(".venv/mine").exists());

    // A second launch finds the patterns there and adds nothing.
    let run = common::lakefly(
        &app,
        &[
            "--remote",
            &d.api,
            "launch",
            "--name",
            "py",
            "--force",
            "--no-deploy",
        ],
    )
    .expect_code(0);
    assert!(!run.stderr.contains(".lakeflyignore"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(app.join(".lakeflyignore")).unwrap(),
        ignore
    );
}

/// A directory of web pages, as `fly launch` takes one: it is served at the app's address,
/// each file by the edge itself, with a small server behind it for the health check.
#[test]
fn a_directory_with_an_index_html_is_launched_as_a_static_site() {
    let d = TestDaemon::start();
    let root = tempfile::tempdir().unwrap();
    let site = static_site(root.path());
    std::fs::create_dir(site.join("css")).unwrap();
    std::fs::write(site.join("css/site.css"), "h1 { color: teal }\n").unwrap();
    let run =
        common::lakefly(&site, &["--remote", &d.api, "launch", "--name", "site"]).expect_code(0);
    assert!(run.stderr.contains("release v1 is live"), "{}", run.stderr);
    let config = std::fs::read_to_string(site.join("fly.toml")).unwrap();
    assert!(config.contains("[[statics]]"), "{config}");

    let (status, kind, body) = get_from_edge(&d, "/");
    assert_eq!((status, body.as_str()), (200, "<h1>the site</h1>\n"));
    assert!(kind.starts_with("text/html"), "{kind}");
    let (status, kind, _) = get_from_edge(&d, "/css/site.css");
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/css"), "{kind}");
}

/// A directory `site` under `root` holding an `index.html` alone.
fn static_site(root: &std::path::Path) -> std::path::PathBuf {
    app_with(root, "site", &[("index.html", "<h1>the site</h1>\n")])
}

/// `GET path` of the app `site` through the edge: status, content type and body.
fn get_from_edge(d: &TestDaemon, path: &str) -> (u16, String, String) {
    let url = format!("{}{path}", d.edge);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let response = common::http_client()
                .get(&url)
                .header("Host", "site.localhost")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let kind = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (status, kind, response.text().await.unwrap())
        })
    })
    .join()
    .unwrap()
}

#[test]
fn flyctls_launch_flags_run_as_written_and_copy_config_deploys_the_file_as_it_is() {
    let d = TestDaemon::start();
    let root = tempfile::tempdir().unwrap();
    let site = static_site(root.path());
    // A script's `fly launch --no-deploy --org personal --region ams -y --ha=false`.
    let run = common::lakefly(
        &site,
        &[
            "--remote",
            &d.api,
            "launch",
            "--no-deploy",
            "--name",
            "site",
            "--org",
            "personal",
            "--region",
            "ams",
            "-y",
            "--ha=false",
            "--no-db",
            "--no-redis",
            "--no-object-storage",
            "--no-github-workflow",
        ],
    )
    .expect_code(0);
    for note in [
        "note: --org changes nothing: a lakeflyd host has no organizations",
        "note: --region changes nothing: one host is one region",
    ] {
        assert!(run.stderr.contains(note), "{note}: {}", run.stderr);
    }
    // Edited by hand since: `--copy-config` deploys it as it is, and writes nothing.
    let config = site.join("fly.toml");
    let edited = std::fs::read_to_string(&config).unwrap() + "# kept as written\n";
    std::fs::write(&config, &edited).unwrap();
    let copied = ["--remote", &d.api, "launch", "--copy-config", "--now"];
    let run = common::lakefly(&site, &copied).expect_code(0);
    assert!(run.stderr.contains("release v1 is live"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
    let (status, _, body) = get_from_edge(&d, "/");
    assert_eq!((status, body.as_str()), (200, "<h1>the site</h1>\n"));

    // A name other than the file's would leave later deploys going to another app.
    let renamed = [
        "--remote",
        &d.api,
        "launch",
        "--copy-config",
        "--name",
        "other",
    ];
    let run = common::lakefly(&site, &renamed).expect_code(2);
    assert!(
        run.stderr.contains("`lakefly config set app=other`"),
        "{}",
        run.stderr
    );
    // `apps create --org`, and the other flags flyctl's scripts write, run as written.
    for (args, note) in [
        (
            &["apps", "create", "more", "--org", "personal"][..],
            Some("--org"),
        ),
        (&["apps", "list", "-o", "personal"][..], Some("--org")),
        (&["logs", "--no-tail", "-r", "ams"][..], Some("--region")),
        (&["status", "--all"][..], None),
        (
            &["status", "--deployment", "--rate", "5"][..],
            Some("--rate"),
        ),
        (
            &["secrets", "set", "--stage", "A=b", "--dns-checks=false"][..],
            Some("--dns-checks"),
        ),
        (&["config", "show", "--local"][..], None),
        (
            &["scale", "count", "1", "--with-new-volumes", "--yes"][..],
            Some("--with-new-volumes"),
        ),
    ] {
        let mut all = vec!["--remote", d.api.as_str()];
        all.extend_from_slice(args);
        let run = common::lakefly(&site, &all).expect_code(0);
        if let Some(flag) = note {
            let said = format!("note: {flag} changes nothing");
            assert!(run.stderr.contains(&said), "{args:?}: {}", run.stderr);
        }
    }
    // Those that would change what the command does are refused, naming the flag.
    for (args, why) in [
        (
            &["scale", "count", "2", "-e", "A=b"][..],
            "lakefly deploy -e",
        ),
        (
            &["scale", "count", "2", "--from-snapshot", "last"][..],
            "no volume snapshots",
        ),
    ] {
        let mut all = vec!["--remote", d.api.as_str()];
        all.extend_from_slice(args);
        let run = common::lakefly(&site, &all).expect_code(2);
        assert!(run.stderr.contains(why), "{args:?}: {}", run.stderr);
    }
}

/// flyctl's documented way to launch an app that needs credentials: `fly launch
/// --no-deploy`, `fly secrets set`, `fly deploy`. The launch creates the app, so the
/// secret has an app to go to; a second project launched under the same name is refused,
/// not deployed over the first.
#[test]
fn launch_no_deploy_creates_the_app_so_secrets_can_be_set_before_the_first_deploy() {
    let d = TestDaemon::start();
    let root = tempfile::tempdir().unwrap();
    let site = static_site(root.path());
    let remote = ["--remote", d.api.as_str()];
    let cli =
        |dir: &std::path::Path, args: &[&str]| common::lakefly(dir, &[&remote[..], args].concat());

    let run = cli(&site, &["launch", "--no-deploy", "--name", "site"]).expect_code(0);
    assert!(run.stderr.contains("created app site\n"), "{}", run.stderr);
    assert!(
        run.stderr.contains("`lakefly secrets set`"),
        "{}",
        run.stderr
    );
    cli(&site, &["secrets", "set", "GREETING=hi"]).expect_code(0);
    cli(&site, &["deploy"]).expect_code(0);
    let secrets = cli(&site, &["secrets", "list", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(secrets[0]["name"], "GREETING", "{secrets}");
    assert_eq!(secrets[0]["status"], "deployed", "{secrets}");

    // Launched again from its own directory (the file names it): taken as it is.
    let again = [
        "launch",
        "--no-deploy",
        "--force",
        "--name",
        "site",
        "--json",
    ];
    let launched = cli(&site, &again).expect_code(0).json();
    assert_eq!(launched["created"], false, "{launched}");

    // Another project under the same name: refused, nothing written, the app untouched.
    let other = app_with(root.path(), "other", &[("index.html", "<h1>other</h1>\n")]);
    let run = cli(&other, &["launch", "--name", "site"]).expect_code(6);
    assert!(
        run.stderr.starts_with(
            "error: app site already exists and runs release v1\n\
             hint: `lakefly deploy -a site` deploys this directory to it"
        ),
        "{}",
        run.stderr
    );
    assert!(!other.join("fly.toml").exists());
    let (status, _, body) = get_from_edge(&d, "/");
    assert_eq!((status, body.as_str()), (200, "<h1>the site</h1>\n"));

    // `--no-create` only writes the file.
    let run = cli(
        &other,
        &["launch", "--no-deploy", "--no-create", "--name", "draft"],
    );
    run.expect_code(0);
    let apps = cli(&other, &["apps", "list", "--json"])
        .expect_code(0)
        .json();
    let names: Vec<&str> = apps
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|app| app["name"].as_str())
        .collect();
    assert_eq!(names, ["site"], "{apps}");
}

/// On a terminal, a name whose app runs another project's release is asked for again,
/// as flyctl asks, instead of ending the launch.
#[test]
fn on_a_terminal_a_name_that_is_taken_is_asked_for_again() {
    let d = TestDaemon::start();
    let root = tempfile::tempdir().unwrap();
    let site = static_site(root.path());
    common::lakefly(&site, &["--remote", &d.api, "launch", "--name", "site"]).expect_code(0);
    let other = app_with(root.path(), "other", &[("index.html", "<h1>other</h1>\n")]);
    let config = other.join("fly.toml");
    let steps = serde_json::json!([
        ["App name [other]", "site\r"],
        ["pick another name", "fresh\r"],
    ]);
    let args = [
        "--remote",
        &d.api,
        "-c",
        config.to_str().unwrap(),
        "launch",
        "--no-deploy",
    ];
    let shown = common::terminal::drive(&steps, &args, &[]);
    assert!(
        shown.contains("app site already exists and runs release v1; pick another name"),
        "{shown}"
    );
    assert!(
        shown.contains("created app fresh") && shown.ends_with("exit=0\n"),
        "{shown}"
    );
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains("app = \"fresh\""), "{written}");
}

#[test]
fn launch_generate_name_and_internal_port_do_as_flyctls() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("worker");
    std::fs::create_dir(&dir).unwrap();
    // A Procfile's worker: nothing says it serves HTTP, until --internal-port does.
    std::fs::write(dir.join("Procfile"), "worker: python3 serve.py\n").unwrap();
    let args = [
        "launch",
        "--no-deploy",
        "--no-create",
        "--generate-name",
        "--internal-port",
        "3000",
        "--json",
    ];
    let run = common::lakefly(&dir, &args).expect_code(0);
    let launched = run.json();
    let name = launched["app"].as_str().unwrap().to_string();
    assert_eq!(name.split('-').count(), 3, "{launched}");
    let written = std::fs::read_to_string(dir.join("fly.toml")).unwrap();
    assert!(written.contains(&format!("app = \"{name}\"")), "{written}");
    assert!(
        written.contains("internal_port = 3000") && written.contains("processes = [\"worker\"]"),
        "{written}"
    );
    let both = ["launch", "--force", "--generate-name", "--name", "x"];
    common::lakefly(&dir, &both).expect_code(2);
}
