//! The sync protocol's frames: what travels on each QUIC stream, and the limits on it.
//!
//! Every stream starts with one [`Request`] from the side that opened it; the answer depends
//! on the request (see ARCHITECTURE.md, "Network protocol"). A frame is a 4-byte little-endian
//! length followed by that many bytes of postcard; blob bytes follow a [`BlobHeader`] raw, in
//! the bao encoding of [`archive_core::transfer`]. Every read has a size limit and a timeout.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::NetError;

/// The version of this protocol: 2 since entry v2 (entries carry file times, modes, folder
/// entries and the messenger's fields). A new incompatible version gets a new ALPN.
pub const PROTOCOL_VERSION: u32 = 2;
/// The ALPN of this protocol, [`PROTOCOL_VERSION`] 2.
pub const ALPN: &[u8] = b"community-archive/sync/2";
/// The ALPN of protocol version 1. Still offered and accepted, only to tell a peer of that
/// version, in words, that the two cannot sync: it is refused with both versions named.
pub const ALPN_V1: &[u8] = b"community-archive/sync/1";

/// Most keys in one [`Request::GetEntries`].
pub const MAX_ENTRY_IDS: usize = 1024;
/// Most hashes in one [`Request::GetBlobs`].
pub const MAX_BLOB_HASHES: usize = 1024;
/// Most keys in one [`Request::Offer`].
pub const MAX_OFFER_IDS: usize = 16 * 1024;
/// Largest control frame (requests and replies other than reconciliation frames): room for
/// the largest offer (16 Ki keys of at most 42 bytes: a varint time and a 32-byte id) and an
/// entry.
pub const MAX_CONTROL_FRAME: usize = 48 + MAX_OFFER_IDS * 42 + archive_core::MAX_ENCODED_ENTRY;

/// What the side that opens a stream asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Start a reconciliation of `collection` with this first frame (see
    /// [`archive_core::sync`]); [`ReconcileStep`]s follow both ways.
    Reconcile {
        /// The collection.
        collection: String,
        /// The initiator's first frame.
        frame: Vec<u8>,
        /// Whether each side reports what it would send (counts and bytes) at the end.
        want_summary: bool,
    },
    /// Send these entries of `collection`: answered by [`EntryReply`]s.
    GetEntries {
        /// The collection they must belong to.
        collection: String,
        /// Entry keys (time and id), at most [`MAX_ENTRY_IDS`].
        keys: Vec<archive_core::sync::SyncKey>,
    },
    /// Send these blobs: each answered by a [`BlobHeader`] and, if found, its bytes.
    GetBlobs {
        /// Blob hashes, at most [`MAX_BLOB_HASHES`].
        hashes: Vec<archive_core::Hash>,
    },
    /// "I have these entries of `collection` that you lack: take them." The receiver fetches
    /// them over the same connection and answers with [`OfferReply`]s.
    Offer {
        /// The collection.
        collection: String,
        /// Entry keys (time and id), at most [`MAX_OFFER_IDS`] per offer.
        keys: Vec<archive_core::sync::SyncKey>,
        /// True for the last offer of a sync.
        last: bool,
    },
    /// Both sides now hold the same entries of `collection`: remember these insertion
    /// counters for the fast path next time. Answered by [`AgreeReply`].
    Agree {
        /// The collection.
        collection: String,
        /// The receiver's counter, as it reported it.
        your_seq: u64,
        /// The sender's counter.
        my_seq: u64,
    },
}

/// One step of a reconciliation, either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReconcileStep {
    /// A reconciliation frame.
    Frame(Vec<u8>),
    /// The sender knows the whole difference; with what it would send, if asked.
    Done(Option<Summary>),
    /// The sender will not reconcile; why.
    Refused(String),
}

/// What one side has that the other lacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Entries.
    pub entries: u64,
    /// Files among them that would become the latest version of their key.
    pub files: u64,
    /// Their total size in bytes (before deduplication against the receiver's blobs).
    pub file_bytes: u64,
}

/// One answer to [`Request::GetEntries`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryReply {
    /// An entry, encoded and signed as stored.
    Entry(Vec<u8>),
    /// The sender does not have this id (in this collection).
    Missing(archive_core::EntryId),
    /// No more entries for this request.
    End,
    /// The request is refused; why.
    Refused(String),
    /// A batch certificate vouching for entries of this reply (see
    /// [`archive_core::Certificate`]); sent before them, at most
    /// [`MAX_CERTIFICATES_PER_REPLY`] per request.
    Certificate(Vec<u8>),
}

