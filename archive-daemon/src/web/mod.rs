//! The community's web UI and its JSON API, served by `archive serve` over plain HTTP on
//! the local network (ARCHITECTURE.md, "The web UI").
//!
//! Layers, outermost first: [`guard`] (per-address rate limit, session lookup, CSRF check on
//! every change), then the routes: [`pages`] render HTML for browsers, [`api`] answers JSON
//! for scripts and apps, and both call [`service`], which is where the work is done (on
//! `chat` and the sign-in file). [`live`] streams a room's changes (server-sent events).

mod api;
mod archive;
mod attachments;
mod files;
mod guard;
mod limits;
mod live;
mod pages;
pub(crate) mod peers;
mod service;
pub(crate) mod strings;

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::accounts::{Accounts, AccountsError};
use strings::Text;

/// Bytes of a request body the UI accepts (forms and JSON); uploads have their own limit.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// Password hashes computed at once: each takes 19 MiB for about a tenth of a second, so a
/// flood of sign-ins waits instead of growing the server's memory.
pub(crate) const CONCURRENT_HASHES: usize = 2;

/// What every request handler shares.
pub(crate) struct App {
    pub(crate) chat: chat::Chat,
    /// Live delivery (fetches attachments held by other servers); none in a server without
    /// a network.
    pub(crate) delivery: Option<Arc<chat::Delivery>>,
    /// Permits to receive a message's files (each held in memory, up to
    /// [`attachments::MAX_MESSAGE_FILES`]).
    pub(crate) uploads: tokio::sync::Semaphore,
    pub(crate) search: chat::Search,
    pub(crate) accounts: Arc<Accounts>,
    /// Permits to hash a password ([`CONCURRENT_HASHES`]).
    pub(crate) hashing: tokio::sync::Semaphore,
    pub(crate) limits: limits::Limits,
    /// Live feeds open now.
    pub(crate) streams: live::Streams,
    pub(crate) text: &'static Text,
    /// The data folder (`peers.json`: the servers a room may be shared with).
    pub(crate) dir: std::path::PathBuf,
    /// The community's and each person's files.
    pub(crate) shares: Arc<archive_core::shares::Shares>,
    /// The server's endpoint, for the peers page (none in a server without a network).
    pub(crate) net: Option<peers::WebNet>,
    /// Syncs started from the peers page and not finished: (peer, collection).
    pub(crate) running_syncs: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
}

impl App {
    pub(crate) fn new(
        dir: std::path::PathBuf,
        chat: chat::Chat,
        delivery: Option<Arc<chat::Delivery>>,
        search: chat::Search,
        accounts: Arc<Accounts>,
        shares: Arc<archive_core::shares::Shares>,
        net: Option<peers::WebNet>,
    ) -> App {
        App {
            chat,
            delivery,
            uploads: tokio::sync::Semaphore::new(attachments::CONCURRENT_UPLOADS),
            search,
            accounts,
            hashing: tokio::sync::Semaphore::new(CONCURRENT_HASHES),
            limits: limits::Limits::default(),
            streams: live::Streams::default(),
            text: &strings::EN,
            dir,
            shares,
            net,
            running_syncs: std::sync::Mutex::default(),
        }
    }
}

/// How long a client has to send a request's headers (from the connection, or the end of
/// the previous request): a client that opens connections and sends nothing, or a byte at
/// a time, gives its socket back after this.
pub(crate) const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Connections served at once (live feeds are capped lower, in `live.rs`); more wait in the
/// kernel's queue.
pub(crate) const MAX_CONNECTIONS: usize = 1024;

