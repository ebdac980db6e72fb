//! Compiled apps, built on the host once per release: a Go module, a Rust package. Their
//! Dockerfiles build in a `RUN` step, which runs nowhere here, so `launch` builds them the
//! way those steps would and runs the binary.

use std::fs;
use std::path::Path;

use super::detect::{read_optional, Plan};
use crate::error::Error;

/// Where a Go build puts the binary, in the release's directory.
const GO_BINARY: &str = "bin/server";
/// [`GO_BINARY`] as an ignore pattern at the app's root.
const GO_BINARY_IGNORED: &str = "/bin/server";

/// A Go module: built from its root package when that is `main`, else from its one
/// command under `cmd/`.
pub(super) fn go(dir: &Path, plan: &mut Plan) -> Result<(), Error> {
    if !dir.join("go.mod").is_file() {
        return Ok(());
    }
    plan.sources.push("go.mod".into());
    let package = if has_main_package(dir)? {
        Some(".".to_string())
    } else {
        only_command(&dir.join("cmd"))?.map(|name| format!("./cmd/{name}"))
    };
    let Some(package) = package else {
        return Ok(());
    };
    plan.builds(
        || format!("go build -o {GO_BINARY} {package}"),
        &[GO_BINARY_IGNORED],
    );
    runs(plan, GO_BINARY.to_string());
    Ok(())
}

/// A Rust package: built in release mode (locked when it has a `Cargo.lock`), its binary
/// run from `target/release`.
pub(super) fn rust(dir: &Path, plan: &mut Plan) -> Result<(), Error> {
    let manifest = dir.join("Cargo.toml");
    let Some(text) = read_optional(&manifest)? else {
        return Ok(());
    };
    plan.sources.push("Cargo.toml".into());
    // A workspace root, or a file that does not parse, names no binary to run.
    let Some(binary) = rust_binary(&text) else {
        return Ok(());
    };
    let locked = if dir.join("Cargo.lock").is_file() {
        " --locked"
    } else {
        ""
    };
    plan.builds(|| format!("cargo build --release{locked}"), &["/target/"]);
    runs(plan, format!("target/release/{binary}"));
    Ok(())
}

/// Makes `command` the app's one process, serving HTTP, unless something else already
/// said what runs.
fn runs(plan: &mut Plan, command: String) {
    if plan.processes.is_empty() {
        plan.processes.insert("app".into(), command);
        plan.http_group = Some("app".into());
    }
}

/// Whether a `.go` file in `dir` (not a test) is in package `main`.
fn has_main_package(dir: &Path) -> Result<bool, Error> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io("read", dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.ends_with(".go") || name.ends_with("_test.go") {
            continue;
        }
        let text = fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        if text.lines().any(|line| line.trim() == "package main") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The one directory under `cmd`, when there is exactly one.
fn only_command(cmd: &Path) -> Result<Option<String>, Error> {
    let entries = match fs::read_dir(cmd) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", cmd, e)),
    };
    let dirs: Vec<String> = entries
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    Ok(match dirs.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    })
}

/// The binary `cargo build` makes: the one `[[bin]]` target's name, else the package's.
fn rust_binary(manifest: &str) -> Option<String> {
    let doc: toml_edit::DocumentMut = manifest.parse().ok()?;
    let bins = doc.get("bin").and_then(|b| b.as_array_of_tables());
    if let Some(bins) = bins {
        let names: Vec<&str> = bins
            .iter()
            .filter_map(|bin| bin.get("name").and_then(|n| n.as_str()))
            .collect();
        if let [one] = names.as_slice() {
            return Some(one.to_string());
        }
    }
    doc.get("package")?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use crate::launch::plan_for;

    #[test]
    fn a_go_module_is_built_from_its_main_package() {
        let plan = plan_for(&[
            ("go.mod", "module example.com/api\n"),
            ("main.go", "// Command api.\npackage main\n"),
            ("main_test.go", "package main\n"),
        ]);
        assert_eq!(
            plan.build_command.as_deref(),
            Some("go build -o bin/server .")
        );
        assert_eq!(plan.processes["app"], "bin/server");
        assert_eq!(plan.http_group.as_deref(), Some("app"));
        let nested = plan_for(&[
            ("go.mod", "module example.com/api\n"),
            ("store.go", "package api\n"),
            ("cmd/apid/main.go", "package main\n"),
        ]);
        assert_eq!(
            nested.build_command.as_deref(),
            Some("go build -o bin/server ./cmd/apid")
        );
        // Its Dockerfile builds in a RUN step: the host build is what runs.
        let docker = plan_for(&[
            ("go.mod", "module x\n"),
            ("main.go", "package main\n"),
            (
                "Dockerfile",
                "FROM golang AS b\nRUN go build\nFROM debian\nEXPOSE 9000\n",
            ),
        ]);
        assert_eq!(docker.processes["app"], "bin/server");
        assert_eq!((docker.dockerfile, docker.internal_port), (None, 9000));
    }

    #[test]
    fn a_rust_package_runs_its_release_binary() {
        let plan = plan_for(&[
            (
                "Cargo.toml",
                "[package]\nname = \"relay\"\nversion = \"0.1.0\"\n",
            ),
            ("Cargo.lock", ""),
        ]);
        assert_eq!(
            plan.build_command.as_deref(),
            Some("cargo build --release --locked")
        );
        assert_eq!(plan.processes["app"], "target/release/relay");
        let bin = plan_for(&[(
            "Cargo.toml",
            "[package]\nname = \"relay\"\n[[bin]]\nname = \"relayd\"\npath = \"src/main.rs\"\n",
        )]);
        assert_eq!(bin.processes["app"], "target/release/relayd");
        // A workspace root names nothing to run.
        let workspace = plan_for(&[("Cargo.toml", "[workspace]\nmembers = [\"a\"]\n")]);
        assert!(workspace.processes.is_empty() && workspace.build_command.is_none());
    }
}
