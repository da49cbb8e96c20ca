//! One function per subcommand: validate what clap could not, call the store, print.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use archive_core::{Change, Collection, FileMeta, FileRef, Hash, OpenError, Store, ViewPoint};
use serde::Serialize;

use crate::cli::Command;
use crate::context::Ctx;
use crate::net_commands;
use crate::output::{errln, human_size, human_time, outln, print_json, shown, JsonArray};
use crate::progress::AddBar;

/// Runs one command against the store in `ctx` (opened here, or the running server's).
pub(crate) fn execute(ctx: &Ctx, command: Command, json: bool) -> Result<u8> {
    match command {
        Command::Init => init(&ctx.dir, json),
        Command::Add {
            paths,
            collection,
            as_key,
        } => add(
            ctx.store()?,
            &collection.collection,
            &paths,
            as_key.as_deref(),
            json,
        ),
        Command::Ls {
            prefix,
            collection,
            snapshot,
        } => ls(
            ctx.store()?,
            &collection.collection,
            &prefix,
            snapshot.as_deref(),
            json,
        ),
        Command::Get {
            key,
            hash,
            output,
            collection,
            snapshot,
        } => get(
            ctx.store()?,
            &collection.collection,
            key.as_deref(),
            hash.as_deref(),
            snapshot.as_deref(),
            output.as_deref(),
        ),
        Command::Export {
            dest,
            collection,
            snapshot,
            force,
        } => export(
            ctx.store()?,
            &collection.collection,
            snapshot.as_deref(),
            &dest,
            force,
            json,
        ),
        Command::Rm {
            keys,
            collection,
            recursive,
        } => rm(ctx.store()?, &collection.collection, &keys, recursive, json),
        Command::Snapshot { name, collection } => {
            snapshot(ctx.store()?, &collection.collection, &name, json)
        }
        Command::History { key, collection } => {
            history(ctx.store()?, &collection.collection, &key, json)
        }
        Command::Snapshots => snapshots(ctx.store()?, json),
        Command::Diff {
            peer: Some(peer),
            collection,
            ..
        } => net_commands::diff_peer(ctx, &peer, &collection.collection, json),
        Command::Diff {
            from,
            to,
            dir: folder,
            as_key,
            collection,
            peer: None,
        } => diff(
            ctx.store()?,
            &collection.collection,
            from.as_deref(),
            to.as_deref(),
            folder.as_deref(),
            as_key.as_deref(),
            json,
        ),
        Command::Verify => verify(ctx, json),
        Command::Doctor => doctor(&ctx.dir, json),
        Command::Gc => gc(ctx.store()?, json),
        Command::Stats => stats(ctx.store()?, json),
        Command::Collections => collections(ctx.store()?, json),
        Command::Id => net_commands::id(ctx, json),
        Command::Status => net_commands::status(ctx, json),
        Command::Config => {
            let settings = ctx.settings()?;
            if json {
                print_json(&settings)?;
            } else {
                outln!("# from {}", ctx.settings_source());
                write!(crate::output::stdout(), "{}", settings.to_toml())?;
            }
            Ok(0)
        }
        Command::Key { command } => crate::key_commands::key(ctx, command, json),
        Command::Peer { command } => net_commands::peer(ctx, command, json),
        Command::Sync {
            peer,
            collection,
            pull,
            push,
        } => net_commands::sync(ctx, &peer, &collection.collection, pull, push, json),
        Command::User { command } => crate::user_commands::user(ctx, command, json),
        Command::Serve { .. } => bail!(
            "a server is already running for {} (stop it first)",
            ctx.dir.display()
        ),
    }
}

fn open(dir: &Path) -> Result<Store> {
    Ok(Store::open(dir)?)
}

/// Checks a collection name given on the command line: valid, and known unless it is the
/// default (which exists implicitly, empty, in a new store) or about to be created by `add`.
fn existing_collection<'s>(store: &'s Store, name: &str) -> Result<Collection<'s>> {
    let collection = store.collection(name)?;
    if name != archive_core::DEFAULT_COLLECTION && !collection.exists()? {
        bail!("no collection `{name}` (see `archive collections`)");
    }
    Ok(collection)
}

