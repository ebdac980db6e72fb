//! Rules for the names users choose: apps and process groups.

/// How to write a valid app name.
pub const APP_NAME_HINT: &str =
    "use 1 to 63 lowercase letters, digits and dashes, starting and ending with a letter or digit";

/// How to write a valid process group name.
pub const GROUP_NAME_HINT: &str =
    "use 1 to 63 letters, digits, dashes and underscores, starting with a letter";

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
