//! Answering a peer's requests: the serving half of the protocol.
//!
//! Every store read goes through the node's bounded read pool ([`StoreReads`]); every write to
//! the peer has a timeout; a peer's requests are served a few at a time (its request slots), on
//! at most a few connections, each closed once it has been idle. Blob encodings waiting to be
//! sent count against one byte budget for the whole server, and no read transaction is open
//! while a blob waits for the peer to take it.
//!
//! [`StoreReads`]: crate::node::StoreReads

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use archive_core::sync::Reconciler;
use archive_core::sync::SyncKey;
use archive_core::Outgoing;
use archive_core::{EntryValue, Hash, StoreSyncIndex};
use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler};
use iroh::EndpointId;
use tokio::sync::OwnedSemaphorePermit;

use crate::admission::{ConnectionSlot, PeerShare};
use crate::error::NetError;
use crate::node::{peer_id, Counters, Node};
use crate::pull;
use crate::trust::{not_paired, Access};
use crate::wire::{
    read_frame, write_frame_within, write_within, AgreeReply, BlobHeader, EntryReply, OfferReply,
    ReconcileStep, Request, Summary, MAX_BLOB_HASHES, MAX_CONTROL_FRAME, MAX_ENTRY_IDS,
    MAX_OFFER_IDS,
};

/// Blobs encoded ahead of the one being sent, per `GetBlobs` stream.
const ENCODE_AHEAD: usize = 2;

/// QUIC application close code: the peer is not paired with us.
pub const CLOSE_NOT_PAIRED: u32 = 403;
/// QUIC application close code: the peer has as many connections open as it may.
pub const CLOSE_TOO_MANY: u32 = 429;
/// QUIC application close code: the connection was idle too long.
pub const CLOSE_IDLE: u32 = 408;

/// QUIC application close code: the peer speaks another version of the protocol.
pub const CLOSE_OLD_VERSION: u32 = 426;

/// What a peer of protocol version 1 is told: it shows as "refused by the peer: ..." there.
pub(crate) const OLD_VERSION_REASON: &str = "this peer speaks archive sync protocol 2 and \
    yours speaks protocol 1: upgrade `archive` on this server to sync with it";

/// Answers a connection of protocol version 1 (see [`crate::wire::ALPN_V1`]): closed at once,
/// with a reason naming both versions.
#[derive(Debug, Clone, Copy)]
pub struct RefuseOldVersion;

impl ProtocolHandler for RefuseOldVersion {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        conn.close(
            VarInt::from_u32(CLOSE_OLD_VERSION),
            OLD_VERSION_REASON.as_bytes(),
        );
        // Stay until the close is sent: the peer reads the reason from it.
        conn.closed().await;
        Ok(())
    }
}

/// The protocol handler for incoming connections (see [`Node::protocol`]).
#[derive(Debug, Clone)]
pub struct ArchiveProtocol {
    pub(crate) node: Node,
}

impl ProtocolHandler for ArchiveProtocol {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let peer = conn.remote_id();
        // The endpoint's hook refuses unpaired endpoints; the trust list may have changed
        // since the handshake.
        if self.node.trust.policy(&peer).is_none() {
            conn.close(
                VarInt::from_u32(CLOSE_NOT_PAIRED),
                not_paired(&peer).as_bytes(),
            );
            return Ok(());
        }
        let Some(slot) = self.node.slots.open(peer) else {
            conn.close(
                VarInt::from_u32(CLOSE_TOO_MANY),
                b"too many connections from this peer; close one and retry",
            );
            return Ok(());
        };
        // No one listening is fine.
        let _ = self.node.arrivals.send(peer);
        let idle = Some(self.node.slots.caps().idle);
        let counters = Arc::new(Counters::default());
        let serving = serve_connection(self.node.clone(), conn, counters, slot, idle);
        crate::node::on_our_task(serving).await;
        Ok(())
    }
}

