//! What the client keeps about the daemons it talks to: named remotes (`remotes.rs`).

pub mod remotes;
