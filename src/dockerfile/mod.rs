//! Reading a Dockerfile's final stage without a container engine: `WORKDIR` becomes the
//! machine's working tree, local `COPY`/`ADD` are applied into it, `ENV` is set (with paths
//! under `WORKDIR` mapped onto the tree), and `ENTRYPOINT`/`CMD` say what runs. `RUN` steps
//! are never executed on the host: `[build] command` does that job.

mod tree;

pub use tree::{build_tree, TreeError};

/// The Dockerfile read when `[build] dockerfile` names none, as flyctl builds it: the one
/// at the root of the app's directory.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";

/// A command as `CMD`/`ENTRYPOINT` write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `["a", "b"]`: run directly.
    Exec(Vec<String>),
    /// `a b`: run with `/bin/sh -c`.
    Shell(String),
}

/// One `COPY`/`ADD` of local files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStep {
    /// Paths in the build context.
    pub sources: Vec<String>,
    /// Where they go (relative to `WORKDIR` unless absolute).
    pub dest: String,
    /// The `WORKDIR` in force at this step.
    pub workdir: String,
}

/// What the final stage says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalStage {
    /// The last `WORKDIR` (absolute), `/` when none.
    pub workdir: String,
    /// Local copies, in order.
    pub copies: Vec<CopyStep>,
    /// `ENV` settings, in order.
    pub env: Vec<(String, String)>,
    /// `ENTRYPOINT`.
    pub entrypoint: Option<Instruction>,
    /// `CMD`.
    pub cmd: Option<Instruction>,
    /// Steps that cannot be applied on the host, each with why (`RUN`, `COPY --from`...).
    pub skipped: Vec<String>,
}

/// Why a Dockerfile could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerfileError {
    /// No `FROM`.
    #[error("the Dockerfile has no FROM")]
    NoStage,
    /// A malformed JSON array in `CMD`/`ENTRYPOINT`/`COPY`.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line of the instruction.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Parses the final stage of a Dockerfile.
pub fn parse(text: &str) -> Result<FinalStage, DockerfileError> {
    let mut stage: Option<FinalStage> = None;
    for (line, instruction, rest) in instructions(text) {
        let syntax = |message: String| DockerfileError::Syntax { line, message };
        if instruction == "FROM" {
            stage = Some(FinalStage {
                workdir: "/".into(),
                ..FinalStage::default()
            });
            continue;
        }
        let Some(stage) = stage.as_mut() else {
            continue;
        };
        match instruction.as_str() {
            "WORKDIR" => {
                let dir = rest.trim();
                stage.workdir = if dir.starts_with('/') {
                    normalize(dir)
                } else {
                    normalize(&format!("{}/{dir}", stage.workdir))
                };
            }
            "ENV" => stage.env.extend(parse_env(&rest)),
            "CMD" => stage.cmd = Some(parse_command(&rest).map_err(syntax)?),
            "ENTRYPOINT" => stage.entrypoint = Some(parse_command(&rest).map_err(syntax)?),
            "COPY" | "ADD" => {
                let mut words = split_args(&rest).map_err(syntax)?;
                let flags: Vec<String> = words
                    .iter()
                    .take_while(|w| w.starts_with("--"))
                    .cloned()
                    .collect();
                words.drain(..flags.len());
                if flags.iter().any(|f| f.starts_with("--from")) {
                    stage.skipped.push(format!(
                        "line {line}: {instruction} --from copies from another stage or image"
                    ));
                    continue;
                }
                let Some(dest) = words.pop() else { continue };
                if words.iter().any(|s| s.contains("://")) {
                    stage
                        .skipped
                        .push(format!("line {line}: {instruction} of a URL"));
                    continue;
                }
                stage.copies.push(CopyStep {
                    sources: words,
                    dest,
                    workdir: stage.workdir.clone(),
                });
            }
            "RUN" => stage
                .skipped
                .push(format!("line {line}: RUN {}", rest.trim())),
            _ => {}
        }
    }
    stage.ok_or(DockerfileError::NoStage)
}

impl FinalStage {
    /// The command line that runs, as Docker combines `ENTRYPOINT` and `CMD`.
    pub fn command_line(&self) -> Option<String> {
        let words = |i: &Instruction| match i {
            Instruction::Exec(argv) => argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
            Instruction::Shell(s) => s.clone(),
        };
        match (&self.entrypoint, &self.cmd) {
            // A shell-form ENTRYPOINT ignores CMD.
            (Some(Instruction::Shell(s)), _) => Some(s.clone()),
            (Some(e), Some(c)) => Some(format!("{} {}", words(e), words(c))),
            (Some(e), None) => Some(words(e)),
            (None, Some(c)) => Some(words(c)),
            (None, None) => None,
        }
    }
}

