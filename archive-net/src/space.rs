//! Room for what pulls take: free disk space, the store's quota, and each peer's quota and
//! entry cap, reserved before anything is asked for.
//!
//! One [`Ledger`] per node holds what the pulls in flight have reserved, so pulls running at
//! once (a sync, offers from several peers, several offers from one peer) share the limits
//! instead of each seeing all of the room. What is already stored is read from the store's
//! counters each time ([`Usage`]); a reservation is given back once what it was for is stored
//! (counted by the store from then on) or not needed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use archive_core::{PeerId, MAX_ENTRY_CHARGE};

use crate::error::NetError;
use crate::node::Node;

/// What the pulls in flight hold, over the whole node.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    state: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    /// Bytes reserved by every pull in flight.
    bytes: u64,
    /// Bytes and entries reserved per delivering peer.
    peers: HashMap<PeerId, (u64, u64)>,
}

/// The room left, as the store counts it now (before what pulls in flight hold).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    disk_available: u64,
    quota_left: Option<u64>,
    peer_bytes_left: Option<u64>,
    peer_entries_left: Option<u64>,
}

impl Usage {
    /// Reads the store's counters and the free space (on the read pool).
    pub(crate) async fn read(node: &Node, peer: PeerId) -> Result<Usage, NetError> {
        let limits = node.limits;
        node.reads
            .run(None, move |store| {
                let used = store.quota_used()?;
                let usage = store.peer_usage(&peer)?;
                Ok(Usage {
                    disk_available: store.transfer().available_space()?,
                    quota_left: limits.max_store_bytes.map(|q| q.saturating_sub(used)),
                    peer_bytes_left: limits.peer_quota_bytes.map(|q| {
                        q.saturating_sub(usage.entry_bytes.saturating_add(usage.blob_bytes))
                    }),
                    peer_entries_left: limits
                        .peer_max_entries
                        .map(|q| q.saturating_sub(usage.entries)),
                })
            })
            .await
    }
}

/// Keep a margin for the database and outboards (0.4 %) and the file system.
fn with_margin(bytes: u64) -> u64 {
    bytes
        .saturating_add(bytes / 100)
        .saturating_add(16 * 1024 * 1024)
}

/// What one pull (or one step of it) holds in the ledger; given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    ledger: Arc<Ledger>,
    peer: PeerId,
    bytes: u64,
    entries: u64,
}

