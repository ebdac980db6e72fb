//! Format-preserving edits of a `fly.toml`: only the edited value's text changes; every
//! comment, blank line, order and quoting choice elsewhere stays as the user wrote it.

use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

use super::keypath::{KeyPath, Segment};

/// A document open for editing.
#[derive(Debug, Clone)]
pub struct Editor {
    doc: DocumentMut,
    /// toml_edit writes `\n` everywhere; the file's own line ending is restored on output.
    crlf: bool,
    /// toml_edit always ends with a newline; a file that did not keeps not doing so.
    final_newline: bool,
}

/// Why an edit could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// A step of the path goes through something that is not a table.
    #[error("`{at}` is {found}, not a table, so it has no key `{key}`")]
    NotATable {
        /// The path up to the blocking value.
        at: String,
        /// What it is.
        found: &'static str,
        /// The key that was wanted under it.
        key: String,
    },
    /// An index step on something that is not a list, or past its end.
    #[error("`{at}` has no element [{index}]{}", if *.len > 0 { format!(" (it has {})", .len) } else { String::new() })]
    NoSuchIndex {
        /// The path of the list.
        at: String,
        /// The index asked for.
        index: usize,
        /// How many elements it has.
        len: usize,
    },
    /// A list of several tables was addressed without saying which one.
    #[error("`{at}` holds {len} tables; say which, e.g. `{at}[0].{key}`")]
    Ambiguous {
        /// The path of the list.
        at: String,
        /// How many tables it holds.
        len: usize,
        /// The key that was wanted.
        key: String,
    },
}

/// What `set` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// The key did not exist and was added.
    Added,
    /// The key existed and its value changed.
    Changed,
    /// The key already had exactly this value.
    Unchanged,
}

impl Editor {
    /// Parses `text` for editing.
    pub fn parse(text: &str) -> Result<Self, toml_edit::TomlError> {
        Ok(Editor {
            doc: text.parse()?,
            crlf: text.contains("\r\n"),
            final_newline: text.is_empty() || text.ends_with('\n'),
        })
    }

    /// The item at `path`, if there is one.
    pub fn get(&self, path: &KeyPath) -> Result<Option<&Item>, EditError> {
        let mut item = self.doc.as_item();
        let mut at = String::new();
        for segment in path.segments() {
            let next = match segment {
                Segment::Key(key) => {
                    let table = table_of(item, &at, key)?;
                    table.get(key)
                }
                Segment::Index(i) => Some(element(item, &at, *i)?),
            };
            match next {
                Some(next) => item = next,
                None => return Ok(None),
            }
            push_segment(&mut at, segment);
        }
        Ok(Some(item))
    }

