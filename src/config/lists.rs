//! Fly's lists of tables (`[[services]]`, `[[http_service.checks]]`...): which keys hold
//! one, and which of them flyctl also reads when written as a single table.

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
pub fn is_list_of_tables(path: &str) -> bool {
    entry(path).is_some()
}

/// Whether flyctl refuses the list at `path` written as a single table.
pub fn fly_needs_a_list(path: &str) -> bool {
    entry(path).is_some_and(|(_, single_read)| !single_read)
}

fn entry(path: &str) -> Option<(&'static str, bool)> {
    let keys = without_indexes(path);
    LISTS_OF_TABLES
        .iter()
        .find(|(list, _)| *list == keys)
        .copied()
}

/// `services[0].ports[1]` as `services.ports`.
fn without_indexes(path: &str) -> String {
    let mut keys = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            c if !in_index => keys.push(c),
            _ => {}
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            assert_eq!(is_list_of_tables(path), list, "{path}");
            assert_eq!(fly_needs_a_list(path), needs_list, "{path}");
        }
    }
}
