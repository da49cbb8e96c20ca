//! Helpers shared by the tests.

use archive_core::Store;

pub(crate) use test_support::pseudo_random;

pub(crate) fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path().join("store")).unwrap();
    (dir, store)
}

pub(crate) fn read_all(store: &Store, file: &archive_core::FileRef) -> Vec<u8> {
    let mut out = Vec::new();
    store.blobs().write_to(file, &mut out).unwrap();
    out
}

/// A whole view as a `Vec` (the API reads it a page at a time).
pub(crate) fn list(
    store: &Store,
    collection: &str,
    at: archive_core::ViewPoint<'_>,
    prefix: &str,
) -> Result<Vec<archive_core::ViewItem>, archive_core::SnapshotError> {
    Ok(store
        .collection(collection)?
        .list(at, prefix)?
        .collect::<Result<Vec<_>, _>>()?)
}

/// The file a key holds now.
pub(crate) fn get(
    store: &Store,
    collection: &str,
    key: &str,
) -> Result<Option<archive_core::FileRef>, archive_core::StorageError> {
    let item = store.collection(collection).unwrap().get(key)?;
    Ok(item.map(|i| i.file))
}
