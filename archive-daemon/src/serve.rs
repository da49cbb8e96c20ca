//! `archive serve`: the server in the foreground. It holds the store, answers paired peers
//! over iroh, and runs the other commands on the same data folder for local clients through
//! the control socket (see [`crate::control`]).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use archive_core::Store;
use archive_net::{Node, Ticket};
use clap::Parser;

use crate::accounts::Accounts;
use crate::cli::Cli;
use crate::config::{Location, LogLevel, Settings};
use crate::context::{Ctx, NetCtx, Served};
use crate::control::{self, SocketSink, SOCKET};
use crate::output::with_sink;
use crate::peers::Peers;
use crate::schedule;
use crate::web;

/// Where and how `serve` listens, from its flags (each overrides archive.toml).
pub(crate) struct Listen {
    pub(crate) bind: Option<std::net::SocketAddr>,
    pub(crate) http: Option<std::net::SocketAddr>,
    pub(crate) no_mdns: bool,
}

pub(crate) fn serve(location: &Location, listen: Listen, admin_group: Option<&str>) -> Result<u8> {
    let dir = location.dir.as_path();
    let mut settings = Settings::load(location)?;
    init_logging(settings.log_level);
    if dir.join(crate::config::LEGACY_FILE).exists()
        && (location.config.is_some() || dir.join(crate::config::FILE).exists())
    {
        tracing::warn!(
            "{} is not read: the settings come from archive.toml (see `archive config`)",
            dir.join(crate::config::LEGACY_FILE).display()
        );
    }
    let admins = control::Admins::new(admin_group)?;
    let created = match Store::init(dir) {
        Ok(_) => true,
        Err(archive_core::OpenError::AlreadyInitialized { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    let store = Arc::new(Store::open(dir)?);
    if listen.no_mdns {
        settings.network.mdns = false;
    }
    let (bind, http) = (listen.bind, listen.http);
    let peers = Peers::load(dir)?;
    let trust = peers.trust()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let bind = bind.unwrap_or(settings.network.bind);
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

    // The messenger: its rooms, live delivery to paired servers, search.
    let chat = chat::Chat::new(store.clone());
    // People join only with an admin's invite here: someone vouched for each newcomer, so
    // no slow mode for new accounts; the per-minute limit stays (ARCHITECTURE.md).
    chat.set_pace(chat::PacePolicy {
        new_account_for: std::time::Duration::ZERO,
        ..chat::PacePolicy::default()
    });
    let accounts = Arc::new(Accounts::open(dir)?);
    let search = chat::Search::open(&chat, &dir.join(SEARCH_FILE))?;
    let delivery = Arc::new({
        let _guard = runtime.enter();
        chat::Delivery::start(
            chat.clone(),
            node.clone(),
            endpoint.clone(),
            chat::DeliveryConfig::default(),
        )
    });
    for peer in &peers.peers {
        if let Ok(addr) = peer.endpoint_addr() {
            delivery.add_peer(addr);
        }
    }
    {
        let search = search.clone();
        runtime.spawn(async move {
            if let Err(e) = search.follow().await {
                tracing::error!("search index stopped following the rooms: {e}");
            }
        });
    }
    let shares = Arc::new(archive_core::shares::Shares::open(
        store.clone(),
        dir.join(UPLOADS_DIR),
        settings.share_limits(),
    )?);
    runtime.spawn(collect_garbage(
        chat.clone(),
        search.clone(),
        shares.clone(),
    ));

    let http = http.unwrap_or(settings.web.http);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(http))
        .with_context(|| format!("cannot serve the web UI on {http} (--http IP:PORT)"))?;
    let http = listener.local_addr().unwrap_or(http);
    let peers_lock = Arc::new(Mutex::new(()));
    let web_net = web::peers::WebNet {
        endpoint: endpoint.clone(),
        node: node.clone(),
        peers_lock: peers_lock.clone(),
    };
    let app = Arc::new(web::App::new(
        dir.to_owned(),
        chat.clone(),
        Some(delivery.clone()),
        search,
        accounts.clone(),
        shares,
        Some(web_net),
    ));
    runtime.spawn(async move {
        if let Err(e) = web::serve(listener, app).await {
            tracing::error!("the web UI stopped: {e}");
        }
    });

    let socket_path = dir.join(SOCKET);
    let _ = std::fs::remove_file(&socket_path);
    let listener = UnixListener::bind(&socket_path)
        .with_context(|| format!("cannot create the control socket {}", socket_path.display()))?;
    // Whoever can connect runs commands as this server: its owner only.
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", socket_path.display()))?;
    let served = Arc::new(Served {
        dir: dir.to_owned(),
        config: location.config.clone(),
        chat: chat.clone(),
        accounts,
        peers_lock,
        delivery: delivery.clone(),
    });
    {
        let (endpoint, node, handle) = (endpoint.clone(), node.clone(), runtime.handle().clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let net = NetCtx::served(handle.clone(), endpoint.clone(), node.clone());
                let served = served.clone();
                std::thread::spawn(move || run_forwarded(&served, net, stream, admins));
            }
        });
    }

    {
        let _guard = runtime.enter();
        let runner = schedule::Runner {
            dir: dir.to_owned(),
            endpoint: endpoint.clone(),
            node: node.clone(),
        };
        schedule::start(&runner, &settings.schedules);
    }

    let ticket = Ticket {
        id: endpoint.id(),
        addrs: endpoint.addr().ip_addrs().copied().collect(),
    };
    if created {
        println!("created a new store in {}", dir.display());
    }
    println!("serving {} on {bind}", dir.display());
    println!("id:     {}", endpoint.id());
    println!("ticket: {ticket}");
    println!();
    for url in web_addresses(http) {
        println!("web:    {url}");
    }
    if chat.accounts().map(|a| a.is_empty()).unwrap_or(false) {
        println!();
        println!("No one can sign in yet. Create the first admin (in another terminal):");
        println!("  archive user add NAME --admin");
    }
    println!("(stop with Ctrl-C)");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // Under systemd (Type=notify): ready now, and alive while the store answers.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!("cannot tell systemd the server is ready: {e}");
    }
    if let Some(timeout) = sd_notify::watchdog_enabled() {
        runtime.spawn(keep_watchdog_fed(store.clone(), timeout));
    }

    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        eprintln!("archive: stopping");
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        drop(delivery);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), router.shutdown()).await;
        Ok::<_, anyhow::Error>(())
    })?;
    let _ = std::fs::remove_file(&socket_path);
    Ok(0)
}