fn view_point(snapshot: Option<&str>) -> ViewPoint<'_> {
    snapshot.map_or(ViewPoint::Current, ViewPoint::Snapshot)
}

fn init(dir: &Path, json: bool) -> Result<u8> {
    let (store, created) = match Store::init(dir) {
        Ok(s) => (s, true),
        Err(OpenError::AlreadyInitialized { .. }) => (open(dir)?, false),
        Err(e) => return Err(e.into()),
    };
    if json {
        print_json(&serde_json::json!({
            "data_dir": dir,
            "created": created,
            "author": store.author().to_string(),
        }))?;
    } else if created {
        outln!("initialised an archive store in {}", dir.display());
        outln!("server key: {}", store.author());
    } else {
        outln!(
            "an archive store already exists in {} (left as it is)",
            dir.display()
        );
    }
    Ok(0)
}

#[derive(Serialize)]
struct AddSummary {
    added: u64,
    unchanged: u64,
    /// Files whose content was read; the others were known unchanged by their `stat`.
    #[serde(rename = "read")]
    files_read: u64,
    /// Empty folders that got a folder entry.
    folders_added: u64,
    bytes_read: u64,
    bytes_new: u64,
    skipped: Vec<PathProblem>,
    failed: Vec<PathProblem>,
}

#[derive(Serialize)]
struct PathProblem {
    path: PathBuf,
    reason: String,
}

fn add(
    store: &Store,
    collection: &str,
    paths: &[PathBuf],
    as_key: Option<&str>,
    json: bool,
) -> Result<u8> {
    if as_key.is_some() && paths.len() > 1 {
        bail!("--as names one file or folder; give a single PATH with it");
    }
    let collection = store.collection(collection)?;
    let mut summary = AddSummary {
        added: 0,
        unchanged: 0,
        files_read: 0,
        folders_added: 0,
        bytes_read: 0,
        bytes_new: 0,
        skipped: Vec::new(),
        failed: Vec::new(),
    };
    for path in paths {
        let mut bar = AddBar::new();
        let report = collection.add_path(path, as_key, &mut bar);
        bar.finish();
        let report = report?;
        summary.added += report.added;
        summary.unchanged += report.unchanged;
        summary.files_read += report.files_read;
        summary.folders_added += report.folders_added;
        summary.bytes_read += report.bytes_read;
        summary.bytes_new += report.bytes_new;
        summary
            .skipped
            .extend(report.skipped.into_iter().map(|s| PathProblem {
                path: s.path,
                reason: s.reason,
            }));
        summary
            .failed
            .extend(report.failed.into_iter().map(|f| PathProblem {
                path: f.path,
                reason: f.error,
            }));
    }
    for s in &summary.skipped {
        errln!(
            "archive: skipped {}: {}",
            shown(&s.path.to_string_lossy()),
            s.reason
        );
    }
    for f in &summary.failed {
        errln!(
            "archive: error: {}: {}",
            shown(&f.path.to_string_lossy()),
            f.reason
        );
    }
    if json {
        print_json(&summary)?;
    } else {
        let folders = match summary.folders_added {
            0 => String::new(),
            1 => " and 1 empty folder".to_owned(),
            n => format!(" and {n} empty folders"),
        };
        outln!(
            "added {} files{folders}, {} unchanged ({} files read: {}, {} new after deduplication)",
            summary.added,
            summary.unchanged,
            summary.files_read,
            human_size(summary.bytes_read),
            human_size(summary.bytes_new)
        );
    }
    if summary.failed.is_empty() {
        Ok(0)
    } else {
        errln!(
            "archive: error: {} file(s) could not be added (listed above); everything else was",
            summary.failed.len()
        );
        Ok(1)
    }
}

#[derive(Serialize)]
struct ListedFile<'a> {
    key: &'a str,
    size: u64,
    hash: String,
    time_ms: u64,
    author: String,
    entry: String,
}

