//! The view and snapshots against a `BTreeMap` model under random add/remove sequences, and
//! snapshot diffs against a naive diff of the models.

use std::collections::BTreeMap;

use archive_core::{ChangeKind, Hash, ViewPoint};
use proptest::prelude::*;

use crate::common::new_store;

#[derive(Debug, Clone)]
enum Op {
    Put { key: usize, content: u8 },
    Remove { key: usize },
    Snapshot,
}

const KEYS: [&str; 6] = ["a", "a/b", "a/c", "b", "dir/x.txt", "dir/y/z"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS.len(), 0u8..4).prop_map(|(key, content)| Op::Put { key, content }),
        2 => (0..KEYS.len()).prop_map(|key| Op::Remove { key }),
        1 => Just(Op::Snapshot),
    ]
}

type Model = BTreeMap<String, Vec<u8>>;

fn content(c: u8) -> Vec<u8> {
    vec![c; 10 + c as usize]
}

fn naive_diff(old: &Model, new: &Model) -> Vec<(String, ChangeKind)> {
    let mut out = Vec::new();
    for (k, v) in old {
        match new.get(k) {
            None => out.push((k.clone(), ChangeKind::Removed)),
            Some(w) if w != v => out.push((k.clone(), ChangeKind::Changed)),
            _ => {}
        }
    }
    for k in new.keys() {
        if !old.contains_key(k) {
            out.push((k.clone(), ChangeKind::Added));
        }
    }
    out.sort();
    out
}

fn view_as_model(store: &archive_core::Store, at: ViewPoint<'_>) -> BTreeMap<String, Hash> {
    crate::common::list(store, "c", at, "")
        .unwrap()
        .into_iter()
        .map(|i| (i.key, i.file.hash))
        .collect()
}

fn hashed(model: &Model) -> BTreeMap<String, Hash> {
    model
        .iter()
        .map(|(k, v)| (k.clone(), Hash::of(v)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn view_and_snapshots_follow_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let (_dir, store) = new_store();
        let mut model = Model::new();
        let mut snapshots: Vec<(String, Model)> = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, content: c } => {
                    // The model of the file/folder rule: no file where the view has a
                    // folder, no folder where it has a file.
                    let k = KEYS[key];
                    let collides = model.keys().any(|other| {
                        other.starts_with(&format!("{k}/")) || k.starts_with(&format!("{other}/"))
                    });
                    let result = store.collection("c").unwrap().add_bytes(k, &content(c));
                    prop_assert_eq!(result.is_ok(), !collides, "{:?}", result);
                    if !collides {
                        model.insert(k.to_owned(), content(c));
                    }
                }
                Op::Remove { key } => {
                    let result = store.collection("c").unwrap().remove(&[KEYS[key].to_owned()]);
                    prop_assert_eq!(result.is_ok(), model.remove(KEYS[key]).is_some());
                }
                Op::Snapshot => {
                    let name = format!("s{}", snapshots.len());
                    match store.collection("c").unwrap().snapshot(&name) {
                        Ok(info) => {
                            prop_assert_eq!(info.files as usize, model.len());
                            snapshots.push((name, model.clone()));
                        }
                        // Before the first entry the collection does not exist yet.
                        Err(archive_core::SnapshotError::NoSuchCollection { .. }) => {
                            prop_assert!(store.collections().unwrap().is_empty());
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            prop_assert_eq!(view_as_model(&store, ViewPoint::Current), hashed(&model));
        }
        for (name, snap_model) in &snapshots {
            prop_assert_eq!(view_as_model(&store, ViewPoint::Snapshot(name)), hashed(snap_model));
        }
        // Diff every pair of snapshots (and each with now) against the naive diff.
        let mut points: Vec<(Option<&str>, &Model)> =
            snapshots.iter().map(|(n, m)| (Some(n.as_str()), m)).collect();
        points.push((None, &model));
        for (a_name, a_model) in &points {
            for (b_name, b_model) in &points {
                let Some(a_name) = a_name else { continue };
                let to = b_name.map_or(ViewPoint::Current, ViewPoint::Snapshot);
                let c = store.collection("c").unwrap();
                let from = ViewPoint::Snapshot(a_name);
                let got: Vec<(String, ChangeKind)> = c
                    .diff(from, to)
                    .unwrap()
                    .map(|c| c.map(|c| (c.key, c.kind)))
                    .collect::<Result<_, _>>()
                    .unwrap();
                // In key order, as the model's.
                prop_assert_eq!(&got, &naive_diff(a_model, b_model));
                // Page by page, with pages of 1 and 2, the same changes.
                for limit in [1, 2] {
                    let mut paged = Vec::new();
                    let mut after: Option<String> = None;
                    loop {
                        let page = c.diff_page(from, to, after.as_deref(), limit).unwrap();
                        prop_assert!(page.items.len() <= limit);
                        paged.extend(page.items.into_iter().map(|c| (c.key, c.kind)));
                        match page.next {
                            Some(n) => after = Some(n),
                            None => break,
                        }
                    }
                    prop_assert_eq!(&paged, &got);
                }
            }
        }
        // Prefix listings are path prefixes: `a` covers `a`, `a/b`, `a/c` but not `ab`.
        let under_a: Vec<String> = crate::common::list(&store, "c", ViewPoint::Current, "a").unwrap().into_iter().map(|i| i.key).collect();
        let expected: Vec<String> = model.keys().filter(|k| *k == "a" || k.starts_with("a/")).cloned().collect();
        prop_assert_eq!(under_a, expected);
        // Every view, read a page at a time (pages of 1 and 3, with and without a prefix),
        // is the whole listing: no key lost or repeated at a page boundary.
        for (name, _) in &points {
            let at = name.map_or(ViewPoint::Current, ViewPoint::Snapshot);
            let c = store.collection("c").unwrap();
            for prefix in ["", "a"] {
                let whole = crate::common::list(&store, "c", at, prefix).unwrap();
                for limit in [1, 3] {
                    let mut paged = Vec::new();
                    let mut after: Option<String> = None;
                    loop {
                        let page = c.list_page(at, prefix, after.as_deref(), limit).unwrap();
                        prop_assert!(page.items.len() <= limit);
                        paged.extend(page.items);
                        match page.next {
                            Some(n) => after = Some(n),
                            None => break,
                        }
                    }
                    prop_assert_eq!(&paged, &whole);
                }
            }
        }
    }
}

#[test]
fn views_survive_reopening_the_store() {
    let (dir, store) = new_store();
    store
        .collection("c")
        .unwrap()
        .add_bytes("k", b"one")
        .unwrap();
    store.collection("c").unwrap().snapshot("s").unwrap();
    store
        .collection("c")
        .unwrap()
        .add_bytes("k", b"two")
        .unwrap();
    let before = view_as_model(&store, ViewPoint::Current);
    drop(store);
    let store = archive_core::Store::open(dir.path().join("store")).unwrap();
    assert_eq!(view_as_model(&store, ViewPoint::Current), before);
    assert_eq!(
        view_as_model(&store, ViewPoint::Snapshot("s"))["k"],
        Hash::of(b"one")
    );
    // The clock continues past everything written before the reopen.
    let newer = store
        .collection("c")
        .unwrap()
        .add_bytes("k", b"three")
        .unwrap()
        .unwrap();
    let all = crate::common::list(&store, "c", ViewPoint::Current, "").unwrap();
    assert_eq!(all[0].entry, newer.id());
}
