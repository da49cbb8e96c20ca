//! What a command runs against: the store and, for network commands, an endpoint. Either
//! opened by this process, or lent by the running server (`archive serve`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Result;
use archive_core::Store;
use archive_net::{Endpoint, Node};

use crate::accounts::Accounts;
use crate::config::{Location, Settings};
use crate::peers::Peers;

/// The network side a command can use.
pub(crate) struct NetCtx {
    runtime: Runtime,
    pub(crate) endpoint: Endpoint,
    pub(crate) node: Node,
    /// True when this is the running server's endpoint (its addresses are the server's).
    pub(crate) serving: bool,
}

enum Runtime {
    Owned(tokio::runtime::Runtime),
    Shared(tokio::runtime::Handle),
}

impl NetCtx {
    pub(crate) fn served(handle: tokio::runtime::Handle, endpoint: Endpoint, node: Node) -> Self {
        NetCtx {
            runtime: Runtime::Shared(handle),
            endpoint,
            node,
            serving: true,
        }
    }

    /// Runs `f` to completion on the endpoint's runtime.
    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match &self.runtime {
            Runtime::Owned(rt) => rt.block_on(f),
            Runtime::Shared(h) => h.block_on(f),
        }
    }
}

impl Drop for NetCtx {
    fn drop(&mut self) {
        if let Runtime::Owned(rt) = &self.runtime {
            // Close gracefully so peers see a clean end rather than a timeout.
            let endpoint = self.endpoint.clone();
            rt.block_on(async move {
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(2), endpoint.close()).await;
            });
        }
    }
}

/// What the running server lends the commands it runs for clients.
pub(crate) struct Served {
    pub(crate) dir: PathBuf,
    /// The settings file the server was started with (`None`: the data folder's).
    pub(crate) config: Option<PathBuf>,
    pub(crate) chat: chat::Chat,
    pub(crate) accounts: Arc<Accounts>,
    pub(crate) peers_lock: Arc<Mutex<()>>,
    /// The messenger's live delivery: told of peers paired and unpaired while it runs.
    pub(crate) delivery: Arc<chat::Delivery>,
}

/// The data folder, its store, and (when needed) a network endpoint.
pub(crate) struct Ctx {
    pub(crate) dir: PathBuf,
    /// The settings file named for it (`None`: the data folder's).
    config: Option<PathBuf>,
    store: OnceLock<Arc<Store>>,
    net: OnceLock<NetCtx>,
    /// Serialises changes to `peers.json`.
    pub(crate) peers_lock: Arc<Mutex<()>>,
    /// The messenger on the store (one per process: it adds the room rules to the store).
    chat: OnceLock<chat::Chat>,
    /// The sign-in file (one per process: redb opens a file once).
    accounts: OnceLock<Arc<Accounts>>,
    /// What the client read from stdin for this command (a password).
    pub(crate) input: Option<String>,
    /// The running server's live delivery, when a server runs this command.
    delivery: Option<Arc<chat::Delivery>>,
}

impl Ctx {
    /// A command run by this process on its own.
    pub(crate) fn local(location: Location) -> Ctx {
        Ctx {
            dir: location.dir,
            config: location.config,
            store: OnceLock::new(),
            net: OnceLock::new(),
            peers_lock: Arc::default(),
            chat: OnceLock::new(),
            accounts: OnceLock::new(),
            input: None,
            delivery: None,
        }
    }

    /// A command the running server executes for a client.
    pub(crate) fn served(served: &Served, net: NetCtx, input: Option<String>) -> Ctx {
        Ctx {
            dir: served.dir.clone(),
            config: served.config.clone(),
            store: OnceLock::from(served.chat.store().clone()),
            net: OnceLock::from(net),
            peers_lock: served.peers_lock.clone(),
            chat: OnceLock::from(served.chat.clone()),
            accounts: OnceLock::from(served.accounts.clone()),
            input,
            delivery: Some(served.delivery.clone()),
        }
    }

    /// The settings in effect for this data folder.
    pub(crate) fn settings(&self) -> Result<Settings> {
        Settings::load(&Location {
            dir: self.dir.clone(),
            config: self.config.clone(),
        })
    }

    /// Which file [`Ctx::settings`] reads, in words.
    pub(crate) fn settings_source(&self) -> String {
        if let Some(c) = &self.config {
            return c.display().to_string();
        }
        let toml = self.dir.join(crate::config::FILE);
        if toml.exists() {
            return toml.display().to_string();
        }
        let json = self.dir.join(crate::config::LEGACY_FILE);
        if json.exists() {
            return format!(
                "{} (of an earlier version: save this as {} and remove it)",
                json.display(),
                toml.display()
            );
        }
        format!("the defaults (no {})", toml.display())
    }

    /// The running server's live delivery (none when this process runs the command alone).
    pub(crate) fn delivery(&self) -> Option<&chat::Delivery> {
        self.delivery.as_deref()
    }

    /// The messenger on this store.
    pub(crate) fn chat(&self) -> Result<&chat::Chat> {
        if let Some(c) = self.chat.get() {
            return Ok(c);
        }
        let chat = chat::Chat::new(self.store_arc()?.clone());
        Ok(self.chat.get_or_init(|| chat))
    }

    /// The sign-in file.
    pub(crate) fn accounts(&self) -> Result<&Accounts> {
        if let Some(a) = self.accounts.get() {
            return Ok(a);
        }
        // The store first: it checks the folder is this user's and private.
        self.store()?;
        let accounts = Arc::new(Accounts::open(&self.dir)?);
        Ok(self.accounts.get_or_init(|| accounts))
    }

    pub(crate) fn store(&self) -> Result<&Store> {
        Ok(self.store_arc()?.as_ref())
    }

    pub(crate) fn store_arc(&self) -> Result<&Arc<Store>> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        let store = Arc::new(Store::open(&self.dir)?);
        Ok(self.store.get_or_init(|| store))
    }

    /// True when a running server executes this command.
    pub(crate) fn is_served(&self) -> bool {
        self.net.get().is_some_and(|n| n.serving)
    }

    /// The endpoint: the server's, or one made for this command.
    pub(crate) fn net(&self) -> Result<&NetCtx> {
        if let Some(n) = self.net.get() {
            return Ok(n);
        }
        let store = self.store_arc()?.clone();
        let settings = self.settings()?;
        let trust = Peers::load(&self.dir)?.trust()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let config = settings.config(settings.network.client_bind)?;
        let endpoint = runtime.block_on(archive_net::bind_endpoint(
            store.secret_key(),
            &config,
            &trust,
        ))?;
        let node = Node::new(store, trust, settings.limits());
        let net = NetCtx {
            runtime: Runtime::Owned(runtime),
            endpoint,
            node,
            serving: false,
        };
        Ok(self.net.get_or_init(|| net))
    }
}