impl Reservation {
    pub(crate) fn new(ledger: Arc<Ledger>, peer: PeerId) -> Self {
        Reservation {
            ledger,
            peer,
            bytes: 0,
            entries: 0,
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.ledger
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How many entries (of `wanted`) fit now, each at the most an entry can cost.
    pub(crate) fn entries_that_fit(&self, wanted: usize, now: &Usage) -> usize {
        let held = self.held();
        let (peer_bytes, peer_entries) = held.peers.get(&self.peer).copied().unwrap_or_default();
        let mut n = wanted as u64;
        let disk = now.disk_available.saturating_sub(with_margin(held.bytes));
        n = n.min(disk / MAX_ENTRY_CHARGE);
        if let Some(left) = now.quota_left {
            n = n.min(left.saturating_sub(held.bytes) / MAX_ENTRY_CHARGE);
        }
        if let Some(left) = now.peer_bytes_left {
            n = n.min(left.saturating_sub(peer_bytes) / MAX_ENTRY_CHARGE);
        }
        if let Some(left) = now.peer_entries_left {
            n = n.min(left.saturating_sub(peer_entries));
        }
        n as usize
    }

    /// Room for `bytes` more and `entries` more, or the limit that has none.
    pub(crate) fn take(&mut self, bytes: u64, entries: u64, now: &Usage) -> Result<(), NetError> {
        let mut held = self.held();
        let (peer_bytes, peer_entries) = held.peers.get(&self.peer).copied().unwrap_or_default();
        let disk = now.disk_available.saturating_sub(held.bytes);
        if with_margin(bytes) > disk {
            return Err(NetError::NoSpace {
                needed: bytes,
                available: disk,
                what: "free disk space",
            });
        }
        let check = |left: Option<u64>, taken: u64, what: &'static str| match left {
            Some(left) if bytes > left.saturating_sub(taken) => Err(NetError::NoSpace {
                needed: bytes,
                available: left.saturating_sub(taken),
                what,
            }),
            _ => Ok(()),
        };
        check(now.quota_left, held.bytes, "the configured quota")?;
        check(now.peer_bytes_left, peer_bytes, "this peer's quota")?;
        if let Some(left) = now.peer_entries_left {
            let left = left.saturating_sub(peer_entries);
            if entries > left {
                return Err(NetError::TooManyEntries { limit: left });
            }
        }
        held.bytes = held.bytes.saturating_add(bytes);
        let peer = held.peers.entry(self.peer).or_default();
        peer.0 = peer.0.saturating_add(bytes);
        peer.1 = peer.1.saturating_add(entries);
        drop(held);
        self.bytes += bytes;
        self.entries += entries;
        Ok(())
    }

    /// Gives back part of what is held.
    pub(crate) fn give_back(&mut self, bytes: u64, entries: u64) {
        let (bytes, entries) = (bytes.min(self.bytes), entries.min(self.entries));
        let mut held = self.held();
        held.bytes -= bytes;
        if let Some(peer) = held.peers.get_mut(&self.peer) {
            peer.0 -= bytes;
            peer.1 -= entries;
            if *peer == (0, 0) {
                held.peers.remove(&self.peer);
            }
        }
        drop(held);
        self.bytes -= bytes;
        self.entries -= entries;
    }

    /// The error for "not one more entry fits", naming the limit reached.
    pub(crate) fn full(&self, now: &Usage) -> NetError {
        let held = self.held();
        let (peer_bytes, peer_entries) = held.peers.get(&self.peer).copied().unwrap_or_default();
        if now
            .peer_entries_left
            .is_some_and(|left| left <= peer_entries)
        {
            return NetError::TooManyEntries { limit: 0 };
        }
        let one = MAX_ENTRY_CHARGE;
        let room = |left: u64, taken: u64| left.saturating_sub(taken);
        if let Some(left) = now.quota_left {
            if room(left, held.bytes) < one {
                return NetError::NoSpace {
                    needed: one,
                    available: room(left, held.bytes),
                    what: "the configured quota",
                };
            }
        }
        if let Some(left) = now.peer_bytes_left {
            if room(left, peer_bytes) < one {
                return NetError::NoSpace {
                    needed: one,
                    available: room(left, peer_bytes),
                    what: "this peer's quota",
                };
            }
        }
        NetError::NoSpace {
            needed: one,
            available: now.disk_available.saturating_sub(with_margin(held.bytes)),
            what: "free disk space",
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.give_back(self.bytes, self.entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(quota: u64) -> Usage {
        Usage {
            disk_available: u64::MAX / 2,
            quota_left: Some(quota),
            peer_bytes_left: None,
            peer_entries_left: Some(10),
        }
    }

    #[test]
    fn pulls_at_once_share_the_room() {
        let ledger = Arc::new(Ledger::default());
        let peer = PeerId::from_bytes([1; 32]);
        let now = usage(1000);
        let mut a = Reservation::new(ledger.clone(), peer);
        let mut b = Reservation::new(ledger.clone(), peer);
        a.take(600, 6, &now).unwrap();
        // The second pull sees what the first holds: 400 bytes and 4 entries left.
        assert!(b.take(500, 1, &now).is_err());
        assert!(matches!(
            b.take(100, 5, &now),
            Err(NetError::TooManyEntries { limit: 4 })
        ));
        b.take(400, 4, &now).unwrap();
        drop(a);
        // What the first held is free again.
        let mut c = Reservation::new(ledger.clone(), peer);
        c.take(600, 6, &now).unwrap();
        drop((b, c));
        assert_eq!(ledger.state.lock().unwrap().bytes, 0);
        assert!(ledger.state.lock().unwrap().peers.is_empty());
    }

    #[test]
    fn sizes_that_would_overflow_are_refused() {
        let ledger = Arc::new(Ledger::default());
        let mut r = Reservation::new(ledger, PeerId::from_bytes([2; 32]));
        let now = Usage {
            disk_available: 1 << 50,
            quota_left: None,
            peer_bytes_left: None,
            peer_entries_left: None,
        };
        r.take(u64::MAX - 10, 0, &now).unwrap_err();
        r.take(1 << 40, 0, &now).unwrap();
        assert!(r.take(u64::MAX - (1 << 39), 0, &now).is_err());
    }
}
