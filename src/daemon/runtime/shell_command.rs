//! A command line that is one simple command (`python3 app.py --port $PORT 2>&1`) runs as
//! `exec <command>`, so the program replaces the `/bin/sh -c` that starts it, as bash does
//! by itself and dash does not: the machine's pid is the app's (what `status` shows and
//! what its kill signal reaches first), and no idle shell sits beside every app. Anything
//! else (lists, pipes, compound commands, builtins such as `cd`, leading assignments) runs
//! as written.

use std::borrow::Cow;

/// Words that start something `exec` cannot run: shell keywords, and builtins that only
/// mean something inside the shell (`exec cd /x` fails).
const SHELL_ONLY: &[&str] = &[
    "!", "{", "}", "[[", "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done",
    "case", "esac", "function", "select", "time", "exec", "cd", "export", "set", "unset", ".",
    "source", "eval", "exit", "return", "shift", "trap", "ulimit", "umask", "wait", "alias",
    "unalias", "read", "readonly", "local", "getopts", "hash", "type", "command", "builtin",
    "jobs", "fg", "bg", ":",
];

/// `exec <command>` when `command` is one simple command, else `command` as it is.
pub fn exec_form(command: &str) -> Cow<'_, str> {
    match is_simple(command) {
        true => Cow::Owned(format!("exec {}", command.trim())),
        false => Cow::Borrowed(command),
    }
}

/// Whether `command` is a single simple command: no operator outside quotes (`;`, `&`
/// except in `2>&1`, `|`, parentheses, braces, a newline, backquotes), a first word that
/// is neither a keyword, a shell builtin nor an assignment, and its quotes closed.
fn is_simple(command: &str) -> bool {
    let command = command.trim();
    let Some(first) = command.split_whitespace().next() else {
        return false;
    };
    if SHELL_ONLY.contains(&first) || first.contains('=') || first.starts_with(['(', '#']) {
        return false;
    }
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut previous = ' ';
    for c in command.chars() {
        if escaped {
            escaped = false;
        } else {
            match (quote, c) {
                (Some('\''), '\'') => quote = None,
                (Some('\''), _) => {}
                (Some(_), '\\') => escaped = true,
                (Some(_), '"') => quote = None,
                (Some(_), '`') => return false,
                (Some(_), _) => {}
                (None, '\\') => escaped = true,
                (None, '\'' | '"') => quote = Some(c),
                // `2>&1`, `<&0`: a redirection, not a background job.
                (None, '&') if matches!(previous, '>' | '<') => {}
                (None, ';' | '&' | '|' | '(' | ')' | '{' | '}' | '\n' | '`') => return false,
                (None, _) => {}
            }
        }
        previous = c;
    }
    quote.is_none() && !escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_simple_command_is_execd() {
        for simple in [
            "python3 app.py",
            "  gunicorn app:app --bind 127.0.0.1:$PORT  ",
            "node server.js 2>&1",
            "bin/server --name 'a; b' \"x && y\" < input.txt",
            "python3 -c \"print('$(date)')\"",
            "./run\\;me",
        ] {
            assert_eq!(
                exec_form(simple),
                format!("exec {}", simple.trim()),
                "{simple}"
            );
        }
        for compound in [
            "cd web && python3 app.py",
            "python3 a.py; python3 b.py",
            "python3 a.py | tee log",
            "worker &",
            "(cd web; ./run)",
            "FOO=bar python3 app.py",
            "exec python3 app.py",
            "if true; then x; fi",
            "echo `date`",
            "echo $(date)",
            "python3 app.py\npython3 other.py",
            "echo 'unclosed",
            "",
            "# only a comment",
        ] {
            assert_eq!(exec_form(compound), compound, "{compound:?}");
        }
    }
}
