//! What the client keeps about the daemons it talks to: named remotes (`remotes.rs`) and
//! their API tokens (`tokens.rs`).

pub mod remotes;
pub mod tokens;
