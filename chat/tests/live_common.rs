//! Servers on real iroh endpoints on 127.0.0.1 (relays, port mapping and discovery off),
//! each with its messenger and live delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use archive_core::Store;
use archive_net::{bind_endpoint, EndpointAddr, EndpointId, Limits, NetConfig, Node, PeerPolicy};
use chat::{Chat, Delivery, DeliveryConfig, RoomId};
use iroh::protocol::Router;

pub(crate) struct NetServer {
    pub(crate) chat: Chat,
    pub(crate) delivery: Delivery,
    node: Node,
    router: Router,
    _dir: tempfile::TempDir,
}

impl NetServer {
    /// A server on 127.0.0.1.
    pub(crate) async fn start(config: DeliveryConfig) -> NetServer {
        NetServer::start_on("127.0.0.1:0".parse().unwrap(), config).await
    }

    /// A server bound to `bind`.
    pub(crate) async fn start_on(bind: std::net::SocketAddr, config: DeliveryConfig) -> NetServer {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::init(dir.path().join("archive")).unwrap());
        let net = NetConfig {
            bind: Some(bind),
            ..NetConfig::default()
        };
        let trust = archive_net::Trust::default();
        let endpoint = bind_endpoint(store.secret_key(), &net, &trust)
            .await
            .unwrap();
        let chat = Chat::new(store.clone());
        crate::common::with_people(&chat);
        let node = Node::new(store, trust, Limits::default());
        let router = node.router(endpoint.clone()).spawn();
        let delivery = Delivery::start(chat.clone(), node.clone(), endpoint, config);
        NetServer {
            chat,
            delivery,
            node,
            router,
            _dir: dir,
        }
    }

    pub(crate) fn id(&self) -> EndpointId {
        self.router.endpoint().id()
    }

    pub(crate) fn addr(&self) -> EndpointAddr {
        self.router.endpoint().addr()
    }

    /// Pairs the two servers both ways (each may read and write every collection of the
    /// other) and starts delivering between them.
    /// Pairs both ways first, then starts delivery both ways: a delivery started before the
    /// other side trusts this one would be refused once (and counted as a failure).
    pub(crate) fn pair(&self, other: &NetServer) {
        for (here, there) in [(self, other), (other, self)] {
            here.trust().set(
                there.id(),
                PeerPolicy {
                    name: format!("{}", there.id().fmt_short()),
                    read: archive_net::Access::All,
                    write: archive_net::Access::All,
                },
            );
        }
        for (here, there) in [(self, other), (other, self)] {
            here.delivery.add_peer(there.addr());
        }
    }

    fn trust(&self) -> &archive_net::Trust {
        self.node.trust()
    }

    /// The room's messages as (id, text), in the room's order.
    pub(crate) fn shown(&self, room: &RoomId) -> Vec<(chat::MessageId, String)> {
        match self.chat.messages(room) {
            Ok(messages) => messages.into_iter().map(|m| (m.id, m.text)).collect(),
            Err(chat::ChatError::NoSuchRoom(_)) => Vec::new(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// A server that ignores the messenger's rules (a plain archive node): what a hostile or
/// modified server runs. It takes whatever it is offered and offers whatever it holds.
pub(crate) struct RogueServer {
    pub(crate) store: Arc<Store>,
    node: Node,
    router: Router,
    _dir: tempfile::TempDir,
}

impl RogueServer {
    pub(crate) async fn start() -> RogueServer {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::init(dir.path().join("archive")).unwrap());
        let net = NetConfig {
            bind: Some("127.0.0.1:0".parse().unwrap()),
            ..NetConfig::default()
        };
        let trust = archive_net::Trust::default();
        let endpoint = bind_endpoint(store.secret_key(), &net, &trust)
            .await
            .unwrap();
        let node = Node::new(store.clone(), trust, Limits::default());
        let router = node.router(endpoint).spawn();
        RogueServer {
            store,
            node,
            router,
            _dir: dir,
        }
    }
}

impl NetServer {
    /// Pairs with a rogue server both ways; this server delivers to it.
    pub(crate) fn pair_rogue(&self, rogue: &RogueServer) {
        let all = |name: &str| PeerPolicy {
            name: name.into(),
            read: archive_net::Access::All,
            write: archive_net::Access::All,
        };
        self.trust().set(rogue.router.endpoint().id(), all("rogue"));
        rogue.node.trust().set(self.id(), all("honest"));
        self.delivery.add_peer(rogue.router.endpoint().addr());
    }
}

/// Waits until `done` holds, checking every 5 ms (less often as the wait grows), for at most
/// `limit`; panics with `what`
/// (and the servers' delivery statistics) if it never does. Returns how long it took.
pub(crate) async fn wait_for(
    what: &str,
    limit: Duration,
    servers: &[&NetServer],
    mut done: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            let stats: Vec<_> = servers.iter().map(|s| s.delivery.stats()).collect();
            panic!("{what}: not within {limit:?}; delivery: {stats:#?}");
        }
        let pause =
            (started.elapsed() / 20).clamp(Duration::from_millis(5), Duration::from_millis(250));
        tokio::time::sleep(pause).await;
    }
    started.elapsed()
}

/// Delivery with a round interval far longer than the tests wait: what arrives, arrives
/// live.
pub(crate) fn live_only() -> DeliveryConfig {
    DeliveryConfig {
        interval: Duration::from_secs(600),
        ..DeliveryConfig::default()
    }
}

/// Two servers on 127.0.0.1, paired, delivering live.
pub(crate) async fn paired_pair() -> (NetServer, NetServer) {
    let a = NetServer::start(live_only()).await;
    let b = NetServer::start(live_only()).await;
    a.pair(&b);
    (a, b)
}
