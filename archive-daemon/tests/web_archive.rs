//! The archive page's API over HTTP, against a real `archive serve` whose collection was
//! added and snapshotted from the command line while it ran: collections, folders now and at a
//! snapshot, the diff between snapshots, finding by name, a folder as a zip stream, and what a
//! member may not read or do.

use std::io::Read;

use serde_json::json;

use crate::harness::write_file;
use crate::web_http::Community;
use test_support::http::Client;

/// `library`: `docs/a.txt`, `docs/b.txt`, `sites/Index.html`, snapshot `v1`; then
/// `docs/a.txt` changed, `docs/b.txt` removed, `docs/c.txt` added, snapshot `v2`. All through
/// the CLI, which the running server carries out.
pub(crate) fn library(community: &Community) {
    let src = community.archive.path("src");
    write_file(&src.join("docs/a.txt"), b"first a");
    write_file(&src.join("docs/b.txt"), b"b");
    write_file(&src.join("sites/Index.html"), b"<h1>offline</h1>");
    let a = &community.archive;
    a.ok(&["add", "-c", "library", "--as", "", src.to_str().unwrap()]);
    a.ok(&["snapshot", "-c", "library", "v1"]);
    write_file(&src.join("docs/a.txt"), b"second a, longer");
    write_file(&src.join("docs/c.txt"), b"c");
    a.ok(&["add", "-c", "library", "--as", "", src.to_str().unwrap()]);
    a.ok(&["rm", "-c", "library", "docs/b.txt"]);
    a.ok(&["snapshot", "-c", "library", "v2"]);
}

