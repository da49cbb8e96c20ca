//! Which endpoints may talk to this server, and what each may read and write.
//!
//! Trust is explicit: a peer is paired by its endpoint id (its public key). The daemon keeps the
//! list in its configuration and hands it here; it can change while the server runs.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use iroh::EndpointId;

/// Access to collections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Access {
    /// Every collection.
    #[default]
    All,
    /// Only these.
    Only(BTreeSet<String>),
}

/// Collections whose name starts with this are this server's alone (a person's read markers,
/// say): no peer reconciles, reads or writes them, whatever its access says.
pub const LOCAL_PREFIX: &str = "local/";

impl Access {
    /// True when `collection` is covered (never for one under [`LOCAL_PREFIX`]).
    pub fn allows(&self, collection: &str) -> bool {
        if collection.starts_with(LOCAL_PREFIX) {
            return false;
        }
        match self {
            Access::All => true,
            Access::Only(set) => set.contains(collection),
        }
    }
}

/// What a paired peer may do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerPolicy {
    /// A name for people.
    pub name: String,
    /// Collections it may read (reconcile, fetch entries and blobs).
    pub read: Access,
    /// Collections it may push entries into.
    pub write: Access,
}

/// The paired peers, shared between the server and the commands that change them.
#[derive(Debug, Clone, Default)]
pub struct Trust(Arc<RwLock<HashMap<EndpointId, PeerPolicy>>>);

impl Trust {
    /// Pairs (or updates) a peer.
    pub fn set(&self, id: EndpointId, policy: PeerPolicy) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, policy);
    }

    /// Unpairs a peer.
    pub fn remove(&self, id: &EndpointId) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// Replaces the whole list.
    pub fn replace(&self, peers: impl IntoIterator<Item = (EndpointId, PeerPolicy)>) {
        // Collected before the lock is taken: a panic in the caller's iterator cannot poison it.
        let peers = peers.into_iter().collect();
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = peers;
    }

    /// The policy for `id`, if paired.
    pub fn policy(&self, id: &EndpointId) -> Option<PeerPolicy> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Checks that `id` may read `collection`.
    pub(crate) fn check_read(&self, id: &EndpointId, collection: &str) -> Result<(), String> {
        match self.policy(id) {
            None => Err(not_paired(id)),
            Some(p) if p.read.allows(collection) => Ok(()),
            Some(p) => Err(format!(
                "peer `{}` may not read collection `{collection}`",
                p.name
            )),
        }
    }

    /// Checks that `id` may write `collection`: that we accept its entries of it, whether it
    /// pushes them or we pull them.
    pub(crate) fn check_write(&self, id: &EndpointId, collection: &str) -> Result<(), String> {
        match self.policy(id) {
            None => Err(not_paired(id)),
            Some(p) if p.write.allows(collection) => Ok(()),
            Some(p) => Err(format!(
                "peer `{}` may not write collection `{collection}`: its entries of it are not \
                 accepted here",
                p.name
            )),
        }
    }
}

pub(crate) fn not_paired(id: &EndpointId) -> String {
    format!("endpoint {id} is not paired with this server")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str) -> PeerPolicy {
        PeerPolicy {
            name: name.into(),
            read: Access::All,
            write: Access::All,
        }
    }

    #[test]
    fn a_panicking_list_leaves_the_trust_usable() {
        let trust = Trust::default();
        let id = iroh::SecretKey::from_bytes(&[1; 32]).public();
        trust.set(id, policy("a"));
        let replaced = std::panic::catch_unwind(|| {
            trust.replace((0..3).map(|i| -> (EndpointId, PeerPolicy) {
                assert!(i < 2, "the caller's list fails half way");
                (id, policy("b"))
            }));
        });
        assert!(replaced.is_err());
        // The list was not half replaced, and the lock still works for the handshake.
        assert_eq!(trust.policy(&id).map(|p| p.name), Some("a".to_owned()));
        trust.remove(&id);
        assert!(trust.policy(&id).is_none());
    }
}
