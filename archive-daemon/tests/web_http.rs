//! The web UI over HTTP, against a real `archive serve`: accounts, sessions, CSRF, the chat
//! API and its live feed, and what a hostile browser or script sends (every refusal a clear
//! 4xx, nothing stored, other people served meanwhile).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use serde_json::json;

use crate::harness::Archive;
use crate::network::Serving;
use test_support::http::{next_event, server_addr, Client};

/// Loopback only, no mDNS: tests must not talk to the host's network.
const NET_JSON: &str = r#"{"mdns": false, "client_bind": "127.0.0.1:0", "timeout_secs": 10}"#;

/// A community server running on 127.0.0.1 with an admin, `ana`.
pub(crate) struct Community {
    pub(crate) archive: Archive,
    /// Held for its lifetime: dropping it stops the server.
    server: Serving,
    pub(crate) addr: SocketAddr,
}

pub(crate) const ANA_PASSWORD: &str = "ana's long password";

/// The password the tests give `name`.
pub(crate) fn password_of(name: &str) -> String {
    format!("{name}'s long password")
}

impl Community {
    pub(crate) fn start() -> Community {
        Community::start_with("ana")
    }

    /// A community server whose first admin is `admin` (password: [`password_of`]).
    pub(crate) fn start_with(admin: &str) -> Community {
        Community::start_with_settings(admin, "")
    }

    /// [`Community::start_with`], with more `net.json` fields (`"name": value, ...`).
    pub(crate) fn start_with_settings(admin: &str, more: &str) -> Community {
        let archive = Archive::initialised();
        let settings = if more.is_empty() {
            NET_JSON.to_owned()
        } else {
            format!("{}, {more}}}", NET_JSON.trim_end_matches('}'))
        };
        std::fs::write(archive.data_dir().join("net.json"), settings).unwrap();
        let server = Serving::start(&archive);
        let addr = server_addr(server.web());
        let community = Community {
            archive,
            server,
            addr,
        };
        // Through the running server: the password travels over its control socket.
        let out = community.user_add(admin, &password_of(admin), true);
        assert!(out.contains(&format!("added {admin} (admin)")), "{out}");
        community
    }

    /// The ticket other servers pair with.
    pub(crate) fn ticket(&self) -> &str {
        self.server.ticket()
    }