/// Serves every stream the peer opens on `conn` until it closes, or (with `idle`) until no
/// stream has been open that long. The side that started a sync serves the peer's requests
/// on its own connection without an idle limit: it closes that connection itself.
pub(crate) async fn serve_connection(
    node: Node,
    conn: Connection,
    counters: Arc<Counters>,
    slot: ConnectionSlot,
    idle: Option<std::time::Duration>,
) {
    let peer = conn.remote_id();
    // Without a limit: a wait longer than any sync, re-armed.
    let idle_or_long = idle.unwrap_or(std::time::Duration::from_secs(24 * 3600));
    let open = Arc::new(AtomicUsize::new(0));
    let state = Arc::new(ConnectionState::default());
    loop {
        let (send, recv) = match tokio::time::timeout(idle_or_long, conn.accept_bi()).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => break,
            // Keep-alives keep QUIC's own idle timer from firing; this one counts requests.
            Err(_) if idle.is_some() && open.load(Ordering::SeqCst) == 0 => {
                conn.close(VarInt::from_u32(CLOSE_IDLE), b"idle");
                break;
            }
            Err(_) => continue,
        };
        let (node, conn, counters) = (node.clone(), conn.clone(), counters.clone());
        let (open, share, state) = (open.clone(), slot.share.clone(), state.clone());
        open.fetch_add(1, Ordering::SeqCst);
        crate::node::spawn(async move {
            // One of the peer's request slots, held while this request is served.
            let permit = share.requests.clone().acquire_owned().await;
            if permit.is_ok() {
                let on = Serving {
                    node: &node,
                    conn: &conn,
                    peer,
                    counters: &counters,
                    state: &state,
                    share: &share,
                };
                let served = serve_stream(&on, send, recv);
                if let Err(e) = served.await {
                    tracing::warn!("serving {peer}: {e}");
                }
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
    drop(slot);
}

/// What the requests of one connection share.
#[derive(Debug, Default)]
pub(crate) struct ConnectionState {
    /// Entries offered on this connection that this side did not take (refused or denied).
    refused: AtomicU64,
}

/// What serving one stream works with.
struct Serving<'a> {
    node: &'a Node,
    conn: &'a Connection,
    peer: EndpointId,
    counters: &'a Counters,
    state: &'a ConnectionState,
    /// What this peer may hold of the server.
    share: &'a Arc<PeerShare>,
}

async fn serve_stream(
    on: &Serving<'_>,
    mut send: SendStream,
    mut recv: RecvStream,
) -> Result<(), NetError> {
    let Serving {
        node,
        conn,
        peer,
        counters,
        state,
        share,
    } = *on;
    let t = node.limits.timeout;
    let limit = MAX_CONTROL_FRAME.max(node.limits.reconcile.frame_limit.saturating_add(64));
    let request: Request = read_frame(&mut recv, limit, t).await?;
    match request {
        Request::Reconcile {
            collection,
            frame,
            want_summary,
        } => {
            if let Err(why) = node.trust.check_read(&peer, &collection) {
                let refused = ReconcileStep::Refused(refusal(&peer, why));
                write_frame_within(&mut send, &refused, t).await?;
            } else {
                let asked = (collection.as_str(), frame, want_summary);
                answer_reconcile(node, share, &mut send, &mut recv, asked).await?;
            }
        }
        Request::GetEntries { collection, keys } => {
            if let Err(why) = node.trust.check_read(&peer, &collection) {
                let refused = EntryReply::Refused(refusal(&peer, why));
                write_frame_within(&mut send, &refused, t).await?;
            } else if keys.len() > MAX_ENTRY_IDS {
                write_frame_within(&mut send, &EntryReply::Refused("too many keys".into()), t)
                    .await?;
            } else {
                let replies = node
                    .reads
                    .run(Some(share), move |store| {
                        let out = store.transfer().entries_to_send(&collection, &keys)?;
                        Ok(out.into_iter().map(|o| match o {
                            Outgoing::Certificate(bytes) => EntryReply::Certificate(bytes),
                            Outgoing::Entry(bytes) => EntryReply::Entry(bytes),
                            Outgoing::Missing(id) => EntryReply::Missing(id),
                        }))
                    })
                    .await?;
                for reply in replies {
                    if let EntryReply::Entry(bytes) = &reply {
                        Counters::add(&counters.entries_sent, 1);
                        counters
                            .add_paced(&counters.bytes_sent, bytes.len() as u64)
                            .await;
                    }
                    write_frame_within(&mut send, &reply, t).await?;
                }
                write_frame_within(&mut send, &EntryReply::End, t).await?;
            }
        }
        Request::GetBlobs { hashes } => {
            let Some(policy) = node.trust.policy(&peer) else {
                let refused = BlobHeader::Refused(not_paired(&peer));
                return write_frame_within(&mut send, &refused, t).await;
            };
            if hashes.len() > MAX_BLOB_HASHES {
                let refused = BlobHeader::Refused("too many hashes".into());
                write_frame_within(&mut send, &refused, t).await?;
            } else {
                send_blobs(node, share, &mut send, policy.read, hashes, counters).await?;
            }
        }
        Request::Offer {
            collection,
            keys,
            last: _,
        } => {
            if let Err(why) = node.trust.check_write(&peer, &collection) {
                let refused = OfferReply::Refused(refusal(&peer, why));
                write_frame_within(&mut send, &refused, t).await?;
            } else if keys.len() > MAX_OFFER_IDS {
                write_frame_within(&mut send, &OfferReply::Refused("too many keys".into()), t)
                    .await?;
            } else {
                let offer = (collection.as_str(), keys);
                take_offer(node, share, conn, &mut send, offer, &state.refused).await?;
            }
        }
        Request::Agree {
            collection,
            your_seq,
            my_seq,
        } => {
            let kept_out = state.refused.load(Ordering::SeqCst);
            let reply = match node.trust.check_write(&peer, &collection) {
                Err(why) => AgreeReply::Refused(refusal(&peer, why)),
                // Our sets differ by what we refused: "nothing changed since" would be false.
                Ok(()) if kept_out > 0 => AgreeReply::Refused(format!(
                    "{kept_out} offered entries were not taken; no agreement recorded"
                )),
                Ok(()) => {
                    let agreement = archive_core::sync::Agreement {
                        my_seq: your_seq,
                        their_seq: my_seq,
                    };
                    let key = peer_id(&peer);
                    node.reads
                        .run(Some(share), move |store| {
                            Ok(store
                                .collection(&collection)?
                                .record_agreement(&key, agreement)?)
                        })
                        .await?;
                    AgreeReply::Recorded
                }
            };
            write_frame_within(&mut send, &reply, t).await?;
        }
    }
    let _ = send.finish();
    // Wait until the peer has read everything before the stream is dropped.
    let _ = tokio::time::timeout(t, send.stopped()).await;
    Ok(())
}

/// Encoded blobs ready to send (`None`: answered as missing), with the serving budget they
/// hold.
struct Encoded {
    blobs: Vec<Option<(u64, Vec<u8>)>>,
    _memory: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

/// Blob encodings made in one read of the store: many small blobs share one short read
/// transaction and one trip to the read pool (one trip per blob made the initial sync of
/// 100,000 small files take 19.3-19.8 s instead of 14.9-17.5 s; BENCHMARKS.md).
const ENCODE_GROUP: u64 = 1024 * 1024;

/// Answers a `GetBlobs`: each blob the peer may read (reachable from a collection it may read;
/// to a peer that may read everything, any blob) is encoded on the read pool, a group at a
/// time in its own short read transaction, a few groups ahead of the one being sent; one it
/// may not read is answered as missing, so it cannot tell the two apart.
async fn send_blobs(
    node: &Node,
    share: &Arc<PeerShare>,
    send: &mut SendStream,
    read: Access,
    hashes: Vec<Hash>,
    counters: &Counters,
) -> Result<(), NetError> {
    let t = node.limits.timeout;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Encoded, NetError>>(ENCODE_AHEAD);
    let producer = {
        let (node, share) = (node.clone(), share.clone());
        crate::node::spawn(async move {
            let mut next = 0;
            while next < hashes.len() {
                let encoded = encode_group(&node, &share, &read, &hashes[next..]).await;
                match &encoded {
                    Ok(group) => next += group.blobs.len(),
                    Err(_) => next = hashes.len(),
                }
                if tx.send(encoded).await.is_err() {
                    break;
                }
            }
        })
    };
    let result = async {
        while let Some(encoded) = rx.recv().await {
            for blob in encoded?.blobs {
                match blob {
                    None => write_frame_within(send, &BlobHeader::Missing, t).await?,
                    Some((size, bytes)) => {
                        write_frame_within(send, &BlobHeader::Found { size }, t).await?;
                        counters
                            .add_paced(&counters.bytes_sent, bytes.len() as u64)
                            .await;
                        write_within(send, &bytes, t).await?;
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    producer.abort();
    result
}

/// The next group of blobs (at least one) for a peer with `read` access: budgeted, checked,
/// encoded.
async fn encode_group(
    node: &Node,
    share: &PeerShare,
    read: &Access,
    hashes: &[Hash],
) -> Result<Encoded, NetError> {
    let total = node.limits.serve_memory.clamp(1, u32::MAX as usize) as u64;
    let run = |budget: u64, hashes: Vec<Hash>| {
        let read = read.clone();
        node.reads.run(Some(share), move |store| {
            let allows = |c: &str| read.allows(c);
            let may_read: Option<&dyn Fn(&str) -> bool> = match &read {
                Access::All => None,
                Access::Only(_) => Some(&allows),
            };
            Ok(store
                .transfer()
                .encode_blobs_within(&hashes, may_read, budget)?)
        })
    };
    let peer_total = node
        .slots
        .caps()
        .serve_memory_per_peer
        .clamp(1, u32::MAX as usize) as u32;
    // The peer's share first, then the node's: one peer cannot hold all of it.
    let take = |n: u64| async move {
        let n = n.clamp(1, total) as u32;
        let mine = share
            .serve_memory
            .clone()
            .acquire_many_owned(n.min(peer_total))
            .await;
        let all = node.serve_memory.clone().acquire_many_owned(n).await;
        (
            mine.expect("the semaphores are never closed"),
            all.expect("the semaphores are never closed"),
        )
    };
    let group = ENCODE_GROUP.min(total);
    let memory = take(group).await;
    let batch: Vec<Hash> = hashes
        .iter()
        .take(crate::wire::MAX_BLOB_HASHES)
        .copied()
        .collect();
    let (blobs, needs) = run(group, batch).await?;
    if !blobs.is_empty() {
        return Ok(Encoded {
            blobs,
            _memory: memory,
        });
    }
    // A blob larger than a group: alone, with as much of the budget as it needs.
    drop(memory);
    let need = needs.unwrap_or(group);
    let memory = take(need).await;
    let (blobs, _) = run(u64::MAX, hashes[..1].to_vec()).await?;
    Ok(Encoded {
        blobs,
        _memory: memory,
    })
}

/// Runs one step of a reconciliation on the read pool (it reads the store's index).
async fn step(
    node: &Node,
    share: &PeerShare,
    r: Reconciler<StoreSyncIndex>,
    frame: Vec<u8>,
) -> Result<
    (
        Reconciler<StoreSyncIndex>,
        Result<Option<Vec<u8>>, archive_core::SyncError>,
    ),
    NetError,
> {
    node.reads
        .run(Some(share), move |_| {
            let mut r = r;
            let out = r.receive(&frame);
            Ok((r, out))
        })
        .await
}

/// The answering side of a reconciliation.
async fn answer_reconcile(
    node: &Node,
    share: &PeerShare,
    send: &mut SendStream,
    recv: &mut RecvStream,
    (collection, first, want_summary): (&str, Vec<u8>, bool),
) -> Result<(), NetError> {
    let t = node.limits.timeout;
    let limit = node.limits.reconcile.frame_limit.saturating_add(64);
    // The peer's own share of sessions first, then the node's.
    let slots = async {
        let mine = share.sessions.clone().acquire_owned().await;
        let all = node.sessions.clone().acquire_owned().await;
        (mine, all)
    };
    let slot = tokio::time::timeout(t, slots).await;
    let Ok((Ok(_mine), Ok(_all))) = slot else {
        let busy = ReconcileStep::Refused("the server is busy reconciling; try again".into());
        return write_frame_within(send, &busy, t).await;
    };
    let (c, config) = (collection.to_owned(), node.limits.reconcile);
    let mut r = node
        .reads
        .run(Some(share), move |store| {
            Ok(Reconciler::new(
                store.collection(&c)?.sync_index()?,
                config,
            )?)
        })
        .await?;
    let mut frame = first;
    loop {
        let (back, reply) = step(node, share, r, frame).await?;
        r = back;
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                write_frame_within(send, &ReconcileStep::Refused(e.to_string()), t).await?;
                return Err(e.into());
            }
        };
        match reply {
            Some(out) => {
                write_frame_within(send, &ReconcileStep::Frame(out), t).await?;
                match read_frame(recv, limit, t).await? {
                    ReconcileStep::Frame(f) => frame = f,
                    ReconcileStep::Done(_) => {
                        let mine = summary(node, Some(share), collection, &r, want_summary).await?;
                        write_frame_within(send, &ReconcileStep::Done(mine), t).await?;
                        return Ok(());
                    }
                    ReconcileStep::Refused(why) => return Err(NetError::Refused(why)),
                }
            }
            None => {
                let mine = summary(node, Some(share), collection, &r, want_summary).await?;
                write_frame_within(send, &ReconcileStep::Done(mine), t).await?;
                let _: ReconcileStep = read_frame(recv, limit, t).await?;
                return Ok(());
            }
        }
    }
}

/// What this side would send: the entries it has that the peer lacks, and the latest files
/// among them (read on the read pool).
pub(crate) async fn summary<I: archive_core::sync::SyncIndex>(
    node: &Node,
    share: Option<&PeerShare>,
    collection: &str,
    r: &Reconciler<I>,
    want: bool,
) -> Result<Option<Summary>, NetError> {
    if !want {
        return Ok(None);
    }
    let have: Vec<SyncKey> = r.have().to_vec();
    let collection = collection.to_owned();
    let s = node
        .reads
        .run(share, move |store| {
            let mut s = Summary::default();
            for key in have {
                let Some(e) = store.entry(&key)? else {
                    continue;
                };
                s.entries += 1;
                if let EntryValue::File(f) = e.entry().value {
                    let current = store.collection(&collection)?.get(&e.entry().key)?;
                    if current.is_some_and(|c| c.file.hash == f.hash) {
                        s.files += 1;
                        s.file_bytes = s.file_bytes.saturating_add(f.size);
                    }
                }
            }
            Ok(s)
        })
        .await?;
    Ok(Some(s))
}

/// Fetches offered entries from the peer over the same connection, reporting progress so the
/// offering side's timeout does not fire during a long fetch.
async fn take_offer(
    node: &Node,
    share: &Arc<PeerShare>,
    conn: &Connection,
    send: &mut SendStream,
    (collection, keys): (&str, Vec<SyncKey>),
    refused: &AtomicU64,
) -> Result<(), NetError> {
    let t = node.limits.timeout;
    let counters = Counters::default();
    let fetch = pull::pull(node, conn, collection, keys, &counters, Some(share.clone()));
    tokio::pin!(fetch);
    let mut tick =
        tokio::time::interval((node.limits.timeout / 4).max(std::time::Duration::from_millis(1)));
    tick.tick().await;
    let result = loop {
        tokio::select! {
            r = &mut fetch => break r,
            _ = tick.tick() => {
                let p = OfferReply::Progress {
                    entries: Counters::get(&counters.entries_received),
                    bytes: Counters::get(&counters.bytes_received),
                };
                write_frame_within(send, &p, t).await?;
            }
        }
    };
    match result {
        Ok(report) => {
            if !report.refused.is_empty() {
                tracing::warn!(
                    "refused {} of the entries offered by {}: {}",
                    report.refused.len(),
                    conn.remote_id(),
                    report.refused[0].reason
                );
            }
            let seq = node
                .reads
                .run(Some(share), move |store| Ok(store.transfer().sync_seq()?))
                .await?;
            let kept_out = report.refused.len() as u64 + report.denied_skipped;
            refused.fetch_add(kept_out, Ordering::SeqCst);
            let done = OfferReply::Done {
                entries: report.entries_new,
                bytes: report.bytes_received,
                seq,
            };
            write_frame_within(send, &done, t).await
        }
        Err(e) => {
            let refused = OfferReply::Refused(format!("the pull failed: {e}"));
            write_frame_within(send, &refused, t).await?;
            Err(e)
        }
    }
}

/// Logs a refusal on this side before it is sent to the peer.
fn refusal(peer: &EndpointId, why: String) -> String {
    tracing::warn!("refused a request from {peer}: {why}");
    why
}
