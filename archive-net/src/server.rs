//! Answering a peer's requests: the serving half of the protocol.

use std::sync::Arc;
use std::time::Duration;

use archive_core::sync::Reconciler;
use archive_core::{EntryValue, Hash};
use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler};
use iroh::EndpointId;

use crate::error::NetError;
use crate::node::{peer_key, Counters, Node};
use crate::pull;
use crate::trust::not_paired;
use crate::wire::{
    read_frame, write_frame, AgreeReply, BlobHeader, EntryReply, OfferReply, ReconcileStep,
    Request, Summary, MAX_BLOB_HASHES, MAX_CONTROL_FRAME, MAX_ENTRY_IDS, MAX_OFFER_IDS,
};

/// Blobs encoded ahead of the one being sent, per `GetBlobs` stream.
const ENCODE_AHEAD: usize = 2;

/// QUIC application close code: the peer is not paired with us.
pub const CLOSE_NOT_PAIRED: u32 = 403;

/// The protocol handler for incoming connections (see [`Node::protocol`]).
#[derive(Debug, Clone)]
pub struct ArchiveProtocol {
    pub(crate) node: Node,
}

impl ProtocolHandler for ArchiveProtocol {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let peer = conn.remote_id();
        if self.node.trust.policy(&peer).is_none() {
            tracing::warn!("refused a connection from unpaired endpoint {peer}");
            conn.close(
                VarInt::from_u32(CLOSE_NOT_PAIRED),
                not_paired(&peer).as_bytes(),
            );
            // Give the close frame time to leave before the connection is dropped.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(());
        }
        serve_connection(self.node.clone(), conn, Arc::new(Counters::default())).await;
        Ok(())
    }
}

/// Serves every stream the peer opens on `conn` until it closes.
pub(crate) async fn serve_connection(node: Node, conn: Connection, counters: Arc<Counters>) {
    let peer = conn.remote_id();
    loop {
        let (send, recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(_) => break,
        };
        let (node, conn, counters) = (node.clone(), conn.clone(), counters.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_stream(&node, &conn, peer, send, recv, &counters).await {
                tracing::warn!("serving {peer}: {e}");
            }
        });
    }
}

async fn serve_stream(
    node: &Node,
    conn: &Connection,
    peer: EndpointId,
    mut send: SendStream,
    mut recv: RecvStream,
    counters: &Counters,
) -> Result<(), NetError> {
    let t = node.limits.timeout;
    let limit = MAX_CONTROL_FRAME.max(node.limits.reconcile.frame_limit + 64);
    let request: Request = read_frame(&mut recv, limit, t).await?;
    match request {
        Request::Reconcile {
            collection,
            frame,
            want_summary,
        } => {
            if let Err(why) = node.trust.check_read(&peer, &collection) {
                write_frame(&mut send, &ReconcileStep::Refused(refusal(&peer, why))).await?;
            } else {
                answer_reconcile(node, &mut send, &mut recv, &collection, frame, want_summary)
                    .await?;
            }
        }
        Request::GetEntries { collection, ids } => {
            if let Err(why) = node.trust.check_read(&peer, &collection) {
                write_frame(&mut send, &EntryReply::Refused(refusal(&peer, why))).await?;
            } else if ids.len() > MAX_ENTRY_IDS {
                write_frame(&mut send, &EntryReply::Refused("too many ids".into())).await?;
            } else {
                for id in ids {
                    let entry = node.store.entry(&Hash::from_bytes(id))?;
                    let reply = match entry {
                        Some(e) if e.entry().collection == collection => {
                            Counters::add(&counters.entries_sent, 1);
                            Counters::add(&counters.bytes_sent, e.encoded().len() as u64);
                            EntryReply::Entry(e.encoded().to_vec())
                        }
                        _ => EntryReply::Missing(id),
                    };
                    write_frame(&mut send, &reply).await?;
                }
                write_frame(&mut send, &EntryReply::End).await?;
            }
        }
        Request::GetBlobs { hashes } => {
            if node.trust.policy(&peer).is_none() {
                write_frame(&mut send, &BlobHeader::Refused(not_paired(&peer))).await?;
            } else if hashes.len() > MAX_BLOB_HASHES {
                write_frame(&mut send, &BlobHeader::Refused("too many hashes".into())).await?;
            } else {
                // Encode the next blobs while the current one is being sent. If the stream
                // fails, the receiver is dropped and the encoder stops at its next send.
                let (tx, mut rx) = tokio::sync::mpsc::channel(ENCODE_AHEAD);
                let store = node.store.clone();
                tokio::task::spawn_blocking(move || {
                    let hashes: Vec<Hash> = hashes.into_iter().map(Hash::from_bytes).collect();
                    let sent = store.encode_blobs(&hashes, |_, encoded| {
                        let failed = encoded.is_err();
                        tx.blocking_send(encoded).is_ok() && !failed
                    });
                    if let Err(e) = sent {
                        let _ = tx.blocking_send(Err(e));
                    }
                });
                while let Some(encoded) = rx.recv().await {
                    match encoded? {
                        None => write_frame(&mut send, &BlobHeader::Missing).await?,
                        Some((size, bytes)) => {
                            write_frame(&mut send, &BlobHeader::Found { size }).await?;
                            let len = bytes.len() as u64;
                            // Handed to QUIC as it is, without a copy.
                            send.write_chunk(bytes::Bytes::from(bytes))
                                .await
                                .map_err(|e| NetError::Io(e.to_string()))?;
                            Counters::add(&counters.bytes_sent, len);
                        }
                    }
                }
            }
        }
        Request::Offer {
            collection,
            ids,
            last: _,
        } => {
            if let Err(why) = node.trust.check_write(&peer, &collection) {
                write_frame(&mut send, &OfferReply::Refused(refusal(&peer, why))).await?;
            } else if ids.len() > MAX_OFFER_IDS {
                write_frame(&mut send, &OfferReply::Refused("too many ids".into())).await?;
            } else {
                take_offer(node, conn, &mut send, &collection, ids).await?;
            }
        }
        Request::Agree {
            collection,
            your_seq,
            my_seq,
        } => {
            let reply = match node.trust.check_write(&peer, &collection) {
                Err(why) => AgreeReply::Refused(refusal(&peer, why)),
                Ok(()) => {
                    let agreement = archive_core::sync::Agreement {
                        my_seq: your_seq,
                        their_seq: my_seq,
                    };
                    node.store
                        .record_agreement(&peer_key(&peer), &collection, agreement)?;
                    AgreeReply::Recorded
                }
            };
            write_frame(&mut send, &reply).await?;
        }
    }
    let _ = send.finish();
    // Wait until the peer has read everything before the stream is dropped.
    let _ = tokio::time::timeout(t, send.stopped()).await;
    Ok(())
}

