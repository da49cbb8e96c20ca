//! The peers page and its API (admins only): this server's ticket (text and QR code), pairing
//! with another community's server by its ticket, the last sync of each peer and collection,
//! what a sync would move, and "sync now". The same pairing and sync code as `archive peer`
//! and `archive sync` ([`crate::peers`], [`crate::syncs`]).

use std::sync::Arc;

use archive_net::SyncOptions;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use maud::{html, PreEscaped};
use serde::{Deserialize, Serialize};

use super::guard::{redirect, Admin};
use super::pages::{header_of, layout, ms_time, page, size, urlencode, Header, OrPage, PageResult};
use super::service::run;
use super::{App, ErrorBody, WebError};
use crate::peers::{NewPeer, Peer, Peers, Running};
use crate::syncs::SyncRecord;

/// The network side the peers page uses: the server's endpoint and node, and the lock that
/// serialises changes to `peers.json` (shared with commands the server runs).
pub(crate) struct WebNet {
    pub(crate) endpoint: archive_net::Endpoint,
    pub(crate) node: archive_net::Node,
    pub(crate) peers_lock: Arc<std::sync::Mutex<()>>,
}

fn net(app: &App) -> Result<&WebNet, WebError> {
    app.net
        .as_ref()
        .ok_or_else(|| WebError::new(StatusCode::SERVICE_UNAVAILABLE, app.text.err_no_network))
}

/// A request that could not be carried out, in the words of the pairing or sync code.
fn refused(e: anyhow::Error) -> WebError {
    WebError::bad_request(format!("{e:#}"))
}

/// This server's ticket: what another server pairs with.
fn ticket(app: &App) -> Result<String, WebError> {
    let net = net(app)?;
    let ticket = archive_net::Ticket {
        id: net.endpoint.id(),
        addrs: net
            .endpoint
            .addr()
            .ip_addrs()
            .copied()
            .take(archive_net::MAX_TICKET_ADDRS)
            .collect(),
    };
    Ok(ticket.to_string())
}

/// A paired server.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PeerView {
    pub(crate) name: String,
    /// Its endpoint id.
    pub(crate) id: String,
    /// Addresses it is dialled at (none: found on the local network).
    pub(crate) addrs: Vec<String>,
    /// Collections it may read and write (`None`: all).
    pub(crate) read: Option<Vec<String>>,
    pub(crate) write: Option<Vec<String>>,
    /// The last sync of each collection.
    pub(crate) syncs: Vec<SyncRecord>,
    /// Collections syncing now.
    pub(crate) running: Vec<String>,
}

/// The peers page's content.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PeersView {
    /// This server's ticket.
    pub(crate) ticket: String,
    pub(crate) peers: Vec<PeerView>,
    /// This server's collections a sync may name (the archive's).
    pub(crate) collections: Vec<String>,
}

fn view(app: &App) -> Result<PeersView, WebError> {
    let peers = Peers::load(&app.dir).map_err(|e| WebError::internal(app.text, e))?;
    let records = crate::syncs::load(&app.dir).map_err(|e| WebError::internal(app.text, e))?;
    let running = app
        .running_syncs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let collections = app
        .chat
        .store()
        .collection_names()
        .map_err(|e| WebError::internal(app.text, e))?
        .into_iter()
        .filter(|c| super::archive::shown(c))
        .collect();
    Ok(PeersView {
        ticket: ticket(app)?,
        peers: peers
            .peers
            .into_iter()
            .map(|p| {
                let mut syncs: Vec<SyncRecord> = records
                    .iter()
                    .filter(|r| r.peer == p.name)
                    .cloned()
                    .collect();
                syncs.sort_by(|a, b| a.collection.cmp(&b.collection));
                let mut running: Vec<String> = running
                    .iter()
                    .filter(|(peer, _)| *peer == p.name)
                    .map(|(_, c)| c.clone())
                    .collect();
                running.sort();
                PeerView {
                    addrs: p.addrs.iter().map(|a| a.to_string()).collect(),
                    name: p.name,
                    id: p.id,
                    read: p.read,
                    write: p.write,
                    syncs,
                    running,
                }
            })
            .collect(),
        collections,
    })
}

/// `GET /api/peers`.
#[utoipa::path(
    get,
    path = "/api/peers",
    summary = "This server's ticket, its paired servers and their last syncs (admins only)",
    responses((status = 200, description = "the peers", body = PeersView), (status = 403, description = "not an admin", body = ErrorBody))
)]
pub(crate) async fn api_peers(
    State(app): State<Arc<App>>,
    _admin: Admin,
) -> Result<Json<PeersView>, WebError> {
    Ok(Json(run(&app, view).await?))
}

