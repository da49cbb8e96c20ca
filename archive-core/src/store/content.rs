//! [`Blobs`]: content by hash, and [`FileReader`], a file's bytes as a verified stream.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use redb::ReadableDatabase;

use super::{guarded, Store};
use crate::blobs::BlobReader;
use crate::entry::{FileMeta, FileRef};
use crate::error::{ExportError, ReadError, StorageError};
use crate::format::layout::{FILES, NO_MANIFEST};
use crate::format::manifest::decode_manifest;
use crate::hash::Hash;

/// The store's content, by hash (get it from [`Store::blobs`]). Every byte it returns has been
/// checked against its hash first: a whole blob against its BLAKE3 hash, a range of one through
/// its bao outboard, a file read from its start to its end also against the file's hash.
#[derive(Debug, Clone, Copy)]
pub struct Blobs<'s> {
    pub(super) store: &'s Store,
}

impl Store {
    /// The store's content, by hash.
    pub fn blobs(&self) -> Blobs<'_> {
        Blobs { store: self }
    }
}

impl<'s> Blobs<'s> {
    /// True when the store holds this blob (for a file blob: its file is there, full size).
    pub fn contains(&self, hash: &Hash) -> Result<bool, StorageError> {
        self.store.transfer().has_blob(hash)
    }

    /// The size of a stored blob, if the store has it.
    pub fn size(&self, hash: &Hash) -> Result<Option<u64>, StorageError> {
        guarded(|| {
            let tx = self.store.db.begin_read()?;
            BlobReader::open(&self.store.files, &tx)?.size(hash)
        })
    }

    /// The file whose whole content hashes to `hash`, if stored (a file added or received
    /// whole, or any single blob, which is a file of one blob).
    pub fn file(&self, hash: &Hash) -> Result<Option<FileRef>, StorageError> {
        guarded(|| {
            let tx = self.store.db.begin_read()?;
            let files = tx.open_table(FILES)?;
            if let Some(row) = files.get(hash.as_bytes())? {
                let (size, manifest) = row.value();
                return Ok(Some(FileRef {
                    hash: *hash,
                    size,
                    manifest: (manifest != NO_MANIFEST).then_some(Hash::from_bytes(manifest)),
                }));
            }
            let reader = BlobReader::open(&self.store.files, &tx)?;
            Ok(reader.size(hash)?.map(|size| FileRef {
                hash: *hash,
                size,
                manifest: None,
            }))
        })
    }

    /// A file's bytes as a stream (`Read` and `Seek`), verified as they are read. Holds no
    /// transaction or lock between reads: content removed meanwhile (its key removed, then
    /// `gc`) makes a later read fail with [`ReadError::NotFound`].
    pub fn reader(&self, file: &FileRef) -> Result<FileReader<'s>, ReadError> {
        FileReader::open(self.store, *file)
    }

    /// Writes a file's bytes to `out`. Every blob is verified before its bytes are written, and
    /// the whole content is checked against `file.hash` at the end.
    pub fn write_to(&self, file: &FileRef, out: &mut dyn Write) -> Result<(), ReadError> {
        let mut reader = self.reader(file)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read_verified(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) => return Err(e),
            };
            out.write_all(&buf[..n]).map_err(ReadError::Output)?;
        }
    }

    /// Bytes `start..end` of one blob, verified through its bao outboard (only the 16 KiB
    /// groups that cover the range are read).
    pub fn read_range(&self, hash: &Hash, start: u64, end: u64) -> Result<Vec<u8>, ReadError> {
        guarded(|| {
            let _guard = self.store.gc_shared();
            let tx = self.store.db.begin_read().map_err(StorageError::from)?;
            BlobReader::open(&self.store.files, &tx)?.read_range(hash, start, end)
        })
    }

    /// Writes a file's content to `path` (created or replaced: written to a temporary file
    /// beside it, then renamed), with the modification time and mode of `meta` (the mode less
    /// the umask). The content is verified before it takes the name.
    pub fn save(&self, file: &FileRef, meta: &FileMeta, path: &Path) -> Result<(), ExportError> {
        self.store.save_file(file, meta, path)
    }
}

/// Where a file's bytes are: its one blob, or its chunks in order.
#[derive(Debug)]
struct Layout {
    /// `(offset in the file, blob, length)` of each piece, in order.
    pieces: Vec<(u64, Hash, u64)>,
}

impl Layout {
    fn of(store: &Store, file: &FileRef) -> Result<Layout, ReadError> {
        let Some(m) = file.manifest else {
            return Ok(Layout {
                pieces: vec![(0, file.hash, file.size)],
            });
        };
        let bytes = guarded(|| {
            let tx = store.db.begin_read().map_err(StorageError::from)?;
            BlobReader::open(&store.files, &tx)?.read(&m)
        })?;
        let (size, chunks) = decode_manifest(&bytes).map_err(|e| ReadError::Corrupt {
            hash: m,
            detail: e.to_string(),
        })?;
        if size != file.size {
            return Err(ReadError::Corrupt {
                hash: m,
                detail: format!("manifest says {size} bytes, the file record {}", file.size),
            });
        }
        let mut offset = 0;
        let pieces = chunks
            .into_iter()
            .map(|c| {
                let piece = (offset, c.hash, u64::from(c.len));
                offset += u64::from(c.len);
                piece
            })
            .collect();
        Ok(Layout { pieces })
    }

