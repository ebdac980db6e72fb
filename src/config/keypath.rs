//! Dotted key paths as the `config get/set/unset` commands take them:
//! `http_service.internal_port`, `env."DOTTED.NAME"`, `services[0].internal_port`.

use std::fmt;
use std::str::FromStr;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A table key.
    Key(String),
    /// An element of an array or array of tables.
    Index(usize),
}

/// A parsed key path; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath {
    segments: Vec<Segment>,
}

/// Why a key path could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct KeyPathError {
    /// What is wrong.
    pub reason: String,
}

impl KeyPath {
    /// The steps, first to last.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

impl FromStr for KeyPath {
    type Err = KeyPathError;

    fn from_str(input: &str) -> Result<Self, KeyPathError> {
        let fail = |reason: String| Err(KeyPathError { reason });
        let mut segments = Vec::new();
        let mut chars = input.trim().chars().peekable();
        // Set after `.`: a key must follow.
        let mut want_key = true;
        while let Some(&c) = chars.peek() {
            match c {
                '.' if !want_key => {
                    chars.next();
                    want_key = true;
                }
                '[' if !want_key => {
                    chars.next();
                    let mut digits = String::new();
                    let mut closed = false;
                    for ch in chars.by_ref() {
                        if ch == ']' {
                            closed = true;
                            break;
                        }
                        digits.push(ch);
                    }
                    if !closed {
                        return fail(format!("unclosed `[` in key {input:?}"));
                    }
                    match digits.trim().parse() {
                        Ok(i) => segments.push(Segment::Index(i)),
                        Err(_) => {
                            return fail(format!("`[{digits}]` is not an index; write [0], [1]..."))
                        }
                    }
                }
                '"' | '\'' if want_key => {
                    chars.next();
                    let mut key = String::new();
                    let mut closed = false;
                    while let Some(ch) = chars.next() {
                        match ch {
                            '\\' if c == '"' => match chars.next() {
                                Some(escaped) => key.push(escaped),
                                None => break,
                            },
                            ch if ch == c => {
                                closed = true;
                                break;
                            }
                            ch => key.push(ch),
                        }
                    }
                    if !closed {
                        return fail(format!("unclosed quote in key {input:?}"));
                    }
                    segments.push(Segment::Key(key));
                    want_key = false;
                }
                _ if want_key => {
                    let mut key = String::new();
                    while let Some(&ch) = chars.peek() {
                        if ch == '.' || ch == '[' {
                            break;
                        }
                        key.push(ch);
                        chars.next();
                    }
                    let key = key.trim();
                    if key.is_empty() {
                        return fail(format!("empty key in {input:?}"));
                    }
                    if !key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        return fail(format!(
                            "{key:?} needs quotes: write {}",
                            "env.\"MY.KEY\"".replace("MY.KEY", key)
                        ));
                    }
                    // `services.0.internal_port` indexes like `services[0]`.
                    match key.parse::<usize>() {
                        Ok(i) if !segments.is_empty() => segments.push(Segment::Index(i)),
                        _ => segments.push(Segment::Key(key.to_string())),
                    }
                    want_key = false;
                }
                _ => return fail(format!("unexpected {c:?} in key {input:?}")),
            }
        }
        if want_key {
            return fail(if segments.is_empty() {
                "the key is empty".to_string()
            } else {
                format!("{input:?} ends with a dot")
            });
        }
        Ok(KeyPath { segments })
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(&crate::config::decode::reader::join("", k))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> Vec<Segment> {
        s.parse::<KeyPath>()
            .map(|k| k.segments)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_every_spelling() {
        use Segment::{Index, Key};
        assert_eq!(keys("app"), [Key("app".into())]);
        assert_eq!(
            keys("http_service.internal_port"),
            [Key("http_service".into()), Key("internal_port".into())]
        );
        assert_eq!(
            keys("services[0].ports[1].port"),
            [
                Key("services".into()),
                Index(0),
                Key("ports".into()),
                Index(1),
                Key("port".into())
            ]
        );
        assert_eq!(
            keys("services.0.protocol"),
            [Key("services".into()), Index(0), Key("protocol".into())]
        );
        assert_eq!(keys("env.\"A.B\""), [Key("env".into()), Key("A.B".into())]);
        assert_eq!(keys("env.'x y'"), [Key("env".into()), Key("x y".into())]);
        assert_eq!(
            keys("build.build-target"),
            [Key("build".into()), Key("build-target".into())]
        );
    }

    #[test]
    fn rejects_malformed_paths_with_a_reason() {
        for bad in ["", "a.", ".a", "a..b", "a[x]", "env.\"open", "a b", "a[0"] {
            assert!(bad.parse::<KeyPath>().is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn displays_back_in_canonical_form() {
        let k: KeyPath = "services.0.ports[1].\"odd key\"".parse().unwrap();
        assert_eq!(k.to_string(), "services[0].ports[1].\"odd key\"");
    }
}
