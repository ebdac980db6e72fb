//! Bad input never panics: truncated and mutated corpus files (and small fixtures of our
//! own) go through the parser, the validator and the editor, and come out as values or
//! errors. Deterministic: a fixed-seed generator picks the mutations.

mod common;

use std::path::Path;

use lakefly::config::edit::{parse_value, Editor};
use lakefly::config::{self, keypath::KeyPath};

/// xorshift64*: small, fast and reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that change TOML's structure when dropped in at random.
const SPICE: &[&[u8]] = &[
    b"[",
    b"]",
    b"[[",
    b"]]",
    b"=",
    b"\"",
    b"'",
    b"\"\"\"",
    b"\n",
    b".",
    b",",
    b"{",
    b"}",
    b"#",
    b"\\",
    b"-1",
    b"99999999999999999999",
    b"1e999",
    b"\xff",
    b"\xc3",
    b"processes = [\"x\"]\n",
    b"[[services]]\n",
    b"app = ",
];

fn mutate(rng: &mut Rng, text: &[u8]) -> Vec<u8> {
    let mut out = text.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 => out.truncate(at),
            1 => {
                let spice = SPICE[rng.below(SPICE.len())];
                out.splice(at..at, spice.iter().copied());
            }
            2 if !out.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            _ => {
                // Duplicate a line: makes duplicate keys and repeated tables.
                let s = String::from_utf8_lossy(&out).into_owned();
                let lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let line = lines[rng.below(lines.len())].to_string();
                    out.extend_from_slice(b"\n");
                    out.extend_from_slice(line.as_bytes());
                }
            }
        }
    }
    out
}

/// Runs everything a command does with config text; a panic fails the test.
fn exercise(text: &str) {
    let loaded = config::parse(text, Path::new("fuzz.toml"));
    let _ = lakefly::output::error::render_report(&loaded.report);
    let _ = serde_json::to_string(&loaded.config);
    let Ok(mut editor) = Editor::parse(text) else {
        return;
    };
    let keys = [
        "app",
        "deploy.strategy",
        "services[0].internal_port",
        "vm.size",
        "env.X",
        "http_service.checks[0].path",
    ];
    for key in keys {
        let key: KeyPath = key.parse().expect("fixed keys parse");
        let _ = editor.get(&key);
        let _ = editor.set(&key, parse_value("\"v\"", false));
        let _ = editor.unset(&key);
    }
    let _ = config::parse(&editor.to_text(), Path::new("fuzz.toml"));
}

const FIXTURES: &[&str] = &[
    "app = \"a\"\n[[services]]\ninternal_port = 8080\n[[services.ports]]\nport = 80\n[[services.tcp_checks]]\ninterval = 10000\n",
    "[processes]\nweb = \"w\"\n[http_service]\ninternal_port = 1\nprocesses = [\"web\"]\n[[http_service.checks]]\npath = \"/\"\n",
    "vm.size = \"shared-cpu-1x\"\n[[mounts]]\nsource = \"d\"\ndestination = \"/d\"\n[checks.a]\ntype = \"tcp\"\nport = 1\n",
    "[[jobs]]\nname = \"j\"\nschedule = \"0 3 * * *\"\ncommand = \"x\"\n[experimental]\ncmd = [\"a\"]\nkill_timeout = 3\n",
];

#[test]
fn truncated_and_mutated_configs_give_errors_not_panics() {
    let mut inputs: Vec<Vec<u8>> = FIXTURES.iter().map(|f| f.as_bytes().to_vec()).collect();
    inputs.extend(
        common::corpus_files()
            .iter()
            .map(|f| std::fs::read(f).expect("corpus file")),
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases = 0;
    for input in &inputs {
        // Every truncation point on a coarse grid, then random mutations.
        let step = (input.len() / 24).max(1);
        for cut in (0..input.len()).step_by(step) {
            exercise(&String::from_utf8_lossy(&input[..cut]));
            cases += 1;
        }
        for _ in 0..40 {
            let mutated = mutate(&mut rng, input);
            exercise(&String::from_utf8_lossy(&mutated));
            cases += 1;
        }
    }
    assert!(cases >= FIXTURES.len() * 40, "ran {cases} cases");
}

#[test]
fn malformed_key_paths_are_errors() {
    let mut rng = Rng(7);
    let alphabet = b"ab.[]0\"' _-9";
    for _ in 0..2000 {
        let len = rng.below(12);
        let key: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())] as char)
            .collect();
        if let Ok(path) = key.parse::<KeyPath>() {
            // Whatever parses must print and parse back to the same path.
            assert_eq!(
                path.to_string().parse::<KeyPath>().as_ref(),
                Ok(&path),
                "{key:?}"
            );
        }
    }
}
