//! Turning a byte stream into stored blobs: one blob for a small file, content-defined chunks
//! plus a manifest for a large one.
//!
//! Two threads share the work of a large file: the reading thread finds FastCDC cut points
//! (the costliest step, ~2 GB/s on one core); a second thread computes the whole-content
//! BLAKE3 (the `b3sum` hash) as the chunks arrive in order, hashes each chunk with its bao
//! outboard and writes it to disk. Memory stays bounded by the channel between them.

use std::io::{self, Read};
use std::sync::mpsc;

use fastcdc::v2020::FastCDC;

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

    let head_len = head.len() as u64;
    let mut reader = CountingReader {
        inner: io::Cursor::new(head).chain(source),
        progress,
        skip: head_len,
    };
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(PIPELINE_DEPTH);
    let (chunks, new_blobs, size, whole) = std::thread::scope(|scope| {
        let worker = scope.spawn(move || -> Result<_, StorageError> {
            let mut whole = blake3::Hasher::new();
            let mut chunks = Vec::new();
            let mut new_blobs = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for data in rx {
                // The chunks come in order: together they are the whole content.
                whole.update(&data);
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
            Ok((chunks, new_blobs, whole.finalize()))
        });
        let mut size = 0u64;
        let mut read_error = None;
        let mut chunker = Chunker::new(&mut reader);
        loop {
            match chunker.next_chunk() {
                Ok(Some(data)) => {
                    size += data.len() as u64;
                    if tx.send(data).is_err() {
                        break; // the worker failed; its error is reported below
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(e);
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
        let (chunks, new_blobs, whole) = worker_result.map_err(IngestError::Store)?;
        Ok((chunks, new_blobs, size, whole))
    })?;
    let mut new_blobs = new_blobs;
    let manifest = PreparedBlob::new(encode_manifest(size, &chunks));
    let file = FileRef {
        hash: whole.into(),
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

/// Bytes read ahead of the chunk being cut: the buffer moves its unread tail to the front
/// once per window, not once per chunk.
const WINDOW: usize = 8 * 1024 * 1024;

/// Cuts a stream into FastCDC chunks, the same cut points as `fastcdc`'s `StreamCDC` (a cut
/// is only looked for with [`CHUNK_MAX`] bytes ahead, or at the end), with one copy of each
/// byte out of a large read window instead of `StreamCDC`'s refill of a one-chunk buffer
/// (which moves the buffer's rest down for every chunk: about four copies of each byte).
struct Chunker<R> {
    source: R,
    window: Vec<u8>,
    /// The next chunk starts here; bytes up to `filled` are read.
    start: usize,
    filled: usize,
    eof: bool,
}

impl<R: Read> Chunker<R> {
    fn new(source: R) -> Self {
        Chunker {
            source,
            window: vec![0; WINDOW],
            start: 0,
            filled: 0,
            eof: false,
        }
    }

    /// The next chunk, or `None` at the end of the stream.
    fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let max = CHUNK_MAX as usize;
        if self.filled - self.start < max && !self.eof {
            self.window.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
            while self.filled < self.window.len() && !self.eof {
                match self.source.read(&mut self.window[self.filled..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => self.filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let ahead = &self.window[self.start..self.filled];
        if ahead.is_empty() {
            return Ok(None);
        }
        let (_, cut) = FastCDC::new(
            ahead,
            CHUNK_MIN as usize,
            CHUNK_AVG as usize,
            CHUNK_MAX as usize,
        )
        .cut(0, ahead.len());
        let chunk = ahead[..cut].to_vec();
        self.start += cut;
        Ok(Some(chunk))
    }
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

/// Passes bytes through while reporting progress.
struct CountingReader<'a, R> {
    inner: R,
    progress: &'a mut dyn FnMut(u64),
    /// Bytes at the start already reported by the caller.
    skip: u64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let skip = self.skip.min(n as u64) as usize;
        self.skip -= skip as u64;
        if n > skip {
            (self.progress)((n - skip) as u64);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reader that hands out at most `step` bytes a call, like a pipe or a slow disk.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Content with repeats (so that cut points are not only at the maximum) of `len` bytes.
    fn content(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed | 1;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state.is_multiple_of(5) && out.len() > 4096 {
                let from = (state as usize >> 8) % (out.len() - 4096);
                let n = 4096.min(len - out.len());
                out.extend_from_within(from..from + n);
            } else {
                out.extend_from_slice(&state.to_le_bytes()[..8.min(len - out.len())]);
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The chunks are exactly `StreamCDC`'s: a store keeps deduplicating against chunks
        /// written before this chunker, whatever the reads return.
        #[test]
        fn chunks_match_streamcdc(
            seed in any::<u64>(),
            len in 0usize..(20 << 20),
            step in prop_oneof![Just(usize::MAX), 1usize..(3 << 20)],
        ) {
            let data = content(seed, len);
            let expected: Vec<Vec<u8>> = fastcdc::v2020::StreamCDC::new(
                &data[..],
                CHUNK_MIN as usize,
                CHUNK_AVG as usize,
                CHUNK_MAX as usize,
            )
            .map(|c| c.expect("in memory").data)
            .collect();
            let mut chunker = Chunker::new(Trickle { data: &data, step: step.max(1) });
            let mut got = Vec::new();
            while let Some(c) = chunker.next_chunk().expect("in memory") {
                got.push(c);
            }
            prop_assert_eq!(got.len(), expected.len());
            prop_assert!(got == expected, "same cut points");
        }
    }

    #[test]
    fn a_read_error_is_returned() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk gone"))
            }
        }
        let err = Chunker::new(Failing)
            .next_chunk()
            .expect_err("the error comes back");
        assert_eq!(err.to_string(), "disk gone");
    }
}
