//! Two stores learn what each lacks, with the sans-IO sync core moving frames in memory.
//!
//! ```text
//! cargo run -p archive-examples --bin reconcile_two_stores
//! ```

use archive_core::sync::{ReconcileConfig, Reconciler};
use archive_core::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let a = Store::init(tmp.path().join("a"))?;
    let b = Store::init(tmp.path().join("b"))?;
    for i in 0..100 {
        a.collection("library")?
            .add_bytes(&format!("book-{i}.txt"), format!("book {i}").as_bytes())?;
    }
    // B starts with A's entries (as after an earlier sync), then both write something new.
    let mut entries = Vec::new();
    for item in a
        .collection("library")?
        .list(archive_core::ViewPoint::Current, "")?
    {
        entries.extend(a.entry(&item?.entry_key())?);
    }
    b.transfer().insert_entries(&entries)?;
    a.collection("library")?
        .add_bytes("new-on-a.txt", b"written on A")?;
    b.collection("library")?
        .add_bytes("new-on-b.txt", b"written on B")?;

    let config = ReconcileConfig::default();
    let mut ra = Reconciler::new(a.collection("library")?.sync_index()?, config)?;
    let mut rb = Reconciler::new(b.collection("library")?.sync_index()?, config)?;
    let mut frame = ra.initiate(None)?;
    let mut to_b = true;
    while let Some(next) = if to_b {
        rb.receive(&frame)?
    } else {
        ra.receive(&frame)?
    } {
        frame = next;
        to_b = !to_b;
    }
    let stats = ra.stats();
    println!(
        "settled in {} round trips, {} bytes: A lacks {} entries, B lacks {}",
        stats.round_trips(),
        stats.bytes_sent + stats.bytes_received,
        ra.need().len(),
        ra.have().len()
    );
    assert_eq!((ra.need().len(), ra.have().len()), (1, 1));
    Ok(())
}
