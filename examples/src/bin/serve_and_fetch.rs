//! Two servers on this machine: A serves a collection over iroh, B pairs with it, syncs, and
//! reads a file it fetched, verified against its BLAKE3 hash.
//!
//! Both endpoints listen on 127.0.0.1 with the LAN profile (no relay, no port mapping, no
//! DNS), so this runs without any network but loopback.
//!
//! ```text
//! cargo run -p archive-examples --bin serve_and_fetch
//! ```

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use archive_core::Store;
use archive_net::{
    bind_endpoint, connect, Access, Counters, Limits, NetConfig, Node, PeerPolicy, SyncOptions,
    Trust,
};

/// A server: its store, its network node, and the router that answers peers.
async fn start(
    dir: &std::path::Path,
) -> Result<(Node, iroh::protocol::Router), Box<dyn std::error::Error>> {
    let store = Arc::new(Store::init(dir)?);
    let config = NetConfig {
        bind: Some("127.0.0.1:0".parse()?),
        ..NetConfig::default() // Profile::Lan, mDNS off
    };
    let trust = Trust::default();
    let endpoint = bind_endpoint(store.secret_key(), &config, &trust).await?;
    let node = Node::new(store, trust, Limits::default());
    let router = node.router(endpoint).spawn();
    Ok((node, router))
}

/// Lets `peer` read and write every collection of `node`'s store.
fn pair(node: &Node, peer: &iroh::protocol::Router, name: &str) {
    node.trust().set(
        peer.endpoint().id(),
        PeerPolicy {
            name: name.into(),
            read: Access::All,
            write: Access::All,
        },
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let (a, a_router) = start(&tmp.path().join("a")).await?;
    let (b, b_router) = start(&tmp.path().join("b")).await?;
    pair(&a, &b_router, "b");
    pair(&b, &a_router, "a");

    // Something for A to share: a small note and a file big enough to be chunked.
    let library = a.store().collection("library")?;
    library.add_bytes("notes/welcome.txt", b"Welcome to the community library.")?;
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    library.add_bytes("maps/region.bin", &big)?;

    // B dials A by its id and address, and pulls the collection.
    let conn = connect(
        b_router.endpoint(),
        a_router.endpoint().addr(),
        Duration::from_secs(5),
    )
    .await?;
    let options = SyncOptions {
        collection: "library".into(),
        pull: true,
        push: false,
    };
    let report = b
        .sync(&conn, &options, Arc::new(Counters::default()))
        .await?;
    println!(
        "B received {} entries and {} blobs ({} bytes) in {:?}",
        report.entries_received, report.blobs_received, report.bytes_received, report.elapsed
    );

    // B reads the files from its own store, verified as they stream.
    let b_library = b.store().collection("library")?;
    let welcome = b_library
        .get("notes/welcome.txt")?
        .ok_or("welcome.txt did not arrive")?;
    let mut text = String::new();
    b.store()
        .blobs()
        .reader(&welcome.file)?
        .read_to_string(&mut text)?;
    println!("B reads notes/welcome.txt: {text:?}");
    assert_eq!(text, "Welcome to the community library.");
    let region = b_library
        .get("maps/region.bin")?
        .ok_or("region.bin did not arrive")?;
    let mut copy = Vec::new();
    b.store()
        .blobs()
        .reader(&region.file)?
        .read_to_end(&mut copy)?;
    assert!(copy == big, "region.bin arrived intact");

    // A second sync finds nothing to do.
    let again = b
        .sync(&conn, &options, Arc::new(Counters::default()))
        .await?;
    println!(
        "second sync: {} entries in {} round trip(s)",
        again.entries_received, again.round_trips
    );
    assert_eq!(again.entries_received, 0);

    conn.close(0u32.into(), b"done");
    b_router.shutdown().await?;
    a_router.shutdown().await?;
    Ok(())
}
