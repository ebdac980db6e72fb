//! The editor's unit tests: edits keep every byte around them.

use super::*;

fn set(text: &str, key: &str, value: &str) -> String {
    let mut e = Editor::parse(text).unwrap();
    e.set(&key.parse().unwrap(), parse_value(value, false))
        .unwrap();
    e.to_text()
}

fn unset(text: &str, key: &str) -> String {
    let mut e = Editor::parse(text).unwrap();
    e.unset(&key.parse().unwrap()).unwrap();
    e.to_text()
}

#[test]
fn changing_a_value_keeps_its_comment_and_spacing() {
    let text = "app = \"a\"\n\n[http_service]\n  internal_port   = 8080   # the app's port\n  force_https = true\n";
    assert_eq!(
        set(text, "http_service.internal_port", "9090"),
        "app = \"a\"\n\n[http_service]\n  internal_port   = 9090   # the app's port\n  force_https = true\n"
    );
}

#[test]
fn new_keys_match_the_indentation_of_their_table() {
    let text = "[http_service]\n  internal_port = 8080\n\n# next\n[env]\n  A = \"1\"\n";
    let out = set(text, "http_service.force_https", "true");
    assert_eq!(
        out,
        "[http_service]\n  internal_port = 8080\n  force_https = true\n\n# next\n[env]\n  A = \"1\"\n"
    );
    assert_eq!(unset(&out, "http_service.force_https"), text);
}

#[test]
fn a_key_added_to_a_table_with_no_keys_left_is_indented_as_the_files_others() {
    // `config unset env.NODE_ENV`, then `config set env.FOO=bar`: nothing in [env] to
    // copy, so the file's own indentation under a header.
    let text = "app = \"a\"\n\n[deploy]\n  strategy = \"rolling\"\n\n[env]\n\n[processes]\n  app = \"x\"\n";
    assert_eq!(
        set(text, "env.FOO", "\"bar\""),
        "app = \"a\"\n\n[deploy]\n  strategy = \"rolling\"\n\n[env]\n  FOO = \"bar\"\n\n[processes]\n  app = \"x\"\n"
    );
    // A file that indents nothing gets nothing, and a root key is never indented.
    let flat = "[deploy]\nstrategy = \"rolling\"\n\n[env]\n";
    assert_eq!(
        set(flat, "env.FOO", "1"),
        "[deploy]\nstrategy = \"rolling\"\n\n[env]\nFOO = 1\n"
    );
    assert_eq!(
        set(text, "kill_timeout", "5"),
        text.replacen("app = \"a\"\n", "app = \"a\"\nkill_timeout = 5\n", 1)
    );
}

#[test]
fn new_keys_are_indented_past_the_tables_sub_tables() {
    let text =
        "[http_service]\n  internal_port = 8080\n\n  [[http_service.checks]]\n    path = \"/\"\n";
    let out = set(text, "http_service.concurrency.soft_limit", "20");
    assert_eq!(
        out,
        "[http_service]\n  internal_port = 8080\n  concurrency.soft_limit = 20\n\n  [[http_service.checks]]\n    path = \"/\"\n"
    );
    assert_eq!(unset(&out, "http_service.concurrency.soft_limit"), text);
    let out = set(text, "http_service.force_https", "true");
    assert!(out.contains("\n  force_https = true\n"), "{out}");
}

#[test]
fn set_then_unset_of_a_new_table_gives_the_file_back() {
    for text in [
        "app = \"a\"\n",
        "app = \"a\"",
        "app = \"a\"\r\n[env]\r\n  A = \"1\"\r\n",
        "",
    ] {
        let added = set(text, "deploy.strategy", "\"canary\"");
        assert!(added.contains("deploy.strategy = \"canary\""), "{added:?}");
        assert_eq!(unset(&added, "deploy.strategy"), text);
    }
}

#[test]
fn files_keep_crlf_and_missing_final_newline() {
    assert_eq!(set("a = 1\r\nb = 2\r\n", "a", "3"), "a = 3\r\nb = 2\r\n");
    assert_eq!(set("a = 1\nb = 2", "b", "3"), "a = 1\nb = 3");
}

#[test]
fn one_element_lists_of_tables_are_reached_without_an_index() {
    let text = "[[vm]]\n  size = \"shared-cpu-1x\"\n";
    assert_eq!(
        set(text, "vm.size", "\"shared-cpu-2x\""),
        "[[vm]]\n  size = \"shared-cpu-2x\"\n"
    );
    let two = "[[vm]]\n  size = \"a\"\n[[vm]]\n  size = \"b\"\n";
    let mut e = Editor::parse(two).unwrap();
    let err = e
        .set(&"vm.size".parse().unwrap(), parse_value("x", false))
        .unwrap_err();
    assert!(matches!(err, EditError::Ambiguous { len: 2, .. }), "{err}");
    assert_eq!(
        set(two, "vm[1].size", "\"c\""),
        "[[vm]]\n  size = \"a\"\n[[vm]]\n  size = \"c\"\n"
    );
}

