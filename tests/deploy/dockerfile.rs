//! Apps described by a Dockerfile, run without a container engine, and the `--env` and
//! `--build-arg` flags.

use std::path::Path;

use super::common::daemon::TestDaemon;
use super::common::files::{app_with, get_text, python_server, PYTHON_WEB};
use super::deploy;

#[test]
fn a_dockerfile_beside_fly_toml_runs_as_fly_builds_it_and_an_image_is_refused_before_upload() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let deploy = |config: &Path| {
        super::common::lakefly(
            Path::new("."),
            &["--remote", &d.api, "deploy", "-c", config.to_str().unwrap()],
        )
    };
    // Most real fly.toml files name no Dockerfile: flyctl builds the one beside them.
    let plain = app_with(
        dir.path(),
        "plain",
        &[
            (
                "fly.toml",
                "app = \"plain\"\n[build]\n  build-target = \"web\"\n  [build.args]\n    SITE = \"docs\"\n[http_service]\n  internal_port = 8080\n",
            ),
            // The stage build-target names runs, with [build.args] for its ARGs.
            (
                "Dockerfile",
                "FROM python:3.11-slim AS web\nARG SITE=none\nWORKDIR /srv/$SITE\nCMD python3 -m http.server $PORT --bind 127.0.0.1\nFROM web AS worker\nCMD python3 worker.py\n",
            ),
        ],
    );
    let run = deploy(&plain.join("fly.toml")).expect_code(0);
    assert!(
        run.stderr.contains("WORKDIR /srv/docs is ")
            && run.stderr.contains("runs `python3 -m http.server $PORT"),
        "{}",
        run.stderr
    );

    // A container image has nothing lakefly can run: said before the app is created or
    // anything uploaded, naming the file and what to do.
    let image_toml = "app = \"img\"\n[build]\n  image = \"flyio/hellofly:latest\"\n";
    let image = app_with(dir.path(), "img", &[("fly.toml", image_toml)]);
    let run = deploy(&image.join("fly.toml")).expect_code(3);
    assert!(
        run.stderr
            .contains("fly.toml: nothing says what process group \"app\" runs")
            && run
                .stderr
                .contains("[build] image \"flyio/hellofly:latest\" is a container image")
            && run
                .stderr
                .contains("hint: give it a command in [processes]"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("uploaded"), "{}", run.stderr);
    let apps = super::common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "apps", "list", "--json"],
    )
    .expect_code(0)
    .json();
    assert!(
        !apps.to_string().contains("\"img\""),
        "no app was created: {apps}"
    );
    // An empty [processes] entry runs the Dockerfile's CMD, as flyctl runs the image's;
    // with no Dockerfile it is refused as running nothing (it ran `sh -c ""`, which exits).
    let empty_toml =
        "app = \"empty\"\n[processes]\n  app = \"\"\n[http_service]\n  internal_port = 8080\n";
    let empty = app_with(dir.path(), "empty", &[("fly.toml", empty_toml)]);
    let run = deploy(&empty.join("fly.toml")).expect_code(3);
    assert!(
        run.stderr
            .contains("its [processes] entry is empty, which runs a Dockerfile's CMD, and there is no Dockerfile"),
        "{}",
        run.stderr
    );
    let dockerfile = "FROM python:3.11-slim\nCMD python3 -m http.server $PORT --bind 127.0.0.1\n";
    std::fs::write(empty.join("Dockerfile"), dockerfile).unwrap();
    let run = deploy(&empty.join("fly.toml")).expect_code(0);
    assert!(
        run.stderr.contains("runs `python3 -m http.server $PORT"),
        "{}",
        run.stderr
    );

    // flyctl's `deploy --image`, likewise, names the flag and what to do instead.
    let config = image.join("fly.toml");
    let args = [
        "--remote",
        &d.api,
        "deploy",
        "-c",
        config.to_str().unwrap(),
        "-i",
        "flyio/hellofly:latest",
    ];
    let run = super::common::lakefly(Path::new("."), &args).expect_code(2);
    assert!(
        run.stderr
            .contains("for '--image <IMAGE>': lakefly runs no container images")
            && run.stderr.contains("deploy the app's directory instead"),
        "{}",
        run.stderr
    );

    // A Dockerfile the config names but the upload would not hold: missing, or outside
    // the app's directory (a monorepo's `../Dockerfile`). Also said before anything.
    for (name, says) in [
        (
            "Dockerfile.gateway",
            "[build] dockerfile \"Dockerfile.gateway\" is not in ",
        ),
        (
            "../Dockerfile",
            "[build] dockerfile \"../Dockerfile\" is not inside ",
        ),
    ] {
        let toml = format!("app = \"gw\"\n[build]\n  dockerfile = \"{name}\"\n");
        let gw = app_with(dir.path(), "gw", &[("fly.toml", &toml)]);
        std::fs::write(dir.path().join("Dockerfile"), "FROM x\nCMD true\n").unwrap();
        let run = deploy(&gw.join("fly.toml")).expect_code(3);
        assert!(
            run.stderr.contains(says)
                && run
                    .stderr
                    .contains("hint: [build] dockerfile is read from the directory holding"),
            "{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("uploaded the bundle"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_dockerfile_app_runs_without_a_container_engine() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("svc");
    std::fs::create_dir_all(app.join("src")).unwrap();
    std::fs::write(
        app.join("fly.toml"),
        "app = \"svc\"\n[build]\n  dockerfile = \"Dockerfile.lsh\"\n[http_service]\n  internal_port = 8080\n  [[http_service.checks]]\n    grace_period = \"0s\"\n    interval = \"200ms\"\n    path = \"/\"\n",
    )
    .unwrap();
    std::fs::write(
        app.join("Dockerfile.lsh"),
        // As flyctl's Django Dockerfile, requirements.txt goes to /tmp for a RUN step.
        "FROM python:3.11-slim\nWORKDIR /srv/app\nENV GREETING=\"from the image\" STATE_DIR=/srv/app/state\nCOPY requirements.txt /tmp/requirements.txt\nCOPY src/ ./\nRUN pip install nothing\nUSER nobody\nCMD [\"python3\", \"/srv/app/server.py\"]\n",
    )
    .unwrap();
    std::fs::write(app.join("requirements.txt"), "").unwrap();
    std::fs::write(
        app.join("src/server.py"),
        r#"import os
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("%s|%s|%s" % (os.environ["GREETING"], os.environ["STATE_DIR"], os.getcwd())).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#,
    )
    .unwrap();
    let config = app.join("fly.toml");
    let run = super::common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "deploy", "-c", config.to_str().unwrap()],
    )
    .expect_code(0);
    assert!(
        run.stderr
            .contains("not applied on the host: line 6: RUN pip install nothing")
            && run.stderr.contains(
                "not applied on the host: line 4: COPY to /tmp/requirements.txt: outside WORKDIR /srv/app"
            ),
        "{}",
        run.stderr
    );
    // Machines run as lakeflyd's user, which the deploy names, not as the image's.
    assert!(
        run.stderr.contains(
            "not applied on the host: line 7: USER nobody; machines run as lakeflyd's own user ("
        ),
        "{}",
        run.stderr
    );
    // The way round a RUN is said once, not on each line skipped.
    assert_eq!(
        run.stderr
            .matches("put what they do in [build] command")
            .count(),
        1,
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("outside WORKDIR /srv/app (use"),
        "{}",
        run.stderr
    );
    // The command's path under WORKDIR is the tree's.
    assert!(run.stderr.contains("1-tree/server.py`"), "{}", run.stderr);
    let s = super::common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "svc", "--json"],
    )
    .expect_code(0)
    .json();
    let port = s["machines"][0]["port"].as_u64().unwrap();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
    use std::io::{Read, Write};
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let parts: Vec<&str> = body.split('|').collect();
    assert_eq!(parts[0], "from the image");
    assert!(
        parts[1].ends_with("1-tree/state"),
        "STATE_DIR mapped onto the tree: {body}"
    );
    assert!(
        parts[2].ends_with("1-tree"),
        "the machine runs in the tree: {body}"
    );
}

