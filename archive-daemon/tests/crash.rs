//! Crashes during `archive add`: the store always opens, verifies clean, and the next `add`
//! finishes the job. Two ways to crash: a deterministic abort at every write step (the blob
//! layer's fault points, `ARCHIVE_FAULT_ABORT_AT`), and kill -9 at random moments, which also
//! lands between the steps.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{pseudo_random, read_tree, write_file, Archive};

/// Kills that must land while `add` is still running.
const KILLS_MID_ADD: usize = 20;
const MAX_ROUNDS: usize = 80;

#[test]
fn sigkill_during_add_never_leaves_a_broken_store() {
    let a = Archive::initialised();
    let src = a.path("src");
    // Many small files, some chunked ones, and repeated content.
    for i in 0..300u64 {
        write_file(
            &src.join(format!("small/{i:03}.txt")),
            &pseudo_random(500 + (i as usize * 37) % 20_000, i),
        );
    }
    for i in 0..8u64 {
        write_file(
            &src.join(format!("big/{i}.bin")),
            &pseudo_random(6 << 20, 1000 + i),
        );
    }
    write_file(&src.join("big/copy.bin"), &pseudo_random(6 << 20, 1000));
    let src_str = src.to_str().unwrap();

    // How long does a full add take? Kill within that window.
    let probe = Archive::initialised();
    let started = Instant::now();
    probe.ok(&["add", src_str]);
    let full = started.elapsed();
    drop(probe);

    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut window = full;
    let mut interrupted = 0;
    let mut rounds = 0;
    while interrupted < KILLS_MID_ADD {
        rounds += 1;
        assert!(
            rounds <= MAX_ROUNDS,
            "only {interrupted} kills landed mid-add in {MAX_ROUNDS} rounds"
        );
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_micros(rng % (window.as_micros() as u64).max(1));
        let mut child = a.command(&["add", src_str]).spawn().unwrap();
        std::thread::sleep(delay);
        let finished_first = child.try_wait().unwrap().is_some();
        child.kill().unwrap_or(()); // SIGKILL on Unix
        child.wait().unwrap();
        if finished_first {
            // The machine is faster than the probe said (other tests finished): aim earlier.
            window = window * 2 / 3;
        } else {
            interrupted += 1;
        }
        assert_verifies(&a, &format!("round {rounds} (killed after {delay:?})"));
        // Remove what was added, so the next kill hits fresh work again; the last kill's
        // partial work stays for the final add to complete.
        if interrupted < KILLS_MID_ADD {
            if !a.json(&["ls"]).as_array().unwrap().is_empty() {
                a.ok(&["rm", "-r", "src"]);
            }
            a.ok(&["gc"]);
        }
    }

    a.ok(&["add", src_str]);
    assert!(a.ok(&["verify"]).contains("all intact"));
    let out = a.path("out");
    a.ok(&["export", out.to_str().unwrap()]);
    assert_eq!(read_tree(&out.join("src")), read_tree(&src));
    // Leftovers of the killed runs are collected; the store stays intact.
    a.ok(&["gc"]);
    assert!(a.ok(&["verify"]).contains("all intact"));
}

/// A tree whose `add` passes every kind of write step: inline small files, single-blob files,
/// chunked files (manifest and chunks), content repeated under another name, and more than
/// one commit.
fn tree_for_cuts(src: &Path) {
    for i in 0..6u64 {
        write_file(
            &src.join(format!("small/{i}.txt")),
            &pseudo_random(200 + i as usize * 50, i),
        );
    }
    write_file(&src.join("medium.bin"), &pseudo_random(300_000, 40));
    write_file(&src.join("big/a.bin"), &pseudo_random(3 << 20, 41));
    write_file(&src.join("big/b.bin"), &pseudo_random(2 << 20, 42));
    write_file(&src.join("big/copy-of-a.bin"), &pseudo_random(3 << 20, 41));
}

/// The write steps a command logged, one `N Step` per line.
fn logged_steps(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_once(' ').expect("`N Step` lines").1.to_owned())
        .collect()
}

/// Runs `args` uncut in `a`'s store, logging its write steps to `log`: its output and the
/// steps, which must include every kind of write step (or cutting it would not test them all).
fn uncut_steps(a: &Archive, args: &[&str], log: &Path) -> (Vec<u8>, Vec<String>) {
    let out = a
        .command(args)
        .env("ARCHIVE_FAULT_LOG", log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps = logged_steps(log);
    for kind in ["BlobAppended", "PacksDurable", "Commit", "Committed"] {
        assert!(
            steps.iter().any(|s| s == kind),
            "`{}` never passed {kind}: {steps:?}",
            args.join(" ")
        );
    }
    (out.stdout, steps)
}

/// Runs `args` in `a`'s store, aborted at its `cut`-th write step: the process must die at
/// exactly that step, not before and not after, and leave a store that verifies.
fn cut_at(a: &Archive, args: &[&str], cut: usize, log: &Path, what: &str) {
    let out = a
        .command(args)
        .env("ARCHIVE_FAULT_ABORT_AT", cut.to_string())
        .env("ARCHIVE_FAULT_LOG", log)
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{what}: not aborted: {:?}",
        out.status
    );
    assert_eq!(
        logged_steps(log).len(),
        cut,
        "{what}: stopped at another step"
    );
    // The store checks out as the cut left it.
    assert_verifies(a, what);
}

