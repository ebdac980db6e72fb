//! `Secret`: a value that must never be printed. `Debug` and `Display` show `[redacted]`,
//! and the bytes are wiped from memory when it is dropped.

use std::fmt;

use zeroize::Zeroizing;

/// Why a secret's name is refused, if it is: the client checks before it asks for a value,
/// the daemon again before it stores one.
pub fn check_name(name: &str) -> Result<(), String> {
    if !crate::config::names::is_variable_name(name) {
        return Err(format!("{name:?} is not a valid environment variable name"));
    }
    if name == "PORT" || name.starts_with("LAKEFLY_") || name.starts_with("FLY_") {
        return Err(format!(
            "{name} is set by lakefly for every machine and cannot be a secret"
        ));
    }
    Ok(())
}

/// What stands in for a secret's value in output the daemon records.
pub const REDACTED: &str = "[redacted]";

/// The shortest value (or line of a multi-line value) hidden in recorded output: shorter
/// ones would blank out ordinary words and numbers.
const REDACT_MIN: usize = 4;

/// Hides a set of secret values in output the daemon records (a machine's lines, a
/// release command's or a job's last lines): a command given secrets may print one, and
/// the record must not keep it. Built once per process or run, used for every line; its
/// copies of the values are wiped when it is dropped.
#[derive(Default)]
pub struct Redactor {
    /// The pieces to hide, longest first, so a value that holds another is hidden whole.
    pieces: Vec<Zeroizing<String>>,
}

impl Redactor {
    /// Hides `values`, each line of a multi-line one apart, leaving out pieces too short
    /// to tell from ordinary words.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut pieces: Vec<Zeroizing<String>> = values
            .into_iter()
            .flat_map(str::lines)
            .map(|line| line.trim_end_matches('\r'))
            .filter(|piece| piece.len() >= REDACT_MIN)
            .map(|piece| Zeroizing::new(piece.to_string()))
            .collect();
        pieces.sort_by_key(|piece| std::cmp::Reverse(piece.len()));
        pieces.dedup();
        Redactor { pieces }
    }

    /// `text` with every value replaced by [`REDACTED`]; borrowed when none is in it.
    pub fn redact<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        let mut text = std::borrow::Cow::Borrowed(text);
        for piece in &self.pieces {
            if text.contains(piece.as_str()) {
                text = std::borrow::Cow::Owned(text.replace(piece.as_str(), REDACTED));
            }
        }
        text
    }
}

/// A secret value (an app secret, a token).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    /// The bytes, for the one place that must see them (encryption, a machine's env).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s.into_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_output_loses_every_secret_value_and_keeps_the_rest() {
        let values = [
            "postgres://u:pw@db/app",
            "pw",
            "-----BEGIN KEY-----\nMIIBx0\n-----END KEY-----",
        ];
        let redactor = Redactor::new(values);
        assert_eq!(
            redactor.redact("connecting to postgres://u:pw@db/app as pw"),
            "connecting to [redacted] as pw"
        );
        assert_eq!(
            redactor.redact("key: MIIBx0 (-----END KEY-----)"),
            "key: [redacted] ([redacted])"
        );
        assert!(matches!(
            redactor.redact("nothing here"),
            std::borrow::Cow::Borrowed("nothing here")
        ));
    }

    #[test]
    fn never_prints_its_value() {
        let s = Secret::from("hunter2".to_string());
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), b"hunter2");
    }
}
