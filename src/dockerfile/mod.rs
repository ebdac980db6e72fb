//! Reading a Dockerfile without a container engine, as far as the host can apply it: the
//! final stage's `WORKDIR` becomes the machine's working tree, local `COPY`/`ADD` are
//! applied into it (from the app's directory, or from an earlier stage's files, which are
//! its own copies), `ENV` is set (with paths under `WORKDIR` mapped onto the tree), and
//! `ENTRYPOINT`/`CMD` say what runs. A stage built `FROM` an earlier one starts from it, as
//! flyctl's generated Dockerfiles do (`FROM base AS build` ... `COPY --from=build /app
//! /app`). `RUN` steps are never executed on the host: `[build] command` does that job.
//! `USER` is kept only to be named: machines run as lakeflyd's own user.

mod syntax;
mod tree;

use std::collections::BTreeMap;

pub(crate) use syntax::normalize;
use syntax::{absolute, flag, parse_command, parse_env, split_args, Vars};
pub use tree::{build_tree, Built, TreeError};

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

/// Where a `COPY`/`ADD` takes its files from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// The build context: the app's directory.
    Context,
    /// An earlier stage, as far as the host can build it: its copies, not its `RUN` steps.
    Stage {
        /// Its name (or index) as `--from` gives it.
        name: String,
        /// The stage.
        stage: Box<Stage>,
    },
}

/// One `COPY`/`ADD` of files the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStep {
    /// Where the files come from.
    pub from: CopySource,
    /// Paths in the build context, or absolute in the stage; may hold `*`, `?`, `[...]`.
    pub sources: Vec<String>,
    /// Where they go (relative to `WORKDIR` unless absolute).
    pub dest: String,
    /// The `WORKDIR` in force at this step.
    pub workdir: String,
    /// Its 1-based line in the Dockerfile.
    pub line: usize,
}

/// What a stage (the final one, or one it builds on or copies from) says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stage {
    /// Its `AS` name, in lower case as Docker compares them.
    pub name: Option<String>,
    /// The last `WORKDIR` (absolute), `/` when none.
    pub workdir: String,
    /// Copies, in order, its base stage's first.
    pub copies: Vec<CopyStep>,
    /// `ENV` settings, in order, its base stage's first.
    pub env: Vec<(String, String)>,
    /// `ENTRYPOINT`.
    pub entrypoint: Option<Instruction>,
    /// `CMD`.
    pub cmd: Option<Instruction>,
    /// Steps that cannot be applied on the host, with those of the stages it builds on or
    /// copies from.
    pub skipped: Vec<Skipped>,
    /// The last `USER` (its line and what it names), its base stage's if it has none:
    /// not applied, as machines run as lakeflyd's own user.
    pub user: Option<(usize, String)>,
    /// Whether `cmd` came from the base stage (an `ENTRYPOINT` of its own then clears it).
    cmd_inherited: bool,
}

/// A step the host cannot apply, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skipped {
    /// `RUN`: there is no image to run it in.
    #[error("line {line}: RUN {command}")]
    Run {
        /// Where it is.
        line: usize,
        /// What it runs.
        command: String,
    },
    /// `COPY --from=<image>`: no image is pulled.
    #[error("line {line}: {instruction} --from={image} copies from an image")]
    FromImage {
        /// Where it is.
        line: usize,
        /// `COPY` or `ADD`.
        instruction: String,
        /// The image named.
        image: String,
    },
    /// `ADD <url>`: nothing is downloaded.
    #[error("line {line}: {instruction} of a URL")]
    Url {
        /// Where it is.
        line: usize,
        /// `COPY` or `ADD`.
        instruction: String,
    },
}

