//! The `lakefly` command-line client.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use lakefly::cli::{self, Cli};
use lakefly::output;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Lossy: a word that is not UTF-8 is no flyctl command either.
            let args: Vec<String> = (std::env::args_os().skip(1))
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            if let Some(e) = cli::flyctl_commands::refusal(&e, &args, &Cli::command()) {
                anstream::eprint!("{}", output::error::render(&e, wants_json()));
                return exit_code(e.exit_code());
            }
            return output::error::exit_on_usage_error(&e, wants_json());
        }
    };
    let json = cli.global.json;
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `lakefly config show | head` closing the pipe early is not a failure.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            anstream::eprint!("{}", output::error::render(&e, json));
            exit_code(e.exit_code())
        }
    }
}

/// `--json` must shape even the errors of a command line clap rejected.
fn wants_json() -> bool {
    std::env::args_os().skip(1).any(|a| a == "--json")
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