/// Serves the UI on `listener` until the task is dropped: HTTP/1.1 (what browsers speak to a
/// plain-HTTP LAN address), with [`HEADER_READ_TIMEOUT`] and at most [`MAX_CONNECTIONS`].
/// `axum::serve` has neither, hence this loop.
pub(crate) async fn serve(listener: tokio::net::TcpListener, app: Arc<App>) -> std::io::Result<()> {
    let router = router(app);
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = connections.clone().acquire_owned().await else {
            return Ok(());
        };
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was taken.
                tracing::warn!("web: accepting a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // What the guard reads the client's address from (as `into_make_service_with_connect_info`
        // does). The router is shared, not copied per connection: a layered copy of every
        // route for each of 200 live feeds cost 33 MB (BENCHMARKS.md).
        let router = router.clone();
        let service = hyper::service::service_fn(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                tower::ServiceExt::oneshot(router.clone(), request)
            },
        );
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection = http
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = connection.await {
                // Members' addresses are not logged (ARCHITECTURE.md, "Threat model").
                tracing::debug!("web: a connection ended with an error: {e}");
            }
            drop(permit);
        });
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        // Pages.
        .route("/", get(pages::home))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/join", get(pages::join_page).post(pages::join))
        .route("/logout", post(pages::logout))
        .route("/logout-everywhere", post(pages::logout_everywhere))
        .route("/rooms", get(pages::rooms).post(pages::create_room))
        .route("/rooms/{room}", get(pages::room))
        .route(
            "/rooms/{room}/send",
            post(pages::send).layer(axum::extract::DefaultBodyLimit::max(
                attachments::MAX_MESSAGE_FILES + MAX_BODY,
            )),
        )
        .route(
            "/rooms/{room}/m/{message}/files/{index}",
            get(attachments::download),
        )
        .route(
            "/api/rooms/{room}/messages/{message}/files/{index}",
            get(attachments::download),
        )
        .route("/rooms/{room}/m/{message}", get(pages::message_page))
        .route("/rooms/{room}/m/{message}/edit", post(pages::edit))
        .route("/rooms/{room}/m/{message}/delete", post(pages::delete))
        .route("/rooms/{room}/m/{message}/react", post(pages::react))
        .route("/rooms/{room}/m/{message}/report", post(pages::report))
        .route("/people/{account}/direct", post(pages::direct))
        .route("/admin/reports/resolve", post(pages::resolve_report))
        .route("/admin/people/{account}/role", post(pages::set_role))
        .route("/search", get(pages::search))
        .route("/admin", get(pages::admin))
        .route("/admin/invites", post(pages::create_invite))
        .route("/admin/invites/{id}/cancel", post(pages::cancel_invite))
        .route("/admin/people/{account}/remove", post(pages::remove_person))
        .route(
            "/admin/people/{account}/password",
            post(pages::reset_password),
        )
        .route("/files", get(files::home))
        .route("/files/{share}", get(files::folder_page))
        .route(
            "/files/{share}/upload",
            post(files::upload_form).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/files/{share}/get", get(files::get_page))
        .route("/files/{share}/remove", post(files::remove_page))
        .route("/files/mine/share", post(files::share_page))
        .route("/files/{share}/trash", get(files::trash_page))
        .route("/files/{share}/restore", post(files::restore_page))
        .route("/files/{share}/versions", get(files::versions_page))
        .route(
            "/files/{share}/versions/restore",
            post(files::restore_version_page),
        )
        .route("/archive", get(archive::collections_page))
        .route("/archive/c", get(archive::folder_page))
        .route("/archive/diff", get(archive::diff_page))
        .route("/archive/find", get(archive::find_page))
        .route("/archive/get", get(archive::content))
        .route("/archive/zip", get(archive::zip))
        .route("/archive/snapshot", post(archive::snapshot_page))
        .route("/peers", get(peers::peers_page).post(peers::pair_page))
        .route("/peers/{name}/sync", post(peers::sync_page))
        .route("/peers/{name}/diff", get(peers::diff_page))
        .route("/peers/{name}/remove", post(peers::unpair_page))
        .route("/app.js", get(pages::script))
        // The JSON API: the same operations.
        .route("/api/openapi.json", get(openapi))
        .route("/api/session", get(api::session))
        .route("/api/login", post(api::login))
        .route("/api/join", post(api::join))
        .route("/api/logout", post(api::logout))
        .route("/api/logout-everywhere", post(api::logout_everywhere))
        .route("/api/rooms", get(api::rooms).post(api::create_room))
        .route("/api/rooms/{room}", get(api::room))
        .route("/api/rooms/{room}/messages", post(api::send))
        .route(
            "/api/rooms/{room}/messages/{message}",
            put(api::edit).delete(api::delete),
        )
        .route(
            "/api/rooms/{room}/messages/{message}/reactions",
            post(api::react),
        )
        .route(
            "/api/rooms/{room}/messages/{message}/report",
            post(api::report),
        )
        .route("/api/reports", get(api::reports))
        .route("/api/reports/resolve", post(api::resolve_report))
        .route("/api/people/{account}/role", put(api::set_role))
        .route("/api/rooms/{room}/read", post(api::mark_read))
        .route("/api/rooms/{room}/events", get(live::events))
        .route("/api/people", get(api::people))
        .route("/api/people/{account}/direct", post(api::direct))
        .route("/api/search", get(api::search))
        .route("/api/invites", get(api::invites).post(api::create_invite))
        .route("/api/invites/{id}", delete(api::cancel_invite))
        .route("/api/people/{account}", delete(api::remove_person))
        .route("/api/people/{account}/password", put(api::reset_password))
        .route("/api/files/{share}", get(files::api_folder))
        .route("/api/files/{share}/uploads", post(files::begin_upload))
        .route(
            "/api/files/uploads/{id}",
            get(files::upload_status)
                .put(files::upload_part)
                .delete(files::cancel_upload)
                .layer(axum::extract::DefaultBodyLimit::max(files::MAX_PART)),
        )
        .route("/api/files/uploads/{id}/finish", post(files::finish_upload))
        .route(
            "/api/files/{share}/content",
            get(files::content).delete(files::api_remove),
        )
        .route("/api/files/{share}/trash", get(files::api_trash))
        .route("/api/files/{share}/trash/restore", post(files::api_restore))
        .route("/api/files/{share}/versions", get(files::api_versions))
        .route(
            "/api/files/{share}/versions/restore",
            post(files::api_restore_version),
        )
        .route("/api/files/mine/share", post(files::api_share))
        .route("/api/archive", get(archive::api_collections))
        .route("/api/archive/folder", get(archive::api_folder))
        .route("/api/archive/diff", get(archive::api_diff))
        .route("/api/archive/find", get(archive::api_find))
        .route("/api/archive/content", get(archive::content))
        .route("/api/archive/zip", get(archive::zip))
        .route("/api/archive/snapshots", post(archive::api_snapshot))
        .route("/api/peers", get(peers::api_peers).post(peers::api_pair))
        .route("/api/peers/{name}", delete(peers::api_unpair))
        .route("/api/peers/{name}/sync", post(peers::api_sync))
        .route("/api/peers/{name}/diff", get(peers::api_diff))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(json_rejections))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        // Headers on every answer: no type sniffing, no framing, no referrer to other sites,
        // and a content policy that allows only this server's own script (and the inline
        // style), so nothing that slipped into a page could run (a file's stricter one wins).
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self'; media-src 'self'; frame-ancestors 'none'; form-action 'self'",
            ),
        ))
        .with_state(app)
}

