//! The files page's API and forms over HTTP, against a real `archive serve`: a large file
//! uploaded in parts comes back byte-identical to another person, ranges give 206, a
//! person's folder stays theirs, versions and trash work, and hostile names, sizes, ids and
//! parts are refused with a clear 4xx and nothing stored.

use serde_json::json;

use crate::web_http::{multipart, Community};
use test_support::http::Client;
use test_support::pseudo_random;

const PART: usize = 4 << 20;

/// Uploads `bytes` to `path` of `share` in 4 MiB parts through the API; the file's JSON.
fn upload(c: &mut Client, csrf: &str, share: &str, path: &str, bytes: &[u8]) -> serde_json::Value {
    let r = c.api(
        "POST",
        &format!("/api/files/{share}/uploads"),
        csrf,
        &json!({"path": path, "size": bytes.len()}),
    );
    assert_eq!(r.status, 200, "begin {path}: {}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let mut at = 0;
    for part in bytes.chunks(PART) {
        let r = put_part(c, csrf, &id, at, part);
        assert_eq!(r.status, 200, "part at {at}: {}", r.text());
        at += part.len();
        assert_eq!(r.json()["received"], at);
    }
    let r = c.api(
        "POST",
        &format!("/api/files/uploads/{id}/finish"),
        csrf,
        &json!({}),
    );
    assert_eq!(r.status, 200, "finish {path}: {}", r.text());
    r.json()
}

fn put_part(
    c: &mut Client,
    csrf: &str,
    id: &str,
    offset: usize,
    part: &[u8],
) -> test_support::http::Reply {
    c.send(
        "PUT",
        format!("/api/files/uploads/{id}?offset={offset}").as_bytes(),
        &[
            ("Content-Type", "application/octet-stream"),
            ("X-CSRF-Token", csrf),
        ],
        part,
    )
}

fn listing(c: &mut Client, share: &str, folder: &str) -> serde_json::Value {
    let r = c.get(&format!("/api/files/{share}?folder={folder}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn names(listing: &serde_json::Value) -> Vec<String> {
    listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_large_file_comes_back_whole_to_another_person_and_ranges_are_partial() {
    let community = Community::start();
    let (mut ana, ana_csrf, mut bo, bo_csrf) = community.with_member("bo");
    let film = pseudo_random(20 * 1024 * 1024 + 12_345, 7);

    // A part lost on the way and sent again is refused with where to go on from.
    let r = ana.api(
        "POST",
        "/api/files/community/uploads",
        &ana_csrf,
        &json!({"path": "films/harvest.mp4", "size": film.len()}),
    );
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        put_part(&mut ana, &ana_csrf, &id, 0, &film[..PART]).status,
        200
    );
    let again = put_part(&mut ana, &ana_csrf, &id, 0, &film[..PART]);
    assert_eq!(again.status, 409, "{}", again.text());
    let now = ana.get(&format!("/api/files/uploads/{id}")).json();
    assert_eq!(now["received"], PART);
    // Not Bo's upload: he cannot see it, add to it or finish it.
    assert_eq!(bo.get(&format!("/api/files/uploads/{id}")).status, 404);
    assert_eq!(put_part(&mut bo, &bo_csrf, &id, PART, b"evil").status, 404);
    let r = bo.api(
        "POST",
        &format!("/api/files/uploads/{id}/finish"),
        &bo_csrf,
        &json!({}),
    );
    assert_eq!(r.status, 404);
    // Finishing early says how much is missing.
    let r = ana.api(
        "POST",
        &format!("/api/files/uploads/{id}/finish"),
        &ana_csrf,
        &json!({}),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    let mut at = PART;
    for part in film[PART..].chunks(PART) {
        assert_eq!(put_part(&mut ana, &ana_csrf, &id, at, part).status, 200);
        at += part.len();
    }
    let r = ana.api(
        "POST",
        &format!("/api/files/uploads/{id}/finish"),
        &ana_csrf,
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // Bo sees it and downloads it byte-identical.
    assert_eq!(
        listing(&mut bo, "community", "").as_object().unwrap()["folders"],
        json!(["films"])
    );
    assert_eq!(
        names(&listing(&mut bo, "community", "films")),
        ["films/harvest.mp4"]
    );
    let whole = bo.get("/files/community/get?path=films/harvest.mp4");
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.header("content-type"), Some("video/mp4"));
    assert!(whole.body == film, "the download differs from the upload");

    // A byte range, as a video player asks: 206 with exactly those bytes.
    let range = bo.send(
        "GET",
        b"/api/files/community/content?path=films/harvest.mp4",
        &[("Range", "bytes=10000000-10065535")],
        b"",
    );
    assert_eq!(range.status, 206);
    assert_eq!(
        range.header("content-range"),
        Some(format!("bytes 10000000-10065535/{}", film.len()).as_str())
    );
    assert_eq!(range.body, film[10_000_000..10_065_536]);
    let tail = bo.send(
        "GET",
        b"/files/community/get?path=films/harvest.mp4",
        &[("Range", "bytes=-100")],
        b"",
    );
    assert_eq!(
        (tail.status, &tail.body[..]),
        (206, &film[film.len() - 100..])
    );
    let outside = bo.send(
        "GET",
        b"/files/community/get?path=films/harvest.mp4",
        &[("Range", format!("bytes={}-", film.len()).as_str())],
        b"",
    );
    assert_eq!(outside.status, 416);
    assert_eq!(
        outside.header("content-range"),
        Some(format!("bytes */{}", film.len()).as_str())
    );
    // Anything but media is a sandboxed download.
    upload(
        &mut ana,
        &ana_csrf,
        "community",
        "page.html",
        b"<script>alert(1)</script>",
    );
    let page = bo.get("/files/community/get?path=page.html");
    assert_eq!(
        page.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(page
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment"));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .starts_with("sandbox"));
}

#[test]
fn a_persons_folder_is_theirs_until_shared_and_versions_and_trash_work() {
    let community = Community::start();
    let (mut ana, ana_csrf, mut bo, bo_csrf) = community.with_member("bo");
    upload(
        &mut ana,
        &ana_csrf,
        "mine",
        "letters/draft.txt",
        b"first draft",
    );
    upload(
        &mut ana,
        &ana_csrf,
        "mine",
        "letters/draft.txt",
        b"second draft",
    );
    // Bo's own folder is his: Ana's file is not in it, and he cannot name hers.
    assert!(names(&listing(&mut bo, "mine", "letters")).is_empty());
    assert_eq!(bo.get("/files/mine/get?path=letters/draft.txt").status, 404);
    assert_eq!(
        bo.get("/api/files/ana/content?path=letters/draft.txt")
            .status,
        404
    );
    assert_eq!(
        names(&listing(&mut ana, "mine", "letters")),
        ["letters/draft.txt"]
    );

    // Two versions; the first can be made current again.
    let versions = ana
        .get("/api/files/mine/versions?path=letters/draft.txt")
        .json();
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        (
            versions[0]["current"].clone(),
            versions[1]["available"].clone()
        ),
        (json!(true), json!(true))
    );
    let first = versions[1]["entry"].as_str().unwrap();
    let r = ana.form(
        "/files/mine/versions/restore",
        &[
            ("csrf", &ana_csrf),
            ("path", "letters/draft.txt"),
            ("entry", first),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        ana.get("/files/mine/get?path=letters/draft.txt").body,
        b"first draft"
    );
    let r = ana.api(
        "POST",
        "/api/files/mine/versions/restore",
        &ana_csrf,
        &json!({"path": "letters/draft.txt", "entry": "not-an-id"}),
    );
    assert_eq!(r.status, 400);

    // Shared with the community: Bo now sees it there.
    let r = ana.form(
        "/files/mine/share",
        &[("csrf", &ana_csrf), ("path", "letters/draft.txt")],
    );
    assert_eq!(r.status, 303);
    assert_eq!(
        bo.get("/files/community/get?path=letters/draft.txt").body,
        b"first draft"
    );

    // Removed by Bo: in the community's trash, and back with "restore".
    let r = bo.send(
        "DELETE",
        b"/api/files/community/content?path=letters/draft.txt",
        &[("X-CSRF-Token", &bo_csrf)],
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        bo.get("/files/community/get?path=letters/draft.txt").status,
        404
    );
    let trash = ana.get("/api/files/community/trash").json();
    assert_eq!(trash[0]["path"], "letters/draft.txt");
    let r = ana.form(
        "/files/community/restore",
        &[("csrf", &ana_csrf), ("path", "letters/draft.txt")],
    );
    assert_eq!(r.status, 303);
    assert_eq!(
        bo.get("/files/community/get?path=letters/draft.txt").body,
        b"first draft"
    );
    assert!(ana
        .get("/api/files/community/trash")
        .json()
        .as_array()
        .unwrap()
        .is_empty());

    // The pages show what the API says.
    let page = ana.get("/files/community?folder=letters").text();
    assert!(
        page.contains("draft.txt") && page.contains("Versions"),
        "{page}"
    );
    assert!(ana
        .get("/files/community/versions?path=letters/draft.txt")
        .text()
        .contains("current"));
    assert_eq!(ana.get("/files/community/trash").status, 200);
}

#[test]
fn the_plain_form_uploads_without_the_script_and_cleans_names() {
    let community = Community::start();
    let (mut ana, ana_csrf, _bo, _) = community.with_member("bo");
    let (content_type, body) = multipart(
        &[],
        &[
            ("file", "../../etc/passwd", b"not a password file"),
            ("file", "notes.txt", b"notes"),
        ],
    );
    let r = ana.send(
        "POST",
        format!("/files/community/upload?folder=docs&csrf={ana_csrf}").as_bytes(),
        &[("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/files/community?folder=docs"));
    assert_eq!(
        names(&listing(&mut ana, "community", "docs")),
        ["docs/notes.txt", "docs/passwd"]
    );
    assert_eq!(
        ana.get("/files/community/get?path=docs/passwd").body,
        b"not a password file"
    );
    // Nothing stayed behind in the uploads folder.
    let uploads = community.archive.data_dir().join("uploads");
    assert_eq!(std::fs::read_dir(uploads).unwrap().count(), 0);
}

#[test]
fn hostile_names_sizes_ids_and_parts_get_a_clear_4xx_and_store_nothing() {
    let community = Community::start_with_settings(
        "ana",
        r#""files_max_bytes": 4194304, "files_person_quota_bytes": 6291456"#,
    );
    let (mut ana, ana_csrf, _bo, _) = community.with_member("bo");
    upload(&mut ana, &ana_csrf, "community", "keep.txt", b"keep");
    let before = listing(&mut ana, "community", "");

    // Paths that leave the folder, or are not paths.
    for bad in [
        "../escape.txt",
        "a/../../escape.txt",
        "/etc/passwd",
        "a//b",
        "x/..",
        "bad\u{1}name",
    ] {
        let r = ana.api(
            "POST",
            "/api/files/community/uploads",
            &ana_csrf,
            &json!({"path": bad, "size": 4}),
        );
        assert_eq!(r.status, 400, "{bad:?}: {}", r.text());
        assert!(
            r.json()["error"].as_str().unwrap().contains("invalid key"),
            "{}",
            r.text()
        );
    }
    for bad in ["..", "../..", "a/../.."] {
        let r = ana.get(&format!("/api/files/community?folder={bad}"));
        assert_eq!(r.status, 400, "folder {bad}");
        let r = ana.get(&format!("/files/community?folder={bad}"));
        assert_eq!(r.status, 400, "page folder {bad}");
    }
    let r = ana.get("/api/files/community/content?path=../../store.redb");
    assert_eq!(r.status, 400);
    let (content_type, body) = multipart(&[], &[("file", "x.txt", b"x")]);
    let r = ana.send(
        "POST",
        format!("/files/community/upload?folder=../..&csrf={ana_csrf}").as_bytes(),
        &[("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // Names that are not UTF-8.
    for path in [
        "/api/files/community/content?path=%FF%FE",
        "/api/files/community?folder=%C0%AF",
        "/files/community/get?path=a%FFb",
    ] {
        assert_eq!(ana.get(path).status, 400, "{path}");
    }
    // A share that is not one.
    assert_eq!(ana.get("/api/files/bo").status, 404);
    assert_eq!(ana.get("/api/files/..%2F..").status, 404);

    // Over the file limit, and over the quota (uploads under way count): net.json sets
    // 4 MiB files and a 6 MiB folder for a person.
    let r = ana.api(
        "POST",
        "/api/files/mine/uploads",
        &ana_csrf,
        &json!({"path": "huge.iso", "size": (4u64 << 20) + 1}),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    let r = ana.api(
        "POST",
        "/api/files/mine/uploads",
        &ana_csrf,
        &json!({"path": "big-1.iso", "size": 4u64 << 20}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let big = r.json()["id"].as_str().unwrap().to_owned();
    let r = ana.api(
        "POST",
        "/api/files/mine/uploads",
        &ana_csrf,
        &json!({"path": "big-2.iso", "size": 4u64 << 20}),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("quota"));
    let r = ana.send(
        "DELETE",
        format!("/api/files/uploads/{big}").as_bytes(),
        &[("X-CSRF-Token", &ana_csrf)],
        b"",
    );
    assert_eq!(r.status, 204);

    // The plain form: a file over the limit is cut off at the limit, nothing kept.
    let big = vec![7u8; 5 << 20];
    let (content_type, body) = multipart(&[], &[("file", "big.bin", &big)]);
    let r = ana.send(
        "POST",
        format!("/files/mine/upload?csrf={ana_csrf}").as_bytes(),
        &[("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(r.status, 413, "{}", r.text());

    // Parts: larger than a part may be, past the declared size, at the wrong place, to ids
    // that are not ids.
    let r = ana.api(
        "POST",
        "/api/files/community/uploads",
        &ana_csrf,
        &json!({"path": "small.bin", "size": 10}),
    );
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(put_part(&mut ana, &ana_csrf, &id, 0, &[0; 11]).status, 413);
    assert_eq!(put_part(&mut ana, &ana_csrf, &id, 5, &[0; 2]).status, 409);
    assert_eq!(
        put_part(&mut ana, &ana_csrf, &id, 0, &vec![0; 9 << 20]).status,
        413
    );
    for bad in ["..%2F..%2Fstore.redb", "abcd", &"f".repeat(64)] {
        assert_eq!(
            put_part(&mut ana, &ana_csrf, bad, 0, b"x").status,
            404,
            "{bad}"
        );
    }
    let r = ana.api(
        "POST",
        &format!("/api/files/uploads/{id}/finish"),
        &ana_csrf,
        &json!({}),
    );
    assert_eq!(r.status, 409);
    let r = ana.send(
        "PUT",
        format!("/api/files/uploads/{id}?offset=minus-one").as_bytes(),
        &[("X-CSRF-Token", &ana_csrf)],
        b"x",
    );
    assert_eq!(r.status, 400);
    let r = ana.send(
        "DELETE",
        format!("/api/files/uploads/{id}").as_bytes(),
        &[("X-CSRF-Token", &ana_csrf)],
        b"",
    );
    assert_eq!(r.status, 204);

    // Nothing stored: the folder as before, nothing left in the uploads folder, and other
    // requests served meanwhile.
    assert_eq!(listing(&mut ana, "community", ""), before);
    assert!(listing(&mut ana, "mine", "")["files"]
        .as_array()
        .unwrap()
        .is_empty());
    let uploads = community.archive.data_dir().join("uploads");
    assert_eq!(std::fs::read_dir(uploads).unwrap().count(), 0);
    assert_eq!(ana.get("/files/community/get?path=keep.txt").body, b"keep");
}
