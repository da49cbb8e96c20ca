//! `archive serve`: the server in the foreground. It holds the store, answers paired peers
//! over iroh, and runs the other commands on the same data folder for local clients through
//! the control socket (see [`crate::control`]).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use archive_core::Store;
use archive_net::{Node, Ticket};
use clap::Parser;

use crate::cli::Cli;
use crate::config::NetSettings;
use crate::context::{Ctx, NetCtx};
use crate::control::{self, SocketSink, SOCKET};
use crate::output::with_sink;
use crate::peers::Peers;

pub(crate) fn serve(
    dir: &Path,
    bind: Option<std::net::SocketAddr>,
    admin_group: Option<&str>,
) -> Result<u8> {
    init_logging();
    let admins = control::Admins::new(admin_group)?;
    let store = Arc::new(Store::open(dir)?);
    let settings = NetSettings::load(dir)?;
    let trust = Peers::load(dir)?.trust()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let bind = bind.unwrap_or(settings.bind);
    let config = settings.config(Some(bind))?;
    let endpoint = runtime
        .block_on(archive_net::bind_endpoint(
            store.secret_key(),
            &config,
            &trust,
        ))
        .with_context(|| format!("cannot listen on {bind}"))?;
    let node = Node::new(store.clone(), trust, settings.limits());
    let router = {
        let _guard = runtime.enter();
        node.router(endpoint.clone()).spawn()
    };

    let socket_path = dir.join(SOCKET);
    let _ = std::fs::remove_file(&socket_path);
    let listener = UnixListener::bind(&socket_path)
        .with_context(|| format!("cannot create the control socket {}", socket_path.display()))?;
    // Whoever can connect runs commands as this server: its owner only.
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", socket_path.display()))?;
    let peers_lock = Arc::new(Mutex::new(()));
    {
        let (dir, store, endpoint, node, handle, peers_lock) = (
            dir.to_owned(),
            store.clone(),
            endpoint.clone(),
            node.clone(),
            runtime.handle().clone(),
            peers_lock.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let ctx = Ctx::served(
                    dir.clone(),
                    store.clone(),
                    NetCtx::served(handle.clone(), endpoint.clone(), node.clone()),
                    peers_lock.clone(),
                );
                std::thread::spawn(move || run_forwarded(ctx, stream, admins));
            }
        });
    }

    let ticket = Ticket {
        id: endpoint.id(),
        addrs: endpoint.addr().ip_addrs().copied().collect(),
    };
    println!("serving {} on {bind}", dir.display());
    println!("id:     {}", endpoint.id());
    println!("ticket: {ticket}");
    println!("(stop with Ctrl-C)");

    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        eprintln!("archive: stopping");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), router.shutdown()).await;
        Ok::<_, anyhow::Error>(())
    })?;
    let _ = std::fs::remove_file(&socket_path);
    Ok(0)
}

/// Runs one client's command inside the server.
fn run_forwarded(ctx: Ctx, stream: std::os::unix::net::UnixStream, admins: control::Admins) {
    let Ok(out) = stream.try_clone() else { return };
    let sink = SocketSink(out);
    let request = match control::read_request(&stream, &admins) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("archive: control socket: {e:#}");
            sink.refuse(&format!("{e:#}"));
            return;
        }
    };
    let code = with_sink(Box::new(SocketSink(stream)), || {
        let args = std::iter::once("archive".into()).chain(request.args());
        let mut cli = match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(e) => {
                use std::io::Write;
                let _ = write!(crate::output::stderr(), "{e}");
                return 2;
            }
        };
        cli.command.resolve_paths(&request.cwd());
        match crate::commands::execute(&ctx, cli.command, cli.json) {
            Ok(code) => code,
            Err(e) => {
                crate::output::errln_error(&e);
                1
            }
        }
    });
    let _ = sink.exit(code);
}

/// Server events (refused peers, failed sessions) on stderr: ours at info, the libraries'
/// at warn.
fn init_logging() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let filter = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("archive_net", LevelFilter::INFO);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .with(filter)
        .try_init();
}