    /// Sets `path` to `value`, creating tables on the way; an existing value keeps its
    /// surrounding whitespace and trailing comment.
    pub fn set(&mut self, path: &KeyPath, mut value: Value) -> Result<SetOutcome, EditError> {
        let (last, parents) = split_last(path);
        let body_indent = body_indent(&self.doc);
        let mut item = self.doc.as_item_mut();
        let mut at = String::new();
        // A key in a new dotted table is indented like the keys of the table around it.
        let mut indent = None;
        for (i, segment) in parents.iter().enumerate() {
            item = match segment {
                Segment::Key(key) => {
                    let inline = matches!(item, Item::Value(_));
                    let next_is_index = matches!(parents.get(i + 1), Some(Segment::Index(_)))
                        || (i + 1 == parents.len() && matches!(last, Segment::Index(_)));
                    let table = table_of_mut(item, &at, key)?;
                    indent = sibling_indent(table).or(indent);
                    if !table.contains_key(key) {
                        if next_is_index {
                            return Err(EditError::NoSuchIndex {
                                at: joined(&at, segment),
                                index: 0,
                                len: 0,
                            });
                        }
                        let list = super::lists::is_list_of_tables(&parents[..=i]);
                        let new = if inline {
                            let mut value = if list {
                                let mut one = toml_edit::Array::new();
                                one.push(toml_edit::InlineTable::new());
                                Value::Array(one)
                            } else {
                                Value::InlineTable(Default::default())
                            };
                            append_inline(table, &mut value);
                            Item::Value(value)
                        } else if list {
                            // `[[http_service.checks]]`: the form Fly documents, and the
                            // only one flyctl reads for most (`lists.rs`).
                            let mut one = toml_edit::ArrayOfTables::new();
                            one.push(Table::new());
                            Item::ArrayOfTables(one)
                        } else {
                            // A new table is written as dotted keys (`deploy.strategy = ...`),
                            // not a `[deploy]` header: `unset` can then remove it without
                            // guessing whether an empty header was the user's.
                            let mut t = Table::new();
                            t.set_dotted(true);
                            Item::Table(t)
                        };
                        table.insert(key, new);
                    }
                    table
                        .get_mut(key)
                        .ok_or_else(|| unreachable_missing(&at, key))?
                }
                Segment::Index(index) => element_mut(item, &at, *index)?,
            };
            push_segment(&mut at, segment);
        }
        match last {
            Segment::Key(key) => {
                let inline = matches!(item, Item::Value(Value::InlineTable(_)));
                // Under a `[table]` or `[[list]]` header of the file's.
                let under_header = !at.is_empty()
                    && match item {
                        Item::Table(t) => !t.is_dotted(),
                        Item::ArrayOfTables(_) => true,
                        _ => false,
                    };
                let table = table_of_mut(item, &at, key)?;
                match table.get_mut(key) {
                    Some(Item::Value(old)) => {
                        if same_value(old, &value) {
                            return Ok(SetOutcome::Unchanged);
                        }
                        *value.decor_mut() = old.decor().clone();
                        *old = value;
                        Ok(SetOutcome::Changed)
                    }
                    Some(old) => {
                        value.decor_mut().clear();
                        *old = Item::Value(value);
                        Ok(SetOutcome::Changed)
                    }
                    None => {
                        value.decor_mut().clear();
                        if inline {
                            append_inline(table, &mut value);
                        }
                        // With no key of its table left to copy, the file's own
                        // indentation under a `[table]` header.
                        let indent = (sibling_indent(table).or(indent))
                            .or_else(|| body_indent.filter(|_| under_header));
                        table.insert(key, Item::Value(value));
                        if let (Some(indent), Some(mut k)) = (indent, table.key_mut(key)) {
                            k.leaf_decor_mut().set_prefix(indent);
                        }
                        Ok(SetOutcome::Added)
                    }
                }
            }
            Segment::Index(index) => {
                let Item::Value(old) = element_mut(item, &at, *index)? else {
                    return Err(EditError::NotATable {
                        at: joined(&at, last),
                        found: "a table",
                        key: String::new(),
                    });
                };
                if same_value(old, &value) {
                    return Ok(SetOutcome::Unchanged);
                }
                *value.decor_mut() = old.decor().clone();
                *old = value;
                Ok(SetOutcome::Changed)
            }
        }
    }

    /// Removes `path`; tables left empty by the removal go too, unless they carry a comment.
    /// Returns whether anything was removed.
    pub fn unset(&mut self, path: &KeyPath) -> Result<bool, EditError> {
        let removed = remove_at(self.doc.as_item_mut(), path.segments(), &mut String::new())?;
        Ok(removed)
    }

    /// The document's text, with the original file's line endings.
    pub fn to_text(&self) -> String {
        let mut text = self.doc.to_string();
        if self.crlf {
            text = text.replace("\r\n", "\n").replace('\n', "\r\n");
        }
        if !self.final_newline {
            let trimmed = text.strip_suffix('\n').unwrap_or(&text);
            let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
            text.truncate(trimmed.len());
        }
        text
    }
}