fn get_json(c: &mut Client, path: &str) -> serde_json::Value {
    let r = c.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

#[test]
fn a_collection_added_from_the_cli_is_browsed_compared_found_and_zipped() {
    let community = Community::start();
    library(&community);
    let (mut ana, ana_csrf, mut bo, bo_csrf) = community.with_member("bo");
    // A room makes a `chat/` collection: not shown on the archive page.
    let r = ana.api("POST", "/api/rooms", &ana_csrf, &json!({"name": "garden"}));
    assert!(r.status < 300, "{}", r.text());

    let list = get_json(&mut bo, "/api/archive");
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["library"]);
    let snapshots: Vec<&str> = list[0]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(snapshots, ["v2", "v1"]);

    let top = get_json(&mut bo, "/api/archive/folder?c=library");
    assert_eq!(top["folders"], json!(["docs", "sites"]));
    let docs_then = get_json(&mut bo, "/api/archive/folder?c=library&folder=docs&at=v1");
    let paths = |v: &serde_json::Value| -> Vec<String> {
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(paths(&docs_then), ["docs/a.txt", "docs/b.txt"]);
    assert_eq!(
        paths(&get_json(
            &mut bo,
            "/api/archive/folder?c=library&folder=docs"
        )),
        ["docs/a.txt", "docs/c.txt"]
    );

    // The diff between the snapshots.
    let diff = get_json(&mut bo, "/api/archive/diff?c=library&from=v1&to=v2");
    let changes: Vec<(String, String)> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_owned(),
                c["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("docs/a.txt".to_owned(), "changed".to_owned()),
            ("docs/b.txt".to_owned(), "removed".to_owned()),
            ("docs/c.txt".to_owned(), "added".to_owned()),
        ]
    );
    let page = bo.get("/archive/diff?c=library&from=v1&to=v2").text();
    assert!(
        page.contains("docs/b.txt") && page.contains("removed"),
        "{page}"
    );

    // Find by name, any case.
    let found = get_json(&mut bo, "/api/archive/find?c=library&q=INDEX");
    assert_eq!(paths(&found), ["sites/Index.html"]);

    // A file now and as it was; HTML only as a download.
    assert_eq!(
        bo.get("/archive/get?c=library&path=docs/a.txt&at=v1").body,
        b"first a"
    );
    assert_eq!(
        bo.get("/api/archive/content?c=library&path=docs/a.txt")
            .body,
        b"second a, longer"
    );
    let html = bo.get("/archive/get?c=library&path=sites/Index.html");
    assert_eq!(
        html.header("content-type"),
        Some("application/octet-stream")
    );

    // A folder as a zip, at a snapshot: the files of that time, under the folder's name.
    let r = bo.get("/archive/zip?c=library&folder=docs&at=v1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/zip"));
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(r.body)).unwrap();
    let mut files = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        files.push((f.name().unwrap().to_string(), bytes));
    }
    assert_eq!(
        files,
        [
            ("docs/a.txt".to_owned(), b"first a".to_vec()),
            ("docs/b.txt".to_owned(), b"b".to_vec())
        ]
    );
    let whole = bo.get("/api/archive/zip?c=library");
    let zip = zip::ZipArchive::new(std::io::Cursor::new(whole.body)).unwrap();
    assert_eq!(zip.len(), 3);

    // Snapshots: admins only, names checked, no duplicates.
    let r = bo.api(
        "POST",
        "/api/archive/snapshots",
        &bo_csrf,
        &json!({"c": "library", "name": "mine"}),
    );
    assert_eq!(r.status, 403);
    let r = ana.api(
        "POST",
        "/api/archive/snapshots",
        &ana_csrf,
        &json!({"c": "library", "name": "v3"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = ana.api(
        "POST",
        "/api/archive/snapshots",
        &ana_csrf,
        &json!({"c": "library", "name": "v3"}),
    );
    assert_eq!(r.status, 409);
    for bad in ["../v4", "", "a b"] {
        let r = ana.api(
            "POST",
            "/api/archive/snapshots",
            &ana_csrf,
            &json!({"c": "library", "name": bad}),
        );
        assert_eq!(r.status, 400, "{bad:?}: {}", r.text());
    }
    let r = ana.form(
        "/archive/snapshot",
        &[("csrf", &ana_csrf), ("c", "library"), ("name", "v4")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        get_json(&mut bo, "/api/archive")[0]["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn the_archive_refuses_what_it_does_not_show_and_bad_names() {
    let community = Community::start();
    library(&community);
    let (mut ana, ana_csrf, _bo, _) = community.with_member("bo");
    ana.api("POST", "/api/rooms", &ana_csrf, &json!({"name": "garden"}));
    let room_collection = community
        .archive
        .json(&["collections"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .find(|n| n.starts_with("chat/"))
        .expect("the room's collection");
    // The messenger's and the server's own collections are not the archive's.
    for hidden in [
        room_collection.as_str(),
        "local/chat/reads",
        "local/shares/ana",
    ] {
        for path in [
            format!("/api/archive/folder?c={hidden}"),
            format!("/api/archive/zip?c={hidden}"),
            format!("/api/archive/find?c={hidden}&q=a"),
            format!("/api/archive/diff?c={hidden}"),
            format!("/archive/get?c={hidden}&path=x"),
        ] {
            let r = ana.get(&path);
            assert_eq!(r.status, 404, "{path}: {}", r.text());
        }
    }
    let checks: &[(&str, u16)] = &[
        ("/api/archive/folder?c=nosuch", 404),
        ("/api/archive/folder?c=..%2Fetc", 400),
        ("/api/archive/folder?c=library&at=nosuch", 404),
        ("/api/archive/folder?c=library&folder=..%2F..", 400),
        ("/api/archive/diff?c=library&from=nosuch", 404),
        ("/api/archive/find?c=library&q=", 400),
        (
            "/api/archive/content?c=library&path=..%2F..%2Fstore.redb",
            400,
        ),
        ("/api/archive/content?c=library&path=docs/nosuch.txt", 404),
        ("/api/archive/zip?c=library&folder=nosuch", 404),
        ("/api/archive/zip?c=library&folder=..", 400),
        ("/api/archive/folder", 400),
        ("/api/archive/folder?c=%FF", 400),
        ("/api/archive/content?c=library&path=docs%2F%FF", 400),
    ];
    for (path, status) in checks {
        let r = ana.get(path);
        assert_eq!(r.status, *status, "{path}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{path}");
    }
    // The pages say the same on an error page.
    let r = ana.get("/archive/c?c=library&at=nosuch");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no snapshot"), "{}", r.text());
}