/// A server to pair with.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct PairRequest {
    /// Its ticket (`archive1...`), as its own peers page or `archive id` shows it.
    pub(crate) ticket: String,
    /// What to call it here [default: from its id].
    #[serde(default)]
    pub(crate) name: Option<String>,
}

fn pair(app: &App, request: PairRequest) -> Result<Peer, WebError> {
    let net = net(app)?;
    let _lock = net
        .peers_lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let own = app.chat.store().author();
    let running = Running {
        trust: Some(net.node.trust()),
        delivery: app.delivery.as_deref(),
    };
    let new = NewPeer {
        target: request.ticket,
        addrs: Vec::new(),
        name: request.name,
        read: None,
        write: None,
    };
    crate::peers::pair(&app.dir, &own, new, running).map_err(refused)
}

fn unpair(app: &App, name: &str) -> Result<(), WebError> {
    let net = net(app)?;
    let _lock = net
        .peers_lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    find(app, name)?;
    let running = Running {
        trust: Some(net.node.trust()),
        delivery: app.delivery.as_deref(),
    };
    crate::peers::unpair(&app.dir, name, running).map_err(refused)?;
    crate::syncs::forget(&app.dir, name).map_err(|e| WebError::internal(app.text, e))
}

fn find(app: &App, name: &str) -> Result<Peer, WebError> {
    let peers = Peers::load(&app.dir).map_err(|e| WebError::internal(app.text, e))?;
    peers
        .peers
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| WebError::new(StatusCode::NOT_FOUND, format!("no peer named `{name}`")))
}

/// `POST /api/peers`.
#[utoipa::path(
    post,
    path = "/api/peers",
    summary = "Pair with another server by its ticket (it must pair with this one too) (admins only)",
    request_body = PairRequest,
    responses((status = 201, description = "paired"), (status = 400, description = "a bad ticket or name, or paired already", body = ErrorBody))
)]
pub(crate) async fn api_pair(
    State(app): State<Arc<App>>,
    _admin: Admin,
    Json(request): Json<PairRequest>,
) -> Result<StatusCode, WebError> {
    run(&app, move |app| pair(app, request)).await?;
    Ok(StatusCode::CREATED)
}

/// `DELETE /api/peers/{name}`.
#[utoipa::path(
    delete,
    path = "/api/peers/{name}",
    summary = "Unpair a server (admins only)",
    params(("name" = String, Path, description = "the peer's name here")),
    responses((status = 204, description = "unpaired"), (status = 404, description = "no such peer", body = ErrorBody))
)]
pub(crate) async fn api_unpair(
    State(app): State<Arc<App>>,
    _admin: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, WebError> {
    run(&app, move |app| unpair(app, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A collection to sync or compare.
#[derive(Debug, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
pub(crate) struct CollectionParam {
    pub(crate) collection: String,
}

/// Starts a sync in the background; refused when the same one is running.
async fn start_sync(app: &Arc<App>, name: String, collection: String) -> Result<(), WebError> {
    archive_core::validate_collection(&collection)
        .map_err(|e| WebError::bad_request(e.to_string()))?;
    let n = name.clone();
    let peer = run(app, move |app| find(app, &n)).await?;
    let net = net(app)?;
    let key = (name.clone(), collection.clone());
    {
        let mut running = app
            .running_syncs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !running.insert(key.clone()) {
            return Err(WebError::new(
                StatusCode::CONFLICT,
                format!("`{collection}` is syncing with `{name}` already"),
            ));
        }
    }
    let (endpoint, node, app) = (net.endpoint.clone(), net.node.clone(), app.clone());
    tokio::spawn(async move {
        let options = SyncOptions {
            collection: collection.clone(),
            pull: true,
            push: true,
        };
        let counters = Arc::new(archive_net::Counters::default());
        let outcome = crate::syncs::sync_with(&endpoint, &node, &peer, &options, counters).await;
        let record = SyncRecord::of(&name, &collection, &outcome);
        let dir = app.dir.clone();
        let saved = tokio::task::spawn_blocking(move || crate::syncs::record(&dir, record)).await;
        if let Ok(Err(e)) = saved {
            tracing::error!("web: recording a sync: {e:#}");
        }
        app.running_syncs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
    });
    Ok(())
}

/// `POST /api/peers/{name}/sync`.
#[utoipa::path(
    post,
    path = "/api/peers/{name}/sync",
    summary = "Start syncing a collection with a peer, both ways; its outcome shows in GET /api/peers (admins only)",
    params(("name" = String, Path, description = "the peer's name here")),
    request_body = CollectionParam,
    responses((status = 202, description = "started"), (status = 409, description = "that sync is running already", body = ErrorBody), (status = 404, description = "no such peer", body = ErrorBody))
)]
pub(crate) async fn api_sync(
    State(app): State<Arc<App>>,
    _admin: Admin,
    Path(name): Path<String>,
    Json(body): Json<CollectionParam>,
) -> Result<StatusCode, WebError> {
    start_sync(&app, name, body.collection).await?;
    Ok(StatusCode::ACCEPTED)
}

/// What one side has that the other lacks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SideView {
    pub(crate) entries: u64,
    pub(crate) files: u64,
    pub(crate) bytes: u64,
}

/// What a sync would move.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct WouldMove {
    pub(crate) peer: String,
    pub(crate) collection: String,
    /// What the peer has and this server lacks (a sync brings it here).
    pub(crate) they_have: SideView,
    /// What this server has and the peer lacks (a sync sends it).
    pub(crate) we_have: SideView,
}

