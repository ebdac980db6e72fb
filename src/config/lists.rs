//! Fly's lists of tables (`[[services]]`, `[[http_service.checks]]`...): which keys hold
//! one, and which of them flyctl also reads when written as a single table.

use super::keypath::Segment;

/// Each list by its keys with the indexes left out, and whether flyctl also reads one
/// written as a single table (its `ensureArrayOfMap`: `[mounts]`, `[services.ports]`); the
/// others it refuses so ("cannot decode TOML table into a slice"). lakefly reads both.
const LISTS_OF_TABLES: &[(&str, bool)] = &[
    ("services", true),
    ("services.ports", true),
    ("services.tcp_checks", true),
    ("services.http_checks", true),
    ("services.machine_checks", false),
    ("http_service.checks", false),
    ("http_service.machine_checks", false),
    ("machine_checks", false),
    ("mounts", true),
    ("vm", true),
    ("metrics", true),
    ("statics", false),
    ("files", false),
    ("restart", false),
    // lakefly's own; Fly.io does not read it at all.
    ("jobs", true),
];

/// Whether the key at `path` (`services[0].ports`) holds one of Fly's lists of tables.
pub fn is_list_of_tables(path: &[Segment]) -> bool {
    single_table_read(path).is_some()
}

/// Whether flyctl refuses the list at `path` written as a single table.
pub fn fly_needs_a_list(path: &[Segment]) -> bool {
    single_table_read(path) == Some(false)
}

/// For a list of tables at `path`, whether flyctl also reads it as a single table; its
/// indexes (`services[0]`) are left out.
fn single_table_read(path: &[Segment]) -> Option<bool> {
    let keys = path.iter().filter_map(|segment| match segment {
        Segment::Key(key) => Some(key.as_str()),
        Segment::Index(_) => None,
    });
    LISTS_OF_TABLES
        .iter()
        .find(|(list, _)| list.split('.').eq(keys.clone()))
        .map(|(_, single_read)| *single_read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keypath::KeyPath;

    #[test]
    fn lists_are_found_by_their_keys_whatever_the_indexes() {
        for (path, list, needs_list) in [
            ("services[0].ports", true, false),
            ("services[1].http_checks", true, false),
            ("services[0].machine_checks", true, true),
            ("http_service.checks", true, true),
            ("restart", true, true),
            ("mounts", true, false),
            ("checks", false, false),
            ("http_service", false, false),
            ("env", false, false),
            ("\"http_service.checks\"", false, false),
        ] {
            let path: KeyPath = path.parse().expect("a key path");
            assert_eq!(is_list_of_tables(path.segments()), list, "{path}");
            assert_eq!(fly_needs_a_list(path.segments()), needs_list, "{path}");
        }
    }
}
