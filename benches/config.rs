//! Config engine throughput: parse + normalize + validate, and set + unset edits, over the
//! fly.toml corpus (or the examples when the corpus is absent). Prints figures; asserts
//! nothing. Run with `cargo bench --bench config`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lakefly::config::{self, edit::Editor};

fn inputs() -> Vec<(PathBuf, String)> {
    let corpus = std::env::var_os("LAKEFLY_FLY_TOML_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/fly-toml"));
    let dir = if corpus.is_dir() {
        corpus
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello")
    };
    let mut files: Vec<_> = walk(&dir)
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
        .collect();
    files.sort();
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `f` over all inputs until at least `budget` has passed; returns (rounds, elapsed).
fn measure(budget: Duration, mut f: impl FnMut()) -> (u32, Duration) {
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < budget {
        f();
        rounds += 1;
    }
    (rounds, start.elapsed())
}

fn main() {
    let files = inputs();
    let bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
    let budget = Duration::from_secs(2);
    println!("inputs: {} files, {} KiB", files.len(), bytes / 1024);

    let (rounds, took) = measure(budget, || {
        for (path, text) in &files {
            std::hint::black_box(config::parse(text, path));
        }
    });
    let per_file = took / (rounds * files.len() as u32);
    let mib_s = (bytes as f64 * rounds as f64) / took.as_secs_f64() / (1024.0 * 1024.0);
    println!("parse+validate: {per_file:?} per file, {mib_s:.1} MiB/s");

    let key = "deploy.lakefly_bench".parse().expect("fixed key");
    let (rounds, took) = measure(budget, || {
        for (_, text) in &files {
            if let Ok(mut e) = Editor::parse(text) {
                let _ = e.set(&key, lakefly::config::edit::parse_value("1", false));
                let _ = e.unset(&key);
                std::hint::black_box(e.to_text());
            }
        }
    });
    println!(
        "set+unset+render: {:?} per file",
        took / (rounds * files.len() as u32)
    );
}