async fn would_move(
    app: &Arc<App>,
    name: String,
    collection: String,
) -> Result<WouldMove, WebError> {
    archive_core::validate_collection(&collection)
        .map_err(|e| WebError::bad_request(e.to_string()))?;
    let n = name.clone();
    let peer = run(app, move |app| find(app, &n)).await?;
    let net = net(app)?;
    let report = crate::syncs::diff_with(&net.endpoint, &net.node, &peer, &collection)
        .await
        .map_err(|e| WebError::new(StatusCode::BAD_GATEWAY, format!("{e:#}")))?;
    let side = |s: archive_net::wire::Summary| SideView {
        entries: s.entries,
        files: s.files,
        bytes: s.file_bytes,
    };
    Ok(WouldMove {
        peer: name,
        collection,
        they_have: side(report.they_have),
        we_have: side(report.we_have),
    })
}

/// `GET /api/peers/{name}/diff?collection=`.
#[utoipa::path(
    get,
    path = "/api/peers/{name}/diff",
    summary = "What a sync of a collection with a peer would move, found by reconciliation alone (admins only)",
    params(("name" = String, Path, description = "the peer's name here"), CollectionParam),
    responses((status = 200, description = "what would move", body = WouldMove), (status = 502, description = "the peer could not be reached, or refused", body = ErrorBody))
)]
pub(crate) async fn api_diff(
    State(app): State<Arc<App>>,
    _admin: Admin,
    Path(name): Path<String>,
    Query(q): Query<CollectionParam>,
) -> Result<Json<WouldMove>, WebError> {
    Ok(Json(would_move(&app, name, q.collection).await?))
}

// Pages.

/// The ticket as a QR code (SVG), for a phone's camera.
fn qr_svg(ticket: &str) -> String {
    match qrcode::QrCode::with_error_correction_level(ticket, qrcode::EcLevel::L) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(220, 220)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    }
}