/// `archive verify` of `a`'s store passes (its output is in the message if not).
fn assert_verifies(a: &Archive, what: &str) {
    let verify = a.run(&["verify"]);
    assert!(
        verify.status.success(),
        "{what}: verify failed: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn an_add_cut_at_every_write_step_leaves_a_store_that_verifies_and_completes() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    tree_for_cuts(&src);
    let src_str = src.to_str().unwrap();

    // Count the steps of an uninterrupted add of the tree into an empty store.
    let probe = Archive::initialised();
    let (_, steps) = uncut_steps(&probe, &["add", src_str], &work.path().join("steps.log"));
    drop(probe);
    eprintln!("cutting add at each of its {} write steps", steps.len());

    for cut in 1..=steps.len() {
        let a = Archive::initialised();
        let what = format!("cut at step {cut} ({})", steps[cut - 1]);
        cut_at(
            &a,
            &["add", src_str],
            cut,
            &work.path().join(format!("cut-{cut}.log")),
            &what,
        );
        // Whatever the cut left is either whole or absent: every listed file exports intact.
        a.ok(&["add", src_str]);
        assert!(a.ok(&["verify"]).contains("all intact"), "{what}");
        let out = a.path("out");
        a.ok(&["export", out.to_str().unwrap()]);
        assert_eq!(read_tree(&out.join("src")), read_tree(&src), "{what}");
        a.ok(&["gc"]);
        assert!(a.ok(&["verify"]).contains("all intact"), "{what}");
    }
}

/// A store whose `gc` both removes dead content and rewrites a pack: a tree added, then most
/// of it (the large files, whose chunks fill the pack) removed. Returns the tree the store
/// still shows.
fn store_for_gc_cuts(a: &Archive, src: &Path) -> BTreeMap<String, Vec<u8>> {
    tree_for_cuts(src);
    a.ok(&["add", src.to_str().unwrap()]);
    a.ok(&["rm", "-r", "src/big"]);
    let mut kept = read_tree(src);
    kept.retain(|path, _| !path.starts_with("big/"));
    kept
}

#[test]
fn a_gc_cut_at_every_write_step_loses_nothing_and_the_next_gc_completes() {
    let work = tempfile::tempdir().unwrap();

    // Count the steps of an uninterrupted gc.
    let probe = Archive::initialised();
    let src = probe.path("src");
    let kept = store_for_gc_cuts(&probe, &src);
    let packs_before = folder_bytes(&probe.data_dir().join("packs"));
    let (stdout, steps) = uncut_steps(&probe, &["gc", "--json"], &work.path().join("steps.log"));
    let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(report["packs_rewritten"], 1, "{report}");
    let packs_after = folder_bytes(&probe.data_dir().join("packs"));
    assert!(
        packs_after * 2 < packs_before,
        "packs: {packs_before} bytes before gc, {packs_after} after"
    );
    drop(probe);
    eprintln!("cutting gc at each of its {} write steps", steps.len());

    for cut in 1..=steps.len() {
        let a = Archive::initialised();
        let src = a.path("src");
        let kept = store_for_gc_cuts(&a, &src);
        let what = format!("gc cut at step {cut} ({})", steps[cut - 1]);
        cut_at(
            &a,
            &["gc"],
            cut,
            &work.path().join(format!("gc-cut-{cut}.log")),
            &what,
        );
        // Nothing the view shows was lost.
        let out_dir = a.path(&format!("out-{cut}"));
        a.ok(&["export", out_dir.to_str().unwrap()]);
        assert_eq!(read_tree(&out_dir.join("src")), kept, "{what}");
        // The next gc finishes the job: the space is given back and all is intact.
        a.ok(&["gc"]);
        assert!(a.ok(&["verify"]).contains("all intact"), "{what}");
        assert_eq!(
            folder_bytes(&a.data_dir().join("packs")),
            packs_after,
            "{what}: the packs after a second gc"
        );
        let again = a.path(&format!("again-{cut}"));
        a.ok(&["export", again.to_str().unwrap()]);
        assert_eq!(read_tree(&again.join("src")), kept, "{what}");
    }
    assert_eq!(kept.len(), 7, "the small files and medium.bin stay");
}

/// Bytes of the files directly in `dir`.
fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}
