//! Reading typed values out of a spanned `toml_edit` tree, recording every problem with
//! its place instead of stopping at the first one.

use std::collections::BTreeMap;
use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

use crate::config::diagnostic::{Diagnostic, LineIndex, Severity};
use crate::config::units::{self, Duration};

/// Keys a table had that no decoder asked for, kept as JSON so nothing is dropped.
pub type Extra = BTreeMap<String, serde_json::Value>;

/// Collects diagnostics and the source span of every normalized key path.
pub(crate) struct Decoder<'a> {
    index: LineIndex<'a>,
    pub(crate) diagnostics: Vec<Diagnostic>,
    pub(crate) extensions: Vec<Diagnostic>,
    pub(crate) spans: BTreeMap<String, Range<usize>>,
}

/// A value found under a key, with its normalized path and where it was written.
#[derive(Clone)]
pub(crate) struct Field<'a> {
    pub(crate) path: String,
    pub(crate) item: &'a Item,
    pub(crate) span: Option<Range<usize>>,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Decoder {
            index: LineIndex::new(text),
            diagnostics: Vec::new(),
            extensions: Vec::new(),
            spans: BTreeMap::new(),
        }
    }

    /// Builds a diagnostic at `span`.
    pub(crate) fn diagnostic(
        &self,
        severity: Severity,
        key: &str,
        span: Option<&Range<usize>>,
        message: String,
        hint: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity,
            key: key.to_string(),
            message,
            hint,
            position: span.map(|s| self.index.position(s.start)),
            snippet: span.map(|s| self.index.snippet(s)),
        }
    }

    /// Records an error about `field`.
    pub(crate) fn error(
        &mut self,
        field: &Field,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let d = self.diagnostic(
            Severity::Error,
            &field.path,
            field.span.as_ref(),
            message.into(),
            hint,
        );
        self.diagnostics.push(d);
    }

    /// Records a warning about `field`.
    pub(crate) fn warn(&mut self, field: &Field, message: impl Into<String>, hint: Option<String>) {
        let d = self.diagnostic(
            Severity::Warning,
            &field.path,
            field.span.as_ref(),
            message.into(),
            hint,
        );
        self.diagnostics.push(d);
    }

    /// Notes use of a lakefly extension (an error only under `--strict`).
    pub(crate) fn extension(&mut self, field: &Field, what: &str) {
        let d = self.diagnostic(
            Severity::Warning,
            &field.path,
            field.span.as_ref(),
            format!("{what} is a lakefly extension that Fly.io does not read"),
            Some(
                "keep it for lakefly, or remove it if this file must also deploy to Fly.io".into(),
            ),
        );
        self.extensions.push(d);
    }

    /// Notes a list written as one table where flyctl reads only a list (an error only
    /// under `--strict`, as an extension is: lakefly reads it, Fly.io would not).
    fn single_table_for_fly(&mut self, field: &Field) {
        let path = &field.path;
        let d = self.diagnostic(
            Severity::Warning,
            path,
            field.span.as_ref(),
            format!("`{path}` is a single table; flyctl reads it only as a list of tables"),
            Some(match field.item {
                Item::Table(_) => format!(
                    "write its header as [[{path}]] if this file must also deploy to Fly.io"
                ),
                _ => "put the table in a list, `[{ ... }]`, if this file must also deploy to \
                      Fly.io"
                    .into(),
            }),
        );
        self.extensions.push(d);
    }

    fn expected(&mut self, field: &Field, what: &str, hint: Option<String>) {
        let found = type_name(field.item);
        self.error(
            field,
            format!("`{}` must be {what}, found {found}", field.path),
            hint,
        );
    }

    /// A string value.
    pub(crate) fn string(&mut self, field: &Field) -> Option<String> {
        match field.item.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                let hint = Some(format!(
                    "write it in quotes: {} = \"...\"",
                    last_key(&field.path)
                ));
                self.expected(field, "a string", hint);
                None
            }
        }
    }

    /// A boolean value.
    pub(crate) fn boolean(&mut self, field: &Field) -> Option<bool> {
        match field.item.as_bool() {
            Some(b) => Some(b),
            None => {
                let hint = Some(format!("use {} = true or false", last_key(&field.path)));
                self.expected(field, "true or false", hint);
                None
            }
        }
    }

    /// A non-negative integer, also accepted as a string of digits as older files write it.
    pub(crate) fn unsigned(&mut self, field: &Field) -> Option<u64> {
        let parsed = match field.item.as_value() {
            Some(Value::Integer(i)) => u64::try_from(*i.value()).ok(),
            Some(Value::String(s)) => s.value().trim().replace('_', "").parse().ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.expected(field, "a whole number of 0 or more", None);
        }
        parsed
    }

    /// A count such as a limit or a number of CPUs: a non-negative integer that fits 32 bits.
    pub(crate) fn count(&mut self, field: &Field) -> Option<u32> {
        let n = self.unsigned(field)?;
        let fits = u32::try_from(n).ok();
        if fits.is_none() {
            self.error(field, format!("`{}` {n} is too large", field.path), None);
        }
        fits
    }

    /// A number that may be written with a fraction (`max_unavailable = 0.33` or `2`).
    pub(crate) fn number(&mut self, field: &Field) -> Option<f64> {
        match field.item.as_value() {
            Some(Value::Integer(i)) => Some(*i.value() as f64),
            Some(Value::Float(f)) if f.value().is_finite() => Some(*f.value()),
            _ => {
                self.expected(field, "a number", None);
                None
            }
        }
    }

    /// A TCP/UDP port, 1-65535, as an integer or a string of digits.
    pub(crate) fn port(&mut self, field: &Field) -> Option<u16> {
        let n = self.unsigned(field)?;
        match u16::try_from(n) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                self.error(
                    field,
                    format!("port {n} is out of range"),
                    Some("ports are whole numbers from 1 to 65535".into()),
                );
                None
            }
        }
    }

    /// A duration given as a string (`"10s"`) or a bare number in `bare_unit`.
    pub(crate) fn duration(&mut self, field: &Field, bare_unit: BareUnit) -> Option<Duration> {
        let hint = format!(
            "write a number with a unit, such as {} = \"10s\", \"1m30s\" or \"500ms\"",
            last_key(&field.path)
        );
        self.quantity(
            field,
            "duration",
            hint,
            |n| match bare_unit {
                BareUnit::Seconds => Duration::from_secs(n),
                BareUnit::Millis => Duration::from_millis(n),
            },
            str::parse,
        )
    }

    /// A size in MiB: an integer in `bare_mb_per_unit` MiB, or a string with a unit.
    pub(crate) fn size_mb(&mut self, field: &Field, bare_mb_per_unit: u64) -> Option<u64> {
        let hint = format!(
            "write a size such as {} = \"512mb\" or \"1gb\"",
            last_key(&field.path)
        );
        self.quantity(
            field,
            "size",
            hint,
            |n| n.saturating_mul(bare_mb_per_unit),
            units::parse_size_mb,
        )
    }

    /// A value written as a bare non-negative integer or as a string with a unit.
    fn quantity<T>(
        &mut self,
        field: &Field,
        what: &str,
        hint: String,
        from_bare: impl FnOnce(u64) -> T,
        parse: impl FnOnce(&str) -> Result<T, units::UnitError>,
    ) -> Option<T> {
        let problem = match field.item.as_value() {
            Some(Value::Integer(i)) => match u64::try_from(*i.value()) {
                Ok(n) => return Some(from_bare(n)),
                Err(_) => format!("`{}` cannot be negative", field.path),
            },
            Some(Value::String(s)) => match parse(s.value()) {
                Ok(v) => return Some(v),
                Err(e) => format!("`{}` is not a valid {what}: {e}", field.path),
            },
            _ => {
                self.expected(field, &format!("a {what}"), Some(hint));
                return None;
            }
        };
        self.error(field, problem, Some(hint));
        None
    }

    /// A list of strings; a single string counts as a list of one (`cmd = "run"`).
    pub(crate) fn string_list(&mut self, field: &Field) -> Option<Vec<String>> {
        match field.item.as_value() {
            Some(Value::String(s)) => Some(vec![s.value().clone()]),
            Some(Value::Array(a)) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, v) in a.iter().enumerate() {
                    let element = Field {
                        path: format!("{}[{i}]", field.path),
                        item: field.item,
                        span: v.span().or_else(|| field.span.clone()),
                    };
                    match v.as_str() {
                        Some(s) => out.push(s.to_string()),
                        None => {
                            let found = value_type_name(v);
                            self.error(
                                &element,
                                format!("`{}` must be a string, found {found}", element.path),
                                None,
                            );
                        }
                    }
                }
                Some(out)
            }
            _ => {
                self.expected(
                    field,
                    "a list of strings",
                    Some("write [\"a\", \"b\"]".into()),
                );
                None
            }
        }
    }

    /// One of a fixed set of words, matched case-insensitively.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        field: &Field,
        options: &[(&'static str, T)],
    ) -> Option<T> {
        let raw = self.string(field)?;
        let wanted = raw.trim().to_ascii_lowercase();
        if let Some((_, value)) = options.iter().find(|(name, _)| *name == wanted) {
            return Some(*value);
        }
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        let hint = match closest(&wanted, &names) {
            Some(near) => format!("did you mean {near:?}?"),
            None => format!("use one of {}", names.join(", ")),
        };
        self.error(
            field,
            format!(
                "`{}` {raw:?} is not one of {}",
                field.path,
                names.join(", ")
            ),
            Some(hint),
        );
        None
    }

    /// Reads `field` as a table; records an error and returns `None` when it is not one.
    pub(crate) fn table<'t>(&mut self, field: Field<'t>) -> Option<TableReader<'t>> {
        match field.item.as_table_like() {
            Some(table) => {
                self.record(&field);
                Some(TableReader::new(table, field))
            }
            None => {
                self.expected(&field, "a table", None);
                None
            }
        }
    }

    /// Reads `field` as a list of tables, accepting a single table where Fly allows one
    /// (`[services]` for `[[services]]`) and an array of inline tables.
    pub(crate) fn tables<'t>(
        &mut self,
        field: Field<'t>,
        start_index: usize,
    ) -> Vec<TableReader<'t>> {
        let base = field.path.clone();
        let element = |i: usize, item: &'t Item, span: Option<Range<usize>>| Field {
            path: format!("{base}[{}]", start_index + i),
            item,
            span: span.or_else(|| field.span.clone()),
        };
        let elements: Vec<Field<'t>> = match field.item {
            Item::Table(_) | Item::Value(Value::InlineTable(_)) => {
                let path = base.parse::<crate::config::keypath::KeyPath>();
                if path.is_ok_and(|p| crate::config::lists::fly_needs_a_list(p.segments())) {
                    self.single_table_for_fly(&field);
                }
                vec![element(0, field.item, field.item.span())]
            }
            Item::ArrayOfTables(_) | Item::Value(Value::Array(_)) => (0..)
                .map_while(|i| field.item.get(i))
                .enumerate()
                .map(|(i, item)| element(i, item, item.span()))
                .collect(),
            _ => {
                self.expected(&field, "a table or a list of tables", None);
                return Vec::new();
            }
        };
        elements.into_iter().filter_map(|f| self.table(f)).collect()
    }

    /// Remembers where `field` was written, for checks that run after decoding.
    pub(crate) fn record(&mut self, field: &Field) {
        if let Some(span) = &field.span {
            self.spans.insert(field.path.clone(), span.clone());
        }
    }
}

