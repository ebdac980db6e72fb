//! The HTTP API between `lakefly` and `lakeflyd`: wire types defined once, used by the
//! daemon's handlers and by the client, so the two cannot drift.

mod base64_bytes;
pub mod bundles;
pub mod checks;
pub mod client;
pub mod codes;
pub mod console;
pub mod exec;
pub mod follow;
pub mod jobs;
pub mod kind;
pub mod proxy;
pub mod restart;
pub mod scale;
pub mod signal;
mod sse_transport;
pub mod types;
mod upgrade;
pub mod volumes;
