//! `archive`: the command-line front end and server of the community archive.

mod accounts;
mod cli;
mod commands;
mod config;
mod context;
mod control;
mod hints;
mod key_commands;
mod key_file;
mod net_commands;
mod output;
mod peers;
mod progress;
mod schedule;
mod serve;
mod syncs;
mod user_commands;
mod web;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    limit_malloc_arenas();
    quiet_storage_panics();
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

/// At most two glibc malloc arenas. By default glibc gives each thread that allocates its own
/// arena, up to eight per core, and keeps what is freed in each: a sync of 10^6 entries then
/// held 440 MB where one arena needed 190 MB (benches `sync-memory`). Two arenas keep most of
/// the concurrency of a 2-core Pi. The mmap threshold is fixed at 128 KiB: left to adjust
/// itself it grows to 32 MiB, and the large buffers of a pull then stay in the heap once
/// freed (ARCHITECTURE.md, "Process memory").
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a setting of the allocator; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// A store whose database is damaged on disk can make redb panic while reading; the store
/// turns that into a "damaged" error, which `archive` reports like any other. The panic's own
/// message would only repeat it, as noise before the real error: it is left out. Any other
/// panic is a bug and prints as usual.
fn quiet_storage_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_redb = info.location().is_some_and(|l| l.file().contains("/redb-"));
        if !in_redb {
            default(info);
        }
    }));
}

fn run(cli: cli::Cli) -> anyhow::Result<u8> {
    let location = config::locate(cli.config, cli.data_dir)?;
    let dir = location.dir.clone();
    if let cli::Command::Serve {
        bind,
        http,
        no_mdns,
        admin_group,
    } = cli.command
    {
        if control::forward(&dir, vec!["serve".into()], None)?.is_some() {
            return Ok(1);
        }
        let listen = serve::Listen {
            bind,
            http,
            no_mdns,
        };
        return serve::serve(&location, listen, admin_group.as_deref());
    }
    // A password is read here, before the command may be forwarded to a running server.
    let input = user_commands::password_input(&cli.command)?;
    // Commands that need the store to themselves are never forwarded.
    if !matches!(
        cli.command,
        cli::Command::Init
            | cli::Command::Doctor
            | cli::Command::Key {
                command: cli::KeyCommand::Import { .. }
            }
    ) {
        // As given, byte for byte: names that are not UTF-8 are valid paths.
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        if let Some(code) = control::forward(&dir, args, input.clone())? {
            return Ok(code);
        }
    }
    let mut ctx = context::Ctx::local(location);
    ctx.input = input;
    commands::execute(&ctx, cli.command, cli.json)
}

/// `archive ls | head` closes stdout early: that is not a failure worth a message.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