/// How a bare number is read where a duration is expected.
#[derive(Clone, Copy)]
pub(crate) enum BareUnit {
    /// `kill_timeout = 5` means five seconds.
    Seconds,
    /// Check `interval = 10000` means ten seconds, as Fly's machine API reads it.
    Millis,
}

/// A table being decoded: hands out fields and remembers which keys were asked for, so
/// the rest can be reported as unknown and kept.
pub(crate) struct TableReader<'a> {
    table: &'a dyn TableLike,
    pub(crate) field: Field<'a>,
    asked: Vec<&'static str>,
    passthrough: Vec<&'static str>,
    free_form: bool,
}

impl<'a> TableReader<'a> {
    fn new(table: &'a dyn TableLike, field: Field<'a>) -> Self {
        TableReader {
            table,
            field,
            asked: Vec::new(),
            passthrough: Vec::new(),
            free_form: false,
        }
    }

    /// The normalized path of this table.
    pub(crate) fn path(&self) -> &str {
        &self.field.path
    }

    /// The field under `key`, if present.
    pub(crate) fn get(&mut self, d: &mut Decoder, key: &'static str) -> Option<Field<'a>> {
        self.asked.push(key);
        let (k, item) = self.table.get_key_value(key)?;
        let field = Field {
            path: join(&self.field.path, key),
            item,
            span: item
                .span()
                .or_else(|| k.span())
                .or_else(|| self.field.span.clone()),
        };
        d.record(&field);
        Some(field)
    }

    /// The field under `key`, recorded under the normalized name `as_key` (for aliases).
    pub(crate) fn get_as(
        &mut self,
        d: &mut Decoder,
        key: &'static str,
        as_key: &str,
    ) -> Option<Field<'a>> {
        let mut field = self.get(d, key)?;
        field.path = join(&self.field.path, as_key);
        d.record(&field);
        Some(field)
    }

