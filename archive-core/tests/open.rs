//! Opening stores: the errors a user can meet, each clear.

use std::fs;

use archive_core::{OpenError, Store};

#[test]
fn opening_an_uninitialised_folder_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, OpenError::NotInitialized { .. }));
    assert_eq!(
        err.to_string(),
        format!("no archive store at {}", dir.path().display())
    );
}

#[test]
fn a_newer_format_is_refused_without_touching_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path()).unwrap();
    store.collection("c").unwrap().add_bytes("k", b"x").unwrap();
    drop(store);
    fs::write(dir.path().join("FORMAT"), "archive-store 3\n").unwrap();
    let db_before = fs::read(dir.path().join("store.redb")).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::NewerFormat {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("newer than this program supports (2)"));
    assert_eq!(fs::read(dir.path().join("store.redb")).unwrap(), db_before);
    fs::write(dir.path().join("FORMAT"), "something else").unwrap();
    assert!(matches!(
        Store::open(dir.path()),
        Err(OpenError::BadFormatFile { .. })
    ));
}

#[test]
fn a_second_open_in_use_is_refused_and_init_twice_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path()).unwrap();
    let author = store.author();
    assert!(matches!(
        Store::open(dir.path()),
        Err(OpenError::Locked { .. })
    ));
    drop(store);
    assert!(matches!(
        Store::init(dir.path()),
        Err(OpenError::AlreadyInitialized { .. })
    ));
    assert_eq!(
        Store::open(dir.path()).unwrap().author(),
        author,
        "the key persists"
    );
}

#[test]
fn a_damaged_database_is_an_error_and_is_left_as_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path()).unwrap();
    store.collection("c").unwrap().add_bytes("k", b"x").unwrap();
    drop(store);
    let db = dir.path().join("store.redb");
    let mut bytes = fs::read(&db).unwrap();
    for b in bytes.iter_mut().take(512) {
        *b = 0xEE;
    }
    fs::write(&db, &bytes).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, OpenError::Database { .. }), "{err}");
    assert!(err
        .to_string()
        .starts_with("cannot open the store database"));
    assert_eq!(
        fs::read(&db).unwrap(),
        bytes,
        "a failed open changes nothing"
    );
}

#[cfg(unix)]
#[test]
fn a_new_store_folder_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("nested/store");
    Store::init(&store_dir).unwrap();
    let mode = fs::metadata(&store_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the folder holding the secret key is {mode:o}");
}
