//! The store's on-disk layout, version 2.
//!
//! ```text
//! DATA_DIR/
//!   FORMAT            "archive-store 2\n": written last by `init`; checked before anything else
//!   store.redb        metadata (redb): the tables below
//!   packs/<n>.pack    blob bytes, appended one after another (n: 8 hex digits)
//!   blobs/ab/<hex>    format 1 only: blobs larger than INLINE_MAX, one file each
//!   tmp/              files being written (format 1; gc empties it)
//! ```
//! Table names carry their version; a change of a table's types is a new name plus a migration.
//! Integers in keys and values use redb's fixed little-endian encodings; `&str` is UTF-8.

use redb::TableDefinition;

/// The store format this build reads and writes. Format 1 (blobs inline in the database or in
/// a file each) is upgraded in place on open: its blobs stay where they are and are read as
/// before; new blobs go to packs.
pub(crate) const FORMAT_VERSION: u32 = 2;
pub(crate) const FORMAT_FILE: &str = "FORMAT";
pub(crate) const FORMAT_PREFIX: &str = "archive-store ";
pub(crate) const DB_FILE: &str = "store.redb";
pub(crate) const BLOB_DIR: &str = "blobs";
pub(crate) const TMP_DIR: &str = "tmp";
pub(crate) const PACK_DIR: &str = "packs";
/// A pack takes appends until it is this large; then the next one starts.
pub(crate) const PACK_MAX: u64 = 256 * 1024 * 1024;

/// One BLAKE3 chunk group (16 KiB): a blob this small has an empty bao outboard (larger ones
/// keep theirs in `outboards-v1`). In format 1, blobs this small lived inside redb.
pub(crate) const INLINE_MAX: u64 = 16 * 1024;

pub(crate) fn format_file_contents() -> String {
    format!("{FORMAT_PREFIX}{FORMAT_VERSION}\n")
}

/// Single values: `secret-key` (32 bytes), `clock` (u64 LE, the largest entry time seen),
/// `next-seq` (u64 LE, the next local insertion number), `stored-bytes` (u64 LE, bytes of all
/// blobs), `entry-bytes` (u64 LE, the storage charge of all entries, see
/// `SignedEntry::storage_charge`), `private` (one byte 1: the data folder was made private by
/// this version, so a folder open to others was opened up later, on purpose or not).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta-v1");
pub(crate) const META_SECRET_KEY: &str = "secret-key";
pub(crate) const META_CLOCK: &str = "clock";
pub(crate) const META_NEXT_SEQ: &str = "next-seq";
pub(crate) const META_STORED_BYTES: &str = "stored-bytes";
pub(crate) const META_ENTRY_BYTES: &str = "entry-bytes";
pub(crate) const META_PRIVATE: &str = "private";

/// Every complete blob: hash -> (size, location). Location 0: bytes in `inline-blobs-v1`;
/// 1: bytes in `blobs/<hh>/<hex>` (both format 1); 2: bytes in a pack (`packed-v1`).
pub(crate) const BLOBS: TableDefinition<[u8; 32], (u64, u8)> = TableDefinition::new("blobs-v1");
pub(crate) const LOCATION_INLINE: u8 = 0;
pub(crate) const LOCATION_FILE: u8 = 1;
pub(crate) const LOCATION_PACK: u8 = 2;
/// Where a packed blob's bytes are: hash -> (pack number, offset in the pack). Its size is in
/// `blobs-v1`.
pub(crate) const PACKED: TableDefinition<[u8; 32], (u32, u64)> = TableDefinition::new("packed-v1");
/// Batch certificates kept to prove entries to other servers: certificate id -> encoded
/// certificate (`format::certificate`).
pub(crate) const CERTIFICATES: TableDefinition<[u8; 32], &[u8]> =
    TableDefinition::new("certificates-v1");
/// The certificate that vouches for an entry: the entry's sync key (time u64 BE, id: so a
/// batch's rows are written in order, not scattered like ids) -> (certificate id, whether the
/// entry's own signature was checked too). Entries without a row were proved by their own
/// signature.
pub(crate) const ENTRY_CERTIFICATES: TableDefinition<[u8; 40], ([u8; 32], bool)> =
    TableDefinition::new("certified-entries-v1");
/// Bytes of inline blobs.
pub(crate) const INLINE_BLOBS: TableDefinition<[u8; 32], &[u8]> =
    TableDefinition::new("inline-blobs-v1");
/// Post-order bao outboards (16 KiB chunk groups, no size suffix) of file blobs.
pub(crate) const OUTBOARDS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("outboards-v1");
/// Every stored file, by its whole-content hash: hash -> (size, manifest hash or all zeros
/// when the file is a single blob).
pub(crate) const FILES: TableDefinition<[u8; 32], (u64, [u8; 32])> =
    TableDefinition::new("files-v1");
/// Every entry ever accepted: its sync key (time u64 BE, then id) -> encoded entry (see
/// `format::entry`). Keyed by time so that entries received or written together are inserted
/// next to each other (a million entries keyed by their random ids rewrote most of the table's
/// pages in every transaction: ARCHITECTURE.md, "Entries keyed by time").
pub(crate) const ENTRIES: TableDefinition<[u8; 40], &[u8]> = TableDefinition::new("entries-v2");
/// Before `entries-v2`: id -> encoded entry. An open moves its rows to `entries-v2`.
pub(crate) const ENTRIES_V1: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("entries-v1");
/// The current view: (collection, key) -> (time, entry id) of the latest entry, tombstones
/// included so a later-arriving older entry cannot resurrect a removed key.
pub(crate) const VIEWS: TableDefinition<(&str, &str), (u64, [u8; 32])> =
    TableDefinition::new("views-v1");
