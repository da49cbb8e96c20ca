//! The peers page's API over HTTP: two community servers on 127.0.0.1 pair by ticket (one
//! with the form, one with the API), one sees what a sync would move, starts it, and the
//! outcome is recorded; bad tickets, names and non-admins are refused.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::web_archive::library;
use crate::web_http::{password_of, Community};
use test_support::http::Client;

/// Waits until `peer`'s last sync of `collection`, as B's peers page reports it, is done.
pub(crate) fn wait_for_sync(c: &mut Client, peer: &str, collection: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = c.get("/api/peers").json();
        let p = view["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == peer)
            .unwrap()
            .clone();
        let running = p["running"].as_array().unwrap();
        if let Some(s) = p["syncs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["collection"] == collection)
        {
            if running.is_empty() {
                return s.clone();
            }
        }
        assert!(Instant::now() < deadline, "no sync recorded: {view}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_servers_pair_by_ticket_and_a_sync_started_from_the_page_completes() {
    let a = Community::start_with("ana");
    library(&a);
    let b = Community::start_with("bo");
    let mut ana = a.client();
    let ana_csrf = ana.sign_in("ana", &password_of("ana"));
    let mut bo = b.client();
    let bo_csrf = bo.sign_in("bo", &password_of("bo"));

    let a_ticket = ana.get("/api/peers").json()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_ticket = bo.get("/api/peers").json()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(a_ticket.starts_with("archive1"), "{a_ticket}");
    // The page shows the ticket as text and as a QR code.
    let page = ana.get("/peers").text();
    assert!(page.contains(&a_ticket) && page.contains("<svg"), "{page}");

    // B pairs with A through the form, A with B through the API.
    let r = bo.form(
        "/peers",
        &[
            ("csrf", &bo_csrf),
            ("ticket", &a_ticket),
            ("name", "hillside"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let r = ana.api(
        "POST",
        "/api/peers",
        &ana_csrf,
        &json!({"ticket": b_ticket, "name": "riverside"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // What a sync would move: A's three files come here, nothing goes there.
    let r = bo.get("/api/peers/hillside/diff?collection=library");
    assert_eq!(r.status, 200, "{}", r.text());
    let moved = r.json();
    assert_eq!(moved["they_have"]["files"], 3, "{moved}");
    assert_eq!(moved["we_have"]["entries"], 0, "{moved}");
    assert!(bo
        .get("/peers/hillside/diff?collection=library")
        .text()
        .contains("A sync would bring here"));

    // Sync now, from the page's form; its outcome is recorded and shown.
    let r = bo.form(
        "/peers/hillside/sync",
        &[("csrf", &bo_csrf), ("collection", "library")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let done = wait_for_sync(&mut bo, "hillside", "library");
    assert_eq!(done["error"], serde_json::Value::Null, "{done}");
    assert!(done["entries_received"].as_u64().unwrap() >= 3, "{done}");
    let files = bo.get("/api/archive/folder?c=library&folder=docs").json();
    let paths: Vec<&str> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["docs/a.txt", "docs/c.txt"]);
    assert_eq!(
        bo.get("/archive/get?c=library&path=docs/a.txt").body,
        b"second a, longer"
    );
    let moved = bo.get("/api/peers/hillside/diff?collection=library").json();
    assert_eq!(
        (
            moved["they_have"]["entries"].clone(),
            moved["we_have"]["entries"].clone()
        ),
        (json!(0), json!(0)),
        "{moved}"
    );
    assert!(bo.get("/peers").text().contains("synced"));

    // The CLI's syncs are recorded in the same place, and `archive peer ls` shows them.
    b.archive.ok(&["sync", "hillside", "-c", "library"]);
    let view = bo.get("/api/peers").json();
    assert_eq!(view["peers"][0]["syncs"][0]["collection"], "library");
    let listed = b.archive.json(&["peer", "ls"]);
    assert_eq!(listed[0]["name"], "hillside");
    assert_eq!(listed[0]["syncs"][0]["collection"], "library");
    assert_eq!(listed[0]["syncs"][0]["error"], serde_json::Value::Null);
    let text = b.archive.ok(&["peer", "ls"]);
    assert!(text.contains("  library: synced "), "{text}");
    // `archive status`, through the running server.
    let status = b.archive.json(&["status"]);
    assert_eq!(status["serving"], true, "{status}");
    assert_eq!(status["peers"][0]["syncs"][0]["collection"], "library");
    assert!(status["bytes_free"].as_u64().unwrap() > 0);
    let text = b.archive.ok(&["status"]);
    assert!(
        text.contains("running")
            && text.contains("peer hillside:")
            && text.contains("library: synced"),
        "{text}"
    );

    // Unpairing forgets the peer and its record.
    let r = ana.send(
        "DELETE",
        b"/api/peers/riverside",
        &[("X-CSRF-Token", &ana_csrf)],
        b"",
    );
    assert_eq!(r.status, 204);
    assert!(ana.get("/api/peers").json()["peers"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn bad_tickets_names_and_members_are_refused_and_nothing_is_paired() {
    let a = Community::start_with("ana");
    let b = Community::start_with("bo");
    let (mut ana, ana_csrf, mut cy, cy_csrf) = a.with_member("cy");
    let own = ana.get("/api/peers").json()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_ticket = b.ticket().to_owned();
    let cases: &[(serde_json::Value, &str)] = &[
        (json!({"ticket": "archive1notaticket"}), "ticket"),
        (json!({"ticket": ""}), "neither"),
        (json!({"ticket": "x".repeat(100_000)}), ""),
        (json!({"ticket": own}), "own id"),
        (
            json!({"ticket": b_ticket, "name": "bad name!"}),
            "peer name",
        ),
        (json!({"ticket": b_ticket, "name": "../../x"}), "peer name"),
    ];
    for (body, says) in cases {
        let r = ana.api("POST", "/api/peers", &ana_csrf, body);
        assert!(
            r.status == 400 || r.status == 413,
            "{body}: {} {}",
            r.status,
            r.text()
        );
        assert!(r.text().contains(says), "{body}: {}", r.text());
    }
    assert!(ana.get("/api/peers").json()["peers"]
        .as_array()
        .unwrap()
        .is_empty());
    // Paired once; the same server again, or the same name, is refused.
    let r = ana.api(
        "POST",
        "/api/peers",
        &ana_csrf,
        &json!({"ticket": b_ticket, "name": "riverside"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = ana.api(
        "POST",
        "/api/peers",
        &ana_csrf,
        &json!({"ticket": b_ticket, "name": "other"}),
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("paired already"), "{}", r.text());
    // Syncs and diffs of unknown peers or bad collection names.
    for (method, path, body) in [
        (
            "POST",
            "/api/peers/nosuch/sync",
            json!({"collection": "library"}),
        ),
        (
            "POST",
            "/api/peers/riverside/sync",
            json!({"collection": "../x"}),
        ),
        (
            "GET",
            "/api/peers/nosuch/diff?collection=library",
            json!({}),
        ),
        ("GET", "/api/peers/riverside/diff?collection=..", json!({})),
        ("DELETE", "/api/peers/nosuch", json!({})),
    ] {
        let r = ana.api(method, path, &ana_csrf, &body);
        assert!(
            r.status == 404 || r.status == 400,
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
        assert!(r.json()["error"].is_string());
    }
    // A member is not an admin: no peers page, no pairing, no syncs.
    assert_eq!(cy.get("/api/peers").status, 403);
    assert_eq!(cy.get("/peers").status, 403);
    let r = cy.api(
        "POST",
        "/api/peers",
        &cy_csrf,
        &json!({"ticket": b_ticket, "name": "mine"}),
    );
    assert_eq!(r.status, 403);
    let r = cy.api(
        "POST",
        "/api/peers/riverside/sync",
        &cy_csrf,
        &json!({"collection": "library"}),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        ana.get("/api/peers").json()["peers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A sync with a server that is down fails, and the page says why.
    drop(b);
    let r = ana.api(
        "POST",
        "/api/peers/riverside/sync",
        &ana_csrf,
        &json!({"collection": "library"}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let failed = wait_for_sync(&mut ana, "riverside", "library");
    let why = failed["error"].as_str().expect("an error");
    assert!(why.contains("riverside"), "{why}");
    let text = a.archive.ok(&["peer", "ls"]);
    assert!(text.contains("  library: failed "), "{text}");
    assert!(ana.get("/peers").text().contains("failed"));
}