    /// The piece that holds byte `pos`.
    fn piece_at(&self, pos: u64) -> Option<usize> {
        let i = self.pieces.partition_point(|(offset, _, _)| *offset <= pos);
        let i = i.checked_sub(1)?;
        let (offset, _, len) = self.pieces[i];
        (pos < offset + len).then_some(i)
    }
}

/// A file's bytes as a verified stream (see [`Blobs::reader`]).
///
/// Each read loads at most one piece of the file (a chunk of at most 1 MiB, or the part of a
/// single blob from the position on, verified through its outboard), in a read transaction
/// that ends before the read returns. Read from its start to its end without seeking, the
/// whole content is also checked against the file's hash: a mismatch is an error instead of
/// the end of the stream. Errors are [`io::Error`]s whose inner error is a [`ReadError`].
#[derive(Debug)]
pub struct FileReader<'s> {
    store: &'s Store,
    file: FileRef,
    layout: Layout,
    pos: u64,
    /// Bytes of the file from `buf_start`, verified.
    buf: Vec<u8>,
    buf_start: u64,
    /// Hash of everything read so far, while reading straight from the start.
    whole: Option<(blake3::Hasher, u64)>,
}

/// The most bytes one load reads from a single-blob file (chunks are loaded whole).
const LOAD_MAX: u64 = 1 << 20;

impl<'s> FileReader<'s> {
    fn open(store: &'s Store, file: FileRef) -> Result<Self, ReadError> {
        let layout = Layout::of(store, &file)?;
        Ok(FileReader {
            store,
            file,
            layout,
            pos: 0,
            buf: Vec::new(),
            buf_start: 0,
            whole: Some((blake3::Hasher::new(), 0)),
        })
    }

    /// The file being read.
    pub fn file(&self) -> &FileRef {
        &self.file
    }

    /// Loads the verified bytes at `self.pos` into the buffer.
    fn load(&mut self) -> Result<(), ReadError> {
        let Some(i) = self.layout.piece_at(self.pos) else {
            return Err(ReadError::Corrupt {
                hash: self.file.hash,
                detail: format!("no piece of the file holds byte {}", self.pos),
            });
        };
        let (offset, hash, len) = self.layout.pieces[i];
        let within = self.pos - offset;
        let store = self.store;
        let bytes = guarded(|| {
            let _guard = store.gc_shared();
            let tx = store.db.begin_read().map_err(StorageError::from)?;
            let reader = BlobReader::open(&store.files, &tx)?;
            if within == 0 && len <= LOAD_MAX {
                let data = reader.read(&hash)?;
                if data.len() as u64 != len {
                    return Err(ReadError::Corrupt {
                        hash,
                        detail: format!("{} bytes, the manifest says {len}", data.len()),
                    });
                }
                Ok(data)
            } else {
                reader.read_range(&hash, within, len.min(within.saturating_add(LOAD_MAX)))
            }
        })?;
        self.buf = bytes;
        self.buf_start = self.pos;
        Ok(())
    }

    /// [`Read::read`] with the error as a [`ReadError`].
    fn read_verified(&mut self, out: &mut [u8]) -> Result<usize, ReadError> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.file.size {
            self.check_whole()?;
            return Ok(0);
        }
        let in_buf =
            self.pos >= self.buf_start && self.pos < self.buf_start + self.buf.len() as u64;
        if !in_buf {
            self.load()?;
            if self.buf.is_empty() {
                return Err(ReadError::Corrupt {
                    hash: self.file.hash,
                    detail: format!("no bytes at {}", self.pos),
                });
            }
        }
        let from = (self.pos - self.buf_start) as usize;
        let n = out.len().min(self.buf.len() - from);
        out[..n].copy_from_slice(&self.buf[from..from + n]);
        if let Some((hasher, upto)) = &mut self.whole {
            if *upto == self.pos {
                hasher.update(&out[..n]);
                *upto += n as u64;
            } else {
                self.whole = None;
            }
        }
        self.pos += n as u64;
        if self.pos == self.file.size {
            self.check_whole()?;
        }
        Ok(n)
    }

    /// At the end of a straight read: the whole content must hash to the file's hash.
    fn check_whole(&mut self) -> Result<(), ReadError> {
        if let Some((hasher, upto)) = self.whole.take() {
            if upto == self.file.size {
                let actual = Hash::from(hasher.finalize());
                if actual != self.file.hash {
                    return Err(ReadError::Corrupt {
                        hash: self.file.hash,
                        detail: format!("reassembled content hashes to {actual}"),
                    });
                }
            }
        }
        Ok(())
    }
}

impl Read for FileReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.read_verified(out).map_err(|e| match e {
            ReadError::Output(io) => io,
            other => io::Error::other(other),
        })
    }
}

impl Seek for FileReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.file.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let Some(target) = target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative position",
            ));
        };
        if target != self.pos {
            // Only a straight read from the start is checked against the whole-file hash.
            if self.whole.as_ref().is_some_and(|(_, upto)| *upto != target) {
                self.whole = None;
            }
            self.pos = target;
        }
        Ok(self.pos)
    }
}