    /// `archive user add NAME [--admin]` with the password on stdin; its stdout.
    pub(crate) fn user_add(&self, name: &str, password: &str, admin: bool) -> String {
        let mut args = vec!["user", "add", name];
        if admin {
            args.push("--admin");
        }
        let out = self
            .archive
            .run_with_input(&args, format!("{password}\n").as_bytes());
        assert!(
            out.status.success(),
            "user add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn client(&self) -> Client {
        Client::new(self.addr)
    }

    pub(crate) fn client_at(&self, last_octet: u8) -> Client {
        Client::from_addr(self.addr, IpAddr::from([127, 0, 0, last_octet]))
    }

    /// Ana signed in, an invite made by her, and `name` joined with it: both clients.
    pub(crate) fn with_member(&self, name: &str) -> (Client, String, Client, String) {
        let mut ana = self.client();
        let ana_csrf = ana.sign_in("ana", ANA_PASSWORD);
        let r = ana.api("POST", "/api/invites", &ana_csrf, &json!({}));
        assert_eq!(r.status, 201, "{}", r.text());
        let code = r.json()["code"].as_str().unwrap().to_owned();
        let mut other = self.client();
        let pre = other.pre_token();
        let password = format!("{name}'s password");
        let r = other.form(
            "/join",
            &[
                ("csrf", &pre),
                ("code", &code),
                ("name", name),
                ("display_name", &name.to_uppercase()),
                ("password", &password),
            ],
        );
        assert_eq!(r.status, 303, "join: {}", r.text());
        let other_csrf = other.session_csrf();
        (ana, ana_csrf, other, other_csrf)
    }
}

/// Makes a room through the API; its id.
fn new_room(c: &mut Client, csrf: &str, name: &str) -> String {
    let r = c.api("POST", "/api/rooms", csrf, &json!({ "name": name }));
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

fn first_room(c: &mut Client) -> String {
    let rooms = c.get("/api/rooms").json();
    rooms["rooms"][0]["id"].as_str().unwrap().to_owned()
}

fn message_texts(c: &mut Client, room: &str) -> Vec<String> {
    let r = c.get(&format!("/api/rooms/{room}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn people_join_by_invite_chat_and_the_feed_resumes() {
    let community = Community::start();
    // The first page a newcomer opens sends them to sign in.
    let mut anon = community.client();
    let r = anon.get("/");
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    let r = anon.get("/login");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("<form"), "{}", r.text());

    let (mut ana, ana_csrf, mut bo, bo_csrf) = community.with_member("bo");
    // The invite was single use.
    let rooms = ana.api(
        "POST",
        "/api/rooms",
        &ana_csrf,
        &json!({"name": "garden", "topic": "who waters what"}),
    );
    assert_eq!(rooms.status, 201, "{}", rooms.text());
    let room = rooms.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(first_room(&mut bo), room);

    // Bo's feed, from now.
    let view = bo.get(&format!("/api/rooms/{room}")).json();
    let resume = view["resume"].as_str().unwrap().to_owned();
    let (status, mut feed) = bo.events(&format!("/api/rooms/{room}/events?from={resume}"), &[]);
    assert_eq!(status, 200);

    let sent = ana.api(
        "POST",
        &format!("/api/rooms/{room}/messages"),
        &ana_csrf,
        &json!({"text": "tomatoes <b>need</b> water"}),
    );
    assert_eq!(sent.status, 201, "{}", sent.text());
    let first_id = sent.json()["id"].as_str().unwrap().to_owned();
    let (event, id, data) = next_event(&mut feed);
    assert_eq!(event, "message");
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(data["id"], first_id.as_str());
    assert_eq!(data["message"]["author"], "ana");
    // The page's fragment escapes what people write.
    let html = data["html"].as_str().unwrap();
    assert!(
        html.contains("tomatoes &lt;b&gt;need&lt;/b&gt; water"),
        "{html}"
    );
    let after_first = id.expect("the batch's last event carries the resume token");

    // Bo replies (a form, as without JavaScript), then edits his reply.
    let r = bo.form(
        &format!("/rooms/{room}/send"),
        &[
            ("csrf", &bo_csrf),
            ("text", "I will"),
            ("reply_to", &first_id),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let (_, _, data) = next_event(&mut feed);
    let reply: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(reply["message"]["reply_to"], first_id.as_str());
    let reply_id = reply["id"].as_str().unwrap().to_owned();
    let r = bo.api(
        "PUT",
        &format!("/api/rooms/{room}/messages/{reply_id}"),
        &bo_csrf,
        &json!({"text": "I will, tonight"}),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let (_, _, data) = next_event(&mut feed);
    let edited: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(edited["message"]["edited"], true);

    // A reaction button gives the reaction; the same button takes it back.
    let react = format!("/rooms/{room}/m/{first_id}/react");
    let r = bo.form(&react, &[("csrf", &bo_csrf), ("reaction", "👍")]);
    assert_eq!(r.status, 303, "{}", r.text());
    let (_, _, data) = next_event(&mut feed);
    let reacted: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(reacted["id"], first_id.as_str());
    assert_eq!(reacted["message"]["reactions"]["👍"], 1);
    assert_eq!(reacted["message"]["my_reactions"][0], "👍");
    bo.form(&react, &[("csrf", &bo_csrf), ("reaction", "👍")]);
    let (_, _, data) = next_event(&mut feed);
    let taken: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert!(
        taken["message"]["reactions"]
            .as_object()
            .unwrap()
            .is_empty(),
        "{taken}"
    );
    // Through the API, and a reaction that is not one is refused.
    let reactions = format!("/api/rooms/{room}/messages/{first_id}/reactions");
    let r = bo.api("POST", &reactions, &bo_csrf, &json!({"reaction": "🌱"}));
    assert_eq!(r.status, 204, "{}", r.text());
    let (_, _, data) = next_event(&mut feed);
    assert!(data.contains("🌱"), "{data}");
    let r = bo.api(
        "POST",
        &reactions,
        &bo_csrf,
        &json!({"reaction": "x".repeat(40)}),
    );
    assert_eq!(r.status, 400);
    drop(feed);

    // A dropped connection resumes from Last-Event-ID: what came after it, nothing before.
    let (status, mut feed) = bo.events(
        &format!("/api/rooms/{room}/events"),
        &[("Last-Event-ID", &after_first)],
    );
    assert_eq!(status, 200);
    let (_, _, data) = next_event(&mut feed);
    let again: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        again["id"],
        reply_id.as_str(),
        "the reply came first after the token"
    );

    // Unread counts: Ana has not seen Bo's reply; reading the room marks it.
    // (Reactions are not messages: one unread.)
    let rooms = ana.get("/api/rooms").json();
    assert_eq!(rooms["rooms"][0]["unread"], 1);
    let page = ana.get(&format!("/rooms/{room}"));
    assert_eq!(page.status, 200);
    assert!(page.text().contains("I will, tonight"));
    assert_eq!(ana.get("/api/rooms").json()["rooms"][0]["unread"], 0);

    // Search finds it, for a reader of the room.
    let found = bo.get("/api/search?q=tomato").json();
    assert_eq!(found["hits"][0]["message"]["id"], first_id.as_str());

    // Bo may not edit or delete Ana's message.
    let r = bo.api(
        "PUT",
        &format!("/api/rooms/{room}/messages/{first_id}"),
        &bo_csrf,
        &json!({"text": "forged"}),
    );
    assert!(matches!(r.status, 400 | 403), "{} {}", r.status, r.text());
    assert_eq!(
        message_texts(&mut ana, &room),
        ["tomatoes <b>need</b> water", "I will, tonight"]
    );

    // A direct room: only its two people read it.
    let r = ana.api("POST", "/api/people/bo/direct", &ana_csrf, &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let direct = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        bo.get("/api/rooms").json()["direct"][0]["id"],
        direct.as_str()
    );
    let cy = community.user_add("cy", "cy's password!", false);
    assert!(cy.contains("added cy (member)"), "{cy}");
    let mut cy = community.client();
    cy.sign_in("cy", "cy's password!");
    assert_eq!(cy.get(&format!("/api/rooms/{direct}")).status, 404);
    assert!(cy.get("/api/rooms").json()["direct"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_long_room_shows_its_latest_messages_and_pages_back() {
    let community = Community::start();
    let mut ana = community.client();
    let csrf = ana.sign_in("ana", ANA_PASSWORD);
    let room = new_room(&mut ana, &csrf, "long");
    for n in 0..60 {
        let r = ana.api(
            "POST",
            &format!("/api/rooms/{room}/messages"),
            &csrf,
            &json!({"text": format!("message {n}")}),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let latest = ana.get(&format!("/api/rooms/{room}")).json();
    let texts: Vec<&str> = latest["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 50);
    assert_eq!((texts[0], texts[49]), ("message 10", "message 59"));
    let earlier = latest["earlier"].as_str().unwrap().to_owned();
    let before = ana
        .get(&format!("/api/rooms/{room}?before={earlier}"))
        .json();
    let texts: Vec<&str> = before["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        (0..10).map(|n| format!("message {n}")).collect::<Vec<_>>()
    );
    assert!(before["earlier"].is_null());
    // The page links to the earlier ones, and stays under 100 KB with its 50 messages.
    let page = ana.get(&format!("/rooms/{room}"));
    assert!(page.text().contains(&format!("?before={earlier}")));
    assert!(page.body.len() < 100 * 1024, "{} bytes", page.body.len());
}

#[test]
fn sessions_rotate_end_everywhere_and_end_with_the_person() {
    let community = Community::start();
    let (mut ana, ana_csrf, mut bo, bo_csrf) = community.with_member("bo");
    let old = bo.cookies["archive_session"].clone();
    // Signing in again rotates the session: the old cookie no longer works.
    bo.sign_in("bo", "bo's password");
    assert_ne!(bo.cookies["archive_session"], old);
    let mut stale = community.client();
    stale.cookies.insert("archive_session".into(), old);
    assert_eq!(stale.get("/api/rooms").status, 401);

    // Two devices; "sign out everywhere" ends both.
    let mut phone = community.client();
    phone.sign_in("bo", "bo's password");
    let csrf = bo.session_csrf();
    let r = bo.api("POST", "/api/logout-everywhere", &csrf, &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ended"], 2);
    assert_eq!(phone.get("/api/rooms").status, 401);
    assert_eq!(bo.get("/api/rooms").status, 401);
    let _ = bo_csrf;

    // An admin resets a password: the old one stops working.
    let mut bo = community.client();
    bo.sign_in("bo", "bo's password");
    let r = ana.api(
        "PUT",
        "/api/people/bo/password",
        &ana_csrf,
        &json!({"password": "a brand new one"}),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(bo.get("/api/rooms").status, 401, "a reset ends sessions");
    let pre = bo.pre_token();
    let r = bo.form(
        "/login",
        &[
            ("csrf", &pre),
            ("name", "bo"),
            ("password", "bo's password"),
        ],
    );
    assert_eq!(r.status, 401);
    bo.sign_in("bo", "a brand new one");

    // Removing a person ends their sessions and their sign-in.
    let r = ana.api("DELETE", "/api/people/bo", &ana_csrf, &json!({}));
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(bo.get("/api/rooms").status, 401);
    let pre = bo.pre_token();
    let r = bo.form(
        "/login",
        &[
            ("csrf", &pre),
            ("name", "bo"),
            ("password", "a brand new one"),
        ],
    );
    assert_eq!(r.status, 401);
    // Only an admin runs the admin routes.
    let mut cy_client = community.client();
    community.user_add("cy", "cy's password!", false);
    let cy_csrf = cy_client.sign_in("cy", "cy's password!");
    let r = cy_client.api("POST", "/api/invites", &cy_csrf, &json!({}));
    assert_eq!(r.status, 403);
    assert_eq!(cy_client.get("/admin").status, 403);
    let listed = community.archive.ok(&["user", "ls"]);
    assert!(listed.contains("cy") && !listed.contains("bo "), "{listed}");
}

/// Every route of the UI and the API that needs a session: (method, pattern as in
/// `src/web/mod.rs`, with `?` and a query where the route needs one).
const EVERY_ROUTE: &[(&str, &str)] = &[
    ("GET", "/rooms"),
    ("POST", "/rooms"),
    ("GET", "/rooms/{room}"),
    ("POST", "/rooms/{room}/send"),
    ("POST", "/rooms/{room}/m/{message}/edit"),
    ("POST", "/rooms/{room}/m/{message}/delete"),
    ("POST", "/people/{account}/direct"),
    ("GET", "/rooms/{room}/m/{message}"),
    ("POST", "/rooms/{room}/m/{message}/react"),
    ("POST", "/rooms/{room}/m/{message}/report"),
    ("GET", "/rooms/{room}/m/{message}/files/{index}"),
    ("POST", "/admin/reports/resolve"),
    ("POST", "/admin/people/{account}/role"),
    ("GET", "/search?q=water"),
    ("GET", "/admin"),
    ("POST", "/admin/invites"),
    ("POST", "/admin/invites/{id}/cancel"),
    ("POST", "/admin/people/{account}/remove"),
    ("POST", "/admin/people/{account}/password"),
    ("POST", "/logout"),
    ("POST", "/logout-everywhere"),
    ("POST", "/api/logout"),
    ("POST", "/api/logout-everywhere"),
    ("GET", "/api/rooms"),
    ("POST", "/api/rooms"),
    ("GET", "/api/rooms/{room}"),
    ("POST", "/api/rooms/{room}/messages"),
    ("PUT", "/api/rooms/{room}/messages/{message}"),
    ("DELETE", "/api/rooms/{room}/messages/{message}"),
    ("POST", "/api/rooms/{room}/read"),
    ("POST", "/api/rooms/{room}/messages/{message}/reactions"),
    ("POST", "/api/rooms/{room}/messages/{message}/report"),
    ("GET", "/api/rooms/{room}/messages/{message}/files/{index}"),
    ("GET", "/api/reports"),
    ("POST", "/api/reports/resolve"),
    ("PUT", "/api/people/{account}/role"),
    ("GET", "/api/rooms/{room}/events"),
    ("GET", "/api/people"),
    ("POST", "/api/people/{account}/direct"),
    ("GET", "/api/search?q=water"),
    ("GET", "/api/invites"),
    ("POST", "/api/invites"),
    ("DELETE", "/api/invites/{id}"),
    ("DELETE", "/api/people/{account}"),
    ("PUT", "/api/people/{account}/password"),
    ("GET", "/files"),
    ("GET", "/files/{share}"),
    ("POST", "/files/{share}/upload"),
    ("GET", "/files/{share}/get?path=a"),
    ("POST", "/files/{share}/remove"),
    ("POST", "/files/mine/share"),
    ("GET", "/files/{share}/trash"),
    ("POST", "/files/{share}/restore"),
    ("GET", "/files/{share}/versions?path=a"),
    ("POST", "/files/{share}/versions/restore"),
    ("GET", "/api/files/{share}"),
    ("POST", "/api/files/{share}/uploads"),
    ("GET", "/api/files/uploads/{id}"),
    ("PUT", "/api/files/uploads/{id}"),
    ("DELETE", "/api/files/uploads/{id}"),
    ("POST", "/api/files/uploads/{id}/finish"),
    ("GET", "/api/files/{share}/content?path=a"),
    ("DELETE", "/api/files/{share}/content?path=a"),
    ("GET", "/api/files/{share}/trash"),
    ("POST", "/api/files/{share}/trash/restore"),
    ("GET", "/api/files/{share}/versions?path=a"),
    ("POST", "/api/files/{share}/versions/restore"),
    ("POST", "/api/files/mine/share"),
    ("GET", "/archive"),
    ("GET", "/archive/c?c=library"),
    ("GET", "/archive/diff?c=library"),
    ("GET", "/archive/find?c=library&q=a"),
    ("GET", "/archive/get?c=library&path=a"),
    ("GET", "/archive/zip?c=library"),
    ("POST", "/archive/snapshot"),
    ("GET", "/api/archive"),
    ("GET", "/api/archive/folder?c=library"),
    ("GET", "/api/archive/diff?c=library"),
    ("GET", "/api/archive/find?c=library&q=a"),
    ("GET", "/api/archive/content?c=library&path=a"),
    ("GET", "/api/archive/zip?c=library"),
    ("POST", "/api/archive/snapshots"),
    ("GET", "/peers"),
    ("POST", "/peers"),
    ("POST", "/peers/{name}/sync"),
    ("GET", "/peers/{name}/diff?collection=library"),
    ("POST", "/peers/{name}/remove"),
    ("GET", "/api/peers"),
    ("POST", "/api/peers"),
    ("DELETE", "/api/peers/{name}"),
    ("POST", "/api/peers/{name}/sync"),
    ("GET", "/api/peers/{name}/diff?collection=library"),
];

/// Routes open without a session.
const OPEN_ROUTES: &[&str] = &[
    "/",
    "/login",
    "/join",
    "/app.js",
    "/api/session",
    "/api/login",
    "/api/join",
    "/api/openapi.json",
];

/// A route's pattern with this test's ids in it.
fn concrete(pattern: &str, room: &str, message: &str) -> String {
    pattern
        .replace("{room}", room)
        .replace("{message}", message)
        .replace("{account}", "ana")
        .replace("{id}", "abcd")
        .replace("{index}", "0")
        .replace("{share}", "community")
        .replace("{name}", "nosuch")
}

#[test]
fn the_list_of_routes_is_every_route_the_server_has() {
    // The router's source, pattern by pattern: a new route must be listed above, so the
    // tests below try it without a session and without its token.
    let source = include_str!("../src/web/mod.rs");
    let mut served: Vec<&str> = source
        .split(".route(")
        .skip(1)
        .filter_map(|r| r.split('"').nth(1))
        .collect();
    served.sort_unstable();
    served.dedup();
    let mut listed: Vec<&str> = EVERY_ROUTE
        .iter()
        .map(|(_, p)| p.split('?').next().unwrap())
        .chain(OPEN_ROUTES.iter().copied())
        .collect();
    listed.sort_unstable();
    listed.dedup();
    assert_eq!(served, listed);
}

#[test]
fn nothing_but_sign_in_and_join_without_a_session_and_no_change_without_its_token() {
    let community = Community::start();
    let (mut ana, ana_csrf, _bo, bo_csrf) = community.with_member("bo");
    let room = new_room(&mut ana, &ana_csrf, "garden");
    let sent = ana.api(
        "POST",
        &format!("/api/rooms/{room}/messages"),
        &ana_csrf,
        &json!({"text": "water"}),
    );
    let message = sent.json()["id"].as_str().unwrap().to_owned();
    let json_body = br#"{"text":"x","name":"x","password":"xxxxxxxxxx","message":"x"}"#;
    let form_body = b"text=x&name=x&password=xxxxxxxxxx";

    // Each route from its own address: the test's own burst stays under the rate limit.
    for (i, (method, pattern)) in EVERY_ROUTE.iter().copied().enumerate() {
        let path = concrete(pattern, &room, &message);
        let mut ana = ana.at(10 + i as u8);
        // No session: pages send the browser to sign in; the API says 401; a change is
        // refused before anything (no token).
        let mut anon = community.client_at(10 + i as u8);
        let r = anon.send(
            method,
            path.as_bytes(),
            &[("Content-Type", "application/json")],
            json_body,
        );
        let expected: &[u16] = match (method, path.starts_with("/api/")) {
            ("GET", false) => &[303],
            ("GET", true) => &[401],
            _ => &[403],
        };
        assert!(
            expected.contains(&r.status),
            "{method} {path} without a session: {}",
            r.status
        );
        if r.status == 303 {
            assert_eq!(r.header("location"), Some("/login"), "{method} {path}");
        }
        if method == "GET" {
            continue;
        }
        // Signed in, but no token, a wrong one, or another session's: 403.
        let wrong = "0".repeat(ana_csrf.len());
        for token in [None, Some(wrong.as_str()), Some(bo_csrf.as_str())] {
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(t) = token {
                headers.push(("X-CSRF-Token", t));
            }
            let r = ana.send(method, path.as_bytes(), &headers, json_body);
            assert_eq!(
                r.status,
                403,
                "{method} {path} with token {token:?}: {}",
                r.text()
            );
            // A form without the field, or with a wrong one.
            let mut body = form_body.to_vec();
            if let Some(t) = token {
                body.extend_from_slice(format!("&csrf={t}").as_bytes());
            }
            let r = ana.send(
                method,
                path.as_bytes(),
                &[("Content-Type", "application/x-www-form-urlencoded")],
                &body,
            );
            assert_eq!(r.status, 403, "{method} {path} form with token {token:?}");
        }
    }
    // Nothing changed: the one message, both people, Ana still signed in and an admin.
    assert_eq!(message_texts(&mut ana, &room), ["water"]);
    let people = ana.get("/api/people").json();
    assert_eq!(people.as_array().unwrap().len(), 2, "{people}");
    assert!(ana
        .get("/api/invites")
        .json()
        .as_array()
        .unwrap()
        .is_empty());
    // The sign-in form itself needs its pre-session token.
    let mut anon = community.client();
    let r = anon.form("/login", &[("name", "ana"), ("password", ANA_PASSWORD)]);
    assert_eq!(r.status, 403);
    assert!(!anon.cookies.contains_key("archive_session"));
}

#[test]
fn bad_input_gets_a_clear_4xx_and_stores_nothing() {
    let community = Community::start();
    let (mut ana, csrf, _bo, _) = community.with_member("bo");
    let room = new_room(&mut ana, &csrf, "garden");
    let send_path = format!("/api/rooms/{room}/messages");
    let json_h = [
        ("Content-Type", "application/json"),
        ("X-CSRF-Token", csrf.as_str()),
    ];
    let form_h = [("Content-Type", "application/x-www-form-urlencoded")];

    // (method, path, headers, body, the statuses that are right)
    type Case<'a> = (
        &'a str,
        Vec<u8>,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        &'a [u16],
    );
    let cases: Vec<Case<'_>> = vec![
        // Invalid UTF-8 in a JSON body, a form body and a path.
        (
            "POST",
            send_path.clone().into_bytes(),
            json_h.to_vec(),
            b"{\"text\":\"\xff\xfe\"}".to_vec(),
            &[400],
        ),
        (
            "POST",
            format!("/rooms/{room}/send").into_bytes(),
            form_h.to_vec(),
            format!("csrf={csrf}&text=%FF%FE").into_bytes(),
            &[400, 422],
        ),
        (
            "GET",
            b"/api/rooms/\xff\xfe".to_vec(),
            vec![],
            vec![],
            &[400, 404],
        ),
        (
            "GET",
            b"/api/rooms/%FF%FE".to_vec(),
            vec![],
            vec![],
            &[400, 404],
        ),
        // Path traversal and made-up ids.
        (
            "GET",
            b"/api/rooms/..%2F..%2Fetc%2Fpasswd".to_vec(),
            vec![],
            vec![],
            &[404],
        ),
        (
            "GET",
            b"/rooms/../../etc/passwd".to_vec(),
            vec![],
            vec![],
            &[404],
        ),
        ("GET", b"/api/rooms/nope".to_vec(), vec![], vec![], &[404]),
        (
            "PUT",
            format!("/api/rooms/{room}/messages/..%2Fx").into_bytes(),
            json_h.to_vec(),
            br#"{"text":"x"}"#.to_vec(),
            &[404],
        ),
        // Bodies: too large, not JSON, wrong shape, empty text, over the message limit.
        (
            "POST",
            send_path.clone().into_bytes(),
            json_h.to_vec(),
            vec![b'a'; 70_000],
            &[413],
        ),
        (
            "POST",
            send_path.clone().into_bytes(),
            json_h.to_vec(),
            b"not json".to_vec(),
            &[400],
        ),
        (
            "POST",
            send_path.clone().into_bytes(),
            json_h.to_vec(),
            br#"{"txet":"x"}"#.to_vec(),
            &[422],
        ),
        (
            "POST",
            send_path.clone().into_bytes(),
            json_h.to_vec(),
            br#"{"text":"   "}"#.to_vec(),
            &[400],
        ),
        (
            "POST",
            send_path.clone().into_bytes(),
            json_h.to_vec(),
            serde_json::to_vec(&json!({"text": "x".repeat(9000)})).unwrap(),
            &[400],
        ),
        (
            "POST",
            send_path.clone().into_bytes(),
            json_h.to_vec(),
            br#"{"text":"hi","reply_to":"not-a-message"}"#.to_vec(),
            &[404],
        ),
        // Queries and feed tokens.
        (
            "GET",
            format!("/api/search?q={}", "w".repeat(300)).into_bytes(),
            vec![],
            vec![],
            &[400],
        ),
        (
            "GET",
            b"/api/search?q=water&after=-x".to_vec(),
            vec![],
            vec![],
            &[400],
        ),
        (
            "GET",
            format!("/api/rooms/{room}/events?from=1.x").into_bytes(),
            vec![],
            vec![],
            &[400],
        ),
        // A room with no name; a password too short for an admin reset.
        (
            "POST",
            b"/api/rooms".to_vec(),
            json_h.to_vec(),
            br#"{"name":""}"#.to_vec(),
            &[400],
        ),
        (
            "PUT",
            b"/api/people/bo/password".to_vec(),
            json_h.to_vec(),
            br#"{"password":"short"}"#.to_vec(),
            &[400],
        ),
    ];
    for (method, path, headers, body, expected) in cases {
        let r = ana.send(method, &path, &headers, &body);
        let shown = String::from_utf8_lossy(&path);
        assert!(
            expected.contains(&r.status),
            "{method} {shown}: {} {}",
            r.status,
            r.text()
        );
    }
    // Joining: a bad name, a short password, a used or made-up code: refused, and a bad
    // attempt does not use up the invite.
    let code = ana.api("POST", "/api/invites", &csrf, &json!({})).json()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut newcomer = community.client_at(9);
    let pre = newcomer.pre_token();
    for (name, password, code) in [
        ("../../etc", "long enough pw", code.as_str()),
        ("dee", "short", code.as_str()),
        ("dee", "long enough pw", "made-up-code"),
        ("ana", "long enough pw", code.as_str()),
    ] {
        let r = newcomer.form(
            "/join",
            &[
                ("csrf", &pre),
                ("code", code),
                ("name", name),
                ("password", password),
            ],
        );
        assert!(
            matches!(r.status, 400 | 403 | 404),
            "join {name}/{code}: {}",
            r.status
        );
        assert!(!newcomer.cookies.contains_key("archive_session"));
    }
    let r = newcomer.form(
        "/join",
        &[
            ("csrf", &pre),
            ("code", &code),
            ("name", "dee"),
            ("password", "long enough pw"),
        ],
    );
    assert_eq!(r.status, 303, "the invite still works: {}", r.text());
    // Nothing of the refused requests was stored.
    assert!(message_texts(&mut ana, &room).is_empty());
    let names: Vec<String> = ana
        .get("/api/people")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["ana", "bo", "dee"]);
    assert_eq!(
        ana.get("/api/rooms").json()["rooms"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_flood_from_one_address_is_refused_while_others_are_served() {
    let community = Community::start();
    community.user_add("bo", "bo's password", false);
    // A password-guessing flood on Ana from one address: the address is stopped after a
    // few tries (10 a minute), and so are tries at Ana's account from anywhere (5 a minute).
    let mut guesser = community.client_at(2);
    let mut statuses = Vec::new();
    for i in 0..14 {
        let pre = guesser.pre_token();
        let guess = format!("guess number {i}");
        let r = guesser.form(
            "/login",
            &[("csrf", &pre), ("name", "ana"), ("password", &guess)],
        );
        statuses.push(r.status);
    }
    assert!(
        statuses.iter().all(|s| matches!(s, 401 | 429)),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    // Ana's right password is refused for now too (her account is being guessed at)...
    let mut ana = community.client_at(3);
    let pre = ana.pre_token();
    let r = ana.form(
        "/login",
        &[("csrf", &pre), ("name", "ana"), ("password", ANA_PASSWORD)],
    );
    assert_eq!(r.status, 429);
    // ...while Bo, from another address, signs in and is served.
    let mut bo = community.client_at(4);
    let bo_csrf = bo.sign_in("bo", "bo's password");
    assert_eq!(bo.get("/api/rooms").status, 200);

    // A request flood from one address: refused with 429 past its burst; others served.
    let mut flooder = community.client_at(5);
    let mut refused = 0;
    for _ in 0..400 {
        if flooder.get("/login").status == 429 {
            refused += 1;
        }
    }
    assert!(refused > 100, "only {refused} of 400 refused");
    let r = bo.api(
        "POST",
        "/api/rooms",
        &bo_csrf,
        &json!({"name": "still here"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(bo.get("/api/rooms").status, 200);
}

/// A multipart body: text fields, then files as (field name, file name, bytes).
pub(crate) fn multipart(
    fields: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> (String, Vec<u8>) {
    let boundary = "----archive-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    for (field, file, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn files_sent_with_a_message_come_back_whole_and_never_run_as_pages() {
    let community = Community::start();
    let (mut ana, csrf, mut bo, _bo_csrf) = community.with_member("bo");
    let room = new_room(&mut ana, &csrf, "photos");
    let photo: Vec<u8> = (0..3_000_000u64).map(|i| (i * 7919 % 251) as u8).collect();
    let page = b"<html><script>alert(document.cookie)</script></html>".to_vec();
    let (content_type, body) = multipart(
        &[("text", "the garden today")],
        &[
            ("file", "garden.JPG", &photo),
            ("file", "../../evil.html", &page),
        ],
    );
    let send = format!("/rooms/{room}/send?csrf={csrf}");
    let r = ana.send(
        "POST",
        send.as_bytes(),
        &[("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(r.status, 303, "{}", r.text());

    let view = bo.get(&format!("/api/rooms/{room}")).json();
    let message = &view["messages"][0];
    assert_eq!(message["text"], "the garden today");
    let names: Vec<&str> = message["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["garden.JPG", "evil.html"], "names lose their path");
    let id = message["id"].as_str().unwrap();
    // The photo, byte for byte, as an image; the page only as a download that cannot run.
    let got = bo.get(&format!("/rooms/{room}/m/{id}/files/0"));
    assert_eq!(got.status, 200);
    assert_eq!(got.body, photo);
    assert_eq!(got.header("content-type"), Some("image/jpeg"));
    let got = bo.get(&format!("/api/rooms/{room}/messages/{id}/files/1"));
    assert_eq!(got.body, page);
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert!(got
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment"));
    assert!(got
        .header("content-security-policy")
        .unwrap()
        .contains("sandbox"));
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(bo.get(&format!("/rooms/{room}/m/{id}/files/2")).status, 404);
    let html = bo.get(&format!("/rooms/{room}")).text();
    assert!(
        html.contains(&format!("<img src=\"/rooms/{room}/m/{id}/files/0\"")),
        "{html}"
    );

    // Refused, with nothing stored: no token in the address, a wrong one, files over the
    // limit, too many files; and someone who may not read the room cannot fetch its files.
    let big = vec![7u8; 8 * 1024 * 1024 + 1];
    let (ct_big, body_big) = multipart(&[("text", "too big")], &[("file", "big.bin", &big)]);
    let many: Vec<(&str, &str, &[u8])> = (0..17).map(|_| ("file", "x.txt", &b"x"[..])).collect();
    let (ct_many, body_many) = multipart(&[("text", "too many")], &many);
    for (path, ct, body, expected) in [
        (format!("/rooms/{room}/send"), &content_type, &body, 403),
        (
            format!("/rooms/{room}/send?csrf=wrong"),
            &content_type,
            &body,
            403,
        ),
        (send.clone(), &ct_big, &body_big, 413),
        (send.clone(), &ct_many, &body_many, 400),
    ] {
        let r = ana.send("POST", path.as_bytes(), &[("Content-Type", ct)], body);
        assert_eq!(r.status, expected, "{path}: {}", r.text());
    }
    assert_eq!(
        ana.get(&format!("/api/rooms/{room}")).json()["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let direct = ana
        .api("POST", "/api/people/bo/direct", &csrf, &json!({}))
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ct, body) = multipart(&[("text", "for bo")], &[("file", "secret.png", b"png")]);
    let r = ana.send(
        "POST",
        format!("/rooms/{direct}/send?csrf={csrf}").as_bytes(),
        &[("Content-Type", &ct)],
        &body,
    );
    assert_eq!(r.status, 303);
    let secret = ana.get(&format!("/api/rooms/{direct}")).json()["messages"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    community.user_add("cy", "cy's password!", false);
    let mut cy = community.client();
    cy.sign_in("cy", "cy's password!");
    assert_eq!(
        cy.get(&format!("/rooms/{direct}/m/{secret}/files/0"))
            .status,
        404
    );
    assert_eq!(
        bo.get(&format!("/rooms/{direct}/m/{secret}/files/0")).body,
        b"png"
    );
}

#[test]
fn reports_reach_the_admin_and_roles_change_only_by_an_admin() {
    let community = Community::start();
    let (mut ana, ana_csrf, mut bo, bo_csrf) = community.with_member("bo");
    let room = new_room(&mut ana, &ana_csrf, "square");
    let sent = bo.api(
        "POST",
        &format!("/api/rooms/{room}/messages"),
        &bo_csrf,
        &json!({"text": "buy my pills"}),
    );
    let message = sent.json()["id"].as_str().unwrap().to_owned();
    community.user_add("cy", "cy's password!", false);
    let mut cy = community.client();
    let cy_csrf = cy.sign_in("cy", "cy's password!");
    // Cy reports it from the message's page (a form).
    let page = cy.get(&format!("/rooms/{room}/m/{message}"));
    assert!(page.text().contains("/report\""), "{}", page.text());
    let r = cy.form(
        &format!("/rooms/{room}/m/{message}/report"),
        &[("csrf", &cy_csrf), ("reason", "spam")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    // A reason over the limit, or a message that is not there: refused, nothing queued.
    let long = "x".repeat(501);
    let r = cy.form(
        &format!("/rooms/{room}/m/{message}/report"),
        &[("csrf", &cy_csrf), ("reason", &long)],
    );
    assert_eq!(r.status, 400);
    let bogus = message.replacen("0", "1", 1);
    let r = cy.api(
        "POST",
        &format!("/api/rooms/{room}/messages/{bogus}/report"),
        &cy_csrf,
        &json!({"reason": "x"}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    // Only an admin sees the queue.
    assert_eq!(cy.get("/api/reports").status, 403);
    let queue = ana.get("/api/reports").json();
    assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");
    assert_eq!(queue[0]["by"], "cy");
    assert_eq!(queue[0]["reason"], "spam");
    assert_eq!(queue[0]["text"], "buy my pills");
    assert!(ana.get("/admin").text().contains("buy my pills"));
    let key = queue[0]["key"].as_str().unwrap();
    let r = ana.form(
        "/admin/reports/resolve",
        &[("csrf", &ana_csrf), ("key", key), ("note", "deleted it")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(ana
        .get("/api/reports")
        .json()
        .as_array()
        .unwrap()
        .is_empty());

    // Roles: an admin makes Bo a moderator; a made-up role is refused; Bo (not an admin)
    // cannot give himself more.
    let r = ana.form(
        "/admin/people/bo/role",
        &[("csrf", &ana_csrf), ("role", "moderator")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let role_of = |c: &mut test_support::http::Client, name: &str| {
        c.get("/api/people")
            .json()
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["role"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(role_of(&mut ana, "bo"), "moderator");
    let r = ana.api(
        "PUT",
        "/api/people/bo/role",
        &ana_csrf,
        &json!({"role": "king"}),
    );
    assert_eq!(r.status, 400);
    let r = bo.api(
        "PUT",
        "/api/people/bo/role",
        &bo_csrf,
        &json!({"role": "admin"}),
    );
    assert_eq!(r.status, 403);
    // The last admin stays one.
    let r = ana.api(
        "PUT",
        "/api/people/ana/role",
        &ana_csrf,
        &json!({"role": "member"}),
    );
    assert!(matches!(r.status, 400 | 403), "{} {}", r.status, r.text());
    assert_eq!(role_of(&mut ana, "ana"), "admin");
    assert_eq!(role_of(&mut ana, "bo"), "moderator");
}

#[test]
fn the_first_start_creates_the_store_and_says_how_to_make_the_first_admin() {
    // The README's first command on a fresh machine: no `init`, no folder yet.
    let archive = Archive::new();
    assert!(!archive.data_dir().exists());
    let server = Serving::spawn(archive.command(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--no-mdns",
    ]));
    let printed = server.printed();
    assert!(printed.contains("created a new store in"), "{printed}");
    assert!(printed.contains("No one can sign in yet"), "{printed}");
    assert!(
        printed.contains("archive user add NAME --admin"),
        "{printed}"
    );
    // The address it printed serves the sign-in page.
    let addr = server_addr(server.web());
    let mut browser = Client::new(addr);
    let r = browser.get("/");
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    assert_eq!(browser.get("/login").status, 200);
    // The step it printed works, and the admin signs in.
    let community = Community {
        archive,
        server,
        addr,
    };
    community.user_add("ana", ANA_PASSWORD, true);
    let mut ana = community.client();
    ana.sign_in("ana", ANA_PASSWORD);
    assert_eq!(ana.get("/admin").status, 200);
}

#[test]
fn two_community_servers_paired_while_running_share_a_room_live() {
    let a = Community::start_with("ana");
    let b = Community::start_with("bo");
    // Paired while both run: the servers take the new peer into live delivery at once.
    a.archive.ok(&["peer", "add", b.ticket(), "--name", "b"]);
    b.archive.ok(&["peer", "add", a.ticket(), "--name", "a"]);
    let mut ana = a.client();
    let ana_csrf = ana.sign_in("ana", &password_of("ana"));
    // The new-room form offers the paired server.
    assert!(ana
        .get("/rooms")
        .text()
        .contains("name=\"share_with\" value=\"b\""));
    let r = ana.api(
        "POST",
        "/api/rooms",
        &ana_csrf,
        &json!({"name": "between us", "share_with": ["b"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let room = r.json()["id"].as_str().unwrap().to_owned();
    let r = ana.api(
        "POST",
        "/api/rooms",
        &ana_csrf,
        &json!({"name": "x", "share_with": ["nobody"]}),
    );
    assert_eq!(r.status, 400, "an unknown server is refused: {}", r.text());

    // The room reaches B; Bo, on B, reads it and follows it live.
    let mut bo = b.client();
    let bo_csrf = bo.sign_in("bo", &password_of("bo"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while bo.get(&format!("/api/rooms/{room}")).status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the room never reached B"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let resume = bo.get(&format!("/api/rooms/{room}")).json()["resume"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, mut feed) = bo.events(&format!("/api/rooms/{room}/events?from={resume}"), &[]);
    assert_eq!(status, 200);
    let r = ana.api(
        "POST",
        &format!("/api/rooms/{room}/messages"),
        &ana_csrf,
        &json!({"text": "hello from A"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let (_, _, data) = next_event(&mut feed);
    let got: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(got["message"]["text"], "hello from A");
    assert!(
        got["message"]["author"]
            .as_str()
            .unwrap()
            .starts_with("ana@"),
        "{got}"
    );
    // Bo answers from B; Ana reads it on A.
    let r = bo.api(
        "POST",
        &format!("/api/rooms/{room}/messages"),
        &bo_csrf,
        &json!({"text": "hello from B"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    while !message_texts(&mut ana, &room).contains(&"hello from B".to_owned()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the answer never reached A"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn the_api_description_covers_every_api_route_and_method() {
    let community = Community::start();
    // Open without a session: it is documentation, with no data in it.
    let r = community.client().get("/api/openapi.json");
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    // Every /api/ route of the router, with each of its methods, is described.
    let source = include_str!("../src/web/mod.rs");
    // The routes end where the router's fallback begins.
    let source = source.split(".fallback(").next().unwrap();
    let mut checked = 0;
    for route in source.split(".route(").skip(1) {
        let path = route.split('"').nth(1).unwrap();
        if !path.starts_with("/api/") || path == "/api/openapi.json" {
            continue;
        }
        for method in ["get", "post", "put", "delete"] {
            let called =
                route.contains(&format!("{method}(")) || route.contains(&format!(".{method}("));
            if !called {
                continue;
            }
            let operation = paths
                .get(path)
                .and_then(|p| p.get(method))
                .unwrap_or_else(|| panic!("{method} {path} is not in the API's description"));
            // OpenAPI requires a description of every response.
            for (status, response) in operation["responses"].as_object().unwrap() {
                assert!(
                    response["description"].is_string(),
                    "{method} {path} {status}: no description"
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 25,
        "only {checked} routes found: the source was not read right"
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "RoomView",
        "MessageView",
        "NewMessage",
        "ErrorBody",
        "InviteInfo",
    ] {
        assert!(schemas.contains_key(name), "no schema {name}");
    }
}

#[test]
fn a_client_that_sends_its_headers_too_slowly_is_cut_off_while_others_are_served() {
    use std::io::Read;
    let community = Community::start();
    // Twenty connections that send part of a request line, then nothing.
    let slow: Vec<std::net::TcpStream> = (0..20)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(community.addr).unwrap();
            s.write_all(b"GET /login HTTP/1.1\r\nHo").unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
            s
        })
        .collect();
    // Others are served meanwhile.
    let started = std::time::Instant::now();
    assert_eq!(community.client().get("/login").status, 200);
    // Each slow one is closed after the header timeout (10 s), well before the test's 30.
    for mut s in slow {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(9) && waited < std::time::Duration::from_secs(25),
        "closed after {waited:?}"
    );
    assert_eq!(community.client().get("/login").status, 200);
}