/// `GET /peers`.
pub(crate) async fn peers_page(State(app): State<Arc<App>>, Admin(admin): Admin) -> PageResult {
    let is_admin = header_of(&app, &admin).await?;
    let view = run(&app, view).await.or_page(&app)?;
    let t = app.text;
    let header = Header::of(&admin, is_admin);
    Ok(page(layout(
        t,
        t.nav_peers,
        Some(&header),
        html! {
            h1 { (t.nav_peers) }
            h2 { (t.peers_paired) }
            @if view.peers.is_empty() { p.hint { (t.peers_none) } }
            datalist #collections { @for c in &view.collections { option value=(c) {} } }
            ul.entries {
                @for p in &view.peers {
                    li.peer {
                        strong { (p.name) } " " small { (p.id.get(..16).unwrap_or(&p.id)) "…" }
                        @if !p.running.is_empty() {
                            // Shows the outcome without a script: the page reloads until done.
                            meta http-equiv="refresh" content="3";
                            p.notice { (t.peers_syncing) " " (p.running.join(", ")) }
                        }
                        @if p.syncs.is_empty() { p.hint { (t.peers_never) } }
                        ul.syncs {
                            @for s in &p.syncs {
                                li {
                                    b { (s.collection) } " · "
                                    time.date datetime=(ms_time(s.at)) { (ms_time(s.at)) } " · "
                                    @match &s.error {
                                        None => span.ok { (t.peers_synced) " ↓" (s.entries_received) " ↑" (s.entries_sent) " (" (size(s.bytes_received + s.bytes_sent)) ")" },
                                        Some(e) => span.error { (t.peers_failed) ": " (e) },
                                    }
                                }
                            }
                        }
                        form.row method="post" action={ "/peers/" (p.name) "/sync" } {
                            input type="hidden" name="csrf" value=(admin.csrf);
                            input name="collection" list="collections" required placeholder=(t.peers_collection);
                            button { (t.peers_sync_now) }
                        }
                        form.row method="get" action={ "/peers/" (p.name) "/diff" } {
                            input name="collection" list="collections" required placeholder=(t.peers_collection);
                            button { (t.peers_preview) }
                        }
                        form.inline method="post" action={ "/peers/" (p.name) "/remove" } {
                            input type="hidden" name="csrf" value=(admin.csrf);
                            button.danger { (t.peers_unpair) }
                        }
                    }
                }
            }
            h2 { (t.peers_this_server) }
            p.hint { (t.peers_ticket_hint) }
            div.qr { (PreEscaped(qr_svg(&view.ticket))) }
            p { code #ticket { (view.ticket) } }
            h2 { (t.peers_pair) }
            form.stack method="post" action="/peers" {
                input type="hidden" name="csrf" value=(admin.csrf);
                label { (t.peers_their_ticket) textarea name="ticket" required rows="3" {} }
                label { (t.peers_name) input name="name" maxlength="64" placeholder=(t.peers_name_hint); }
                button.primary { (t.peers_pair_button) }
            }
        },
    )))
}

/// The pairing form.
#[derive(Debug, Deserialize)]
pub(crate) struct PairForm {
    ticket: String,
    #[serde(default)]
    name: String,
}

/// `POST /peers`.
pub(crate) async fn pair_page(
    State(app): State<Arc<App>>,
    _admin: Admin,
    axum::Form(form): axum::Form<PairForm>,
) -> PageResult {
    let request = PairRequest {
        ticket: form.ticket,
        name: Some(form.name),
    };
    run(&app, move |app| pair(app, request))
        .await
        .or_page(&app)?;
    Ok(redirect("/peers"))
}

/// The sync form.
#[derive(Debug, Deserialize)]
pub(crate) struct SyncForm {
    collection: String,
}

/// `POST /peers/{name}/sync`.
pub(crate) async fn sync_page(
    State(app): State<Arc<App>>,
    _admin: Admin,
    Path(name): Path<String>,
    axum::Form(form): axum::Form<SyncForm>,
) -> PageResult {
    start_sync(&app, name, form.collection.trim().to_owned())
        .await
        .or_page(&app)?;
    Ok(redirect("/peers"))
}

/// `POST /peers/{name}/remove`.
pub(crate) async fn unpair_page(
    State(app): State<Arc<App>>,
    _admin: Admin,
    Path(name): Path<String>,
) -> PageResult {
    run(&app, move |app| unpair(app, &name))
        .await
        .or_page(&app)?;
    Ok(redirect("/peers"))
}

/// `GET /peers/{name}/diff?collection=`.
pub(crate) async fn diff_page(
    State(app): State<Arc<App>>,
    Admin(admin): Admin,
    Path(name): Path<String>,
    Query(q): Query<CollectionParam>,
) -> PageResult {
    let is_admin = header_of(&app, &admin).await?;
    let moved = would_move(&app, name, q.collection.trim().to_owned())
        .await
        .or_page(&app)?;
    let t = app.text;
    let header = Header::of(&admin, is_admin);
    Ok(page(layout(
        t,
        t.peers_would_move,
        Some(&header),
        html! {
            p { a href="/peers" { "← " (t.nav_peers) } }
            h1 { (moved.collection) " ⇄ " (moved.peer) }
            @if moved.they_have.entries == 0 && moved.we_have.entries == 0 {
                p.ok { (t.peers_same) }
            } @else {
                p { (t.peers_would_bring) ": " b { (moved.they_have.files) " " (t.archive_files) ", " (size(moved.they_have.bytes)) } " (" (moved.they_have.entries) " " (t.peers_entries) ")" }
                p { (t.peers_would_send) ": " b { (moved.we_have.files) " " (t.archive_files) ", " (size(moved.we_have.bytes)) } " (" (moved.we_have.entries) " " (t.peers_entries) ")" }
            }
            form.row method="post" action={ "/peers/" (urlencode(&moved.peer)) "/sync" } {
                input type="hidden" name="csrf" value=(admin.csrf);
                input type="hidden" name="collection" value=(moved.collection);
                button.primary { (t.peers_sync_now) }
            }
        },
    )))
}
