//! Commands that talk to other servers: `id`, `peer`, `diff --peer`, `sync`.

use std::sync::Arc;

use anyhow::{Context, Result};
use archive_net::{Counters, EndpointId, SyncOptions, Ticket};
use serde_json::json;

use crate::cli::PeerCommand;
use crate::config::SyncSchedule;
use crate::context::Ctx;
use crate::output::{errln, human_size, outln, print_json, shown};
use crate::peers::{NewPeer, Peers, Running};
use crate::progress::SyncBar;
use crate::schedule;

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
    let peers = Peers::load(&ctx.dir)?;
    match command {
        PeerCommand::Add {
            target,
            addr,
            name,
            read,
            write,
        } => {
            let own = ctx.store()?.author();
            let running = running(ctx)?;
            let new = NewPeer {
                target,
                addrs: addr,
                name,
                read,
                write,
            };
            let peer = crate::peers::pair(&ctx.dir, &own, new, running)?;
            let (name, id) = (peer.name.clone(), peer.id.clone());
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
            // The last sync of each peer and collection (`archive sync`, the peers page).
            let syncs = crate::syncs::load(&ctx.dir)?;
            let schedules = ctx.settings()?.schedules;
            let of = |name: &str| syncs_of(&syncs, name);
            if json {
                print_json(&peers_json(&peers, &syncs, &schedules)?)?;
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
                    print_syncs(&of(&p.name))?;
                    print_schedules(&p.name, &schedules, &syncs, ctx.is_served())?;
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
            let running = running(ctx)?;
            crate::peers::unpair(&ctx.dir, &name, running)?;
            crate::syncs::forget(&ctx.dir, &name)?;
            if json {
                print_json(&json!({ "removed": name }))?;
            } else {
                outln!("unpaired `{name}`");
            }
        }
    }
    Ok(0)
}

pub(crate) fn diff_peer(ctx: &Ctx, name: &str, collection: &str, json: bool) -> Result<u8> {
    archive_core::validate_collection(collection)?;
    let peer = Peers::load(&ctx.dir)?.find(name)?.clone();
    let net = ctx.net()?;
    let report = net.block_on(crate::syncs::diff_with(
        &net.endpoint,
        &net.node,
        &peer,
        collection,
    ))?;
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
    let options = SyncOptions {
        collection: collection.to_owned(),
        pull: pull || !push,
        push: push || !pull,
    };
    let counters = Arc::new(Counters::default());
    let bar = SyncBar::start(counters.clone());
    let report = net.block_on(crate::syncs::sync_with(
        &net.endpoint,
        &net.node,
        &peer,
        &options,
        counters.clone(),
    ));
    bar.finish();
    if let Err(e) = crate::syncs::record(
        &ctx.dir,
        crate::syncs::SyncRecord::of(name, collection, &report),
    ) {
        errln!("archive: note: {e:#}");
    }
    let report = report?;
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

/// `peer`'s records, by collection.
fn syncs_of<'a>(
    syncs: &'a [crate::syncs::SyncRecord],
    peer: &str,
) -> Vec<&'a crate::syncs::SyncRecord> {
    let mut mine: Vec<_> = syncs.iter().filter(|r| r.peer == peer).collect();
    mine.sort_by(|a, b| a.collection.cmp(&b.collection));
    mine
}

/// The peers as `peer ls --json` shows them: each with its `syncs` and `schedules` (with
/// when each runs next, Unix ms).
fn peers_json(
    peers: &Peers,
    syncs: &[crate::syncs::SyncRecord],
    schedules: &[SyncSchedule],
) -> Result<Vec<serde_json::Value>> {
    let mut rows = Vec::new();
    for p in &peers.peers {
        let mut row = serde_json::to_value(p)?;
        row["syncs"] = serde_json::to_value(syncs_of(syncs, &p.name))?;
        row["schedules"] = schedules
            .iter()
            .filter(|s| s.peer == p.name)
            .map(|s| {
                let mut v = serde_json::to_value(s)?;
                v["next_at"] = next_sync(s, syncs).into();
                Ok(v)
            })
            .collect::<Result<Vec<_>>>()?
            .into();
        rows.push(row);
    }
    Ok(rows)
}