fn ls(
    store: &Store,
    collection: &str,
    prefix: &str,
    snapshot: Option<&str>,
    json: bool,
) -> Result<u8> {
    let collection = existing_collection(store, collection)?;
    // A page at a time: a listing of a million keys never holds them all.
    let items = collection.list(view_point(snapshot), prefix)?;
    if json {
        let mut listed = JsonArray::start()?;
        for i in items {
            let i = i?;
            listed.push(&ListedFile {
                key: &i.key,
                size: i.file.size,
                hash: i.file.hash.to_hex(),
                time_ms: i.time.unix_millis(),
                author: i.author.to_string(),
                entry: i.entry.to_hex(),
            })?;
        }
        listed.finish()?;
    } else {
        let mut out = std::io::BufWriter::new(crate::output::stdout());
        for i in items {
            let i = i?;
            writeln!(
                out,
                "{}  {:>10}  {}",
                i.file.hash,
                human_size(i.file.size),
                shown(&i.key)
            )?;
        }
        out.flush()?;
    }
    Ok(0)
}

#[derive(Serialize)]
struct VersionJson {
    seq: u64,
    entry: String,
    time_ms: u64,
    author: String,
    /// `file` or `removed`.
    kind: &'static str,
    size: Option<u64>,
    hash: Option<String>,
}

fn history(store: &Store, collection: &str, key: &str, json: bool) -> Result<u8> {
    let collection = existing_collection(store, collection)?;
    archive_core::validate_key(key)?;
    let mut versions = collection.history(key).peekable();
    if versions.peek().is_none() {
        bail!("no version of `{}` in this store", shown(key));
    }
    if json {
        let mut listed = JsonArray::start()?;
        for v in versions {
            let v = v?;
            let (kind, file) = match v.value {
                archive_core::EntryValue::File(f) => ("file", Some(f)),
                archive_core::EntryValue::Folder => ("folder", None),
                archive_core::EntryValue::Tombstone => ("removed", None),
            };
            listed.push(&VersionJson {
                seq: v.seq,
                entry: v.entry.to_hex(),
                time_ms: v.time.unix_millis(),
                author: v.author.to_string(),
                kind,
                size: file.map(|f| f.size),
                hash: file.map(|f| f.hash.to_hex()),
            })?;
        }
        listed.finish()?;
    } else {
        let mine = store.author();
        let mut out = std::io::BufWriter::new(crate::output::stdout());
        for v in versions {
            let v = v?;
            let who = if v.author == mine {
                "this server".to_owned()
            } else {
                format!("peer {}", &v.author.to_string()[..10])
            };
            let what = match v.value {
                archive_core::EntryValue::File(f) => {
                    format!("{}  {:>10}", f.hash, human_size(f.size))
                }
                archive_core::EntryValue::Folder => format!("{:<64}  {:>10}", "(folder)", ""),
                archive_core::EntryValue::Tombstone => format!("{:<64}  {:>10}", "removed", ""),
            };
            writeln!(out, "{}  {what}  {who}", human_time(v.time))?;
        }
        out.flush()?;
    }
    Ok(0)
}

fn find_key(
    store: &Store,
    collection: &str,
    key: &str,
    snapshot: Option<&str>,
) -> Result<(FileRef, FileMeta)> {
    let c = existing_collection(store, collection)?;
    let key = key.trim_matches('/');
    match c.get_at(key, view_point(snapshot))? {
        Some(item) => Ok((item.file, item.meta)),
        None => match snapshot {
            Some(s) => bail!("`{key}` is not in snapshot `{s}` of collection `{collection}`"),
            None => bail!("`{key}` is not in collection `{collection}`"),
        },
    }
}

fn get(
    store: &Store,
    collection: &str,
    key: Option<&str>,
    hash: Option<&str>,
    snapshot: Option<&str>,
    output: Option<&Path>,
) -> Result<u8> {
    let (file, meta) = match (key, hash) {
        (_, Some(h)) => {
            let hash: Hash = h.parse()?;
            let file = store
                .blobs()
                .file(&hash)?
                .with_context(|| format!("no file or blob {hash} in the store"))?;
            (file, FileMeta::default())
        }
        (Some(k), None) => find_key(store, collection, k, snapshot)?,
        (None, None) => bail!("give a KEY or --hash HASH"),
    };
    match output {
        None => {
            let mut out = crate::output::stdout();
            store.blobs().write_to(&file, &mut out)?;
            out.flush()?;
        }
        // Written beside the target under a fresh name and renamed over it once verified: a
        // failed read leaves no wrong file, and a link at the target is replaced, not followed.
        Some(path) => store.blobs().save(&file, &meta, path)?,
    }
    Ok(0)
}