/// Why a Dockerfile could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerfileError {
    /// No `FROM`.
    #[error("the Dockerfile has no FROM")]
    NoStage,
    /// `[build] build_target` names no stage.
    #[error("no stage is named {0:?} (`FROM ... AS {0}`), which [build] build_target asks for")]
    NoTarget(String),
    /// A malformed JSON array in `CMD`/`ENTRYPOINT`/`COPY`.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line of the instruction.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// What a build is given besides the Dockerfile.
pub struct BuildOptions<'a> {
    /// The variables a `$NAME` the Dockerfile does not set refers to (the base image's,
    /// which the host stands in for).
    pub host: &'a dyn Fn(&str) -> Option<String>,
    /// `[build.args]`: values for the `ARG`s the Dockerfile declares.
    pub args: &'a BTreeMap<String, String>,
    /// `[build] build_target`: the stage that runs, instead of the last.
    pub target: Option<&'a str>,
}

/// Parses a Dockerfile and returns the stage that runs: the target, else the last.
pub fn parse(text: &str, options: &BuildOptions<'_>) -> Result<Stage, DockerfileError> {
    let host = options.host;
    let mut stages: Vec<Stage> = Vec::new();
    // `ARG`s before the first `FROM`, which a stage's bare `ARG NAME` takes the value of.
    let mut global_args = BTreeMap::new();
    // The current stage's `ARG`s, which end with it.
    let mut args = BTreeMap::new();
    for syntax::Line {
        number: line,
        instruction,
        rest,
    } in syntax::instructions(text)
    {
        let syntax = |message: String| DockerfileError::Syntax { line, message };
        let vars = |stage: Option<&Stage>, args: &BTreeMap<String, String>| {
            let mut set = args.clone();
            for (k, v) in stage.map_or(&[][..], |s| &s.env[..]) {
                set.insert(k.clone(), v.clone());
            }
            Vars { set, host }
        };
        if instruction == "FROM" {
            let (_, words) = split_args(&rest).map_err(syntax)?;
            let image = vars(None, &global_args).substitute(words.first().map_or("", |w| w));
            let name = match words.get(1..3) {
                Some([as_, name]) if as_.eq_ignore_ascii_case("as") => {
                    Some(name.to_ascii_lowercase())
                }
                _ => None,
            };
            let mut stage = find(&stages, &image, false).cloned().map_or_else(
                || Stage {
                    workdir: "/".into(),
                    ..Stage::default()
                },
                |base| Stage {
                    cmd_inherited: base.cmd.is_some(),
                    ..base
                },
            );
            stage.name = name;
            stages.push(stage);
            args.clear();
            continue;
        }
        if instruction == "ARG" {
            for decl in rest.split_whitespace() {
                let (name, value) = match decl.split_once('=') {
                    Some((name, value)) => (name, Some(value.trim_matches('"').to_string())),
                    None => (decl, None),
                };
                let given = options.args.get(name).cloned();
                let Some(value) = given.or(value).or_else(|| global_args.get(name).cloned()) else {
                    continue;
                };
                if stages.is_empty() {
                    global_args.insert(name.to_string(), value);
                } else {
                    args.insert(name.to_string(), value);
                }
            }
            continue;
        }
        let Some((stage, earlier)) = stages.split_last_mut() else {
            continue;
        };
        let vars = vars(Some(stage), &args);
        match instruction.as_str() {
            "WORKDIR" => stage.workdir = absolute(&stage.workdir, &vars.substitute(rest.trim())),
            "ENV" => stage.env.extend(parse_env(&rest, &vars)),
            "CMD" => {
                stage.cmd = Some(parse_command(&rest).map_err(syntax)?);
                stage.cmd_inherited = false;
            }
            "ENTRYPOINT" => {
                stage.entrypoint = Some(parse_command(&rest).map_err(syntax)?);
                // Docker: an ENTRYPOINT clears the CMD a base stage set.
                if stage.cmd_inherited {
                    stage.cmd = None;
                    stage.cmd_inherited = false;
                }
            }
            "COPY" | "ADD" => {
                let (flags, words) = split_args(&rest).map_err(syntax)?;
                let mut words: Vec<String> = words.iter().map(|w| vars.substitute(w)).collect();
                let from = match flag(&flags, "from") {
                    None => CopySource::Context,
                    Some(from) => {
                        let from = vars.substitute(from);
                        let Some(source) = find(earlier, &from, true) else {
                            stage.skipped.push(Skipped::FromImage {
                                line,
                                instruction: instruction.clone(),
                                image: from,
                            });
                            continue;
                        };
                        for skipped in &source.skipped {
                            if !stage.skipped.contains(skipped) {
                                stage.skipped.push(skipped.clone());
                            }
                        }
                        CopySource::Stage {
                            name: from,
                            stage: Box::new(source.clone()),
                        }
                    }
                };
                let Some(dest) = words.pop() else { continue };
                if words.iter().any(|s| s.contains("://")) {
                    stage.skipped.push(Skipped::Url {
                        line,
                        instruction: instruction.clone(),
                    });
                    continue;
                }
                stage.copies.push(CopyStep {
                    from,
                    sources: words,
                    dest,
                    workdir: stage.workdir.clone(),
                    line,
                });
            }
            "USER" => stage.user = Some((line, vars.substitute(rest.trim()))),
            "RUN" => stage.skipped.push(Skipped::Run {
                line,
                command: rest.trim().to_string(),
            }),
            _ => {}
        }
    }
    match options.target {
        None => stages.pop().ok_or(DockerfileError::NoStage),
        Some(target) => find(&stages, target, false)
            .cloned()
            .ok_or_else(|| DockerfileError::NoTarget(target.to_string())),
    }
}