#[test]
fn env_and_build_arg_flags_hold_for_that_release_and_leave_the_file_alone() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    // The Dockerfile beside is the image even though [processes] gives the command (as
    // Fly builds it): its ENV reaches the machine.
    let toml = format!("app = \"flags\"\n[env]\n  NOTE = \"from-file\"\n{PYTHON_WEB}");
    let app = app_with(
        dir.path(),
        "flags",
        &[
            ("fly.toml", &toml),
            (
                "Dockerfile",
                "FROM python:3.11-slim\nARG FLAVOR=plain\nENV FLAVOR=$FLAVOR\nCOPY server.py ./\n",
            ),
            (
                "server.py",
                &python_server(r#"os.environ["NOTE"] + "|" + os.environ["FLAVOR"]"#),
            ),
        ],
    );
    let answer = || {
        let s = super::common::lakefly(
            Path::new("."),
            &["--remote", &d.api, "status", "-a", "flags", "--json"],
        )
        .expect_code(0)
        .json();
        let port = s["machines"][0]["port"].as_u64().unwrap();
        get_text(&format!("http://127.0.0.1:{port}/"))
    };
    // Memory and CPUs of the machine's spec.
    let size = || {
        let s = super::common::lakefly(
            Path::new("."),
            &["--remote", &d.api, "status", "-a", "flags", "--json"],
        )
        .expect_code(0)
        .json();
        let spec = &s["machines"][0]["spec"];
        (spec["memory_mb"].clone(), spec["cpus"].clone())
    };
    let memory = || size().0;
    deploy(
        &d,
        &app,
        &[
            "-e",
            "NOTE=from=flag",
            "--build-arg",
            "FLAVOR=spicy",
            "--vm-memory",
            "256",
        ],
    )
    .expect_code(0);
    assert_eq!(answer(), "from=flag|spicy");
    assert_eq!(memory(), 256);
    assert_eq!(std::fs::read_to_string(app.join("fly.toml")).unwrap(), toml);
    // The next deploy without them is the file's again; a size is kept, as `scale
    // memory`'s is, while fly.toml names none.
    deploy(&d, &app, &[]).expect_code(0);
    assert_eq!(answer(), "from-file|plain");
    assert_eq!(memory(), 256);
    // A flag changes what runs now, not what the file (which names no size) would give.
    deploy(&d, &app, &["--vm-cpus", "2"]).expect_code(0);
    assert_eq!(size(), (serde_json::json!(256), serde_json::json!(2)));
    let bad = deploy(&d, &app, &["--vm-size", "huge"]).expect_code(2);
    assert!(
        bad.stderr.contains("--vm-size <SIZE>") && bad.stderr.contains("known sizes: "),
        "{}",
        bad.stderr
    );
    // A bad one is refused before anything is sent, naming the flag.
    let bad = deploy(&d, &app, &["--env", "9LIVES=1"]).expect_code(2);
    assert!(
        bad.stderr.contains("--env <NAME=VALUE>")
            && bad.stderr.contains("\"9LIVES\" is not a variable name"),
        "{}",
        bad.stderr
    );
}