/// Every version of every key in local insertion order: (collection, key, seq) -> (time, id).
/// A snapshot is a seq; its view is the latest version with seq <= it.
pub(crate) const HISTORY: TableDefinition<(&str, &str, u64), (u64, [u8; 32])> =
    TableDefinition::new("history-v1");
/// Collections: name -> number of entries.
pub(crate) const COLLECTIONS: TableDefinition<&str, u64> = TableDefinition::new("collections-v1");
/// Snapshots: (collection, name) -> (seq, creation time, files, bytes). The view of a snapshot
/// is every version with seq < its seq; files and bytes are its totals, kept for listings.
pub(crate) const SNAPSHOTS: TableDefinition<(&str, &str), (u64, u64, u64, u64)> =
    TableDefinition::new("snapshots-v1");

pub(crate) const NO_MANIFEST: [u8; 32] = [0; 32];

/// Sync index items, packed per block: (collection, first item) -> the block's items
/// (entry time as u64 big-endian, then the 32-byte id: 40 bytes each), ascending.
pub(crate) const SYNC_BLOCK_ITEMS: TableDefinition<(&str, [u8; 40]), &[u8]> =
    TableDefinition::new("sync-block-items-v1");
/// Sync index blocks: (collection, first item) -> count (u32 LE) || sum and count of ids (40 B,
/// see `sync::Accumulator`) || last item (40 B). Blocks partition a collection's items; a
/// block starts at an item whose id starts with a zero byte (so two servers share most block
/// boundaries), at the collection's first item, or where an oversized block was cut in half.
pub(crate) const SYNC_BLOCKS: TableDefinition<(&str, [u8; 40]), [u8; 84]> =
    TableDefinition::new("sync-blocks-v1");
/// Sum and count of all of a collection's ids (40 B).
pub(crate) const SYNC_TOTALS: TableDefinition<&str, [u8; 40]> =
    TableDefinition::new("sync-totals-v1");
/// Items by local insertion number: (collection, seq) -> item. Answers "what was added since".
pub(crate) const SYNC_LOG: TableDefinition<(&str, u64), [u8; 40]> =
    TableDefinition::new("sync-log-v1");
/// What this store last agreed with a peer: (peer key, collection) -> (my seq, their seq).
pub(crate) const SYNC_PEERS: TableDefinition<([u8; 32], &str), (u64, u64)> =
    TableDefinition::new("sync-peers-v1");

/// Entries this store refuses for good: id -> (when it was denied, Unix ms; why, see
/// `DenyReason`). Written by `purge` and when an entry's content proved invalid.
pub(crate) const DENIED: TableDefinition<[u8; 32], (u64, u8)> =
    TableDefinition::new("denied-entries-v1");
/// Which peer delivered which entry: (peer key, seq) -> the entry's sync key (as in
/// `entries-v2`). Entries written here have no row. Lets `purge` find everything one peer
/// brought.
pub(crate) const ORIGINS: TableDefinition<([u8; 32], u64), [u8; 40]> =
    TableDefinition::new("entry-origins-v2");
/// Before `entry-origins-v2`: (peer key, seq) -> entry id. An open moves its rows over.
pub(crate) const ORIGINS_V1: TableDefinition<([u8; 32], u64), [u8; 32]> =
    TableDefinition::new("entry-origins-v1");
/// What each peer has brought since it was paired or last purged: peer key -> (entries, their
/// storage charge in bytes, bytes of blobs that were new to the store).
pub(crate) const PEER_USAGE: TableDefinition<[u8; 32], (u64, u64, u64)> =
    TableDefinition::new("peer-usage-v1");
/// The quick check of `add` (a cache, not part of what the archive holds): absolute path of a
/// file as added -> (device, inode, size, mtime ns, ctime ns, whole-content hash, entry) as
/// they were when it was read. A file whose `stat` still matches is not read again. Losing the table
/// costs one full re-read; an older build ignores it.
pub(crate) const QUICK_CHECK: TableDefinition<&[u8], QuickCheckRow> =
    TableDefinition::new("quick-check-v1");
/// A row of [`QUICK_CHECK`]: (device, inode, size, mtime ns, ctime ns, content hash, the
/// entry that held it at its key when it was recorded, or zeros).
pub(crate) type QuickCheckRow = (u64, u64, u64, i64, i64, [u8; 32], [u8; 32]);
/// Which collections reach a blob: (blob hash, collection) -> (). A file's content blob, its
/// manifest and the manifest's chunks each get a row for every collection with an entry that
/// names the file. A peer may fetch a blob only through a collection it may read.
pub(crate) const BLOB_REFS: TableDefinition<([u8; 32], &str), ()> =
    TableDefinition::new("blob-refs-v1");
/// Which superseded versions keep their content through `gc`: collection-name prefix ->
/// (versions per key, milliseconds after being superseded). Missing in stores made before it
/// (read as empty; created by the first `keep_versions`).
pub(crate) const KEEP_VERSIONS: TableDefinition<&str, (u32, u64)> =
    TableDefinition::new("keep-versions-v1");