    /// The string under `key`, if present (an error if it is not a string).
    pub(crate) fn string(&mut self, d: &mut Decoder, key: &'static str) -> Option<String> {
        self.get(d, key).and_then(|f| d.string(&f))
    }

    /// The field under `key`, reporting its absence on the table with `hint`.
    pub(crate) fn require(
        &mut self,
        d: &mut Decoder,
        key: &'static str,
        hint: &str,
    ) -> Option<Field<'a>> {
        let found = self.get(d, key);
        if found.is_none() {
            let table = self.field.clone();
            d.error(
                &table,
                format!("`{}` is missing `{key}`", table.path),
                Some(hint.to_string()),
            );
        }
        found
    }

    /// Fly.io keys lakefly accepts but does not act on: kept in `extra`, not warned about.
    pub(crate) fn pass_through(&mut self, keys: &[&'static str]) {
        self.passthrough.extend_from_slice(keys);
    }

    /// A Fly.io key lakefly keeps (in `extra`) but does not act on, where acting on it is
    /// what the file expects (a check that gates a deploy, files an app reads): when the
    /// table has it, a warning at its place says it is `not applied: {why}`.
    pub(crate) fn kept_unapplied(
        &mut self,
        d: &mut Decoder,
        key: &'static str,
        why: &str,
        hint: &str,
    ) {
        self.passthrough.push(key);
        let Some((k, item)) = self.table.get_key_value(key) else {
            return;
        };
        let field = Field {
            path: join(&self.field.path, key),
            item,
            span: k
                .span()
                .or_else(|| item.span())
                .or_else(|| self.field.span.clone()),
        };
        let message = format!("`{}` is not applied: {why}", field.path);
        d.warn(&field, message, Some(hint.to_string()));
    }

    /// Every key and item, in file order, for free-form tables such as `[env]`; none of
    /// them is then reported as unknown.
    pub(crate) fn entries(&mut self) -> Vec<(String, Field<'a>)> {
        self.free_form = true;
        let parent = &self.field;
        self.table
            .iter()
            .map(|(key, item)| {
                let span = item
                    .span()
                    .or_else(|| self.table.key(key).and_then(|k| k.span()))
                    .or_else(|| parent.span.clone());
                let path = join(&parent.path, key);
                (key.to_string(), Field { path, item, span })
            })
            .collect()
    }

    /// Reports keys nobody asked for as warnings, naming the closest known key, and
    /// returns them (and pass-through keys) so they are kept.
    pub(crate) fn finish(&mut self, d: &mut Decoder) -> Extra {
        let mut extra = Extra::new();
        if self.free_form {
            return extra;
        }
        for (key, item) in self.table.iter() {
            if self.asked.contains(&key) {
                continue;
            }
            if !self.passthrough.contains(&key) {
                let span = self
                    .table
                    .key(key)
                    .and_then(|k| k.span())
                    .or_else(|| item.span())
                    .or_else(|| self.field.span.clone());
                let field = Field {
                    path: join(&self.field.path, key),
                    item,
                    span,
                };
                let hint = closest(key, &self.asked)
                    .map(|k| format!("did you mean `{k}`?"))
                    .or_else(|| Some("lakefly keeps it but does not use it".into()));
                d.warn(&field, format!("unknown key `{}`", field.path), hint);
            }
            extra.insert(key.to_string(), to_json(item));
        }
        extra
    }
}