fn export(
    store: &Store,
    collection: &str,
    snapshot: Option<&str>,
    dest: &Path,
    force: bool,
    json: bool,
) -> Result<u8> {
    let report =
        existing_collection(store, collection)?.export(view_point(snapshot), dest, force)?;
    for s in &report.skipped {
        errln!("archive: skipped `{}`: {}", shown(&s.key), s.reason);
    }
    if json {
        print_json(&serde_json::json!({
            "written": report.written,
            "unchanged": report.unchanged,
            "bytes": report.bytes,
            "folders": report.folders,
            "skipped": report.skipped.iter().map(|s| serde_json::json!({"key": s.key, "reason": s.reason})).collect::<Vec<_>>(),
        }))?;
    } else {
        let folders = match report.folders {
            0 => String::new(),
            1 => " and 1 empty folder".to_owned(),
            n => format!(" and {n} empty folders"),
        };
        outln!(
            "exported {} files ({}){folders} to {}, {} already up to date",
            report.written,
            human_size(report.bytes),
            dest.display(),
            report.unchanged
        );
    }
    if report.skipped.is_empty() {
        Ok(0)
    } else {
        errln!(
            "archive: error: {} file(s) were not exported (listed above); everything else was",
            report.skipped.len()
        );
        Ok(1)
    }
}

fn rm(store: &Store, name: &str, keys: &[String], recursive: bool, json: bool) -> Result<u8> {
    let collection = existing_collection(store, name)?;
    let mut targets = Vec::new();
    for key in keys {
        let key = key.trim_matches('/');
        if key.is_empty() {
            bail!(
                "`{}` names no key; to remove everything, name each top-level folder (see `archive ls`)",
                shown(key_arg(keys, key))
            );
        }
        if recursive {
            let before = targets.len();
            for item in collection.list(ViewPoint::Current, key)? {
                targets.push(item?.key);
            }
            if targets.len() == before {
                bail!("nothing at or under `{key}` in collection `{name}`");
            }
        } else {
            targets.push(key.to_owned());
        }
    }
    targets.sort();
    targets.dedup();
    let removed = collection.remove(&targets)?;
    if json {
        print_json(&serde_json::json!({ "removed": targets }))?;
    } else {
        outln!("removed {} keys from `{name}`", removed.len());
    }
    Ok(0)
}

/// The argument a trimmed key came from (for messages).
fn key_arg<'a>(keys: &'a [String], trimmed: &str) -> &'a str {
    keys.iter()
        .find(|k| k.trim_matches('/') == trimmed)
        .map_or("", String::as_str)
}

fn snapshot(store: &Store, collection: &str, name: &str, json: bool) -> Result<u8> {
    let info = existing_collection(store, collection)?.snapshot(name)?;
    if json {
        print_json(&snapshot_json(&info))?;
    } else {
        outln!(
            "snapshot `{}` of `{}`: {} files, {}",
            info.name,
            info.collection,
            info.files,
            human_size(info.bytes)
        );
    }
    Ok(0)
}

fn snapshot_json(s: &archive_core::SnapshotInfo) -> serde_json::Value {
    serde_json::json!({
        "collection": s.collection,
        "name": s.name,
        "created_ms": s.created.unix_millis(),
        "files": s.files,
        "bytes": s.bytes,
    })
}

fn snapshots(store: &Store, json: bool) -> Result<u8> {
    let list = store.snapshots()?;
    if json {
        print_json(&list.iter().map(snapshot_json).collect::<Vec<_>>())?;
    } else {
        for s in &list {
            outln!(
                "{}  {}  {}  {} files  {}",
                s.collection,
                s.name,
                human_time(s.created),
                s.files,
                human_size(s.bytes)
            );
        }
    }
    Ok(0)
}

#[derive(Serialize)]
struct ChangeJson<'a> {
    key: &'a str,
    change: &'static str,
    old_size: Option<u64>,
    new_size: Option<u64>,
    old_hash: Option<String>,
    new_hash: Option<String>,
}