/// The earlier stage that `FROM` or `--from` names: by its `AS` name, or (`--from` only)
/// by its index; `None` for an image.
fn find<'a>(stages: &'a [Stage], reference: &str, by_index: bool) -> Option<&'a Stage> {
    let lower = reference.to_ascii_lowercase();
    stages
        .iter()
        .rev()
        .find(|s| s.name.as_deref() == Some(lower.as_str()))
        .or_else(|| {
            by_index
                .then(|| reference.parse::<usize>().ok())
                .flatten()
                .and_then(|i| stages.get(i))
        })
}

impl Stage {
    /// The command line that runs, as Docker combines `ENTRYPOINT` and `CMD`.
    pub fn command_line(&self) -> Option<String> {
        self.command_line_mapped(&|word| word.to_string())
    }

    /// The command line with each word (each argument of an exec form, each
    /// space-separated word of a shell form) passed through `map`.
    pub(crate) fn command_line_mapped(&self, map: &dyn Fn(&str) -> String) -> Option<String> {
        self.command_line_with(self.cmd.as_ref(), map)
    }

    /// A `[processes]` command as Fly runs it in the image: in place of `CMD`, so after an
    /// exec-form `ENTRYPOINT` (which a shell-form one ignores, as it ignores `CMD`); words
    /// passed through `map` as in [`Stage::command_line_mapped`].
    pub(crate) fn process_command_mapped(
        &self,
        command: &str,
        map: &dyn Fn(&str) -> String,
    ) -> String {
        let cmd = Instruction::Shell(command.to_string());
        self.command_line_with(Some(&cmd), map)
            .unwrap_or_else(|| command.to_string())
    }

    fn command_line_with(
        &self,
        cmd: Option<&Instruction>,
        map: &dyn Fn(&str) -> String,
    ) -> Option<String> {
        let shell = |s: &str| shell_words_mapped(s, map);
        let words = |i: &Instruction| match i {
            Instruction::Exec(argv) => argv
                .iter()
                .map(|a| crate::shell_words::quote(&map(a)))
                .collect::<Vec<_>>()
                .join(" "),
            Instruction::Shell(s) => shell(s),
        };
        match (&self.entrypoint, cmd) {
            // A shell-form ENTRYPOINT ignores CMD.
            (Some(Instruction::Shell(s)), _) => Some(shell(s)),
            (Some(e), Some(c)) => Some(format!("{} {}", words(e), words(c))),
            (Some(e), None) => Some(words(e)),
            (None, Some(c)) => Some(words(c)),
            (None, None) => None,
        }
    }
}