/// `a.b` for a key under a path, quoting keys that are not bare.
pub(crate) fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

fn last_key(path: &str) -> &str {
    let tail = path.rsplit('.').next().unwrap_or(path);
    tail.split('[').next().unwrap_or(tail)
}

/// The known key closest to a misspelt one, if any is close.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), *k))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// A TOML type's name as a person would say it.
pub(crate) fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => value_type_name(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "a list of tables",
    }
}

fn value_type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

/// Converts any TOML item to JSON, for keeping unknown keys.
pub(crate) fn to_json(item: &Item) -> serde_json::Value {
    use serde_json::Value as J;
    match item {
        Item::None => J::Null,
        Item::Value(v) => value_to_json(v),
        Item::Table(t) => J::Object(t.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
        Item::ArrayOfTables(a) => J::Array(
            a.iter()
                .map(|t| J::Object(t.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()))
                .collect(),
        ),
    }
}

fn value_to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::String(s) => J::String(s.value().clone()),
        Value::Integer(i) => J::from(*i.value()),
        Value::Float(f) => serde_json::Number::from_f64(*f.value()).map_or(J::Null, J::Number),
        Value::Boolean(b) => J::Bool(*b.value()),
        Value::Datetime(d) => J::String(d.value().to_string()),
        Value::Array(a) => J::Array(a.iter().map(value_to_json).collect()),
        Value::InlineTable(t) => J::Object(
            t.iter()
                .map(|(k, v)| (k.to_string(), value_to_json(v)))
                .collect(),
        ),
    }
}