/// Removes the last segment under `item`, then prunes empty tables on the way back up.
fn remove_at(item: &mut Item, segments: &[Segment], at: &mut String) -> Result<bool, EditError> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok(false);
    };
    if rest.is_empty() {
        return match first {
            Segment::Key(key) => {
                let inline = matches!(item, Item::Value(Value::InlineTable(_)));
                let table = table_of_mut(item, at, key)?;
                let was_last = table.iter().last().is_some_and(|(k, _)| k == key.as_str());
                let Some(removed) = table.remove(key) else {
                    return Ok(false);
                };
                if let (true, true, Item::Value(removed)) = (inline, was_last, &removed) {
                    // Give the space before `}` back to the value that is now last.
                    let new_last = table.iter().last().map(|(k, _)| k.to_string());
                    if let Some(Item::Value(prev)) = new_last.and_then(|k| table.get_mut(&k)) {
                        if let Some(suffix) = removed.decor().suffix().cloned() {
                            prev.decor_mut().set_suffix(suffix);
                        }
                    }
                }
                Ok(true)
            }
            Segment::Index(i) => match item {
                Item::ArrayOfTables(a) if *i < a.len() => {
                    a.remove(*i);
                    Ok(true)
                }
                Item::Value(Value::Array(a)) if *i < a.len() => {
                    a.remove(*i);
                    Ok(true)
                }
                _ => Ok(false),
            },
        };
    }
    let parent_len = at.len();
    let removed = match first {
        Segment::Key(key) => {
            let table = table_of_mut(item, at, key)?;
            let Some(child) = table.get_mut(key) else {
                return Ok(false);
            };
            push_segment(at, first);
            let removed = remove_at(child, rest, at)?;
            if removed && is_prunable(child) {
                table.remove(key);
            }
            removed
        }
        Segment::Index(i) => {
            let Ok(child) = element_mut(item, at, *i) else {
                return Ok(false);
            };
            push_segment(at, first);
            remove_at(child, rest, at)?
        }
    };
    at.truncate(parent_len);
    Ok(removed)
}

/// An emptied table that only existed to hold keys: dotted (`a.b = 1`) or inline
/// (`a = { b = 1 }`). A `[header]` the user wrote stays, even empty.
fn is_prunable(item: &Item) -> bool {
    match item {
        Item::Table(t) => t.is_empty() && t.is_dotted(),
        Item::Value(Value::InlineTable(t)) => t.is_empty(),
        _ => false,
    }
}

/// The key indentation used by the table's existing keys, for a new key to match. Only
/// `key = value` lines count: a sub-table's key (`[[http_service.checks]]`) is written in
/// its header, with none of the body's indentation.
fn sibling_indent(table: &dyn TableLike) -> Option<String> {
    let (last_key, _) = table
        .iter()
        .filter(|(_, item)| matches!(item, Item::Value(_)))
        .last()?;
    let key = table.key(last_key)?;
    key.leaf_decor()
        .prefix()
        .and_then(|p| p.as_str())
        .filter(|p| !p.is_empty() && p.chars().all(|c| c == ' ' || c == '\t'))
        .map(str::to_string)
}

/// How the file indents the keys under its `[table]` headers, from the first such table
/// with a key (none when it indents nothing).
fn body_indent(doc: &DocumentMut) -> Option<String> {
    doc.as_table().iter().find_map(|(_, item)| match item {
        Item::Table(t) if !t.is_dotted() => sibling_indent(t),
        Item::ArrayOfTables(tables) => tables.iter().find_map(|t| sibling_indent(t)),
        _ => None,
    })
}

fn same_value(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.decor_mut().clear();
        v.to_string()
    };
    strip(old) == strip(new)
}

fn split_last(path: &KeyPath) -> (&Segment, &[Segment]) {
    // A KeyPath is never empty, so `split_last` cannot fail; fall back to a harmless key.
    match path.segments().split_last() {
        Some((last, parents)) => (last, parents),
        None => (&Segment::Index(0), &[]),
    }
}