/// The API answers every refusal as `{"error": "..."}`: axum's own refusals of a request it
/// cannot read (a missing query field, a JSON body of the wrong shape) are plain text, and are
/// rewritten here.
async fn json_rejections(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !(api && plain && response.status().is_client_error()) {
        return response;
    }
    let status = response.status();
    let text = match axum::body::to_bytes(response.into_body(), MAX_BODY).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    WebError::new(status, text).into_response()
}

async fn not_found(axum::extract::State(app): axum::extract::State<Arc<App>>) -> WebError {
    WebError::new(StatusCode::NOT_FOUND, app.text.err_not_found)
}

/// A refused or failed request: its status and a sentence for the person. The API sends it
/// as `{"error": "..."}`; pages show it on an error page ([`pages::PageError`]).
#[derive(Debug)]
pub(crate) struct WebError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl WebError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> WebError {
        WebError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> WebError {
        WebError::new(StatusCode::BAD_REQUEST, message)
    }

    /// A failure of the server itself: logged in full, shown as a plain sentence.
    pub(crate) fn internal(text: &Text, error: impl std::fmt::Display) -> WebError {
        tracing::error!("web: {error}");
        WebError::new(StatusCode::INTERNAL_SERVER_ERROR, text.err_server)
    }

    pub(crate) fn from_chat(text: &Text, e: chat::ChatError) -> WebError {
        use chat::ChatError as E;
        let status = match &e {
            E::NotAllowed(_) => StatusCode::FORBIDDEN,
            E::Invalid(_) => StatusCode::BAD_REQUEST,
            E::NoSuchMessage(_) | E::NoSuchAccount(_) | E::NoSuchRoom(_) => StatusCode::NOT_FOUND,
            E::TooFast { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => return WebError::internal(text, e),
        };
        WebError::new(status, e.to_string())
    }

    pub(crate) fn from_accounts(text: &Text, e: AccountsError) -> WebError {
        let status = match &e {
            AccountsError::BadPassword(_) | AccountsError::BadInvite => StatusCode::BAD_REQUEST,
            AccountsError::WrongPassword => StatusCode::UNAUTHORIZED,
            AccountsError::TooManyInvites => StatusCode::CONFLICT,
            AccountsError::Storage { .. } => return WebError::internal(text, e),
        };
        WebError::new(status, e.to_string())
    }
}

/// What the API answers when it refuses or fails.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// Why, in a sentence for a person.
    pub(crate) error: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// The API's description (OpenAPI 3.1), made from the handlers' annotations and the
/// types they take and return; served at `/api/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Community server API",
        description = "The JSON API behind the community server's pages. Sign in with \
            POST /api/login (after GET /api/session, whose `csrf` it must carry in \
            X-CSRF-Token); the session is a cookie; every change carries the session's \
            `csrf` in X-CSRF-Token. Errors are `{\"error\": \"...\"}` with a 4xx or 5xx status."
    ),
    paths(
        api::session,
        api::login,
        api::join,
        api::logout,
        api::logout_everywhere,
        api::rooms,
        api::create_room,
        api::room,
        api::send,
        api::edit,
        api::delete,
        api::react,
        api::mark_read,
        api::people,
        api::direct,
        api::search,
        api::report,
        api::reports,
        api::resolve_report,
        api::set_role,
        api::invites,
        api::create_invite,
        api::cancel_invite,
        api::remove_person,
        api::reset_password,
        live::events,
        attachments::download,
        files::api_folder,
        files::begin_upload,
        files::upload_status,
        files::upload_part,
        files::cancel_upload,
        files::finish_upload,
        files::content,
        files::api_remove,
        files::api_trash,
        files::api_restore,
        files::api_versions,
        files::api_restore_version,
        files::api_share,
        archive::api_collections,
        archive::api_folder,
        archive::api_diff,
        archive::api_find,
        archive::content,
        archive::zip,
        archive::api_snapshot,
        peers::api_peers,
        peers::api_pair,
        peers::api_unpair,
        peers::api_sync,
        peers::api_diff,
    )
)]
pub(crate) struct ApiDoc;

async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi;
    axum::Json(ApiDoc::openapi())
}
