//! Turning a byte stream into stored blobs: one blob for a small file, content-defined chunks
//! plus a manifest for a large one.
//!
//! Two threads share the work of a large file: the reading thread computes the whole-content
//! BLAKE3 (the `b3sum` hash) and finds FastCDC cut points; a second thread hashes each chunk
//! with its bao outboard and writes it to disk. Memory stays bounded by the channel between them.

use std::io::{self, Read};
use std::sync::mpsc;

use fastcdc::v2020::StreamCDC;

use crate::blobs::{BlobFiles, PreparedBlob};
use crate::entry::FileRef;
use crate::error::StorageError;
use crate::format::manifest::{encode_manifest, ChunkRef};
use crate::hash::Hash;

/// Files larger than this are cut into chunks; smaller ones are one blob.
pub const CHUNKING_THRESHOLD: u64 = 1024 * 1024;
/// FastCDC minimum chunk size.
pub const CHUNK_MIN: u32 = 64 * 1024;
/// FastCDC average chunk size.
pub const CHUNK_AVG: u32 = 256 * 1024;
/// FastCDC maximum chunk size.
pub const CHUNK_MAX: u32 = 1024 * 1024;

/// Chunks in flight between the two threads (each at most [`CHUNK_MAX`]).
const PIPELINE_DEPTH: usize = 8;

/// The outcome of ingesting one stream.
pub(crate) struct Ingested {
    pub(crate) file: FileRef,
    /// Every blob that holds the file: its one blob, or its manifest and chunks.
    pub(crate) reach: Vec<Hash>,
    /// Blobs this ingest stored that the store did not have. File blobs are already on disk
    /// (not yet durable) and carry no bytes; inline blobs carry theirs.
    pub(crate) new_blobs: Vec<PreparedBlob>,
}

/// Why an ingest failed: reading the source, or storing.
pub(crate) enum IngestError {
    Read(io::Error),
    Store(StorageError),
}

/// Ingests everything `source` yields. `known` says whether the store already holds a blob
/// intact (it is then neither written nor returned); `progress` hears about bytes read.
pub(crate) fn ingest(
    mut source: impl Read,
    files: &BlobFiles,
    known: &(dyn Fn(&Hash) -> bool + Sync),
    progress: &mut dyn FnMut(u64),
) -> Result<Ingested, IngestError> {
    // Read up to the threshold (plus one byte) to decide between one blob and chunks.
    let mut head = Vec::new();
    (&mut source)
        .take(CHUNKING_THRESHOLD + 1)
        .read_to_end(&mut head)
        .map_err(IngestError::Read)?;
    progress(head.len() as u64);
    if head.len() as u64 <= CHUNKING_THRESHOLD {
        let blob = PreparedBlob::new(head);
        let file = FileRef {
            hash: blob.hash,
            size: blob.size,
            manifest: None,
        };
        let mut new_blobs = Vec::new();
        store_if_new(blob, files, known, &mut new_blobs).map_err(IngestError::Store)?;
        return Ok(Ingested {
            file,
            reach: vec![file.hash],
            new_blobs,
        });
    }

    let mut whole = blake3::Hasher::new();
    whole.update(&head);
    let head_len = head.len() as u64;
    let mut reader = HashingReader {
        inner: io::Cursor::new(head).chain(source),
        hasher: &mut whole,
        progress,
        skip: head_len,
    };
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(PIPELINE_DEPTH);
    let (chunks, new_blobs, size) = std::thread::scope(|scope| {
        let worker = scope.spawn(move || -> Result<_, StorageError> {
            let mut chunks = Vec::new();
            let mut new_blobs = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for data in rx {
                let blob = PreparedBlob::new(data);
                chunks.push(ChunkRef {
                    hash: blob.hash,
                    len: blob.size as u32,
                });
                // Two equal chunks in one file: look at (and store) the first only.
                if !seen.insert(blob.hash) {
                    continue;
                }
                store_if_new(blob, files, known, &mut new_blobs)?;
            }
            Ok((chunks, new_blobs))
        });
        let mut size = 0u64;
        let mut read_error = None;
        let chunker = StreamCDC::new(
            &mut reader,
            CHUNK_MIN as usize,
            CHUNK_AVG as usize,
            CHUNK_MAX as usize,
        );
        for chunk in chunker {
            match chunk {
                Ok(c) => {
                    size += c.length as u64;
                    if tx.send(c.data).is_err() {
                        break; // the worker failed; its error is reported below
                    }
                }
                Err(e) => {
                    read_error = Some(match e {
                        fastcdc::v2020::Error::IoError(e) => e,
                        other => io::Error::other(other.to_string()),
                    });
                    break;
                }
            }
        }
        drop(tx);
        // The worker's store calls are guarded; a panic left over would be a bug, reported
        // as a failure of this add rather than a crash of the embedding program.
        let worker_result = worker.join().unwrap_or_else(|_| {
            Err(StorageError::Damaged(
                "writing the file's blobs failed unexpectedly".into(),
            ))
        });
        if let Some(e) = read_error {
            return Err(IngestError::Read(e));
        }
        let (chunks, new_blobs) = worker_result.map_err(IngestError::Store)?;
        Ok((chunks, new_blobs, size))
    })?;
    let mut new_blobs = new_blobs;
    let manifest = PreparedBlob::new(encode_manifest(size, &chunks));
    let file = FileRef {
        hash: whole.finalize().into(),
        size,
        manifest: Some(manifest.hash),
    };
    let mut reach = vec![manifest.hash];
    let mut seen = std::collections::HashSet::new();
    reach.extend(chunks.iter().map(|c| c.hash).filter(|h| seen.insert(*h)));
    store_if_new(manifest, files, known, &mut new_blobs).map_err(IngestError::Store)?;
    Ok(Ingested {
        file,
        reach,
        new_blobs,
    })
}

fn store_if_new(
    mut blob: PreparedBlob,
    files: &BlobFiles,
    known: &(dyn Fn(&Hash) -> bool + Sync),
    new_blobs: &mut Vec<PreparedBlob>,
) -> Result<(), StorageError> {
    if known(&blob.hash) {
        return Ok(());
    }
    files.append(&mut blob)?;
    new_blobs.push(blob);
    Ok(())
}

/// Passes bytes through while hashing them and reporting progress.
struct HashingReader<'a, R> {
    inner: R,
    hasher: &'a mut blake3::Hasher,
    progress: &'a mut dyn FnMut(u64),
    /// Bytes at the start already hashed and reported by the caller.
    skip: u64,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let skip = self.skip.min(n as u64) as usize;
        self.skip -= skip as u64;
        if n > skip {
            self.hasher.update(&buf[skip..n]);
            (self.progress)((n - skip) as u64);
        }
        Ok(n)
    }
}
