//! The persisted sync index: range fingerprints in O(log n) without scanning a collection.
//!
//! Items are grouped into blocks, each stored packed in one `sync-block-items-v1` value (one
//! read per block), with its summary (count, sum, last item) in `sync-blocks-v1`; both are
//! updated in the same transaction as the entry insert (one block rewritten per insert). The
//! summaries of a collection are cached in memory (O(n / 256) entries, loaded once, then
//! patched at every commit, never rebuilt from items), so a fingerprint at a block boundary
//! costs two searches in memory.
//!
//! A session that needs a position inside a block reads that block once: in place, in redb's
//! page (no copy, no parse), with one pass that checks it against its summary and keeps a
//! running sum every [`CHECKPOINT_STRIDE`] items. A session's lookups ascend through the key
//! space, so every search starts from the block of the previous one.
//!
//! Block boundaries are content-defined (an id starting with a zero byte), so two servers'
//! blocks mostly coincide and the bounds one side sends fall on the other's block boundaries.

mod agreements;
mod blocks;
mod session;
mod summaries;

pub(crate) use agreements::{forget_agreements, read_agreement, write_agreement};
pub(crate) use blocks::SyncTables;
pub use session::StoreSyncIndex;
pub(crate) use summaries::SummaryCache;

use crate::sync::SyncKey;

/// Blocks are cut in half above this many items (only ids chosen to avoid boundaries get here).
const BLOCK_MAX: u64 = 1024;

/// True when an item starts a block wherever it lands: block boundaries are content-defined.
fn is_boundary(k: &SyncKey) -> bool {
    k.id.as_bytes()[0] == 0
}
