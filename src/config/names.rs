//! Rules for the names users choose: apps, process groups, environment variables and the
//! host names routed to apps.

/// How to write a valid app name.
pub const APP_NAME_HINT: &str =
    "use 1 to 63 lowercase letters, digits and dashes, starting and ending with a letter or digit";

/// How to write a valid process group name.
pub const GROUP_NAME_HINT: &str =
    "use 1 to 63 letters, digits, dashes and underscores, starting with a letter";

/// Whether `name` can name an environment variable a shell exports: letters, digits and
/// `_`, not starting with a digit.
pub fn is_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks an app name (`[a-z0-9-]{1,63}`, no leading or trailing dash); the error says
/// what is wrong with it.
pub fn check_app_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > 63 {
        return Err("is longer than 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may only hold lowercase letters, digits and dashes");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("may not start or end with a dash");
    }
    Ok(())
}

/// A new app name of two words and a number (`quiet-river-4821`), as flyctl's
/// `apps create --generate-name` makes one: 1 in 7.8 million alike, so a second
/// `apps create` with one rarely meets the first.
pub fn generated_app_name() -> String {
    use chacha20poly1305::aead::rand_core::RngCore;
    const FIRST: &[&str] = &[
        "quiet",
        "bold",
        "late",
        "calm",
        "bright",
        "steady",
        "gentle",
        "swift",
        "little",
        "patient",
        "silent",
        "sunny",
        "wandering",
        "hidden",
        "clever",
        "brave",
        "lively",
        "misty",
        "rapid",
        "young",
    ];
    const SECOND: &[&str] = &[
        "river", "sun", "forest", "meadow", "harbor", "lake", "mountain", "field", "breeze",
        "canyon", "dawn", "glade", "island", "moon", "ridge", "shore", "spring", "star", "valley",
        "wave",
    ];
    let pick = |words: &[&'static str]| {
        let n = chacha20poly1305::aead::OsRng.next_u32() as usize;
        words[n % words.len()]
    };
    let (first, second) = (pick(FIRST), pick(SECOND));
    let number = chacha20poly1305::aead::OsRng.next_u32() % 10_000;
    format!("{first}-{second}-{number:04}")
}

/// Checks a process group name; it becomes part of machine ids and env values.
pub fn check_group_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > 63 {
        return Err("is longer than 63 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err("must start with a letter");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("may only hold letters, digits, dashes and underscores");
    }
    Ok(())
}

/// How to write a valid host name for an app.
pub const HOSTNAME_HINT: &str = "use a DNS name such as www.example.com (or *.example.com for every name one level under it), without scheme or port; a path after it (www.example.com/discovery) routes only what is under that path";

/// A host name as it is kept and compared: trimmed, without a trailing dot, lowercase; a
/// path after it (`www.example.com/discovery/`) keeps its case and loses its final `/`.
pub fn canonical_hostname(name: &str) -> String {
    let name = name.trim();
    // A scheme is refused whole by `check_hostname`, not split at its `//`.
    match name.split_once('/').filter(|_| !name.contains("://")) {
        Some((host, path)) => format!(
            "{}/{}",
            host.trim_end_matches('.').to_ascii_lowercase(),
            path.trim_end_matches('/')
        ),
        None => name.trim_end_matches('.').to_ascii_lowercase(),
    }
}

/// A routed name split into its host and, for `host/path`, the path (`/path`, without a
/// final `/`), whose requests go to the name's app whatever app has the host itself.
pub fn split_route(name: &str) -> (&str, Option<&str>) {
    match name.find('/') {
        Some(at) => (&name[..at], Some(&name[at..])),
        None => (name, None),
    }
}

/// The variable that holds a mount's directory in its machines' environment:
/// `LAKEFLY_MOUNT_<SOURCE>`, the source uppercased with other characters as `_`.
pub fn mount_variable(source: &str) -> String {
    let name: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("LAKEFLY_MOUNT_{name}")
}

/// Whether a request for `path` is under `prefix` (`/discovery`): the prefix itself, or
/// below it at a `/`, so `/discoveryx` is not.
pub fn path_is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

