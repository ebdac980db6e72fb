//! Command lines for `/bin/sh -c` made of words that must reach the command as they are:
//! `experimental.cmd` arrays, a Dockerfile's exec-form `CMD`, `machines exec -- ARGS`.

/// `word` quoted for `/bin/sh` when it needs it.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The command line that runs `words` as they are (each quoted when it needs it).
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_reach_the_shell_as_they_are() {
        assert_eq!(quote("ls"), "ls");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(join(&["sh", "-c", "echo \"$D\""]), r#"sh -c 'echo "$D"'"#);
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &join(&["printf", "%s|", "a b", "$HOME", "it's", "*"])])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|$HOME|it's|*|");
    }
}
