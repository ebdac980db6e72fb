//! Where a key TOML refuses as a duplicate was first set. toml_edit's error points at the
//! second definition only; in a long file the first can be screens away (two
//! `ZFINGER_URL`s in one `[env]`), so the report names the key and both places.

use std::ops::Range;

use toml_edit::{Item, Key, TableLike};

/// The key a duplicate-key error is about and where it was first set.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct FirstSet {
    /// Its dotted path from the root, as the report's key (`env.ZFINGER_URL`).
    pub path: String,
    /// What is defined twice, as a message says it: ``key `A` of [env]``, ``key `app` ``,
    /// `table [env]`.
    pub what: String,
    /// Whether it is a table (defined again by a header), not a key's value.
    pub is_table: bool,
    /// The byte span of the first definition's key.
    pub span: Range<usize>,
}

/// Finds the first definition of the key defined again at `duplicate` (the span of a
/// duplicate-key error in `text`). `None` when it cannot be told for sure: the error is
/// then reported as toml_edit gave it.
pub(super) fn first_set(text: &str, duplicate: &Range<usize>) -> Option<FirstSet> {
    let line_start = text
        .get(..duplicate.start)?
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?.trim_start();
    let before = &text[..line_start];
    // A header defines its table again; a `key = value` line a key of the table above it.
    let is_header = line.starts_with('[');
    let (table, keys) = match header(line) {
        Some(keys) => (Vec::new(), keys),
        None => {
            let (key, _) = line.split_once('=')?;
            let table = before
                .lines()
                .rev()
                .map(str::trim_start)
                .find(|l| l.starts_with('['))
                .map_or(Some(Vec::new()), header)?;
            (table, Key::parse(key.trim()).ok()?)
        }
    };
    // What precedes the line parsed alone holds the first definition (an error earlier
    // would have been the one reported).
    let document = toml_edit::Document::parse(before).ok()?;
    let path: Vec<&Key> = table.iter().chain(&keys).collect();
    let (last, walk) = path.split_last()?;
    let mut at: &dyn TableLike = document.as_table();
    for key in walk {
        at = match at.get(key.get())? {
            // A header under an array of tables is about its last element.
            Item::ArrayOfTables(array) => array.iter().last()?,
            item => item.as_table_like()?,
        };
    }
    let (first, _) = at.get_key_value(last.get())?;
    let span = first.span()?;
    let dotted = |keys: &[&Key]| {
        keys.iter()
            .map(|k| k.display_repr().to_string())
            .collect::<Vec<_>>()
            .join(".")
    };
    let what = match walk {
        _ if is_header => format!("table [{}]", dotted(&path)),
        [] => format!("key `{}`", last.display_repr()),
        walk => format!("key `{}` of [{}]", last.display_repr(), dotted(walk)),
    };
    Some(FirstSet {
        path: dotted(&path),
        what,
        is_table: is_header,
        span,
    })
}

/// The keys of a `[table]` or `[[array]]` header line, `None` for any other line.
fn header(line: &str) -> Option<Vec<Key>> {
    let inner = line
        .strip_prefix("[[")
        .and_then(|rest| rest.split_once("]]"))
        .or_else(|| line.strip_prefix('[').and_then(|rest| rest.split_once(']')))?
        .0;
    Key::parse(inner.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first definition of the duplicate toml_edit reports in `text`: its path, what
    /// it is and the line it is on (1-based).
    fn first(text: &str) -> Option<(String, String, usize)> {
        let error = toml_edit::Document::parse(text).expect_err("a duplicate");
        let found = first_set(text, &error.span().expect("a span"))?;
        let line = text[..found.span.start].matches('\n').count() + 1;
        Some((found.path, found.what, line))
    }

    #[test]
    fn a_key_set_twice_in_a_table_is_found_where_it_was_first_set() {
        let text = "app = \"a\"\n[env]\n  A = \"1\"\n  B = \"2\"\n  A = \"3\"\n";
        assert_eq!(
            first(text),
            Some(("env.A".into(), "key `A` of [env]".into(), 3))
        );
        let top = "app = \"a\"\nprimary_region = \"x\"\napp = \"b\"\n";
        assert_eq!(first(top), Some(("app".into(), "key `app`".into(), 1)));
    }

    #[test]
    fn the_same_key_in_another_table_is_not_taken_for_the_first() {
        let text = "[[services]]\n  internal_port = 1\n[[services]]\n  internal_port = 2\n  \
                    internal_port = 3\n";
        assert_eq!(
            first(text),
            Some((
                "services.internal_port".into(),
                "key `internal_port` of [services]".into(),
                4
            ))
        );
    }

    #[test]
    fn a_table_defined_twice_is_found_at_its_first_header_or_dotted_key() {
        let text = "app = \"a\"\n[env]\n  A = \"1\"\n[http_service]\n  internal_port = 1\n\
                    [env]\n  B = \"2\"\n";
        assert_eq!(first(text), Some(("env".into(), "table [env]".into(), 2)));
        let dotted = "env.A = \"1\"\n[env]\nB = \"2\"\n";
        assert_eq!(first(dotted), Some(("env".into(), "table [env]".into(), 1)));
        let nested = "[[services]]\n  [services.concurrency]\n    type = \"a\"\n  \
                      [services.concurrency]\n";
        assert_eq!(
            first(nested),
            Some((
                "services.concurrency".into(),
                "table [services.concurrency]".into(),
                2
            ))
        );
    }

    #[test]
    fn quoted_and_dotted_keys_are_named_as_written() {
        let text = "[env]\n\"a.b\" = \"1\"\n\"a.b\" = \"2\"\n";
        assert_eq!(
            first(text),
            Some(("env.\"a.b\"".into(), "key `\"a.b\"` of [env]".into(), 2))
        );
        let dotted = "[http_service]\nconcurrency.type = \"a\"\nconcurrency.type = \"b\"\n";
        assert_eq!(
            first(dotted),
            Some((
                "http_service.concurrency.type".into(),
                "key `type` of [http_service.concurrency]".into(),
                2
            ))
        );
    }
}
