//! `lakeflyd`, the platform daemon: the same code as `lakefly daemon run`.

use std::process::ExitCode;

use clap::Parser;

use lakefly::cli::daemon::{run_daemon, RunArgs};
use lakefly::output;

/// The lakefly platform daemon.
#[derive(Debug, Parser)]
#[command(name = "lakeflyd", version, max_term_width = 100)]
struct Args {
    #[command(flatten)]
    run: RunArgs,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => return output::error::exit_on_usage_error(&e, false),
    };
    match run_daemon(args.run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            anstream::eprint!("{}", output::error::render(&e, false));
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