/// Readies `value` to go last in the inline table `table` (`{ a = 1 }`): the space
/// before `}` moves from the value that was last to it.
fn append_inline(table: &mut dyn TableLike, value: &mut Value) {
    let last = table.iter().last().map(|(k, _)| k.to_string());
    if let Some(Item::Value(prev)) = last.and_then(|k| table.get_mut(&k)) {
        let suffix = prev.decor().suffix().cloned();
        prev.decor_mut().set_suffix("");
        value.decor_mut().set_prefix(" ");
        if let Some(suffix) = suffix {
            value.decor_mut().set_suffix(suffix);
        }
    }
}

fn push_segment(at: &mut String, segment: &Segment) {
    *at = joined(at, segment);
}

fn joined(at: &str, segment: &Segment) -> String {
    match segment {
        Segment::Key(k) => super::decode::reader::join(at, k),
        Segment::Index(i) => format!("{at}[{i}]"),
    }
}

fn unreachable_missing(at: &str, key: &str) -> EditError {
    EditError::NotATable {
        at: at.to_string(),
        found: "missing",
        key: key.to_string(),
    }
}

/// The table to look `key` up in: `item` itself, or the only table of a one-element list
/// (so `vm.size` reaches `[[vm]]` when there is one).
fn table_of<'a>(item: &'a Item, at: &str, key: &str) -> Result<&'a dyn TableLike, EditError> {
    if let Some(t) = item.as_table_like() {
        return Ok(t);
    }
    match single_table_len(item) {
        Some(1) => item
            .get(0)
            .and_then(Item::as_table_like)
            .ok_or_else(|| not_a_table(item, at, key)),
        Some(len) => Err(EditError::Ambiguous {
            at: at.to_string(),
            len,
            key: key.to_string(),
        }),
        None => Err(not_a_table(item, at, key)),
    }
}

fn table_of_mut<'a>(
    item: &'a mut Item,
    at: &str,
    key: &str,
) -> Result<&'a mut dyn TableLike, EditError> {
    match single_table_len(item) {
        Some(1) => {}
        Some(len) => {
            return Err(EditError::Ambiguous {
                at: at.to_string(),
                len,
                key: key.to_string(),
            })
        }
        None if item.is_table_like() => {}
        None => return Err(not_a_table(item, at, key)),
    }
    if item.is_table_like() {
        return item
            .as_table_like_mut()
            .ok_or_else(|| unreachable_missing(at, key));
    }
    item.get_mut(0)
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| unreachable_missing(at, key))
}

/// For a list of tables, how many it holds.
fn single_table_len(item: &Item) -> Option<usize> {
    match item {
        Item::ArrayOfTables(a) => Some(a.len()),
        Item::Value(Value::Array(a)) if a.iter().all(Value::is_inline_table) && !a.is_empty() => {
            Some(a.len())
        }
        _ => None,
    }
}

fn not_a_table(item: &Item, at: &str, key: &str) -> EditError {
    EditError::NotATable {
        at: at.to_string(),
        found: super::decode::reader::type_name(item),
        key: key.to_string(),
    }
}

fn element<'a>(item: &'a Item, at: &str, index: usize) -> Result<&'a Item, EditError> {
    item.get(index)
        .ok_or_else(|| no_such_index(item, at, index))
}

fn element_mut<'a>(item: &'a mut Item, at: &str, index: usize) -> Result<&'a mut Item, EditError> {
    let len = list_len(item);
    item.get_mut(index).ok_or(EditError::NoSuchIndex {
        at: at.to_string(),
        index,
        len,
    })
}

fn no_such_index(item: &Item, at: &str, index: usize) -> EditError {
    EditError::NoSuchIndex {
        at: at.to_string(),
        index,
        len: list_len(item),
    }
}

fn list_len(item: &Item) -> usize {
    match item {
        Item::ArrayOfTables(a) => a.len(),
        Item::Value(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

/// Reads a value as `config set` takes it: TOML when it parses as TOML (`8080`, `true`,
/// `"x"`, `["a"]`), else the text as a string.
pub fn parse_value(input: &str, force_string: bool) -> Value {
    if !force_string {
        if let Ok(mut v) = input.parse::<Value>() {
            v.decor_mut().clear();
            return v;
        }
    }
    Value::from(input)
}

#[cfg(test)]
mod tests;