/// Most certificates in the answer to one [`Request::GetEntries`]: a certificate goes when at
/// least an eighth of its ids are asked for, so [`MAX_ENTRY_IDS`] ids need at most
/// `8 * MAX_ENTRY_IDS / MAX_CERTIFIED_IDS`; the rest is room for certificates of entries whose
/// own signatures do not verify.
pub const MAX_CERTIFICATES_PER_REPLY: usize = 64;

/// Largest frame of an [`EntryReply`].
pub const MAX_ENTRY_REPLY_FRAME: usize = 16
    + max_usize(
        archive_core::MAX_ENCODED_ENTRY,
        archive_core::MAX_ENCODED_CERTIFICATE,
    );

const fn max_usize(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// The header before a blob's bytes, answering one hash of [`Request::GetBlobs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobHeader {
    /// The blob follows: `encoded_len(size)` bytes of bao encoding.
    Found {
        /// Its size.
        size: u64,
    },
    /// The sender does not have it.
    Missing,
    /// The request is refused; why.
    Refused(String),
}

/// Answers to [`Request::Offer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OfferReply {
    /// Still fetching: totals so far (keeps the offering side's timeout from firing).
    Progress {
        /// Entries received so far.
        entries: u64,
        /// Bytes received so far.
        bytes: u64,
    },
    /// Done.
    Done {
        /// Entries that were new to the receiver.
        entries: u64,
        /// Bytes received.
        bytes: u64,
        /// The receiver's insertion counter afterwards.
        seq: u64,
    },
    /// Refused or failed; why.
    Refused(String),
}

/// Answer to [`Request::Agree`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgreeReply {
    /// Recorded.
    Recorded,
    /// Not recorded; why.
    Refused(String),
}

/// Encodes one frame: length, then postcard.
pub fn encode_frame<T: Serialize>(value: &T) -> Vec<u8> {
    let body = postcard::to_stdvec(value).expect("wire types always encode");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes a frame body (without its length), refusing trailing bytes.
pub fn decode_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, NetError> {
    let (value, rest) = postcard::take_from_bytes::<T>(body)
        .map_err(|e| NetError::Protocol(format!("undecodable frame: {e}")))?;
    if !rest.is_empty() {
        return Err(NetError::Protocol(format!(
            "{} stray bytes after a frame",
            rest.len()
        )));
    }
    Ok(value)
}

/// Writes one frame.
pub async fn write_frame<T: Serialize>(
    w: &mut (impl AsyncWrite + Unpin),
    value: &T,
) -> Result<(), NetError> {
    w.write_all(&encode_frame(value))
        .await
        .map_err(NetError::from)
}

/// Writes one frame, waiting at most `timeout` for the peer to take it: a peer that stops
/// reading cannot hold the writer.
pub async fn write_frame_within<T: Serialize>(
    w: &mut (impl AsyncWrite + Unpin),
    value: &T,
    timeout: Duration,
) -> Result<(), NetError> {
    match tokio::time::timeout(timeout, write_frame(w, value)).await {
        Ok(r) => r,
        Err(_) => Err(NetError::Stalled(timeout)),
    }
}

/// Writes raw bytes, waiting at most `timeout` for the peer to take them.
pub async fn write_within(
    w: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), NetError> {
    match tokio::time::timeout(timeout, w.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(NetError::from(e)),
        Err(_) => Err(NetError::Stalled(timeout)),
    }
}

/// Reads one frame of at most `limit` bytes, waiting at most `timeout` for each part.
pub async fn read_frame<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncRead + Unpin),
    limit: usize,
    timeout: Duration,
) -> Result<T, NetError> {
    let mut len = [0u8; 4];
    read_exact(r, &mut len, timeout).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(NetError::FrameTooLarge { size: len, limit });
    }
    let mut body = vec![0u8; len];
    read_exact(r, &mut body, timeout).await?;
    decode_body(&body)
}

