//! `.env` files as `lakefly secrets import` reads them: `NAME=VALUE` lines, `#` comments and
//! blank lines skipped, an optional `export `, and values unquoted (ending at a ` #`
//! comment), in single quotes (taken as written), in double quotes (with `\n`, `\t`, `\"`
//! and `\\` escapes) or in flyctl's `"""` quotes. A quoted value may span lines, as a PEM
//! key does in the `.env` files that dotenv, Docker Compose and flyctl read.

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
        let line = raw.trim_start();
        if line.trim_end().is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let err = |message: String| DotenvError {
            line: i + 1,
            message,
        };
        // The line is never quoted back: in a value over several lines left unquoted
        // (a PEM key), it is the secret itself.
        let Some((name, value)) = line.split_once('=') else {
            return Err(err(
                "not NAME=VALUE (the line is not shown, as it may hold a value); a value over several lines goes in quotes".into(),
            ));
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(err(format!("{name:?} is not a variable name")));
        }
        let value = value.trim_start();
        let value = if let Some(rest) = value.strip_prefix("\"\"\"") {
            quoted(rest, Quote::Triple, &mut lines)
        } else if let Some(rest) = value.strip_prefix('"') {
            quoted(rest, Quote::Double, &mut lines)
        } else if let Some(rest) = value.strip_prefix('\'') {
            quoted(rest, Quote::Single, &mut lines)
        } else {
            // An unquoted value ends at a ` #` comment.
            Ok(value
                .split(" #")
                .next()
                .unwrap_or(value)
                .trim_end()
                .to_string())
        }
        .map_err(|problem| err(problem.describe(name)))?;
        out.push((name.to_string(), Secret::from(value)));
    }
    Ok(out)
}

/// The quotes a value is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    Single,
    Double,
    Triple,
}

impl Quote {
    fn mark(self) -> &'static str {
        match self {
            Quote::Single => "'",
            Quote::Double => "\"",
            Quote::Triple => "\"\"\"",
        }
    }
}

/// Why a quoted value could not be read.
enum QuoteProblem {
    NeverClosed(Quote),
    /// Text follows the closing quote (not kept: it may be part of the value).
    TextAfter(Quote),
}

impl QuoteProblem {
    fn describe(&self, name: &str) -> String {
        match self {
            QuoteProblem::NeverClosed(quote) => format!(
                "the {} that opens the value of {name} is never closed",
                quote.mark()
            ),
            QuoteProblem::TextAfter(quote) => format!(
                "text follows the closing {} of {name}'s value; put it inside the quotes or after a `#`",
                quote.mark()
            ),
        }
    }
}

/// Reads a quoted value from `first` (the text after its opening quote) and, while it is
/// not closed, from the following lines, which become part of it.
fn quoted<'a>(
    first: &'a str,
    quote: Quote,
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
) -> Result<String, QuoteProblem> {
    let mut value = String::new();
    let mut line = first;
    loop {
        if let Some(after) = closing(line, quote, &mut value) {
            let after = after.trim();
            if !after.is_empty() && !after.starts_with('#') {
                return Err(QuoteProblem::TextAfter(quote));
            }
            return Ok(value);
        }
        value.push('\n');
        line = lines.next().ok_or(QuoteProblem::NeverClosed(quote))?.1;
    }
}

/// Appends `line`'s part of the value to `value`, decoding escapes in double quotes;
/// returns what follows the closing quote, or `None` when the line does not close it.
fn closing<'a>(line: &'a str, quote: Quote, value: &mut String) -> Option<&'a str> {
    match quote {
        Quote::Single | Quote::Triple => match line.find(quote.mark()) {
            Some(end) => {
                value.push_str(&line[..end]);
                Some(&line[end + quote.mark().len()..])
            }
            None => {
                value.push_str(line);
                None
            }
        },
        Quote::Double => {
            let mut chars = line.char_indices();
            while let Some((at, c)) = chars.next() {
                match c {
                    '"' => return Some(&line[at + 1..]),
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, 'r')) => value.push('\r'),
                        Some((_, 't')) => value.push('\t'),
                        Some((_, escaped @ ('"' | '\\'))) => value.push(escaped),
                        // An unknown escape is kept as written, as dotenv does.
                        Some((_, other)) => {
                            value.push('\\');
                            value.push(other);
                        }
                        None => value.push('\\'),
                    },
                    other => value.push(other),
                }
            }
            None
        }
    }
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
    fn quoted_values_span_lines_and_take_comments_after_them() {
        let pem = "KEY=\"-----BEGIN KEY-----\nabc\n-----END KEY-----\"\nNEXT=1\n";
        assert_eq!(
            values(pem),
            [
                (
                    "KEY".into(),
                    "-----BEGIN KEY-----\nabc\n-----END KEY-----".into()
                ),
                ("NEXT".into(), "1".into()),
            ]
        );
        let text = "A=\"two words\" # note\nB='it''s'x\n";
        let error = parse(text).unwrap_err();
        assert_eq!(
            (error.line, error.message.as_str()),
            (
                2,
                "text follows the closing ' of B's value; put it inside the quotes or after a `#`"
            )
        );
        assert_eq!(
            values("A=\"two words\"  # note\nB='line\n  two  '\n"),
            [
                ("A".into(), "two words".into()),
                ("B".into(), "line\n  two  ".into()),
            ]
        );
    }

    #[test]
    fn double_quotes_decode_escapes_and_single_quotes_do_not() {
        assert_eq!(
            values("A=\"tab\\there\\n\\\"q\\\" back\\\\slash \\d\"\nB='raw\\n'\n"),
            [
                ("A".into(), "tab\there\n\"q\" back\\slash \\d".into()),
                ("B".into(), "raw\\n".into()),
            ]
        );
    }

    #[test]
    fn malformed_lines_are_named_and_never_quoted_back() {
        assert_eq!(parse("A=1\nnot a pair\n").unwrap_err().line, 2);
        // A key left unquoted: its second line is no pair, and is the secret.
        let error = parse("KEY=-----BEGIN KEY-----\nMIIEvQIBADANBg\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(!error.to_string().contains("MIIE"), "{error}");
        assert_eq!(parse("A=\"open\n").unwrap_err().line, 1);
        assert_eq!(
            parse("A=\"\"\"never\nclosed\n").unwrap_err().message,
            "the \"\"\" that opens the value of A is never closed"
        );
        assert_eq!(parse("A=1\nB='open\nC=2\n").unwrap_err().line, 2);
    }
}
