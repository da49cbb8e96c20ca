//! Range-based set reconciliation of entry sets, sans-IO.
//!
//! Two servers find which entries each lacks in a few round trips and bytes proportional to the
//! difference (negentropy / NIP-77 style, Meyer's RBSR), with a one-round-trip fast path when
//! they synced before. Nothing here touches a socket: [`Reconciler`] consumes frames and yields
//! frames, over any [`SyncIndex`] (the store's persisted one, or [`MemoryIndex`]).

mod fingerprint;
mod index;
mod session;

pub use crate::format::sync_wire::{
    Bound, FastReply, Message, Mode, Range, WireError, MAX_FRAME_LIMIT, WIRE_VERSION,
};
pub use fingerprint::{Accumulator, Fingerprint, SyncKey};
pub use index::{MemoryIndex, SyncIndex};
pub use session::{
    Agreement, ReconcileConfig, Reconciler, SyncStats, MAX_ID_LIST_THRESHOLD, MIN_FRAME_LIMIT,
};

pub(crate) use index::{check_range, even_split};