/// A shell-form command line with each space-separated word passed through `map`.
pub(crate) fn shell_words_mapped(command: &str, map: &dyn Fn(&str) -> String) -> String {
    command.split(' ').map(map).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Parses with no host variables, build args or target.
    pub(crate) fn read(text: &str) -> Result<Stage, DockerfileError> {
        parse(
            text,
            &BuildOptions {
                host: &|_| None,
                args: &BTreeMap::new(),
                target: None,
            },
        )
    }

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
        let stage = read(LSH).unwrap();
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
        assert_eq!(stage.copies.len(), 3);
        assert!(matches!(
            &stage.copies[0].from,
            CopySource::Stage { name, stage } if name == "build" && stage.workdir == "/src"
        ));
        assert_eq!(stage.copies[0].sources, ["/src/target/release/tool"]);
        assert_eq!(stage.copies[1].from, CopySource::Context);
        assert_eq!(stage.copies[1].sources, ["src/mcli"]);
        assert_eq!(stage.copies[1].dest, "./mcli");
        assert_eq!(stage.copies[2].sources, ["requirements.txt", "run.py"]);
        assert_eq!(
            stage.command_line().as_deref(),
            Some("python3 run.py --port 8080")
        );
        // The build stage's RUN, which made what is copied from it, is named too.
        assert_eq!(
            stage
                .skipped
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            [
                "line 6: RUN cargo build --release",
                "line 16: RUN pip install -r requirements.txt"
            ]
        );
    }

    /// The Dockerfile `fly launch` writes for a Node app (trimmed of comments).
    const FLY_NODE: &str = r#"
# syntax = docker/dockerfile:1
ARG NODE_VERSION=20.10.0
FROM node:${NODE_VERSION}-slim as base
LABEL fly_launch_runtime="Node.js"
WORKDIR /app
ENV NODE_ENV="production"
ARG YARN_VERSION=1.22.19
ENV PATH=/app/node_modules/.bin:$PATH

FROM base as build
RUN apt-get update -qq && \
    apt-get install --no-install-recommends -y build-essential
COPY --link package-lock.json package.json ./
RUN npm ci
COPY --link . .

