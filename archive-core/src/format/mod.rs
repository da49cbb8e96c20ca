//! Every byte format this crate writes, in one place: the entry encoding (signed, exchanged
//! between servers), the chunk manifest (a blob), the reconciliation frames (exchanged), the
//! sync index's items and blocks, and the store's on-disk layout (redb tables and files).
//! Domain types never become a format by accident: each format is an explicit struct or
//! function here, converted at the boundary, versioned by name, and pinned by golden-bytes
//! tests. `ARCHITECTURE.md` describes the same formats for readers of the repository.

pub(crate) mod certificate;
pub(crate) mod entry;
pub(crate) mod layout;
pub(crate) mod manifest;
pub(crate) mod sync_index;
pub(crate) mod sync_wire;