/// When `schedule` syncs next (Unix ms), by its records.
fn next_sync(schedule: &SyncSchedule, syncs: &[crate::syncs::SyncRecord]) -> u64 {
    let history = schedule::History::of(syncs, &schedule.peer, &schedule.collections);
    let now = schedule::now_ms();
    schedule::Plan::of(schedule).next(&history, now, schedule::local_offset_ms(now))
}

/// One line per schedule of `peer`: what, how often, and when next.
fn print_schedules(
    peer: &str,
    schedules: &[SyncSchedule],
    syncs: &[crate::syncs::SyncRecord],
    serving: bool,
) -> Result<()> {
    for s in schedules.iter().filter(|s| s.peer == peer) {
        let next = next_sync(s, syncs);
        let wait = std::time::Duration::from_secs(next.saturating_sub(schedule::now_ms()) / 1000);
        let when = if !serving {
            "runs while `archive serve` runs".to_owned()
        } else if wait.is_zero() {
            "next: now".to_owned()
        } else {
            format!(
                "next: {} (in {})",
                crate::output::human_time(archive_core::Timestamp::from_unix_millis(next)),
                humantime::format_duration(wait)
            )
        };
        outln!("  schedule: {}; {when}", schedule::describe(s));
    }
    Ok(())
}

/// One line per collection: when it last synced and how much moved, or why it failed.
fn print_syncs(records: &[&crate::syncs::SyncRecord]) -> Result<()> {
    let at = |ms: u64| crate::output::human_time(archive_core::Timestamp::from_unix_millis(ms));
    for r in records {
        match &r.error {
            None => outln!(
                "  {}: synced {}, received {} entries ({}), sent {} entries ({})",
                r.collection,
                at(r.at),
                r.entries_received,
                human_size(r.bytes_received),
                r.entries_sent,
                human_size(r.bytes_sent)
            ),
            Some(why) => {
                let last = match r.last_success_at {
                    Some(ok) => format!("last completed {}", at(ok)),
                    None => "never completed".to_owned(),
                };
                let times = if r.failures > 1 {
                    format!(" ({} times in a row)", r.failures)
                } else {
                    String::new()
                };
                outln!(
                    "  {}: failed {}{times}: {why}; {last}",
                    r.collection,
                    at(r.at)
                )
            }
        }
    }
    Ok(())
}

/// `archive status`: whether a server runs on this data folder, its key, free space, and each
/// peer's last sync of each collection.
pub(crate) fn status(ctx: &Ctx, json: bool) -> Result<u8> {
    let store = ctx.store()?;
    let serving = ctx.is_served();
    let free = store.transfer().available_space()?;
    let used = store.quota_used()?;
    let peers = Peers::load(&ctx.dir)?;
    let syncs = crate::syncs::load(&ctx.dir)?;
    let schedules = ctx.settings()?.schedules;
    if json {
        print_json(&json!({
            "serving": serving,
            "id": store.author().to_string(),
            "data_dir": ctx.dir,
            "bytes_used": used,
            "bytes_free": free,
            "peers": peers_json(&peers, &syncs, &schedules)?,
        }))?;
        return Ok(0);
    }
    outln!(
        "server:      {}",
        if serving {
            "running (archive serve)"
        } else {
            "not running (start it with `archive serve`)"
        }
    );
    outln!("id:          {}", store.author());
    outln!("data folder: {}", ctx.dir.display());
    outln!(
        "disk:        {} used by the store, {} free",
        human_size(used),
        human_size(free)
    );
    if peers.peers.is_empty() {
        outln!("peers:       none (pair with `archive peer add TICKET`)");
    }
    for p in &peers.peers {
        let records = syncs_of(&syncs, &p.name);
        outln!(
            "peer {}:{}",
            p.name,
            if records.is_empty() {
                " never synced from here"
            } else {
                ""
            }
        );
        print_syncs(&records)?;
        print_schedules(&p.name, &schedules, &syncs, serving)?;
    }
    for s in schedules.iter().filter(|s| peers.find(&s.peer).is_err()) {
        outln!(
            "schedule with `{}`: not paired, so it cannot run (archive.toml)",
            s.peer
        );
    }
    Ok(0)
}

/// What else learns of a pairing change: the running server's trust list and live delivery
/// (none when this process runs the command alone).
fn running(ctx: &Ctx) -> Result<Running<'_>> {
    let trust = if ctx.is_served() {
        Some(ctx.net()?.node.trust())
    } else {
        None
    };
    Ok(Running {
        trust,
        delivery: ctx.delivery(),
    })
}