FROM base
COPY --from=build /app /app
COPY --from=build /usr/local/bundle /usr/local/bundle
COPY --from=ghcr.io/example/tool:1 /tool /usr/local/bin/tool
EXPOSE 3000
CMD [ "npm", "run", "start" ]
"#;

    #[test]
    fn a_stage_from_an_earlier_one_starts_from_it() {
        let host = |name: &str| (name == "PATH").then(|| "/usr/bin:/bin".to_string());
        let options = BuildOptions {
            host: &host,
            args: &BTreeMap::new(),
            target: None,
        };
        let stage = parse(FLY_NODE, &options).unwrap();
        assert_eq!(stage.name, None);
        assert_eq!(stage.workdir, "/app");
        assert_eq!(
            stage.env,
            [
                ("NODE_ENV".into(), "production".into()),
                ("PATH".into(), "/app/node_modules/.bin:/usr/bin:/bin".into()),
            ]
        );
        assert_eq!(stage.copies.len(), 2, "{:?}", stage.copies);
        let CopySource::Stage { name, stage: build } = &stage.copies[0].from else {
            panic!("{:?}", stage.copies[0]);
        };
        assert_eq!(name, "build");
        assert_eq!(build.copies.len(), 2);
        assert_eq!(build.copies[1].sources, ["."]);
        assert_eq!(
            stage.skipped.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            [
                "line 12: RUN apt-get update -qq && apt-get install --no-install-recommends -y build-essential",
                "line 15: RUN npm ci",
                "line 21: COPY --from=ghcr.io/example/tool:1 copies from an image",
            ]
        );
        assert_eq!(stage.command_line().as_deref(), Some("npm run start"));
    }

    #[test]
    fn the_last_user_is_kept_and_a_stage_inherits_its_bases() {
        let host = |_: &str| None;
        let options = BuildOptions {
            host: &host,
            args: &BTreeMap::new(),
            target: None,
        };
        let text =
            "FROM x AS base\nARG UID=1001\nUSER root\nUSER ${UID}:${UID}\nFROM base\nCMD run\n";
        let stage = parse(text, &options).unwrap();
        assert_eq!(stage.user, Some((4, "1001:1001".to_string())));
        let text = "FROM x AS base\nUSER app\nFROM base\nUSER web\nFROM y\nCMD run\n";
        assert_eq!(parse(text, &options).unwrap().user, None);
        let text = "FROM x AS base\nUSER app\nFROM base\nUSER web\n";
        assert_eq!(parse(text, &options).unwrap().user, Some((4, "web".into())));
    }

    #[test]
    fn build_args_set_declared_args_and_a_target_picks_the_stage() {
        let text = "ARG HOME_DIR=/srv\nFROM x AS dev\nARG HOME_DIR\nARG MODE=dev\nARG UNDECLARED_IS=ignored\nWORKDIR $HOME_DIR/$MODE\nCMD dev\nFROM x AS production\nCMD prod\n";
        let args = BTreeMap::from([
            ("MODE".to_string(), "staging".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ]);
        let options = |target| BuildOptions {
            host: &|_| None,
            args: &args,
            target,
        };
        let dev = parse(text, &options(Some("dev"))).unwrap();
        assert_eq!(dev.workdir, "/srv/staging");
        assert_eq!(dev.command_line().as_deref(), Some("dev"));
        let last = parse(text, &options(None)).unwrap();
        assert_eq!(last.command_line().as_deref(), Some("prod"));
        assert_eq!(
            parse(text, &options(Some("test"))).unwrap_err().to_string(),
            "no stage is named \"test\" (`FROM ... AS test`), which [build] build_target asks for"
        );
    }

    #[test]
    fn an_entrypoint_clears_the_cmd_of_the_base_stage_and_stages_go_by_index() {
        let stage = read("FROM x AS one\nCMD [\"serve\"]\nCOPY a /a\nFROM one\nENTRYPOINT [\"run\"]\nCOPY --from=0 /a ./\n").unwrap();
        assert_eq!(stage.command_line().as_deref(), Some("run"));
        assert!(matches!(&stage.copies[1].from, CopySource::Stage { name, .. } if name == "0"));
        let kept =
            read("FROM x AS one\nENTRYPOINT [\"run\"]\nFROM one\nCMD [\"serve\"]\n").unwrap();
        assert_eq!(kept.command_line().as_deref(), Some("run serve"));
    }

    #[test]
    fn shell_forms_and_errors() {
        let stage = read("FROM x\nCMD python3 app.py --x \"a b\"\n").unwrap();
        assert_eq!(
            stage.command_line().as_deref(),
            Some("python3 app.py --x \"a b\"")
        );
        let shell_entry = read("FROM x\nENTRYPOINT ./start.sh\nCMD [\"ignored\"]\n").unwrap();
        assert_eq!(shell_entry.command_line().as_deref(), Some("./start.sh"));
        assert_eq!(read("CMD x\n"), Err(DockerfileError::NoStage));
        assert!(matches!(
            read("FROM x\nCMD [\"unclosed\"\n"),
            Err(DockerfileError::Syntax { line: 2, .. })
        ));
        assert_eq!(
            read("FROM x\nWORKDIR app\nWORKDIR ../srv//x/\n")
                .unwrap()
                .workdir,
            "/srv/x"
        );
    }
}
