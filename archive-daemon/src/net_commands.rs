//! Commands that talk to other servers: `id`, `peer`, `diff --peer`, `sync`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use archive_net::{Counters, EndpointId, SyncOptions, Ticket};
use serde_json::json;

use crate::cli::PeerCommand;
use crate::context::{Ctx, NetCtx};
use crate::output::{errln, human_size, outln, print_json, shown};
use crate::peers::{check_name, Peer, Peers};
use crate::progress::SyncBar;

pub(crate) fn id(ctx: &Ctx, json: bool) -> Result<u8> {
    let store = ctx.store()?;
    let id = EndpointId::from_bytes(store.author().as_bytes())
        .context("the store's key is not a valid endpoint id")?;
    // Only the running server knows the addresses it listens on.
    let addrs: Vec<std::net::SocketAddr> = if ctx.is_served() {
        let net = ctx.net()?;
        net.endpoint.addr().ip_addrs().copied().collect()
    } else {
        Vec::new()
    };
    let ticket = Ticket { id, addrs };
    if json {
        print_json(&json!({
            "id": id.to_string(),
            "ticket": ticket.to_string(),
            "addrs": ticket.addrs,
            "serving": ctx.is_served(),
        }))?;
    } else {
        outln!("id:     {id}");
        outln!("ticket: {ticket}");
        if !ctx.is_served() {
            outln!(
                "(no server is running: this ticket has no addresses; start `archive serve` and run `archive id` again,"
            );
            outln!(" or let peers find this server by mDNS on the local network)");
        }
    }
    Ok(0)
}

pub(crate) fn peer(ctx: &Ctx, command: PeerCommand, json: bool) -> Result<u8> {
    let _lock = ctx.peers_lock.lock().expect("peers lock");
    let mut peers = Peers::load(&ctx.dir)?;
    match command {
        PeerCommand::Add {
            target,
            addr,
            name,
            read,
            write,
        } => {
            let (id, mut addrs) = if target.starts_with("archive1") {
                let t: Ticket = target.parse()?;
                (t.id, t.addrs)
            } else {
                let id: EndpointId = target.trim().parse().map_err(|e| {
                    anyhow::anyhow!(
                        "`{target}` is neither a ticket (archive1...) nor an endpoint id: {e}"
                    )
                })?;
                (id, Vec::new())
            };
            addrs.extend(addr);
            addrs.dedup();
            let own = ctx.store()?.author();
            if id.as_bytes() == own.as_bytes() {
                bail!("that is this server's own id");
            }
            let name = name.unwrap_or_else(|| format!("peer-{}", &id.to_string()[..8]));
            check_name(&name)?;
            if peers.peers.iter().any(|p| p.name == name) {
                bail!("a peer named `{name}` exists already (remove it first with `archive peer rm {name}`)");
            }
            if let Some(p) = peers.peers.iter().find(|p| p.id == id.to_string()) {
                bail!(
                    "this server is paired already as `{}` (remove it first to change it)",
                    p.name
                );
            }
            // `--write ""` (an empty list) means none.
            let clean = |list: Option<Vec<String>>| -> Result<Option<Vec<String>>> {
                let Some(list) = list else { return Ok(None) };
                let list: Vec<String> = list.into_iter().filter(|c| !c.is_empty()).collect();
                for c in &list {
                    archive_core::validate_collection(c)?;
                }
                Ok(Some(list))
            };
            let (read, write) = (clean(read)?, clean(write)?);
            let peer = Peer {
                name: name.clone(),
                id: id.to_string(),
                addrs,
                read,
                write,
            };
            peers.peers.push(peer.clone());
            peers.save(&ctx.dir)?;
            if ctx.is_served() {
                peers.fill(ctx.net()?.node.trust())?;
            }
            // The messenger delivers to it from now on, not only after a restart.
            if let Some(delivery) = ctx.delivery() {
                delivery.add_peer(peer.endpoint_addr()?);
            }
            if json {
                print_json(&peer)?;
            } else {
                outln!("paired with `{name}` ({id})");
                if peer.addrs.is_empty() {
                    outln!("no address given: it will be looked for on the local network (mDNS)");
                }
            }
        }
        PeerCommand::Ls => {
            if json {
                print_json(&peers.peers)?;
            } else if peers.peers.is_empty() {
                outln!("no paired peers (pair with `archive peer add TICKET`)");
            } else {
                for p in &peers.peers {
                    let list = |l: &Option<Vec<String>>| match l {
                        None => "all".to_owned(),
                        Some(l) if l.is_empty() => "none".to_owned(),
                        Some(l) => l.join(","),
                    };
                    let addrs: Vec<String> = p.addrs.iter().map(|a| a.to_string()).collect();
                    outln!(
                        "{}  {}  addrs: {}  read: {}  write: {}",
                        p.name,
                        p.id,
                        if addrs.is_empty() {
                            "(mDNS)".to_owned()
                        } else {
                            addrs.join(",")
                        },
                        list(&p.read),
                        list(&p.write)
                    );
                }
            }
        }
        PeerCommand::Purge { name } => {
            let peer = peers.find(&name)?;
            let id = peer.endpoint_id()?;
            let store = ctx.store()?;
            let report = store.purge_peer(&archive_core::PeerId::from_bytes(*id.as_bytes()))?;
            if json {
                print_json(&json!({
                    "peer": name,
                    "entries_removed": report.entries_removed,
                    "collections": report.collections,
                }))?;
            } else {
                outln!(
                    "removed {} entries `{name}` brought (in {}); they will not be taken again. Run `archive gc` to free their content.",
                    report.entries_removed,
                    if report.collections.is_empty() {
                        "no collection".to_owned()
                    } else {
                        report.collections.iter().cloned().collect::<Vec<_>>().join(", ")
                    }
                );
            }
        }
        PeerCommand::Rm { name } => {
            let id = peers.find(&name)?.endpoint_id()?;
            peers.peers.retain(|p| p.name != name);
            peers.save(&ctx.dir)?;
            if ctx.is_served() {
                peers.fill(ctx.net()?.node.trust())?;
            }
            if let Some(delivery) = ctx.delivery() {
                delivery.remove_peer(id);
            }
            if json {
                print_json(&json!({ "removed": name }))?;
            } else {
                outln!("unpaired `{name}`");
            }
        }
    }
    Ok(0)
}

