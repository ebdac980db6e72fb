//! Durations and sizes as `fly.toml` writes them: `"1m30s"`, `"500ms"`, `"1gb"`, `512`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A span of time with millisecond precision.
///
/// Serialized as the canonical string form (`"1m30s"`, `"250ms"`) so the normalized config
/// is unambiguous about units, unlike `fly.toml`'s bare numbers (seconds in one place,
/// milliseconds in another).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    millis: u64,
}

impl Duration {
    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Duration { millis }
    }

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration {
            millis: secs.saturating_mul(1000),
        }
    }

    /// Whole milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// The same span as a `std::time::Duration`.
    pub const fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis)
    }

    /// A timeout flag as flyctl reads one: a duration (`90s`, `5m0s`), or whole seconds
    /// (`300`), which its flags took before they took durations.
    pub fn parse_flag(s: &str) -> Result<Self, UnitError> {
        match s.trim().parse::<u64>() {
            Ok(seconds) => Ok(Duration::from_secs(seconds)),
            Err(_) => s.parse(),
        }
    }
}

/// Why a duration or size string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Empty string.
    #[error("is empty")]
    Empty,
    /// A number was expected at this point.
    #[error("expected a number in {0:?}")]
    MissingNumber(String),
    /// The unit after a number is not one we know.
    #[error("unknown unit {unit:?} in {input:?}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// A number without a unit where one is required.
    #[error("missing unit in {0:?}")]
    MissingUnit(String),
    /// The value does not fit.
    #[error("{0:?} is too large")]
    Overflow(String),
    /// Negative values make no sense here.
    #[error("{0:?} is negative")]
    Negative(String),
}

/// Splits `"1m30.5s"` into `[(1.0, "m"), (30.5, "s")]`.
fn number_unit_pairs(input: &str) -> Result<Vec<(f64, &str)>, UnitError> {
    let mut pairs = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(UnitError::MissingNumber(input.to_string()));
        }
        let number: f64 = rest[..num_len]
            .replace('_', "")
            .parse()
            .map_err(|_| UnitError::MissingNumber(input.to_string()))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        pairs.push((number, rest[..unit_len].trim()));
        rest = &rest[unit_len..];
    }
    Ok(pairs)
}

impl FromStr for Duration {
    type Err = UnitError;

    /// Parses Go-style durations as Fly does: `"10s"`, `"1m30s"`, `"1.5h"`, `"500ms"`.
    fn from_str(s: &str) -> Result<Self, UnitError> {
        let input = s.trim();
        if input.is_empty() {
            return Err(UnitError::Empty);
        }
        if input.starts_with('-') {
            return Err(UnitError::Negative(input.to_string()));
        }
        let input = input.strip_prefix('+').unwrap_or(input);
        if input == "0" {
            return Ok(Duration::from_millis(0));
        }
        let mut total = 0f64;
        for (number, unit) in number_unit_pairs(input)? {
            let scale = match unit {
                "ns" => 1e-6,
                "us" | "µs" | "μs" => 1e-3,
                "ms" => 1.0,
                "s" => 1e3,
                "m" => 60e3,
                "h" => 3_600e3,
                "" => return Err(UnitError::MissingUnit(input.to_string())),
                other => {
                    return Err(UnitError::UnknownUnit {
                        unit: other.to_string(),
                        input: input.to_string(),
                    })
                }
            };
            total += number * scale;
        }
        if !total.is_finite() || total > u64::MAX as f64 {
            return Err(UnitError::Overflow(input.to_string()));
        }
        Ok(Duration::from_millis(total.round() as u64))
    }
}

impl fmt::Display for Duration {
    /// Canonical form: hours, minutes, then seconds (with a fraction when needed);
    /// below one second, milliseconds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.millis;
        if ms < 1000 {
            return write!(f, "{ms}ms");
        }
        let (h, rem) = (ms / 3_600_000, ms % 3_600_000);
        let (m, rem) = (rem / 60_000, rem % 60_000);
        let (s, frac) = (rem / 1000, rem % 1000);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        match (s, frac) {
            (0, 0) => Ok(()),
            (s, 0) => write!(f, "{s}s"),
            (s, frac) => {
                let frac = format!("{frac:03}");
                write!(f, "{s}.{}s", frac.trim_end_matches('0'))
            }
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a memory or disk size into whole MiB, as Fly reads `memory = "1gb"`.
///
/// Units are binary and case-insensitive (`"512mb"`, `"1GB"`, `"2g"`, `"1GiB"`); a bare
/// number is megabytes, as in `memory = 512`.
pub fn parse_size_mb(s: &str) -> Result<u64, UnitError> {
    let input = s.trim();
    if input.is_empty() {
        return Err(UnitError::Empty);
    }
    if input.starts_with('-') {
        return Err(UnitError::Negative(input.to_string()));
    }
    let lower = input.to_ascii_lowercase();
    let pairs = number_unit_pairs(&lower)?;
    let [(number, unit)] = pairs.as_slice() else {
        return Err(UnitError::MissingNumber(input.to_string()));
    };
    let unit = unit.trim_end_matches("ib").trim_end_matches('b');
    let mib_per_unit = match unit {
        "" | "m" => 1.0,
        "k" => 1.0 / 1024.0,
        "g" => 1024.0,
        "t" => 1024.0 * 1024.0,
        _ => {
            return Err(UnitError::UnknownUnit {
                unit: unit.to_string(),
                input: input.to_string(),
            })
        }
    };
    let mb = number * mib_per_unit;
    if !mb.is_finite() || mb > u64::MAX as f64 {
        return Err(UnitError::Overflow(input.to_string()));
    }
    Ok(mb.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_go_syntax() {
        let ms = |s: &str| s.parse::<Duration>().map(Duration::as_millis);
        assert_eq!(ms("10s"), Ok(10_000));
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms("1.5h"), Ok(5_400_000));
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("0"), Ok(0));
        assert_eq!(ms(" 2s "), Ok(2000));
        assert_eq!(ms("10"), Err(UnitError::MissingUnit("10".into())));
        assert!(matches!(ms("10 sec"), Err(UnitError::UnknownUnit { .. })));
        assert!(matches!(ms("-1s"), Err(UnitError::Negative(_))));
        assert!(matches!(ms("s"), Err(UnitError::MissingNumber(_))));
        assert_eq!(ms(""), Err(UnitError::Empty));
    }

    #[test]
    fn durations_print_canonically_and_round_trip() {
        for (ms, text) in [
            (0, "0ms"),
            (250, "250ms"),
            (1000, "1s"),
            (1500, "1.5s"),
            (90_000, "1m30s"),
            (3_600_000, "1h"),
            (3_661_001, "1h1m1.001s"),
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(d.to_string(), text);
            assert_eq!(text.parse::<Duration>(), Ok(d));
        }
    }

    #[test]
    fn sizes_are_binary_megabytes() {
        assert_eq!(parse_size_mb("1gb"), Ok(1024));
        assert_eq!(parse_size_mb("1GB"), Ok(1024));
        assert_eq!(parse_size_mb("512mb"), Ok(512));
        assert_eq!(parse_size_mb("2g"), Ok(2048));
        assert_eq!(parse_size_mb("1GiB"), Ok(1024));
        assert_eq!(parse_size_mb("416gb"), Ok(425_984));
        assert_eq!(parse_size_mb("512"), Ok(512));
        assert!(matches!(
            parse_size_mb("1 potato"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_size_mb("1g2m"),
            Err(UnitError::MissingNumber(_))
        ));
        assert!(parse_size_mb("-1gb").is_err());
    }
}