/// The answering side of a reconciliation.
async fn answer_reconcile(
    node: &Node,
    send: &mut SendStream,
    recv: &mut RecvStream,
    collection: &str,
    first: Vec<u8>,
    want_summary: bool,
) -> Result<(), NetError> {
    let t = node.limits.timeout;
    let limit = node.limits.reconcile.frame_limit + 64;
    let index = node.store.sync_index(collection)?;
    let mut r = Reconciler::new(index, node.limits.reconcile)?;
    let mut frame = first;
    loop {
        let reply = match r.receive(&frame) {
            Ok(reply) => reply,
            Err(e) => {
                write_frame(send, &ReconcileStep::Refused(e.to_string())).await?;
                return Err(e.into());
            }
        };
        match reply {
            Some(out) => {
                write_frame(send, &ReconcileStep::Frame(out)).await?;
                match read_frame(recv, limit, t).await? {
                    ReconcileStep::Frame(f) => frame = f,
                    ReconcileStep::Done(_) => {
                        let mine = summary(node, collection, &r, want_summary)?;
                        write_frame(send, &ReconcileStep::Done(mine)).await?;
                        return Ok(());
                    }
                    ReconcileStep::Refused(why) => return Err(NetError::Refused(why)),
                }
            }
            None => {
                let mine = summary(node, collection, &r, want_summary)?;
                write_frame(send, &ReconcileStep::Done(mine)).await?;
                let _: ReconcileStep = read_frame(recv, limit, t).await?;
                return Ok(());
            }
        }
    }
}

/// What this side would send: the entries it has that the peer lacks, and the latest files
/// among them.
pub(crate) fn summary<I: archive_core::sync::SyncIndex>(
    node: &Node,
    collection: &str,
    r: &Reconciler<I>,
    want: bool,
) -> Result<Option<Summary>, NetError> {
    if !want {
        return Ok(None);
    }
    let mut s = Summary::default();
    for id in r.have() {
        let Some(e) = node.store.entry(&Hash::from_bytes(*id))? else {
            continue;
        };
        s.entries += 1;
        if let EntryValue::File(f) = e.entry().value {
            let current = node.store.get(collection, &e.entry().key)?;
            if current.is_some_and(|c| c.hash == f.hash) {
                s.files += 1;
                s.file_bytes += f.size;
            }
        }
    }
    Ok(Some(s))
}

/// Fetches offered entries from the peer over the same connection, reporting progress so the
/// offering side's timeout does not fire during a long fetch.
async fn take_offer(
    node: &Node,
    conn: &Connection,
    send: &mut SendStream,
    collection: &str,
    ids: Vec<[u8; 32]>,
) -> Result<(), NetError> {
    let counters = Counters::default();
    let fetch = pull::pull(node, conn, collection, ids, &counters);
    tokio::pin!(fetch);
    let mut tick = tokio::time::interval(node.limits.timeout / 4);
    tick.tick().await;
    let result = loop {
        tokio::select! {
            r = &mut fetch => break r,
            _ = tick.tick() => {
                let p = OfferReply::Progress {
                    entries: Counters::get(&counters.entries_received),
                    bytes: Counters::get(&counters.bytes_received),
                };
                write_frame(send, &p).await?;
            }
        }
    };
    match result {
        Ok(report) => {
            let seq = node.store.sync_seq()?;
            let done = OfferReply::Done {
                entries: report.entries_new,
                bytes: report.bytes_received,
                seq,
            };
            write_frame(send, &done).await
        }
        Err(e) => {
            write_frame(send, &OfferReply::Refused(format!("the pull failed: {e}"))).await?;
            Err(e)
        }
    }
}

/// Logs a refusal on this side before it is sent to the peer.
fn refusal(peer: &EndpointId, why: String) -> String {
    tracing::warn!("refused a request from {peer}: {why}");
    why
}
