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
    store.read_file(file, &mut out).unwrap();
    out
}