/// `(line, INSTRUCTION, arguments)` with continuations joined and comments dropped.
fn instructions(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if current.is_none() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if current.is_some() && line.starts_with('#') {
            continue;
        }
        let (start, mut buf) = current.take().unwrap_or((i + 1, String::new()));
        if let Some(body) = line.strip_suffix('\\') {
            buf.push_str(body);
            buf.push(' ');
            current = Some((start, buf));
            continue;
        }
        buf.push_str(line);
        let (instruction, rest) = buf.split_once(char::is_whitespace).unwrap_or((&buf, ""));
        out.push((
            start,
            instruction.to_ascii_uppercase(),
            rest.trim().to_string(),
        ));
    }
    out
}

fn parse_command(rest: &str) -> Result<Instruction, String> {
    let rest = rest.trim();
    if rest.starts_with('[') {
        let argv: Vec<String> =
            serde_json::from_str(rest).map_err(|e| format!("not a JSON array of strings: {e}"))?;
        Ok(Instruction::Exec(argv))
    } else {
        Ok(Instruction::Shell(rest.to_string()))
    }
}

/// `COPY` arguments: a JSON array or whitespace-separated words.
fn split_args(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let (flags, tail): (Vec<&str>, &str) = {
        let mut flags = Vec::new();
        let mut tail = rest;
        while tail.starts_with("--") {
            let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
            flags.push(&tail[..end]);
            tail = tail[end..].trim_start();
        }
        (flags, tail)
    };
    let mut words: Vec<String> = flags.into_iter().map(str::to_string).collect();
    if tail.starts_with('[') {
        let list: Vec<String> =
            serde_json::from_str(tail).map_err(|e| format!("not a JSON array of strings: {e}"))?;
        words.extend(list);
    } else {
        words.extend(tail.split_whitespace().map(str::to_string));
    }
    Ok(words)
}

/// `ENV A=1 B="two words"` or the legacy `ENV A one value`.
fn parse_env(rest: &str) -> Vec<(String, String)> {
    let rest = rest.trim();
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (key, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return vec![(key.to_string(), value.trim().to_string())];
    }
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        match chars.peek() {
            Some(&q @ ('"' | '\'')) => {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' if q == '"' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        c if c == q => break,
                        c => value.push(c),
                    }
                }
            }
            _ => {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((key.trim().to_string(), value));
    }
    out
}

/// Collapses `.`/`..` and duplicate slashes in an absolute path.
pub(crate) fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LSH: &str = r#"
# syntax=docker/dockerfile:1
FROM rust:1.80 AS build
WORKDIR /src
COPY . .
RUN cargo build --release

FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 DATA_DIR=/app/data \
    GREETING="hello world"
ENV LEGACY some value
COPY --from=build /src/target/release/tool /usr/local/bin/tool
COPY src/mcli ./mcli
COPY requirements.txt run.py ./
RUN pip install -r requirements.txt
EXPOSE 8080
ENTRYPOINT ["python3", "run.py"]
CMD ["--port", "8080"]
"#;

    #[test]
    fn the_final_stage_is_read_without_running_anything() {
        let stage = parse(LSH).unwrap();
        assert_eq!(stage.workdir, "/app");
        assert_eq!(
            stage.env,
            [
                ("PYTHONUNBUFFERED".into(), "1".into()),
                ("DATA_DIR".into(), "/app/data".into()),
                ("GREETING".into(), "hello world".into()),
                ("LEGACY".into(), "some value".into()),
            ]
        );
        assert_eq!(stage.copies.len(), 2);
        assert_eq!(stage.copies[0].sources, ["src/mcli"]);
        assert_eq!(stage.copies[0].dest, "./mcli");
        assert_eq!(stage.copies[1].sources, ["requirements.txt", "run.py"]);
        assert_eq!(
            stage.command_line().as_deref(),
            Some("python3 run.py --port 8080")
        );
        assert_eq!(stage.skipped.len(), 2, "{:?}", stage.skipped);
        assert!(stage.skipped[0].contains("--from"));
        assert!(stage.skipped[1].starts_with("line 16: RUN pip install"));
    }

    #[test]
    fn shell_forms_and_errors() {
        let stage = parse("FROM x\nCMD python3 app.py --x \"a b\"\n").unwrap();
        assert_eq!(
            stage.command_line().as_deref(),
            Some("python3 app.py --x \"a b\"")
        );
        let shell_entry = parse("FROM x\nENTRYPOINT ./start.sh\nCMD [\"ignored\"]\n").unwrap();
        assert_eq!(shell_entry.command_line().as_deref(), Some("./start.sh"));
        assert_eq!(parse("CMD x\n"), Err(DockerfileError::NoStage));
        assert!(matches!(
            parse("FROM x\nCMD [\"unclosed\"\n"),
            Err(DockerfileError::Syntax { line: 2, .. })
        ));
        assert_eq!(
            parse("FROM x\nWORKDIR app\nWORKDIR ../srv//x/\n")
                .unwrap()
                .workdir,
            "/srv/x"
        );
    }
}
