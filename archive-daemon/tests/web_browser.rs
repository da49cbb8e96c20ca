//! The web UI in a real browser: Debian's chromium, headless, 360 pixels wide (a small
//! phone), driven through chromedriver, against a real `archive serve`. Each step writes a
//! screenshot to `target/tmp/screenshots/` (to be looked at).
//!
//! Without chromedriver the tests say so and pass, except under CI (`CI` set), where
//! `.ci/run` installs it and its absence fails them.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::web_http::{password_of, Community, ANA_PASSWORD};

/// A 48 x 32 green PNG.
const GREEN_PNG: &[u8] = &[
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 48, 0, 0, 0, 32, 8, 2,
    0, 0, 0, 219, 182, 108, 75, 0, 0, 0, 49, 73, 68, 65, 84, 120, 218, 237, 206, 65, 13, 0, 0, 8,
    4, 160, 139, 99, 18, 51, 25, 223, 22, 206, 7, 27, 1, 72, 77, 191, 18, 33, 33, 33, 33, 33, 33,
    33, 33, 33, 33, 33, 33, 33, 33, 33, 33, 161, 75, 11, 123, 4, 100, 76, 89, 4, 136, 96, 0, 0, 0,
    0, 73, 69, 78, 68, 174, 66, 96, 130,
];

/// Widest page the UI must fit: a small phone.
const PHONE_WIDTH: u32 = 360;
/// Heaviest a page may be (HTML, inline style and the script together).
const MAX_PAGE_BYTES: usize = 100 * 1024;

/// A running chromedriver; stopped on drop.
struct Driver {
    child: Child,
    url: String,
    profiles: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver, or `None` (outside CI) when it is not installed.
    fn start() -> Option<Driver> {
        let found = Command::new("chromedriver")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromedriver is missing (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "skipped: chromedriver is not installed (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profiles: tempfile::tempdir().unwrap(),
        })
    }

    /// A new browser (its own profile: its own cookies), phone-sized.
    async fn browser(&self, name: &str) -> Client {
        let profile = self.profiles.path().join(name);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    format!("--window-size={PHONE_WIDTH},780"),
                    format!("--user-data-dir={}", profile.display()),
                ],
                // Headless windows are at least 500 px wide: the phone's screen is emulated.
                "mobileEmulation": {
                    "deviceMetrics": { "width": PHONE_WIDTH, "height": 780, "pixelRatio": 1.0 },
                },
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a chromium session")
    }
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves what the browser shows as `NAME.png`, and checks the page fits a phone: nothing
/// wider than the screen, and the page's weight under the limit.
async fn look(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
    let wide = c
        .execute("return document.documentElement.scrollWidth;", vec![])
        .await
        .unwrap();
    assert!(
        wide.as_u64().unwrap() <= u64::from(PHONE_WIDTH),
        "{name}: the page is {wide} px wide on a {PHONE_WIDTH} px screen"
    );
    let bytes = c.source().await.unwrap().len() + include_str!("../src/web/app.js").len();
    assert!(bytes < MAX_PAGE_BYTES, "{name}: {bytes} bytes");
}