fn diff(
    store: &Store,
    collection: &str,
    from: Option<&str>,
    to: Option<&str>,
    folder: Option<&Path>,
    as_key: Option<&str>,
    json: bool,
) -> Result<u8> {
    let changes = match (folder, from) {
        (Some(folder), _) => store.collection(collection)?.diff_dir(folder, as_key)?,
        (None, Some(from)) => existing_collection(store, collection)?
            .diff(ViewPoint::Snapshot(from), view_point(to))?
            .collect::<Result<Vec<_>, _>>()?,
        (None, None) => bail!("give a snapshot name, or --dir PATH"),
    };
    print_changes(&changes, json)?;
    Ok(0)
}

fn print_changes(changes: &[Change], json: bool) -> Result<()> {
    if json {
        let out: Vec<_> = changes
            .iter()
            .map(|c| ChangeJson {
                key: &c.key,
                change: c.kind.as_str(),
                old_size: c.old.map(|o| o.size),
                new_size: c.new.map(|n| n.size),
                old_hash: c.old.map(|o| o.hash.to_hex()),
                new_hash: c.new.map(|n| n.hash.to_hex()),
            })
            .collect();
        print_json(&out)?;
        return Ok(());
    }
    let mut out = crate::output::stdout();
    for c in changes {
        let (mark, size) = match (c.old, c.new) {
            (None, Some(n)) => ('+', human_size(n.size)),
            (Some(o), None) => ('-', human_size(o.size)),
            (Some(o), Some(n)) => (
                '~',
                format!("{} -> {}", human_size(o.size), human_size(n.size)),
            ),
            (None, None) => ('?', String::new()),
        };
        writeln!(out, "{mark} {}  ({size})", shown(&c.key))?;
    }
    let count = |k| changes.iter().filter(|c| c.kind == k).count();
    writeln!(
        out,
        "{} added, {} changed, {} removed",
        count(archive_core::ChangeKind::Added),
        count(archive_core::ChangeKind::Changed),
        count(archive_core::ChangeKind::Removed)
    )?;
    Ok(())
}

fn verify(ctx: &Ctx, json: bool) -> Result<u8> {
    // The page check needs the store to itself: done when this process opened it.
    let database = if ctx.is_served() {
        None
    } else {
        let mut store = open(&ctx.dir)?;
        Some(store.check_database()?)
    };
    let store = ctx.store()?;
    let report = store.verify()?;
    if json {
        print_json(&serde_json::json!({
            "ok": report.is_ok(),
            "blobs_checked": report.blobs_checked,
            "bytes_checked": report.bytes_checked,
            "entries_checked": report.entries_checked,
            "bad_blobs": report.bad_blobs.iter().map(|b| serde_json::json!({"hash": b.hash.to_hex(), "problem": b.problem})).collect::<Vec<_>>(),
            "bad_entries": report.bad_entries.iter().map(|(id, why)| serde_json::json!({"id": id.to_hex(), "problem": why})).collect::<Vec<_>>(),
            "damaged_keys": report.damaged_keys.iter().map(|d| serde_json::json!({"collection": d.collection, "key": d.key, "snapshot": d.snapshot})).collect::<Vec<_>>(),
            "database": database.map(|d| format!("{d:?}").to_lowercase()),
        }))?;
    } else {
        match database {
            Some(archive_core::DatabaseCheck::Intact) => outln!("database file: every page intact"),
            Some(archive_core::DatabaseCheck::Repaired) => {
                outln!("database file: damage found and repaired from the last good commit")
            }
            None => outln!(
                "database file: not checked (the server holds it; stop it and run `archive doctor`)"
            ),
        }
        for b in &report.bad_blobs {
            outln!("corrupt blob {}: {}", b.hash, b.problem);
        }
        for (id, why) in &report.bad_entries {
            outln!("bad entry {id}: {why}");
        }
        for d in &report.damaged_keys {
            match &d.snapshot {
                None => outln!(
                    "damaged: `{}` in collection `{}`",
                    shown(&d.key),
                    d.collection
                ),
                Some(s) => outln!(
                    "damaged: `{}` in snapshot `{s}` of collection `{}`",
                    shown(&d.key),
                    d.collection
                ),
            }
        }
        outln!(
            "checked {} blobs ({}) and {} entries: {}",
            report.blobs_checked,
            human_size(report.bytes_checked),
            report.entries_checked,
            if report.is_ok() {
                "all intact"
            } else {
                "DAMAGE FOUND"
            }
        );
    }
    let repaired = database == Some(archive_core::DatabaseCheck::Repaired);
    Ok(if report.is_ok() && !repaired { 0 } else { 1 })
}

