//! `lakefly completion SHELL`.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;
use crate::error::Error;

/// Print a shell completion script.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lakefly completion bash > ~/.local/share/bash-completion/completions/lakefly\n  lakefly completion zsh > \"${fpath[1]}/_lakefly\"\n  lakefly completion fish > ~/.config/fish/completions/lakefly.fish"
)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the script to stdout.
pub fn run(args: CompletionArgs) -> Result<(), Error> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "lakefly", &mut script);
    use std::io::Write;
    std::io::stdout()
        .lock()
        .write_all(&script)
        .map_err(Error::Output)
}
