//! Driving a sync or a diff against a peer: the initiating half of the protocol.

use std::sync::Arc;
use std::time::{Duration, Instant};

use archive_core::sync::Reconciler;
use archive_core::sync::SyncKey;
use archive_core::{Refused, StoreSyncIndex};
use iroh::endpoint::{ConnectOptions, Connection, VarInt};
use iroh::{Endpoint, EndpointAddr};

use crate::error::{ConnectFailure, NetError};
use crate::node::{peer_id, Counters, Node};
use crate::server::{serve_connection, summary};
use crate::server::{CLOSE_OLD_VERSION, OLD_VERSION_REASON};
use crate::wire::{
    read_frame, write_frame_within, AgreeReply, OfferReply, ReconcileStep, Request, Summary,
    MAX_CONTROL_FRAME, MAX_OFFER_IDS,
};
use crate::wire::{ALPN_V1, PROTOCOL_VERSION};
use crate::{pull, ALPN};

/// Dials a peer, waiting at most `timeout`. A peer that does not know us closes the
/// connection at once; that shows up as [`NetError::Refused`] on the first request. A peer of
/// protocol version 1 is told why it cannot sync with us and refused with
/// [`NetError::OtherVersion`].
pub async fn connect(
    endpoint: &Endpoint,
    addr: EndpointAddr,
    timeout: Duration,
) -> Result<Connection, NetError> {
    let peer = addr.id;
    let failed = |e: ConnectFailure| NetError::Connect { peer, source: e };
    let dial = async {
        // Version 1 is offered too, only so that a peer of that version is recognised.
        let options = ConnectOptions::new().with_additional_alpns(vec![ALPN_V1.to_vec()]);
        let connecting = endpoint
            .connect_with_opts(addr, ALPN, options)
            .await
            .map_err(|e| failed(ConnectFailure::Failed(e.into())))?;
        connecting
            .await
            .map_err(|e| failed(ConnectFailure::Failed(e.into())))
    };
    let conn = match tokio::time::timeout(timeout, dial).await {
        Err(_) => return Err(failed(ConnectFailure::Timeout(timeout))),
        Ok(result) => result?,
    };
    if conn.alpn() == ALPN_V1 {
        conn.close(
            VarInt::from_u32(CLOSE_OLD_VERSION),
            OLD_VERSION_REASON.as_bytes(),
        );
        return Err(NetError::OtherVersion {
            peer,
            theirs: 1,
            ours: PROTOCOL_VERSION,
        });
    }
    Ok(conn)
}

/// What `diff --peer` found: the difference, counted both ways.
#[derive(Debug, Clone, Default)]
pub struct DiffReport {
    /// What the peer has and we lack.
    pub they_have: Summary,
    /// What we have and the peer lacks.
    pub we_have: Summary,
    /// Round trips of the reconciliation.
    pub round_trips: u32,
    /// Reconciliation bytes, both ways.
    pub reconcile_bytes: u64,
}

/// Which ways a sync goes.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The collection.
    pub collection: String,
    /// Fetch what the peer has and we lack.
    pub pull: bool,
    /// Offer the peer what we have and it lacks.
    pub push: bool,
}

/// What a sync did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Entries we received (new or not).
    pub entries_received: u64,
    /// Entries the peer took from us.
    pub entries_sent: u64,
    /// Bytes we received: entries and blob encodings.
    pub bytes_received: u64,
    /// Bytes we served to the peer.
    pub bytes_sent: u64,
    /// Blobs we imported.
    pub blobs_received: u64,
    /// Round trips of the reconciliation.
    pub round_trips: u32,
    /// Reconciliation bytes, both ways.
    pub reconcile_bytes: u64,
    /// True when the fast path settled the reconciliation.
    pub fast_path: bool,
    /// Wall time.
    pub elapsed: Duration,
    /// Entries the peer has that we did not take, and why (dated too far ahead, invalid
    /// content, purged here).
    pub refused: Vec<Refused>,
    /// Entries on our deny list that were not asked for.
    pub denied_skipped: u64,
    /// Keys the entries we took made both a file and a folder (export keeps the first).
    pub conflicts: Vec<archive_core::KeyConflict>,
    /// Why the pull direction was left out, when it was (the peer may not write this
    /// collection here).
    pub pull_skipped: Option<String>,
    /// True when both sides recorded that they hold the same entries (the fast path's
    /// starting point next time).
    pub agreed: bool,
}

/// The result of the reconciliation step.
struct Reconciled {
    have: Vec<SyncKey>,
    need: Vec<SyncKey>,
    round_trips: u32,
    bytes: u64,
    ours: Option<Summary>,
    theirs: Option<Summary>,
    fast_path: bool,
}

impl Node {
    /// Reconciles `collection` with the peer on `conn` and reports the difference both ways;
    /// nothing else is transferred.
    pub async fn diff(&self, conn: &Connection, collection: &str) -> Result<DiffReport, NetError> {
        let r = crate::node::on_our_task(self.reconcile(conn, collection, true, false))
            .await
            .map_err(|e| explain(conn, e))?;
        Ok(DiffReport {
            they_have: r.theirs.unwrap_or_default(),
            we_have: r.ours.unwrap_or_default(),
            round_trips: r.round_trips,
            reconcile_bytes: r.bytes,
        })
    }

