//! What the client keeps about the daemons it talks to: named remotes (`remotes.rs`) and
//! their API tokens (`tokens.rs`).

pub mod remotes;
pub mod tokens;

/// The text of a file of ours, empty when there is none yet.
fn read_or_empty(path: &std::path::Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        read => read,
    }
}