/// The messenger's search index, beside the store.
const SEARCH_FILE: &str = "chat-search.sqlite";
/// Uploads under way to the file shares, beside the store.
const UPLOADS_DIR: &str = "uploads";
/// How often deleted messages' text and files are collected, and the index rewritten.
const GC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Every [`GC_INTERVAL`]: abandoned uploads, the store's garbage (deleted messages' text and
/// files, file versions and trash past their time), then the search index, so deleted words
/// leave the disk.
async fn collect_garbage(
    chat: chat::Chat,
    search: chat::Search,
    shares: Arc<archive_core::shares::Shares>,
) {
    loop {
        tokio::time::sleep(GC_INTERVAL).await;
        let (chat, search, shares) = (chat.clone(), search.clone(), shares.clone());
        let done = tokio::task::spawn_blocking(move || {
            if let Err(e) = shares.expire_uploads() {
                tracing::error!("deleting abandoned uploads failed: {e}");
            }
            chat.gc()?;
            search.gc()
        })
        .await;
        match done {
            Ok(Ok(())) => tracing::info!("collected deleted messages"),
            Ok(Err(e)) => tracing::error!("collecting deleted messages failed: {e}"),
            Err(e) => tracing::error!("collecting deleted messages failed: {e}"),
        }
    }
}

/// Tells systemd's watchdog the server is alive, twice per `timeout`, as long as its store
/// answers a read within half of it: a server whose disk or database hangs is restarted.
async fn keep_watchdog_fed(store: Arc<Store>, timeout: std::time::Duration) {
    let every = timeout / 2;
    loop {
        let store = store.clone();
        let check = tokio::task::spawn_blocking(move || store.quota_used());
        match tokio::time::timeout(every, check).await {
            Ok(Ok(Ok(_))) => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
            Ok(Ok(Err(e))) => tracing::error!("the store does not answer: {e}"),
            Ok(Err(e)) => tracing::error!("the store check failed: {e}"),
            Err(_) => tracing::error!("the store did not answer within {every:?}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Where people reach the web UI: this machine's own name, then each address of its
/// network interfaces (when it listens on all of them).
fn web_addresses(http: std::net::SocketAddr) -> Vec<String> {
    let port = http.port();
    if !http.ip().is_unspecified() {
        return vec![format!("http://{}/", http)];
    }
    let mut urls = vec![format!("http://localhost:{port}/  (on this machine)")];
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifaddr in addrs {
            let Some(ip) = ifaddr
                .address
                .and_then(|a| a.as_sockaddr_in().map(|s| s.ip()))
            else {
                continue;
            };
            if !ip.is_loopback() {
                urls.push(format!(
                    "http://{ip}:{port}/  (on the network of {})",
                    ifaddr.interface_name
                ));
            }
        }
    }
    urls
}

/// Runs one client's command inside the server.
fn run_forwarded(
    served: &Served,
    net: NetCtx,
    stream: std::os::unix::net::UnixStream,
    admins: control::Admins,
) {
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
    let ctx = Ctx::served(served, net, request.input());
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

/// Server events (refused peers, failed sessions, scheduled syncs) on stderr: ours at
/// `log_level`, the libraries' at warn (or less, when `log_level` asks for less).
fn init_logging(level: LogLevel) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let ours = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    };
    let filter = Targets::new()
        .with_default(LevelFilter::WARN.min(ours))
        .with_target("archive_net", ours)
        .with_target("archive", ours)
        .with_target("chat", ours);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .with(filter)
        .try_init();
}