    /// Fetches exactly the entries `keys` of `collection` from the peer on `conn`, with
    /// their content (verified, resumable chunk by chunk), without reconciling: what a
    /// program that fetches one item when someone opens it uses (the messenger's
    /// attachments). As in every pull, an entry is inserted only once its content is
    /// complete; keys the store holds already, or that the peer does not have, are skipped.
    pub async fn fetch_entries(
        &self,
        conn: &Connection,
        collection: &str,
        keys: Vec<archive_core::sync::SyncKey>,
    ) -> Result<crate::PullReport, NetError> {
        let fetch = async {
            let peer = conn.remote_id();
            self.trust
                .check_read(&peer, collection)
                .map_err(NetError::NotAllowed)?;
            let counters = Counters::default();
            pull::pull(self, conn, collection, keys, &counters, None).await
        };
        crate::node::on_our_task(fetch)
            .await
            .map_err(|e| explain(conn, e))
    }

    /// Syncs `collection` with the peer on `conn`: reconcile, then pull what we lack and
    /// offer what the peer lacks (as `options` say). `counters` show progress while it runs.
    pub async fn sync(
        &self,
        conn: &Connection,
        options: &SyncOptions,
        counters: Arc<Counters>,
    ) -> Result<SyncReport, NetError> {
        crate::node::on_our_task(self.sync_marked(conn, options, counters)).await
    }

    async fn sync_marked(
        &self,
        conn: &Connection,
        options: &SyncOptions,
        counters: Arc<Counters>,
    ) -> Result<SyncReport, NetError> {
        let started = Instant::now();
        let peer = conn.remote_id();
        self.trust
            .check_read(&peer, &options.collection)
            .map_err(NetError::NotAllowed)?;
        // What we accept from a peer is its write access, whichever side starts the sync.
        let mut options = options.clone();
        let mut pull_skipped = None;
        if options.pull {
            if let Err(why) = self.trust.check_write(&peer, &options.collection) {
                if !options.push {
                    return Err(NetError::NotAllowed(why));
                }
                options.pull = false;
                pull_skipped = Some(why);
            }
        }
        let slot = self.slots.open(peer).ok_or_else(|| {
            NetError::NotAllowed("too many connections with this peer are open".into())
        })?;
        // The peer fetches what we offer over this same connection.
        let serving = crate::node::spawn(serve_connection(
            self.clone(),
            conn.clone(),
            counters.clone(),
            slot,
            None,
        ));
        let result = self
            .sync_inner(conn, &options, &counters)
            .await
            .map_err(|e| explain(conn, e));
        serving.abort();
        let mut report = result?;
        report.pull_skipped = pull_skipped;
        report.elapsed = started.elapsed();
        report.bytes_sent = Counters::get(&counters.bytes_sent);
        Ok(report)
    }

    async fn sync_inner(
        &self,
        conn: &Connection,
        options: &SyncOptions,
        counters: &Counters,
    ) -> Result<SyncReport, NetError> {
        let peer = conn.remote_id();
        let c = &options.collection;
        let both = options.pull && options.push;
        let mut r = self.reconcile(conn, c, false, both).await?;
        let mut report = SyncReport {
            round_trips: r.round_trips,
            reconcile_bytes: r.bytes,
            fast_path: r.fast_path,
            ..SyncReport::default()
        };
        if options.pull && !r.need.is_empty() {
            let need = std::mem::take(&mut r.need);
            let p = pull::pull(self, conn, c, need, counters, None).await?;
            report.entries_received = p.entries_received;
            report.bytes_received = p.bytes_received;
            report.blobs_received = p.blobs;
            report.refused = p.refused;
            report.denied_skipped = p.denied_skipped;
            report.conflicts = p.conflicts;
        }
        let mut their_seq = None;
        if options.push && (!r.have.is_empty() || both) {
            let chunks: Vec<&[SyncKey]> = if r.have.is_empty() {
                vec![&[]]
            } else {
                r.have.chunks(MAX_OFFER_IDS).collect()
            };
            let n = chunks.len();
            for (i, keys) in chunks.into_iter().enumerate() {
                let (entries, seq) = self.offer(conn, c, keys, i + 1 == n).await?;
                report.entries_sent += entries;
                their_seq = Some(seq);
            }
        }
        // An agreement says "we hold the same entries": not so if we kept some out.
        let kept_out = !report.refused.is_empty() || report.denied_skipped > 0;
        if let (true, Some(their_seq), false) = (both, their_seq, kept_out) {
            let my_seq = self
                .reads
                .run(None, move |store| Ok(store.transfer().sync_seq()?))
                .await?;
            let (mut send, mut recv) = conn.open_bi().await.map_err(NetError::from)?;
            let agree = Request::Agree {
                collection: c.clone(),
                your_seq: their_seq,
                my_seq,
            };
            write_frame_within(&mut send, &agree, self.limits.timeout).await?;
            let _ = send.finish();
            match read_frame(&mut recv, MAX_CONTROL_FRAME, self.limits.timeout).await? {
                AgreeReply::Recorded => {
                    let agreement = archive_core::sync::Agreement { my_seq, their_seq };
                    let (key, c) = (peer_id(&peer), c.clone());
                    self.reads
                        .run(None, move |store| {
                            Ok(store.collection(&c)?.record_agreement(&key, agreement)?)
                        })
                        .await?;
                    report.agreed = true;
                }
                AgreeReply::Refused(why) => tracing::info!("no agreement recorded: {why}"),
            }
        }
        Ok(report)
    }

