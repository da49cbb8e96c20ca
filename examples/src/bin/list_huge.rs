//! Lists a large collection a page at a time, in constant memory: each page is its own short
//! read (no database transaction stays open between pages), and the `next` key of one page is
//! where the following one starts, so a listing can also be resumed later, e.g. by a web page.
//!
//! ```text
//! cargo run --release -p archive-examples --bin list_huge -- [--entries N]
//! ```

use archive_core::{Entry, EntryValue, SignedEntry, Store, Timestamp, ViewPoint};

const PAGE: usize = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let entries: u64 = match args.as_slice() {
        [] => 100_000,
        [flag, n] if flag == "--entries" => n.parse()?,
        _ => return Err("usage: list_huge [--entries N]".into()),
    };
    let tmp = tempfile::tempdir()?;
    let store = Store::init(tmp.path())?;
    let photos = store.collection("photos")?;

    // Build the collection: one stored file under `entries` keys (content is deduplicated, so
    // this costs one blob), inserted as signed entries in batches of 10,000.
    let file = photos
        .add_bytes("original.jpg", b"not really a photo")?
        .and_then(|e| match e.entry().value {
            EntryValue::File(f) => Some(f),
            EntryValue::Folder | EntryValue::Tombstone => None,
        })
        .ok_or("the file was not added")?;
    let now = Timestamp::from_unix_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64,
    );
    let batch = 10_000;
    for start in (0..entries).step_by(batch) {
        let signed = (start..(start + batch as u64).min(entries))
            .map(|i| {
                let entry = Entry {
                    collection: photos.name().into(),
                    key: format!("copies/{i:09}.jpg"),
                    value: EntryValue::File(file),
                    author: store.author(),
                    time: now,
                    meta: archive_core::FileMeta::default(),
                    message: archive_core::MessageFields::default(),
                };
                SignedEntry::sign(entry, store.secret_key())
            })
            .collect::<Result<Vec<_>, _>>()?;
        store.transfer().insert_entries(&signed)?;
    }

    // Read it back a page at a time; only the current page is in memory.
    let mut after: Option<String> = None;
    let (mut pages, mut listed, mut bytes) = (0u64, 0u64, 0u64);
    loop {
        let page = photos.list_page(ViewPoint::Current, "copies", after.as_deref(), PAGE)?;
        pages += 1;
        listed += page.items.len() as u64;
        bytes += page.items.iter().map(|i| i.file.size).sum::<u64>();
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    println!("listed {listed} keys in {pages} pages of up to {PAGE}: {bytes} bytes in view");
    assert_eq!(listed, entries);

    // The same, as an iterator that fetches pages as it goes.
    let counted = photos.list(ViewPoint::Current, "copies")?.count() as u64;
    assert_eq!(counted, entries);
    Ok(())
}
