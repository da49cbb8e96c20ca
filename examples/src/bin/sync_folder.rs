//! Keeps a collection in step with a folder: new and edited files are added (only new content
//! is stored), files deleted from the folder get a removal entry. Run it again (or with
//! `--every`) and it does only what changed.
//!
//! ```text
//! cargo run -p archive-examples --bin sync_folder -- FOLDER STORE [--every SECONDS]
//! cargo run -p archive-examples --bin sync_folder      # a demo in a temporary folder
//! ```

use std::path::Path;
use std::time::Duration;

use archive_core::{Collection, NoProgress, Store, ViewPoint};

/// What one pass changed.
#[derive(Debug, PartialEq, Eq)]
struct Pass {
    added: u64,
    unchanged: u64,
    removed: usize,
}

/// Brings `files` up to date with `folder`: the folder's files sit at the collection's root
/// (`notes/a.txt` in the folder is key `notes/a.txt`).
fn sync_once(files: &Collection<'_>, folder: &Path) -> Result<Pass, Box<dyn std::error::Error>> {
    let report = files.add_path(folder, Some(""), &mut NoProgress)?;
    for failed in &report.failed {
        eprintln!("not added: {}: {}", failed.path.display(), failed.error);
    }
    // Keys whose file is gone from the folder. The listing comes a page at a time, so this
    // works the same for ten files or ten million.
    let mut gone = Vec::new();
    for item in files.list(ViewPoint::Current, "")? {
        let key = item?.key;
        if folder.join(&key).symlink_metadata().is_err() {
            gone.push(key);
        }
    }
    files.remove(&gone)?;
    Ok(Pass {
        added: report.added,
        unchanged: report.unchanged,
        removed: gone.len(),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => demo(),
        [folder, store] => watch(Path::new(folder), Path::new(store), None),
        [folder, store, flag, secs] if flag == "--every" => {
            let every = Duration::from_secs(secs.parse()?);
            watch(Path::new(folder), Path::new(store), Some(every))
        }
        _ => Err("usage: sync_folder [FOLDER STORE [--every SECONDS]]".into()),
    }
}

fn watch(
    folder: &Path,
    store: &Path,
    every: Option<Duration>,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = if store.join("FORMAT").exists() {
        Store::open(store)?
    } else {
        Store::init(store)?
    };
    let files = store.collection("folder")?;
    loop {
        let pass = sync_once(&files, folder)?;
        println!(
            "{} added or changed, {} unchanged, {} removed",
            pass.added, pass.unchanged, pass.removed
        );
        match every {
            Some(every) => std::thread::sleep(every),
            None => return Ok(()),
        }
    }
}

/// Syncs a small folder, changes it, syncs again, and checks what the collection shows.
fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let folder = tmp.path().join("shared");
    std::fs::create_dir_all(folder.join("notes"))?;
    std::fs::write(folder.join("notes/monday.txt"), "buy seeds")?;
    std::fs::write(folder.join("notes/tuesday.txt"), "fix the pump")?;
    std::fs::write(folder.join("map.svg"), "<svg/>")?;

    let store = Store::init(tmp.path().join("store"))?;
    let files = store.collection("folder")?;
    let first = sync_once(&files, &folder)?;
    println!("first pass:  {first:?}");
    assert_eq!((first.added, first.removed), (3, 0));

    files.snapshot("before-edits")?;
    std::fs::write(folder.join("notes/monday.txt"), "buy seeds and twine")?;
    std::fs::remove_file(folder.join("map.svg"))?;
    std::fs::write(folder.join("notes/wednesday.txt"), "meeting at six")?;
    let second = sync_once(&files, &folder)?;
    println!("second pass: {second:?}");
    assert_eq!(
        second,
        Pass {
            added: 2,
            unchanged: 1,
            removed: 1
        }
    );

    for change in files.diff(ViewPoint::Snapshot("before-edits"), ViewPoint::Current)? {
        let change = change?;
        println!("  {} {}", change.kind.as_str(), change.key);
    }
    let again = sync_once(&files, &folder)?;
    assert_eq!((again.added, again.removed), (0, 0), "nothing left to do");
    Ok(())
}