async fn fill(c: &Client, css: &str, text: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Waits until the page's path is `path`.
async fn wait_path(c: &Client, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let url = c.current_url().await.unwrap();
        if url.path() == path {
            return;
        }
        assert!(Instant::now() < deadline, "still at {url}, not {path}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for an element whose text contains `text`.
async fn wait_text(c: &Client, css: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for e in c.find_all(Locator::Css(css)).await.unwrap() {
            if e.text().await.unwrap_or_default().contains(text) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "no {css} with {text:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sign_in(c: &Client, base: &str, name: &str, password: &str) {
    c.goto(&format!("{base}login")).await.unwrap();
    fill(c, "input[name=name]", name).await;
    fill(c, "input[name=password]", password).await;
    click(c, "form button.primary").await;
    wait_path(c, "/rooms").await;
}

/// An invite code, made on the admin page.
async fn invite(admin: &Client, base: &str) -> String {
    admin.goto(&format!("{base}admin")).await.unwrap();
    click(admin, "form[action='/admin/invites'] button").await;
    let code = admin
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#invite-code"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(code.len() >= 16, "{code}");
    // The link shown beside it is the whole address, as this browser reached the server.
    let link = admin
        .find(Locator::Css(".notice a"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(link, format!("{base}join?code={}", code.replace('-', "")));
    code
}

async fn join(c: &Client, base: &str, code: &str, name: &str, shown: &str) {
    c.goto(&format!("{base}join?code={code}")).await.unwrap();
    fill(c, "input[name=name]", name).await;
    fill(c, "input[name=display_name]", shown).await;
    fill(c, "input[name=password]", &format!("{name}'s password")).await;
    click(c, "form button.primary").await;
    wait_path(c, "/rooms").await;
}

#[test]
fn two_people_join_by_invite_and_chat_live_in_two_browsers() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let community = Community::start();
    let base = format!("http://{}/", community.addr);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let admin = driver.browser("ana").await;
        admin.goto(&base).await.unwrap();
        wait_path(&admin, "/login").await;
        look(&admin, "01-sign-in").await;
        sign_in(&admin, &base, "ana", ANA_PASSWORD).await;
        look(&admin, "02-rooms-empty").await;
        let code_bo = invite(&admin, &base).await;
        look(&admin, "03-admin-invite").await;
        let code_cy = invite(&admin, &base).await;

        // Two people join, each in their own browser.
        let bo = driver.browser("bo").await;
        bo.goto(&format!("{base}join?code={code_bo}"))
            .await
            .unwrap();
        look(&bo, "04-join").await;
        join(&bo, &base, &code_bo, "bo", "Bo Builder").await;
        let cy = driver.browser("cy").await;
        join(&cy, &base, &code_cy, "cy", "Cy Gardener").await;
        // An invite works once.
        let late = driver.browser("late").await;
        late.goto(&format!("{base}join?code={code_bo}"))
            .await
            .unwrap();
        fill(&late, "input[name=name]", "eve").await;
        fill(&late, "input[name=password]", "eve's password").await;
        click(&late, "form button.primary").await;
        wait_text(&late, "p.error", "not valid").await;
        look(&late, "05-join-used-code").await;
        late.close().await.unwrap();

        // Bo starts a room.
        click(&bo, "main details:nth-of-type(1) summary").await;
        fill(&bo, "input[name=name]", "Garden").await;
        fill(&bo, "input[name=topic]", "Who waters what, and when").await;
        click(&bo, "form[action='/rooms'] button").await;
        wait_text(&bo, "h1", "Garden").await;

        // Cy opens it from the room list.
        cy.goto(&format!("{base}rooms")).await.unwrap();
        wait_text(&cy, "ul.rooms a", "Garden").await;
        look(&cy, "06-rooms").await;
        cy.find(Locator::LinkText("Garden"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&cy, "h1", "Garden").await;
        // A mark that a reload would wipe.
        cy.execute("window.notReloaded = true;", vec![])
            .await
            .unwrap();

        // Bo writes; Cy's page shows it without a reload.
        fill(&bo, "#composer textarea", "Tomatoes need water tonight ☔").await;
        click(&bo, "#composer button").await;
        wait_text(&cy, "#messages li", "Tomatoes need water tonight").await;
        let kept = cy
            .execute("return window.notReloaded === true;", vec![])
            .await
            .unwrap();
        assert_eq!(kept, json!(true), "the message came without a reload");
        wait_text(&cy, "#messages li b", "Bo Builder").await;

        // Cy answers with Enter; Bo sees it live too.
        fill(&cy, "#composer textarea", "I will do it\n").await;
        wait_text(&bo, "#messages li", "I will do it").await;
        // Cy reacts to Bo's message from its own page; Bo sees the reaction arrive live.
        cy.find(Locator::Css("#messages li:first-child a[title]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&cy, "h2", "React").await;
        look(&cy, "08-message").await;
        click(&cy, "form.reactions button[value='👍']").await;
        wait_text(&cy, "h1", "Garden").await;
        wait_text(&bo, "#messages li form.reactions button", "👍 1").await;
        look(&bo, "07-room-bo").await;
        look(&cy, "08-room-cy").await;

        // Bo sends a photo with the file input (a plain form post); Cy sees it appear.
        let photo = driver.profiles.path().join("green.png");
        std::fs::write(&photo, GREEN_PNG).unwrap();
        fill(&bo, "#composer textarea", "the new bed").await;
        let input = bo.find(Locator::Css("#composer input[type=file]")).await.unwrap();
        input.send_keys(&photo.display().to_string()).await.unwrap();
        click(&bo, "#composer button").await;
        wait_text(&cy, "#messages li", "the new bed").await;
        let shown = cy
            .execute(
                "const img = document.querySelector('#messages li:last-child img');\
                 return img ? new Promise(r => img.complete ? r(img.naturalWidth) : img.onload = () => r(img.naturalWidth)) : 0;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(shown, json!(48), "the photo loads in the other browser");
        look(&cy, "08b-room-photo").await;

        // Search finds Bo's message for Cy.
        cy.goto(&format!("{base}search?q=tomatoes")).await.unwrap();
        wait_text(&cy, "ol.hits li", "Tomatoes need water").await;
        look(&cy, "09-search").await;

        // Bo uploads a 20 MB film through the files page (the script sends it in parts);
        // Cy finds it there and gets it byte-identical, and a byte range of it with 206.
        let film = test_support::pseudo_random(20 * 1024 * 1024, 11);
        let film_path = driver.profiles.path().join("harvest.mp4");
        std::fs::write(&film_path, &film).unwrap();
        bo.goto(&format!("{base}files")).await.unwrap();
        wait_path(&bo, "/files/community").await;
        look(&bo, "11-files-empty").await;
        let input = bo.find(Locator::Css("#upload input[type=file]")).await.unwrap();
        input.send_keys(&film_path.display().to_string()).await.unwrap();
        click(&bo, "#upload button").await;
        wait_text(&bo, "ul.entries li", "harvest.mp4").await;
        look(&bo, "12-files").await;
        cy.goto(&format!("{base}files/community")).await.unwrap();
        wait_text(&cy, "ul.entries a.name", "harvest.mp4").await;
        let fetched = cy
            .execute(
                "const a = [...document.querySelectorAll('ul.entries a.name')].find(a => a.textContent === 'harvest.mp4');\
                 return fetch(a.href).then(r => r.arrayBuffer()).then(b => {\
                   const v = new Uint8Array(b); let h = 0x811c9dc5;\
                   for (let i = 0; i < v.length; i++) { h = Math.imul(h ^ v[i], 0x01000193) >>> 0; }\
                   return [v.length, h];\
                 });",
                vec![],
            )
            .await
            .unwrap();
        let fnv = film
            .iter()
            .fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193));
        assert_eq!(fetched, json!([film.len(), fnv]), "Cy's download is Bo's file");
        let ranged = cy
            .execute(
                "const a = [...document.querySelectorAll('ul.entries a.name')].find(a => a.textContent === 'harvest.mp4');\
                 return fetch(a.href, { headers: { Range: 'bytes=1000-1999' } })\
                   .then(r => r.arrayBuffer().then(b => [r.status, r.headers.get('Content-Range'), new Uint8Array(b)[0], b.byteLength]));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            ranged,
            json!([206, format!("bytes 1000-1999/{}", film.len()), film[1000], 1000])
        );
        look(&cy, "13-files-cy").await;
        cy.find(Locator::LinkText("Versions")).await.unwrap().click().await.unwrap();
        wait_text(&cy, "ol.entries li", "current").await;
        look(&cy, "14-file-versions").await;
        cy.goto(&format!("{base}files/mine")).await.unwrap();
        look(&cy, "15-files-mine").await;
        cy.goto(&format!("{base}files/community/trash"))
            .await
            .unwrap();
        wait_text(&cy, "h1", "Trash").await;
        look(&cy, "15b-files-trash").await;

        // A collection added from the command line is on the archive page; comparing its two
        // snapshots there shows what changed.
        crate::web_archive::library(&community);
        bo.goto(&format!("{base}archive")).await.unwrap();
        wait_text(&bo, "ul.entries a.name", "library").await;
        look(&bo, "16-archive").await;
        bo.find(Locator::LinkText("library")).await.unwrap().click().await.unwrap();
        wait_text(&bo, "ul.entries li.folder", "docs").await;
        look(&bo, "17-archive-collection").await;
        bo.find(Locator::Css("select[name=from] option[value=v1]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        bo.find(Locator::Css("select[name=to] option[value=v2]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        click(&bo, "form[action='/archive/diff'] button").await;
        wait_text(&bo, "h1", "v1 → v2").await;
        wait_text(&bo, "ul.changes li.removed", "docs/b.txt").await;
        wait_text(&bo, "ul.changes li.added", "docs/c.txt").await;
        wait_text(&bo, "ul.changes li.changed", "docs/a.txt").await;
        look(&bo, "18-archive-diff").await;
        bo.goto(&format!("{base}archive/find?c=library&q=TXT"))
            .await
            .unwrap();
        wait_text(&bo, "ul.entries a.name", "docs/c.txt").await;
        look(&bo, "18b-archive-find").await;

        // Signing out leads back to the sign-in page, and the rooms are closed to the browser.
        click(&cy, "nav details summary").await;
        click(&cy, "form[action='/logout'] button").await;
        wait_path(&cy, "/login").await;
        cy.goto(&format!("{base}rooms")).await.unwrap();
        wait_path(&cy, "/login").await;

        admin.goto(&format!("{base}admin")).await.unwrap();
        look(&admin, "10-admin").await;
        for c in [admin, bo, cy] {
            c.close().await.unwrap();
        }
    });
}

/// Two community servers' admins pair them from the peers pages (each pastes the other's
/// ticket, shown there as text and QR code), one starts a sync of a collection there, and the
/// page shows it completed; the collection is then on the archive page of the other server.
#[test]
fn two_servers_are_paired_from_their_pages_and_a_sync_started_there_completes() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let hill = Community::start_with("ana");
    crate::web_archive::library(&hill);
    let river = Community::start_with("bo");
    let (hill_base, river_base) = (
        format!("http://{}/", hill.addr),
        format!("http://{}/", river.addr),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ana = driver.browser("ana-hill").await;
        sign_in(&ana, &hill_base, "ana", &password_of("ana")).await;
        let bo = driver.browser("bo-river").await;
        sign_in(&bo, &river_base, "bo", &password_of("bo")).await;
        let ticket_of = |c: &Client, base: String| {
            let c = c.clone();
            async move {
                c.goto(&format!("{base}peers")).await.unwrap();
                c.find(Locator::Css("#ticket"))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }
        };
        let hill_ticket = ticket_of(&ana, hill_base.clone()).await;
        look(&ana, "19-peers").await;
        let river_ticket = ticket_of(&bo, river_base.clone()).await;
        for (c, ticket, name) in [
            (&ana, &river_ticket, "riverside"),
            (&bo, &hill_ticket, "hillside"),
        ] {
            fill(c, "textarea[name=ticket]", ticket).await;
            fill(c, "input[name=name]", name).await;
            click(c, "form[action='/peers'] button").await;
            wait_text(c, "li.peer strong", name).await;
        }
        look(&bo, "20-peers-paired").await;
        // What a sync would move, then "sync now" from that page.
        fill(
            &bo,
            "form[action='/peers/hillside/diff'] input[name=collection]",
            "library",
        )
        .await;
        click(&bo, "form[action='/peers/hillside/diff'] button").await;
        wait_text(&bo, "main", "A sync would bring here").await;
        look(&bo, "21-peers-would-move").await;
        click(&bo, "form[action='/peers/hillside/sync'] button").await;
        wait_path(&bo, "/peers").await;
        // The page reloads itself while the sync runs, and then shows its outcome.
        wait_text(&bo, "ul.syncs li span.ok", "synced").await;
        wait_text(&bo, "ul.syncs li", "library").await;
        look(&bo, "22-peers-synced").await;
        bo.goto(&format!("{river_base}archive/c?c=library&folder=docs"))
            .await
            .unwrap();
        wait_text(&bo, "ul.entries a.name", "c.txt").await;
        for c in [ana, bo] {
            c.close().await.unwrap();
        }
    });
}
