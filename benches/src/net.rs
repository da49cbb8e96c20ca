//! Two archive servers in one process, on 127.0.0.1 (relays, port mapping and mDNS off).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use archive_core::Store;
use archive_net::{
    bind_endpoint, connect, Access, Counters, Endpoint, Limits, NetConfig, Node, PeerPolicy,
    SyncOptions, SyncReport, Trust,
};
use iroh::protocol::{ProtocolHandler, Router};

/// Stands for "no extra protocol" in [`Server::start`].
#[derive(Debug)]
pub struct NoProtocol;

impl ProtocolHandler for NoProtocol {
    async fn accept(
        &self,
        _: iroh::endpoint::Connection,
    ) -> Result<(), iroh::protocol::AcceptError> {
        Ok(())
    }
}

/// One server: a store, its endpoint and the protocol router.
pub struct Server {
    /// The network side of the store.
    pub node: Node,
    /// The router serving the archive protocol (and any extra protocol).
    pub router: Router,
}

impl Server {
    /// Opens (or creates) the store in `dir` and serves it on 127.0.0.1.
    pub async fn start(dir: &Path) -> Server {
        Self::start_with(dir, None::<(&[u8], NoProtocol)>).await
    }

    /// Like [`Server::start`], and `extra` registers one more protocol on the same endpoint.
    pub async fn start_with<P: ProtocolHandler>(dir: &Path, extra: Option<(&[u8], P)>) -> Server {
        let store = Arc::new(
            Store::open(dir)
                .or_else(|_| Store::init(dir))
                .expect("store"),
        );
        let config = NetConfig {
            bind: Some("127.0.0.1:0".parse().expect("address")),
            ..NetConfig::default()
        };
        let trust = Trust::default();
        let endpoint = bind_endpoint(store.secret_key(), &config, &trust)
            .await
            .expect("endpoint");
        let node = Node::new(store, trust, Limits::default());
        let mut router = node.router(endpoint);
        if let Some((alpn, handler)) = extra {
            router = router.accept(alpn, handler);
        }
        Server {
            node,
            router: router.spawn(),
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.router.endpoint()
    }

    /// Pairs two servers both ways with full read and write access.
    pub fn pair(&self, other: &Server) {
        let policy = PeerPolicy {
            name: "bench".into(),
            read: Access::All,
            write: Access::All,
        };
        self.node.trust().set(other.endpoint().id(), policy.clone());
        other.node.trust().set(self.endpoint().id(), policy);
    }

    /// Dials `from` and syncs `collection` with it (connection set-up included in the time).
    pub async fn sync_from(
        &self,
        from: &Server,
        collection: &str,
        pull: bool,
        push: bool,
    ) -> (SyncReport, f64) {
        let start = Instant::now();
        let conn = connect(
            self.endpoint(),
            from.endpoint().addr(),
            Duration::from_secs(5),
        )
        .await
        .expect("connect");
        let options = SyncOptions {
            collection: collection.into(),
            pull,
            push,
        };
        let report = self
            .node
            .sync(&conn, &options, Arc::new(Counters::default()))
            .await
            .expect("sync");
        let secs = start.elapsed().as_secs_f64();
        conn.close(0u32.into(), b"done");
        (report, secs)
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        self.router.shutdown().await.expect("shutdown");
    }
}