/// Checks a name to route to an app (`lakefly certs add`), as made canonical by the
/// caller: a DNS name of two labels or more, optionally `*.` and a name (a wildcard for
/// one label); not an IP address; optionally followed by a path (`/discovery`).
pub fn check_hostname(name: &str) -> Result<(), &'static str> {
    if name.contains("://") {
        return Err("is not a bare host name");
    }
    let (name, path) = split_route(name);
    if let Some(path) = path {
        check_route_path(path)?;
    }
    if name.is_empty() {
        return Err("is empty");
    }
    if name.contains(':') {
        return Err("is not a bare host name");
    }
    if name.len() > 253 {
        return Err("is longer than 253 characters");
    }
    let exact = name.strip_prefix("*.").unwrap_or(name);
    if !exact
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(
            "may only hold lowercase letters, digits, dashes and dots (and a leading `*.`)",
        );
    }
    let labels: Vec<&str> = exact.split('.').collect();
    if labels.len() < 2 {
        return Err("needs a dot: a name under a domain, such as www.example.com");
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err("has an empty label or one longer than 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("has a label that starts or ends with a dash");
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("is an IP address, not a host name");
    }
    Ok(())
}

/// The path of a `host/path` name: segments of URL path characters, none empty, `.` or
/// `..` (requests are matched on the path as sent, so one that names a directory up would
/// never be what it looks like).
fn check_route_path(path: &str) -> Result<(), &'static str> {
    let Some(segments) = path.strip_prefix('/').filter(|p| !p.is_empty()) else {
        return Err("has a path of `/`, which is the whole host: give the host name alone");
    };
    if path.len() > 1024 {
        return Err("has a path longer than 1024 characters");
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%/".contains(&b))
    {
        return Err("has a path with characters a URL path does not hold as they are (a query, a fragment, a space...)");
    }
    if segments
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err("has a path with an empty, `.` or `..` segment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_app_name_is_a_valid_one() {
        for _ in 0..100 {
            let name = generated_app_name();
            assert_eq!(check_app_name(&name), Ok(()), "{name}");
            assert_eq!(name.split('-').count(), 3, "{name}");
        }
    }

    #[test]
    fn app_names() {
        for ok in ["hello", "my-app-2", "a", &"x".repeat(63)] {
            assert_eq!(check_app_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_app_name(""), Err("is empty"));
        assert_eq!(
            check_app_name("My App"),
            Err("may only hold lowercase letters, digits and dashes")
        );
        assert_eq!(
            check_app_name("-app"),
            Err("may not start or end with a dash")
        );
        assert_eq!(
            check_app_name(&"x".repeat(64)),
            Err("is longer than 63 characters")
        );
    }

    #[test]
    fn group_names() {
        for ok in ["app", "web", "worker_1", "feed-worker"] {
            assert_eq!(check_group_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_group_name("1web"), Err("must start with a letter"));
        assert_eq!(
            check_group_name("we b"),
            Err("may only hold letters, digits, dashes and underscores")
        );
    }

    #[test]
    fn host_names() {
        for ok in [
            "www.example.com",
            "example.com",
            "*.example.com",
            "a-1.b.dev",
        ] {
            assert_eq!(check_hostname(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "is empty"),
            ("https://example.com", "is not a bare host name"),
            ("example.com:443", "is not a bare host name"),
            ("localhost", "needs a dot"),
            ("bad name", "may only hold"),
            ("a..b", "has an empty label"),
            ("*.*.example.com", "may only hold"),
            ("www.*.com", "may only hold"),
            ("ex_ample.com", "may only hold"),
            ("-a.example.com", "starts or ends with a dash"),
            ("10.0.0.1", "is an IP address"),
            ("www.example.com/", "is the whole host"),
            ("www.example.com/a?b=1", "characters a URL path"),
            ("www.example.com/a b", "characters a URL path"),
            ("www.example.com/a//b", "empty, `.` or `..` segment"),
            ("www.example.com/a/../b", "empty, `.` or `..` segment"),
            ("/discovery", "is empty"),
            ("example.com:443/x", "is not a bare host name"),
        ] {
            let err = check_hostname(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(check_hostname(&format!("{}.com", "a.".repeat(130))).is_err());
    }

    #[test]
    fn a_host_name_may_carry_a_path_kept_as_written() {
        assert_eq!(
            canonical_hostname(" WWW.Example.com./Discovery/ "),
            "www.example.com/Discovery"
        );
        assert_eq!(canonical_hostname("https://A.com/x"), "https://a.com/x");
        for ok in [
            "www.example.com/discovery",
            "*.example.com/api/v1",
            "hello.localhost/a-b_c~",
        ] {
            assert_eq!(check_hostname(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            split_route("www.example.com/api/v1"),
            ("www.example.com", Some("/api/v1"))
        );
        assert_eq!(split_route("www.example.com"), ("www.example.com", None));
        assert!(path_is_under("/discovery", "/discovery"));
        assert!(path_is_under("/discovery/peers", "/discovery"));
        assert!(path_is_under("/discovery?x=1", "/discovery"));
        assert!(!path_is_under("/discoveryx", "/discovery"));
        assert!(!path_is_under("/", "/discovery"));
    }
}