fn connect(net: &NetCtx, peer: &Peer) -> Result<archive_net::Connection> {
    let addr = peer.endpoint_addr()?;
    let timeout = Duration::from_secs(10);
    net.block_on(archive_net::connect(&net.endpoint, addr, timeout))
        .with_context(|| format!("peer `{}`", peer.name))
}

pub(crate) fn diff_peer(ctx: &Ctx, name: &str, collection: &str, json: bool) -> Result<u8> {
    archive_core::validate_collection(collection)?;
    let peer = Peers::load(&ctx.dir)?.find(name)?.clone();
    let net = ctx.net()?;
    let conn = connect(net, &peer)?;
    let report = net.block_on(async {
        let r = net.node.diff(&conn, collection).await;
        conn.close(0u32.into(), b"done");
        r
    });
    let report = report.with_context(|| format!("diff with `{name}`"))?;
    if json {
        let side = |s: &archive_net::wire::Summary| json!({ "entries": s.entries, "files": s.files, "bytes": s.file_bytes });
        print_json(&json!({
            "peer": name,
            "collection": collection,
            "they_have": side(&report.they_have),
            "we_have": side(&report.we_have),
            "round_trips": report.round_trips,
            "reconcile_bytes": report.reconcile_bytes,
        }))?;
    } else {
        let (t, w) = (report.they_have, report.we_have);
        if t.entries == 0 && w.entries == 0 {
            outln!("`{collection}` is the same on `{name}` and here");
        } else {
            outln!(
                "`{name}` has {} entries we lack ({} files, {})",
                t.entries,
                t.files,
                human_size(t.file_bytes)
            );
            outln!(
                "we have {} entries `{name}` lacks ({} files, {})",
                w.entries,
                w.files,
                human_size(w.file_bytes)
            );
        }
        outln!(
            "({}, {} of reconciliation)",
            round_trips(report.round_trips),
            human_size(report.reconcile_bytes)
        );
    }
    Ok(0)
}

pub(crate) fn sync(
    ctx: &Ctx,
    name: &str,
    collection: &str,
    pull: bool,
    push: bool,
    json: bool,
) -> Result<u8> {
    archive_core::validate_collection(collection)?;
    let peer = Peers::load(&ctx.dir)?.find(name)?.clone();
    let net = ctx.net()?;
    let conn = connect(net, &peer)?;
    let options = SyncOptions {
        collection: collection.to_owned(),
        pull: pull || !push,
        push: push || !pull,
    };
    let counters = Arc::new(Counters::default());
    let bar = SyncBar::start(counters.clone());
    let report = net.block_on(async {
        let r = net.node.sync(&conn, &options, counters.clone()).await;
        conn.close(0u32.into(), b"done");
        r
    });
    bar.finish();
    let report = report.with_context(|| format!("sync with `{name}`"))?;
    if let Some(why) = &report.pull_skipped {
        errln!("archive: not pulling: {why}");
    }
    for r in report.refused.iter().take(10) {
        errln!(
            "archive: refused entry {} from `{name}`: {}",
            r.id,
            r.reason
        );
    }
    if report.refused.len() > 10 {
        errln!(
            "archive: ... and {} more refused",
            report.refused.len() - 10
        );
    }
    for c in &report.conflicts {
        errln!(
            "archive: note: `{}` from `{name}` in `{}`: {} (export keeps whichever came first)",
            shown(&c.key),
            c.collection,
            c.reason
        );
    }
    if json {
        print_json(&json!({
            "peer": name,
            "collection": collection,
            "entries_received": report.entries_received,
            "entries_sent": report.entries_sent,
            "bytes_received": report.bytes_received,
            "bytes_sent": report.bytes_sent,
            "blobs_received": report.blobs_received,
            "round_trips": report.round_trips,
            "reconcile_bytes": report.reconcile_bytes,
            "fast_path": report.fast_path,
            "agreed": report.agreed,
            "refused": report.refused.iter().map(|r| json!({"id": r.id.to_hex(), "reason": r.reason.to_string()})).collect::<Vec<_>>(),
            "denied_skipped": report.denied_skipped,
            "conflicts": report.conflicts.iter().map(|c| json!({"collection": c.collection, "key": c.key, "reason": c.reason})).collect::<Vec<_>>(),
            "pull_skipped": report.pull_skipped,
            "seconds": report.elapsed.as_secs_f64(),
        }))?;
    } else {
        outln!(
            "synced `{collection}` with `{name}` in {:.2} s: received {} entries ({}), sent {} entries ({}); {}",
            report.elapsed.as_secs_f64(),
            report.entries_received,
            human_size(report.bytes_received),
            report.entries_sent,
            human_size(report.bytes_sent),
            round_trips(report.round_trips)
        );
    }
    if report.refused.is_empty() {
        Ok(0)
    } else {
        errln!(
            "archive: error: {} entries from `{name}` were refused (listed above); everything else synced",
            report.refused.len()
        );
        Ok(1)
    }
}

fn round_trips(n: u32) -> String {
    format!("{n} round trip{}", if n == 1 { "" } else { "s" })
}