/// Fills `buf`, waiting at most `timeout` for the whole of it.
pub async fn read_exact(
    r: &mut (impl AsyncRead + Unpin),
    buf: &mut [u8],
    timeout: Duration,
) -> Result<(), NetError> {
    match tokio::time::timeout(timeout, r.read_exact(buf)).await {
        Err(_) => Err(NetError::Timeout(timeout)),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(NetError::Protocol(
            "the peer closed the stream in the middle of a frame".into(),
        )),
        Ok(Err(e)) => Err(NetError::from(e)),
        Ok(Ok(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the encoding: a change here is a protocol change and needs a new ALPN.
    #[test]
    fn golden_bytes() {
        let r = Request::GetBlobs {
            hashes: vec![archive_core::Hash::from_bytes([7u8; 32])],
        };
        let mut expected = vec![34, 0, 0, 0, 2, 1];
        expected.extend_from_slice(&[7u8; 32]);
        assert_eq!(encode_frame(&r), expected);
        assert_eq!(
            encode_frame(&BlobHeader::Found { size: 300 }),
            vec![3, 0, 0, 0, 0, 0xac, 0x02]
        );
        assert_eq!(
            encode_frame(&ReconcileStep::Done(Some(Summary {
                entries: 1,
                files: 1,
                file_bytes: 5
            }))),
            vec![5, 0, 0, 0, 1, 1, 1, 1, 5]
        );
        assert_eq!(
            encode_frame(&Request::Agree {
                collection: "c".into(),
                your_seq: 1,
                my_seq: 2
            }),
            vec![5, 0, 0, 0, 4, 1, b'c', 1, 2]
        );
        assert_eq!(
            encode_frame(&EntryReply::Certificate(vec![9, 8])),
            vec![4, 0, 0, 0, 4, 2, 9, 8]
        );
        // Entries are asked for by key: the time (varint), then the id.
        let key = archive_core::sync::SyncKey {
            time: 300,
            id: archive_core::EntryId::from_bytes([5; 32]),
        };
        let mut expected = vec![38, 0, 0, 0, 1, 1, b'c', 1, 0xac, 0x02];
        expected.extend_from_slice(&[5u8; 32]);
        assert_eq!(
            encode_frame(&Request::GetEntries {
                collection: "c".into(),
                keys: vec![key],
            }),
            expected
        );
    }

    /// The largest offer (every key with the longest time) fits in a control frame.
    #[test]
    fn the_largest_offer_fits_a_control_frame() {
        let key = archive_core::sync::SyncKey {
            time: u64::MAX,
            id: archive_core::EntryId::from_bytes([0xff; 32]),
        };
        let offer = Request::Offer {
            collection: "c".repeat(archive_core::MAX_NAME_LEN),
            keys: vec![key; MAX_OFFER_IDS],
            last: true,
        };
        let frame = encode_frame(&offer);
        assert!(frame.len() <= MAX_CONTROL_FRAME, "{} bytes", frame.len());
    }

    #[tokio::test]
    async fn limits_and_garbage() {
        let frame = encode_frame(&Request::GetBlobs {
            hashes: vec![archive_core::Hash::from_bytes([1; 32]); 10],
        });
        let got: Request = read_frame(&mut &frame[..], 1024, Duration::from_secs(1))
            .await
            .unwrap();
        assert!(matches!(got, Request::GetBlobs { hashes } if hashes.len() == 10));
        let too_big = read_frame::<Request>(&mut &frame[..], 100, Duration::from_secs(1)).await;
        assert!(matches!(
            too_big,
            Err(NetError::FrameTooLarge { limit: 100, .. })
        ));
        let truncated =
            read_frame::<Request>(&mut &frame[..20], 1024, Duration::from_secs(1)).await;
        assert!(matches!(truncated, Err(NetError::Protocol(_))));
        let garbage = [3u8, 0, 0, 0, 99, 99, 99];
        let bad = read_frame::<Request>(&mut &garbage[..], 1024, Duration::from_secs(1)).await;
        assert!(matches!(bad, Err(NetError::Protocol(_))));
        let mut trailing = encode_frame(&BlobHeader::Missing);
        trailing[0] += 1;
        trailing.push(0);
        let bad = read_frame::<BlobHeader>(&mut &trailing[..], 1024, Duration::from_secs(1)).await;
        assert!(matches!(bad, Err(NetError::Protocol(_))));
    }

    #[tokio::test]
    async fn stalls_time_out() {
        let (mut a, _b) = tokio::io::duplex(64);
        let r = read_frame::<Request>(&mut a, 1024, Duration::from_millis(50)).await;
        assert!(matches!(r, Err(NetError::Timeout(_))));
    }
}