    /// Offers `keys` to the peer and waits while it fetches them; returns the entries it took
    /// and its insertion counter afterwards.
    async fn offer(
        &self,
        conn: &Connection,
        collection: &str,
        keys: &[SyncKey],
        last: bool,
    ) -> Result<(u64, u64), NetError> {
        let (mut send, mut recv) = conn.open_bi().await.map_err(NetError::from)?;
        let offer = Request::Offer {
            collection: collection.to_owned(),
            keys: keys.to_vec(),
            last,
        };
        write_frame_within(&mut send, &offer, self.limits.timeout).await?;
        let _ = send.finish();
        loop {
            match read_frame(&mut recv, MAX_CONTROL_FRAME, self.limits.timeout).await? {
                OfferReply::Progress { .. } => continue,
                OfferReply::Done { entries, seq, .. } => return Ok((entries, seq)),
                OfferReply::Refused(why) => return Err(NetError::Refused(why)),
            }
        }
    }

    /// Runs the initiating side of a reconciliation.
    async fn reconcile(
        &self,
        conn: &Connection,
        collection: &str,
        want_summary: bool,
        use_agreement: bool,
    ) -> Result<Reconciled, NetError> {
        let t = self.limits.timeout;
        let limit = self.limits.reconcile.frame_limit.saturating_add(64);
        let peer = conn.remote_id();
        let (key, c, config) = (peer_id(&peer), collection.to_owned(), self.limits.reconcile);
        let (mut r, first) = self
            .reads
            .run(None, move |store| {
                let collection = store.collection(&c)?;
                let agreement = if use_agreement {
                    collection.agreement(&key)?
                } else {
                    None
                };
                let mut r = Reconciler::new(collection.sync_index()?, config)?;
                let first = r.initiate(agreement)?;
                Ok((r, first))
            })
            .await?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(NetError::from)?;
        let request = Request::Reconcile {
            collection: collection.to_owned(),
            frame: first,
            want_summary,
        };
        write_frame_within(&mut send, &request, t).await?;
        let (ours, theirs) = loop {
            match read_frame(&mut recv, limit, t).await? {
                ReconcileStep::Frame(f) => match self.step(r, f).await? {
                    (back, Some(reply)) => {
                        r = back;
                        write_frame_within(&mut send, &ReconcileStep::Frame(reply), t).await?
                    }
                    (back, None) => {
                        r = back;
                        let ours = summary(self, None, collection, &r, want_summary).await?;
                        write_frame_within(&mut send, &ReconcileStep::Done(ours), t).await?;
                        match read_frame(&mut recv, limit, t).await? {
                            ReconcileStep::Done(theirs) => break (ours, theirs),
                            ReconcileStep::Refused(why) => return Err(NetError::Refused(why)),
                            ReconcileStep::Frame(_) => {
                                return Err(NetError::Protocol(
                                    "a reconciliation frame after the end".into(),
                                ))
                            }
                        }
                    }
                },
                ReconcileStep::Done(theirs) => {
                    let ours = summary(self, None, collection, &r, want_summary).await?;
                    write_frame_within(&mut send, &ReconcileStep::Done(ours), t).await?;
                    break (ours, theirs);
                }
                ReconcileStep::Refused(why) => return Err(NetError::Refused(why)),
            }
        };
        let _ = send.finish();
        let stats = r.stats();
        let fast_path = r.settled_by_fast_path();
        let (have, need) = r.into_difference();
        Ok(Reconciled {
            have,
            need,
            round_trips: stats.round_trips(),
            bytes: stats.bytes_sent + stats.bytes_received,
            fast_path,
            ours,
            theirs,
        })
    }
}

impl Node {
    /// One reconciliation step on the read pool (it reads the store's index).
    async fn step(
        &self,
        r: Reconciler<StoreSyncIndex>,
        frame: Vec<u8>,
    ) -> Result<(Reconciler<StoreSyncIndex>, Option<Vec<u8>>), NetError> {
        self.reads
            .run(None, move |_| {
                let mut r = r;
                let out = r.receive(&frame)?;
                Ok((r, out))
            })
            .await
    }
}

/// A stream error after the peer closed the connection on purpose says less than the peer's
/// reason for closing it (e.g. "not paired"): prefer the reason.
fn explain(conn: &Connection, e: NetError) -> NetError {
    match (conn.close_reason(), &e) {
        (Some(closed), NetError::Stream(_) | NetError::Connection(_)) => NetError::from(closed),
        _ => e,
    }
}
