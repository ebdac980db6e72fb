//! lakefly: deploy and run daemons on your own hosts, the fly.io way.
//!
//! The library holds everything; the `lakefly` and `lakeflyd` binaries only parse
//! arguments, call in here, and turn the result into an exit code.
//!
//! - [`config`]: `fly.toml`, its normalized model, validation and format-preserving edits.
//! - [`cli`]: one module per command group, each a thin layer over the library.
//! - [`launch`]: writing a `fly.toml` for a directory.
//! - [`output`]: stdout/stderr conventions and the one error renderer.
//! - [`api`]: wire types shared by the client and the daemon.
//! - [`credentials`]: the client's named remotes.
//! - [`daemon`]: lakeflyd: state, events, the HTTP API.
//! - [`error`]: the error type, its stable codes and exit codes.
//! - [`tls`]: the TLS set-ups the client and the daemon share.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod atomic_write;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod dockerfile;
pub mod dotenv;
pub mod error;
pub mod launch;
pub mod output;
pub mod proxy_env;
pub mod secret;
pub mod shell_words;
pub mod tls;

pub use error::{Error, Result};
