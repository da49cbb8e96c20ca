//! `archive`: the command-line front end and server of the community archive.

mod cli;
mod commands;
mod config;
mod context;
mod control;
mod net_commands;
mod output;
mod peers;
mod progress;
mod serve;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            output::errln_error(&err);
            ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<u8> {
    let dir = config::data_dir(cli.data_dir)?;
    if let cli::Command::Serve { bind } = cli.command {
        if control::forward(&dir, vec!["serve".into()])?.is_some() {
            return Ok(1);
        }
        return serve::serve(&dir, bind);
    }
    if !matches!(cli.command, cli::Command::Init) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if let Some(code) = control::forward(&dir, args)? {
            return Ok(code);
        }
    }
    let ctx = context::Ctx::local(dir);
    commands::execute(&ctx, cli.command, cli.json)
}

/// `archive ls | head` closes stdout early: that is not a failure worth a message.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