fn doctor(dir: &Path, json: bool) -> Result<u8> {
    let mut store = match Store::open(dir) {
        Err(OpenError::Locked { .. }) => {
            bail!("the server holds the store: stop `archive serve`, then run `archive doctor`")
        }
        other => other?,
    };
    let r = store.doctor()?;
    if json {
        print_json(&serde_json::json!({
            "database": format!("{:?}", r.database).to_lowercase(),
            "far_future_removed": r.far_future_removed,
            "own_rewritten": r.own_rewritten,
            "clock_before_ms": r.clock_before.unix_millis(),
            "clock_after_ms": r.clock_after.unix_millis(),
        }))?;
    } else {
        outln!(
            "database file: {}",
            match r.database {
                archive_core::DatabaseCheck::Intact => "every page intact",
                archive_core::DatabaseCheck::Repaired =>
                    "damage found and repaired from the last good commit",
            }
        );
        outln!(
            "entries dated past {}: {} removed (now refused); {} of them this server's own writes, written again with fresh times",
            archive_core::Timestamp::from_unix_millis(archive_core::MAX_ENTRY_MILLIS),
            r.far_future_removed,
            r.own_rewritten
        );
        if r.clock_before != r.clock_after {
            outln!(
                "clock: was {}, now {}: new writes win again",
                r.clock_before,
                r.clock_after
            );
        } else {
            outln!("clock: {} (unchanged)", r.clock_after);
        }
    }
    Ok(0)
}

fn gc(store: &Store, json: bool) -> Result<u8> {
    let r = store.gc()?;
    if json {
        print_json(&serde_json::json!({
            "blobs_removed": r.blobs_removed,
            "bytes_freed": r.bytes_freed,
            "leftovers_removed": r.leftovers_removed,
            "packs_rewritten": r.packs_rewritten,
            "pack_bytes_freed": r.pack_bytes_freed,
            "certificates_removed": r.certificates_removed,
        }))?;
    } else {
        outln!(
            "removed {} blobs ({}) and {} leftover files; {} of packs given back ({} rewritten)",
            r.blobs_removed,
            human_size(r.bytes_freed),
            r.leftovers_removed,
            human_size(r.pack_bytes_freed),
            r.packs_rewritten
        );
    }
    Ok(0)
}

fn stats(store: &Store, json: bool) -> Result<u8> {
    let s = store.stats()?;
    if json {
        print_json(&serde_json::json!({
            "collections": s.collections,
            "entries": s.entries,
            "files": s.files,
            "logical_bytes": s.logical_bytes,
            "blobs": s.blobs,
            "stored_bytes": s.stored_bytes,
            "snapshots": s.snapshots,
            "quota_used": store.quota_used()?,
            "author": store.author().to_string(),
        }))?;
    } else {
        outln!("data folder:  {}", store.dir().display());
        outln!("server key:   {}", store.author());
        outln!("collections:  {}", s.collections);
        outln!(
            "files:        {} ({})",
            s.files,
            human_size(s.logical_bytes)
        );
        outln!("entries:      {}", s.entries);
        outln!(
            "blobs:        {} ({} stored)",
            s.blobs,
            human_size(s.stored_bytes)
        );
        outln!("snapshots:    {}", s.snapshots);
    }
    Ok(0)
}

fn collections(store: &Store, json: bool) -> Result<u8> {
    let list = store.collections()?;
    if json {
        let v: Vec<_> = list
            .iter()
            .map(|c| serde_json::json!({"name": c.name, "entries": c.entries, "files": c.files, "bytes": c.bytes}))
            .collect();
        print_json(&v)?;
    } else {
        for c in &list {
            outln!(
                "{}  {} files  {}  {} entries",
                c.name,
                c.files,
                human_size(c.bytes),
                c.entries
            );
        }
    }
    Ok(0)
}
