//! `.env` files as `lakefly secrets import` reads them: `NAME=VALUE` lines, `#` comments and
//! blank lines skipped, an optional `export `, matching quotes stripped, and `"""..."""`
//! values that span lines.

use crate::secret::Secret;

/// A malformed line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DotenvError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses `.env` text into names and values, in file order.
pub fn parse(text: &str) -> Result<Vec<(String, Secret)>, DotenvError> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let err = |message: String| DotenvError {
            line: i + 1,
            message,
        };
        let Some((name, value)) = line.split_once('=') else {
            return Err(err(format!("{line:?} is not NAME=VALUE")));
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(err(format!("{name:?} is not a variable name")));
        }
        let value = value.trim();
        let value = if let Some(rest) = value.strip_prefix("\"\"\"") {
            // A multi-line value runs to the next closing `"""`.
            let mut collected = String::new();
            let mut rest = rest.to_string();
            loop {
                if let Some(end) = rest.find("\"\"\"") {
                    collected.push_str(&rest[..end]);
                    break;
                }
                collected.push_str(&rest);
                collected.push('\n');
                match lines.next() {
                    Some((_, next)) => rest = next.to_string(),
                    None => return Err(err(format!("the \"\"\" value of {name} is never closed"))),
                }
            }
            collected
        } else if let Some(inner) = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .filter(|_| value.len() >= 2)
        {
            inner.replace("\\n", "\n").replace("\\\"", "\"")
        } else if let Some(inner) = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .filter(|_| value.len() >= 2)
        {
            inner.to_string()
        } else if value.starts_with('"') || value.starts_with('\'') {
            return Err(err(format!(
                "the quote that opens the value of {name} is not closed"
            )));
        } else {
            // An unquoted value ends at a ` #` comment.
            value
                .split(" #")
                .next()
                .unwrap_or(value)
                .trim_end()
                .to_string()
        };
        out.push((name.to_string(), Secret::from(value)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.expose().to_vec()).unwrap()))
            .collect()
    }

    #[test]
    fn every_form() {
        let text = "# comment\n\nA=1\nexport B = two words # note\nC=\"quoted # not a comment\"\nD='single'\nE=\"\"\"first\nsecond\"\"\"\nF=\n";
        assert_eq!(
            values(text),
            [
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "quoted # not a comment".into()),
                ("D".into(), "single".into()),
                ("E".into(), "first\nsecond".into()),
                ("F".into(), "".into()),
            ]
        );
    }

    #[test]
    fn malformed_lines_are_named() {
        assert_eq!(parse("A=1\nnot a pair\n").unwrap_err().line, 2);
        assert_eq!(parse("A=\"open\n").unwrap_err().line, 1);
        assert_eq!(
            parse("A=\"\"\"never\nclosed\n").unwrap_err().message,
            "the \"\"\" value of A is never closed"
        );
    }
}
