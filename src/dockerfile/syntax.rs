//! The Dockerfile's lexical layer: instructions with their continuations, JSON or word
//! arguments, `ENV` pairs, `$VAR` substitution, and container paths.

use std::collections::BTreeMap;

use super::Instruction;

/// One instruction: its 1-based first line, its name in capitals, and its arguments.
pub(super) struct Line {
    pub number: usize,
    pub instruction: String,
    pub rest: String,
}

/// The instructions of `text`, with continuations joined and comments dropped.
pub(super) fn instructions(text: &str) -> Vec<Line> {
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
            buf.push_str(body.trim_end());
            buf.push(' ');
            current = Some((start, buf));
            continue;
        }
        buf.push_str(line);
        let (instruction, rest) = buf.split_once(char::is_whitespace).unwrap_or((&buf, ""));
        out.push(Line {
            number: start,
            instruction: instruction.to_ascii_uppercase(),
            rest: rest.trim().to_string(),
        });
    }
    out
}

/// `CMD`/`ENTRYPOINT` arguments: a JSON array (exec form) or a shell command.
pub(super) fn parse_command(rest: &str) -> Result<Instruction, String> {
    let rest = rest.trim();
    if rest.starts_with('[') {
        let argv: Vec<String> =
            serde_json::from_str(rest).map_err(|e| format!("not a JSON array of strings: {e}"))?;
        Ok(Instruction::Exec(argv))
    } else {
        Ok(Instruction::Shell(rest.to_string()))
    }
}

/// `COPY`/`FROM` arguments: leading `--flags`, then a JSON array or whitespace-separated
/// words.
pub(super) fn split_args(rest: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let mut flags = Vec::new();
    let mut tail = rest.trim();
    while tail.starts_with("--") {
        let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        flags.push(tail[..end].to_string());
        tail = tail[end..].trim_start();
    }
    let words = if tail.starts_with('[') {
        serde_json::from_str(tail).map_err(|e| format!("not a JSON array of strings: {e}"))?
    } else {
        tail.split_whitespace().map(str::to_string).collect()
    };
    Ok((flags, words))
}

/// The value of flag `--name=value` among `flags`.
pub(super) fn flag<'a>(flags: &'a [String], name: &str) -> Option<&'a str> {
    flags.iter().find_map(|f| {
        f.strip_prefix("--")
            .and_then(|f| f.strip_prefix(name))
            .and_then(|f| f.strip_prefix('='))
    })
}

/// `ENV A=1 B="two words"` or the legacy `ENV A one value`, with `$VAR` substituted from
/// `vars` except in single quotes.
pub(super) fn parse_env(rest: &str, vars: &Vars<'_>) -> Vec<(String, String)> {
    let rest = rest.trim();
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (key, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return vec![(key.to_string(), vars.substitute(value.trim()))];
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
            Some('\'') => {
                chars.next();
                value.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            Some('"') => {
                chars.next();
                let mut raw = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        // `\$` stays escaped for substitution; other escapes are resolved.
                        '\\' => match chars.next() {
                            Some('$') => raw.push_str("\\$"),
                            Some(n) => raw.push(n),
                            None => {}
                        },
                        '"' => break,
                        c => raw.push(c),
                    }
                }
                value = vars.substitute(&raw);
            }
            _ => {
                let mut raw = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    raw.push(c);
                    chars.next();
                }
                value = vars.substitute(&raw);
            }
        }
        out.push((key.trim().to_string(), value));
    }
    out
}

/// The variables `$NAME` can refer to: those the Dockerfile set so far (`ARG`, `ENV`),
/// then the host's, which stand in for the base image's (`ENV PATH=/app/bin:$PATH`).
pub(super) struct Vars<'a> {
    /// Set by the Dockerfile.
    pub set: BTreeMap<String, String>,
    /// The host's.
    pub host: &'a dyn Fn(&str) -> Option<String>,
}

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.set.get(name).cloned().or_else(|| (self.host)(name))
    }

    /// Replaces `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alternative}` as
    /// Docker does (an unset variable is empty); `\$` is a literal `$`.
    pub fn substitute(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(['$', '\\']) {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(escaped) = tail.strip_prefix("\\$") {
                out.push('$');
                rest = escaped;
            } else if let Some(after) = tail.strip_prefix('\\') {
                out.push('\\');
                rest = after;
            } else if let Some(braced) = tail.strip_prefix("${") {
                let Some(end) = braced.find('}') else {
                    out.push_str(tail);
                    return out;
                };
                out.push_str(&self.braced(&braced[..end]));
                rest = &braced[end + 1..];
            } else {
                let name_len = tail[1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len() - 1);
                if name_len == 0 {
                    out.push('$');
                } else {
                    out.push_str(&self.get(&tail[1..=name_len]).unwrap_or_default());
                }
                rest = &tail[1 + name_len..];
            }
        }
        out.push_str(rest);
        out
    }

    /// `NAME`, `NAME:-default` or `NAME:+alternative`, the inside of `${...}`.
    fn braced(&self, inside: &str) -> String {
        if let Some((name, default)) = inside.split_once(":-") {
            return self
                .get(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| self.substitute(default));
        }
        if let Some((name, alternative)) = inside.split_once(":+") {
            return match self.get(name).filter(|v| !v.is_empty()) {
                Some(_) => self.substitute(alternative),
                None => String::new(),
            };
        }
        self.get(inside).unwrap_or_default()
    }
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

/// `path` made absolute against `workdir` and normalized.
pub(super) fn absolute(workdir: &str, path: &str) -> String {
    if path.starts_with('/') {
        normalize(path)
    } else {
        normalize(&format!("{workdir}/{path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(set: &[(&str, &str)]) -> Vars<'static> {
        Vars {
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            host: &|name| (name == "PATH").then(|| "/usr/bin:/bin".to_string()),
        }
    }

    #[test]
    fn variables_are_substituted_as_docker_does() {
        let v = vars(&[("APP", "/app"), ("EMPTY", "")]);
        assert_eq!(v.substitute("$APP/bin:$PATH"), "/app/bin:/usr/bin:/bin");
        assert_eq!(v.substitute("${APP}x ${NOPE}|"), "/appx |");
        assert_eq!(
            v.substitute("${EMPTY:-fallback} ${APP:-no}"),
            "fallback /app"
        );
        assert_eq!(v.substitute("${APP:+set}${NOPE:+set}"), "set");
        assert_eq!(v.substitute(r"\$APP costs $ 5 \n"), r"$APP costs $ 5 \n");
        assert_eq!(v.substitute("${unclosed"), "${unclosed");
    }

    #[test]
    fn env_pairs_keep_single_quotes_literal() {
        let v = vars(&[("HOME_DIR", "/home/app")]);
        assert_eq!(
            parse_env(
                r#"A=$HOME_DIR/x B="two $HOME_DIR" C='$HOME_DIR' D="\$HOME_DIR""#,
                &v
            ),
            [
                ("A".into(), "/home/app/x".into()),
                ("B".into(), "two /home/app".into()),
                ("C".into(), "$HOME_DIR".into()),
                ("D".into(), "$HOME_DIR".into()),
            ]
        );
        assert_eq!(
            parse_env("LEGACY some $HOME_DIR", &v),
            [("LEGACY".into(), "some /home/app".into())]
        );
    }
}