/// The Dockerfile `fly launch` writes for a Node app, as it writes it but for the last
/// line (`npm run start` there; Debian's nodejs, which CI installs, comes without npm).
const FLY_LAUNCH_NODE_DOCKERFILE: &str = r#"# syntax = docker/dockerfile:1

# Adjust NODE_VERSION as desired
ARG NODE_VERSION=20.10.0
FROM node:${NODE_VERSION}-slim as base

LABEL fly_launch_runtime="Node.js"

# Node.js app lives here
WORKDIR /app

# Set production environment
ENV NODE_ENV="production"
ENV PATH="/app/node_modules/.bin:$PATH"


# Throw-away build stage to reduce size of final image
FROM base as build

# Install packages needed to build node modules
RUN apt-get update -qq && \
    apt-get install --no-install-recommends -y build-essential node-gyp pkg-config python-is-python3

# Install node modules
COPY --link package*.json ./
RUN npm ci

# Copy application code
COPY --link . .


# Final stage for app image
FROM base

# Copy built application
COPY --from=build /app /app

# Start the server by default, this can be overwritten at runtime
EXPOSE 3000
CMD [ "node", "server.js" ]
"#;

#[test]
fn a_multi_stage_dockerfile_from_fly_launch_runs_from_the_stage_it_copies() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let app = app_with(
        dir.path(),
        "nodeapp",
        &[
            (
                "fly.toml",
                "app = \"nodeapp\"\nprimary_region = \"ams\"\n\n[build]\n\n[http_service]\n  internal_port = 3000\n  force_https = true\n  auto_stop_machines = true\n  auto_start_machines = true\n  min_machines_running = 0\n  processes = [\"app\"]\n",
            ),
            ("Dockerfile", FLY_LAUNCH_NODE_DOCKERFILE),
            // As fly launch writes it: the Dockerfile itself is listed.
            (
                ".dockerignore",
                "/.git\n/node_modules\n.dockerignore\n.env\nDockerfile\nfly.toml\n",
            ),
            ("package.json", "{\"name\": \"nodeapp\", \"scripts\": {\"start\": \"node server.js\"}}\n"),
            ("package-lock.json", "{\"name\": \"nodeapp\", \"lockfileVersion\": 3}\n"),
            (
                "server.js",
                "require('http').createServer((q, r) => r.end([process.env.NODE_ENV, process.env.PATH.split(':')[0], process.cwd()].join('|'))).listen(process.env.PORT, '127.0.0.1');\n",
            ),
        ],
    );
    let run = deploy(&d, &app, &[]).expect_code(0);
    // The stage it copies from was built from its own copies; its RUN steps are named.
    assert!(
        run.stderr.contains("WORKDIR /app is ")
            && run.stderr.contains("1-tree; runs `node server.js`")
            && run
                .stderr
                .contains("not applied on the host: line 26: RUN npm ci"),
        "{}",
        run.stderr
    );
    let status = super::common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "nodeapp", "--json"],
    )
    .expect_code(0)
    .json();
    let port = status["machines"][0]["port"].as_u64().unwrap();
    let body = get_text(&format!("http://127.0.0.1:{port}/"));
    let parts: Vec<&str> = body.split('|').collect();
    assert_eq!(parts[0], "production", "{body}");
    assert!(
        parts[1].ends_with("1-tree/node_modules/.bin") && parts[2].ends_with("1-tree"),
        "PATH's /app entry and the working directory are the tree: {body}"
    );
}