#[test]
fn dotted_and_inline_parents_stay_in_their_style() {
    assert_eq!(
        set("vm.size = \"x\"\n", "vm.memory", "\"1gb\""),
        "vm.size = \"x\"\nvm.memory = \"1gb\"\n"
    );
    let inline = "http_service = { internal_port = 80 }\n";
    let added = set(inline, "http_service.force_https", "true");
    assert_eq!(
        added,
        "http_service = { internal_port = 80, force_https = true }\n"
    );
    assert_eq!(unset(&added, "http_service.force_https"), inline);
}

#[test]
fn unset_keeps_headers_the_user_wrote_and_drops_emptied_dotted_tables() {
    let text = "# deploy settings\n[deploy]\n  strategy = \"rolling\"\n";
    assert_eq!(
        unset(text, "deploy.strategy"),
        "# deploy settings\n[deploy]\n"
    );
    assert_eq!(
        unset("a = 1\ndeploy.strategy = \"rolling\"\n", "deploy.strategy"),
        "a = 1\n"
    );
    let nested = set(
        "[http_service]\n  internal_port = 80\n",
        "http_service.concurrency.type",
        "\"requests\"",
    );
    assert_eq!(
        nested,
        "[http_service]\n  internal_port = 80\n  concurrency.type = \"requests\"\n"
    );
    assert_eq!(
        unset(&nested, "http_service.concurrency.type"),
        "[http_service]\n  internal_port = 80\n"
    );
}

#[test]
fn values_parse_as_toml_or_fall_back_to_strings() {
    assert_eq!(parse_value("8080", false).as_integer(), Some(8080));
    assert_eq!(parse_value("true", false).as_bool(), Some(true));
    assert_eq!(parse_value("\"x\"", false).as_str(), Some("x"));
    assert_eq!(
        parse_value("[\"a\", \"b\"]", false)
            .as_array()
            .map(|a| a.len()),
        Some(2)
    );
    assert_eq!(
        parse_value("hello world", false).as_str(),
        Some("hello world")
    );
    assert_eq!(parse_value("8080", true).as_str(), Some("8080"));
    assert_eq!(parse_value("1.10", true).as_str(), Some("1.10"));
}

#[test]
fn setting_the_same_value_is_unchanged() {
    let mut e = Editor::parse("a = 1 # c\n").unwrap();
    let outcome = e
        .set(&"a".parse().unwrap(), parse_value("1", false))
        .unwrap();
    assert_eq!(outcome, SetOutcome::Unchanged);
}

#[test]
fn walking_through_a_value_is_an_error() {
    let mut e = Editor::parse("app = \"x\"\n").unwrap();
    let err = e
        .set(&"app.name".parse().unwrap(), parse_value("1", false))
        .unwrap_err();
    assert!(matches!(err, EditError::NotATable { .. }), "{err}");
}

#[test]
fn a_key_under_a_missing_list_of_tables_starts_a_list_of_one() {
    // flyctl reads `http_service.checks` and `restart` only as lists: a table there is
    // refused ("cannot decode TOML table into a slice").
    let text = "app = \"a\"\n\n[http_service]\n  internal_port = 8080\n";
    let out = set(text, "http_service.checks.path", "\"/health\"");
    assert_eq!(
        out,
        "app = \"a\"\n\n[http_service]\n  internal_port = 8080\n\n[[http_service.checks]]\n  path = \"/health\"\n"
    );
    // The next key goes into the one table there is.
    assert_eq!(
        set(&out, "http_service.checks.interval", "\"10s\""),
        out.replace(
            "path = \"/health\"\n",
            "path = \"/health\"\n  interval = \"10s\"\n"
        )
    );
    let out = set(text, "restart.policy", "\"always\"");
    assert!(
        out.ends_with("[[restart]]\n  policy = \"always\"\n"),
        "{out}"
    );
    // Inside an inline table, an inline list of one.
    let inline = "app = \"a\"\nhttp_service = { internal_port = 8080 }\n";
    assert_eq!(
        set(inline, "http_service.checks.path", "\"/\""),
        "app = \"a\"\nhttp_service = { internal_port = 8080, checks = [{ path = \"/\" }] }\n"
    );
    assert_eq!(
        set(inline, "http_service.concurrency.soft_limit", "5"),
        "app = \"a\"\nhttp_service = { internal_port = 8080, concurrency = { soft_limit = 5 } }\n"
    );
    // Tables that are tables stay dotted keys.
    assert_eq!(
        set(text, "deploy.strategy", "\"canary\""),
        text.replacen(
            "app = \"a\"\n",
            "app = \"a\"\ndeploy.strategy = \"canary\"\n",
            1
        )
    );
}
