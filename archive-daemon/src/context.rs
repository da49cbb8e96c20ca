//! What a command runs against: the store and, for network commands, an endpoint. Either
//! opened by this process, or lent by the running server (`archive serve`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Result;
use archive_core::Store;
use archive_net::{Endpoint, Node};

use crate::config::NetSettings;
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

/// The data folder, its store, and (when needed) a network endpoint.
pub(crate) struct Ctx {
    pub(crate) dir: PathBuf,
    store: OnceLock<Arc<Store>>,
    net: OnceLock<NetCtx>,
    /// Serialises changes to `peers.json`.
    pub(crate) peers_lock: Arc<Mutex<()>>,
}

impl Ctx {
    /// A command run by this process on its own.
    pub(crate) fn local(dir: PathBuf) -> Ctx {
        Ctx {
            dir,
            store: OnceLock::new(),
            net: OnceLock::new(),
            peers_lock: Arc::default(),
        }
    }

    /// A command the running server executes for a client.
    pub(crate) fn served(
        dir: PathBuf,
        store: Arc<Store>,
        net: NetCtx,
        peers_lock: Arc<Mutex<()>>,
    ) -> Ctx {
        Ctx {
            dir,
            store: OnceLock::from(store),
            net: OnceLock::from(net),
            peers_lock,
        }
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
        let settings = NetSettings::load(&self.dir)?;
        let trust = Peers::load(&self.dir)?.trust()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let config = settings.config(settings.client_bind)?;
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
