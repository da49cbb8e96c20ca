//! A terminal chat between two community servers: A and B run in this process on
//! 127.0.0.1, paired, sharing one room, each with live delivery. Type `a: text` to write as
//! ana on A, `b: text` to write as bo on B; each server prints what arrives in its room's
//! subscription. At the end of input it waits until both show the same room, and prints it.
//!
//! ```text
//! cargo run -p archive-examples --bin terminal_chat
//! a: the bread is ready
//! b: on my way
//! ```

use std::sync::Arc;
use std::time::Duration;

use archive_core::Store;
use archive_net::{bind_endpoint, Access, Limits, NetConfig, Node, PeerPolicy, Trust};
use chat::{Chat, Delivery, DeliveryConfig, MessageBody, ResumeToken, RoomEvent, RoomSettings};
use iroh::protocol::Router;
use n0_future::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};

/// One server: its store, messenger, network node and live delivery.
struct Server {
    name: &'static str,
    chat: Chat,
    delivery: Delivery,
    node: Node,
    router: Router,
}

async fn start(name: &'static str, dir: &std::path::Path) -> anyhow::Result<Server> {
    let store = Arc::new(Store::init(dir.join(name))?);
    let net = NetConfig {
        bind: Some("127.0.0.1:0".parse()?),
        ..NetConfig::default()
    };
    let trust = Trust::default();
    let endpoint = bind_endpoint(store.secret_key(), &net, &trust).await?;
    let chat = Chat::new(store.clone());
    let node = Node::new(store, trust, Limits::default());
    let router = node.router(endpoint.clone()).spawn();
    let delivery = Delivery::start(
        chat.clone(),
        node.clone(),
        endpoint,
        DeliveryConfig::default(),
    );
    Ok(Server {
        name,
        chat,
        delivery,
        node,
        router,
    })
}

/// Pairs `a` and `b` both ways (each may read and write the other's rooms) and delivers
/// between them.
fn pair(a: &Server, b: &Server) {
    for (here, there) in [(a, b), (b, a)] {
        let policy = PeerPolicy {
            name: there.name.into(),
            read: Access::All,
            write: Access::All,
        };
        here.node.trust().set(there.router.endpoint().id(), policy);
        here.delivery.add_peer(there.router.endpoint().addr());
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let a = start("a", dir.path()).await?;
    let b = start("b", dir.path()).await?;
    pair(&a, &b);
    // Each server's first account is its admin: ana on A, bo on B.
    a.chat.create_account(None, "ana", "Ana")?;
    b.chat.create_account(None, "bo", "Bo")?;
    a.chat.set_community_name("ana", "riverside")?;
    b.chat.set_community_name("bo", "hilltop")?;
    let settings = RoomSettings {
        name: "bakery".into(),
        topic: "who bakes what".into(),
        access: chat::Access::Open,
        servers: vec![b.chat.server()],
        history: Default::default(),
    };
    let room = a.chat.create_room("ana", settings)?;
    // Wait for delivery: the room to B, each community's name to the other.
    while !b.chat.rooms()?.contains(&room)
        || a.chat.community_name(&b.chat.server())?.is_none()
        || b.chat.community_name(&a.chat.server())?.is_none()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Each server prints what its room's subscription brings, as it comes.
    for server in [&a, &b] {
        let (name, chat) = (server.name, server.chat.clone());
        let mut feed = Box::pin(server.chat.subscribe(&room, ResumeToken::default()));
        tokio::spawn(async move {
            while let Some(Ok(page)) = feed.next().await {
                for event in page.events {
                    if let RoomEvent::Message { id, now: Some(m) } = event {
                        let who = chat.handle(&id.author).unwrap_or_default();
                        println!("[on {name}] {who}: {}", m.text);
                    }
                }
            }
        });
    }
    println!("type `a: text` or `b: text`; end with Ctrl-D");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut sent = 0;
    while let Some(line) = lines.next_line().await? {
        let (server, account, text) = match line.split_once(':') {
            Some(("a", text)) => (&a, "ana", text),
            Some(("b", text)) => (&b, "bo", text),
            _ => {
                eprintln!("start the line with `a:` or `b:`");
                continue;
            }
        };
        let body = MessageBody {
            text: text.trim().into(),
            reply_to: None,
            attachments: Vec::new(),
        };
        match server.chat.send(&room, account, &body) {
            Ok(_) => sent += 1,
            Err(e) => eprintln!("not sent: {e}"),
        }
    }
    // Both servers end up with the same room, in the same order.
    for _ in 0..500 {
        let (on_a, on_b) = (a.chat.messages(&room)?, b.chat.messages(&room)?);
        if on_a.len() == sent && on_a == on_b {
            println!("both servers show the same {sent} messages");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the two servers did not converge: {:?}", a.delivery.stats())
}
