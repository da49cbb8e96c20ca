//! What this store last agreed with each peer about each collection: the insertion counters
//! at which both held the same entries (the fast path's starting point).

use crate::error::StorageError;
use crate::format::layout::SYNC_PEERS;
use crate::sync::Agreement;

/// The agreement with `peer` about `collection`, if any.
pub(crate) fn read_agreement(
    tx: &redb::ReadTransaction,
    peer: &[u8; 32],
    collection: &str,
) -> Result<Option<Agreement>, StorageError> {
    let table = tx.open_table(SYNC_PEERS)?;
    Ok(table.get((*peer, collection))?.map(|v| {
        let (my_seq, their_seq) = v.value();
        Agreement { my_seq, their_seq }
    }))
}

/// Forgets every agreement about `collection` (its set lost entries, so "nothing changed
/// since" no longer holds).
pub(crate) fn forget_agreements(
    tx: &redb::WriteTransaction,
    collection: &str,
) -> Result<(), StorageError> {
    let mut table = tx.open_table(SYNC_PEERS)?;
    table.retain(|(_, c), _| c != collection)?;
    Ok(())
}

/// Records the agreement with `peer` about `collection`.
pub(crate) fn write_agreement(
    tx: &redb::WriteTransaction,
    peer: &[u8; 32],
    collection: &str,
    a: Agreement,
) -> Result<(), StorageError> {
    let mut table = tx.open_table(SYNC_PEERS)?;
    table.insert((*peer, collection), (a.my_seq, a.their_seq))?;
    Ok(())
}
