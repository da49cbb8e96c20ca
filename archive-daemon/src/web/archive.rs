//! The archive page and its API: the store's collections (documents, saved websites, offline
//! knowledge), browsed a folder at a time now or at a snapshot, the difference between two
//! snapshots, finding a file by name, a file (with ranges) or a whole folder as a zip stream.
//!
//! Every signed-in person may read the archive; only an admin takes snapshots. The messenger's
//! collections (`chat/`) and this server's private ones (`local/`) are not shown: they have
//! their own pages.

use std::io::{Read, Write};
use std::sync::Arc;

use archive_core::{ChangeKind, ViewPoint};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::html;
use serde::{Deserialize, Serialize};

use super::files::{encode_filename, serve_file};
use super::guard::{redirect, Admin, Member};
use super::pages::{header_of, layout, ms_time, page, size, urlencode, Header, OrPage, PageResult};
use super::service::run;
use super::{App, ErrorBody, WebError};

/// Entries a folder page lists.
const MAX_LISTED: usize = 1000;
/// Changes a diff page shows (then "more").
const DIFF_PAGE: usize = 500;
/// Names `find` returns, and keys it looks at, at most.
const MAX_FOUND: usize = 200;
const MAX_SCANNED: usize = 1_000_000;
/// Files one zip download holds at most (its directory is kept in memory while it streams).
pub(crate) const MAX_ZIP_FILES: usize = 20_000;

/// Whether a collection belongs on the archive page.
pub(crate) fn shown(name: &str) -> bool {
    !name.starts_with(archive_net::LOCAL_PREFIX) && !name.starts_with(chat::COLLECTION_PREFIX)
}

fn storage(app: &App, e: impl std::fmt::Display) -> WebError {
    WebError::internal(app.text, e)
}

fn snapshot_error(app: &App, e: archive_core::SnapshotError) -> WebError {
    use archive_core::SnapshotError as E;
    match e {
        E::Name(e) => WebError::bad_request(e.to_string()),
        E::NotFound { .. } | E::NoSuchCollection { .. } => {
            WebError::new(StatusCode::NOT_FOUND, e.to_string())
        }
        E::Exists { .. } => WebError::new(StatusCode::CONFLICT, e.to_string()),
        other => storage(app, other),
    }
}

/// A collection's handle, refused when it is not one the archive page shows.
fn collection<'a>(app: &'a App, name: &str) -> Result<archive_core::Collection<'a>, WebError> {
    if !shown(name) {
        return Err(WebError::new(StatusCode::NOT_FOUND, app.text.err_not_found));
    }
    let c = app
        .chat
        .store()
        .collection(name)
        .map_err(|e| WebError::bad_request(e.to_string()))?;
    if !c.exists().map_err(|e| storage(app, e))? {
        return Err(WebError::new(StatusCode::NOT_FOUND, app.text.err_not_found));
    }
    Ok(c)
}

/// `""` is the view now; anything else a snapshot's name.
fn point(at: &str) -> ViewPoint<'_> {
    if at.is_empty() {
        ViewPoint::Current
    } else {
        ViewPoint::Snapshot(at)
    }
}

/// A snapshot in a list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct SnapshotView {
    pub(crate) name: String,
    /// When it was taken, Unix milliseconds.
    pub(crate) created: u64,
    pub(crate) files: u64,
    pub(crate) bytes: u64,
}

/// A collection in the list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct CollectionView {
    pub(crate) name: String,
    /// Newest first.
    pub(crate) snapshots: Vec<SnapshotView>,
}

fn snapshots_of(
    app: &App,
    c: &archive_core::Collection<'_>,
) -> Result<Vec<SnapshotView>, WebError> {
    let mut list: Vec<SnapshotView> = c
        .snapshots()
        .map_err(|e| storage(app, e))?
        .into_iter()
        .map(|s| SnapshotView {
            name: s.name,
            created: s.created.unix_millis(),
            files: s.files,
            bytes: s.bytes,
        })
        .collect();
    list.sort_by(|a, b| b.created.cmp(&a.created).then(a.name.cmp(&b.name)));
    Ok(list)
}

fn collections(app: &App) -> Result<Vec<CollectionView>, WebError> {
    let store = app.chat.store();
    let mut out = Vec::new();
    for name in store.collection_names().map_err(|e| storage(app, e))? {
        if !shown(&name) {
            continue;
        }
        let c = collection(app, &name)?;
        let snapshots = snapshots_of(app, &c)?;
        out.push(CollectionView { name, snapshots });
    }
    Ok(out)
}

/// `GET /api/archive`: the collections.
#[utoipa::path(
    get,
    path = "/api/archive",
    summary = "The archive's collections, each with its snapshots",
    responses((status = 200, description = "the collections", body = Vec<CollectionView>))
)]
pub(crate) async fn api_collections(
    State(app): State<Arc<App>>,
    _member: Member,
) -> Result<Json<Vec<CollectionView>>, WebError> {
    Ok(Json(run(&app, collections).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub(crate) struct FolderQuery {
    /// The collection.
    pub(crate) c: String,
    /// A folder's path (absent: the top).
    #[serde(default)]
    pub(crate) folder: String,
    /// A snapshot's name (absent: the view now).
    #[serde(default)]
    pub(crate) at: String,
}

/// A file in a folder.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct ArchiveFile {
    pub(crate) path: String,
    pub(crate) name: String,
    pub(crate) size: u64,
    /// When it was written, Unix milliseconds.
    pub(crate) time: u64,
    /// BLAKE3 of its content.
    pub(crate) hash: String,
}

impl From<archive_core::ViewItem> for ArchiveFile {
    fn from(i: archive_core::ViewItem) -> ArchiveFile {
        ArchiveFile {
            name: i.key.rsplit('/').next().unwrap_or(&i.key).to_owned(),
            size: i.file.size,
            time: i.time.unix_millis(),
            hash: i.file.hash.to_string(),
            path: i.key,
        }
    }
}

/// One level of a folder of a collection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ArchiveFolder {
    pub(crate) collection: String,
    pub(crate) folder: String,
    /// The snapshot (`""`: now).
    pub(crate) at: String,
    pub(crate) folders: Vec<String>,
    pub(crate) files: Vec<ArchiveFile>,
    pub(crate) more: bool,
    pub(crate) snapshots: Vec<SnapshotView>,
}

fn folder(app: &App, q: &FolderQuery) -> Result<ArchiveFolder, WebError> {
    let c = collection(app, &q.c)?;
    let folder = q.folder.trim_matches('/');
    if !folder.is_empty() {
        archive_core::validate_key(folder).map_err(|e| WebError::bad_request(e.to_string()))?;
    }
    let page = c
        .list_folder(point(&q.at), folder, MAX_LISTED)
        .map_err(|e| snapshot_error(app, e))?;
    Ok(ArchiveFolder {
        collection: q.c.clone(),
        folder: folder.to_owned(),
        at: q.at.clone(),
        folders: page.folders,
        files: page.files.into_iter().map(ArchiveFile::from).collect(),
        more: page.more,
        snapshots: snapshots_of(app, &c)?,
    })
}

/// `GET /api/archive/folder`.
#[utoipa::path(
    get,
    path = "/api/archive/folder",
    summary = "One level of a folder of a collection, now or at a snapshot",
    params(FolderQuery),
    responses((status = 200, description = "the folder", body = ArchiveFolder), (status = 404, description = "no such collection or snapshot", body = ErrorBody), (status = 400, description = "a bad folder path", body = ErrorBody))
)]
pub(crate) async fn api_folder(
    State(app): State<Arc<App>>,
    _member: Member,
    Query(q): Query<FolderQuery>,
) -> Result<Json<ArchiveFolder>, WebError> {
    Ok(Json(run(&app, move |app| folder(app, &q)).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct DiffQuery {
    pub(crate) c: String,
    /// The older snapshot (`""`: now).
    #[serde(default)]
    pub(crate) from: String,
    /// The newer snapshot (`""`: now).
    #[serde(default)]
    pub(crate) to: String,
    /// Go on after this key (the `next` of the page before).
    pub(crate) after: Option<String>,
}

/// A key that differs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ChangeView {
    pub(crate) path: String,
    /// `added`, `changed` or `removed`.
    pub(crate) kind: String,
    pub(crate) old_size: Option<u64>,
    pub(crate) new_size: Option<u64>,
}

/// A page of a diff.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DiffView {
    pub(crate) collection: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) changes: Vec<ChangeView>,
    /// Where the next page starts, if there is one.
    pub(crate) next: Option<String>,
}

fn diff(app: &App, q: &DiffQuery) -> Result<DiffView, WebError> {
    let c = collection(app, &q.c)?;
    let page = c
        .diff_page(point(&q.from), point(&q.to), q.after.as_deref(), DIFF_PAGE)
        .map_err(|e| snapshot_error(app, e))?;
    Ok(DiffView {
        collection: q.c.clone(),
        from: q.from.clone(),
        to: q.to.clone(),
        changes: page
            .items
            .into_iter()
            .map(|ch| ChangeView {
                path: ch.key,
                kind: ch.kind.as_str().to_owned(),
                old_size: ch.old.map(|f| f.size),
                new_size: ch.new.map(|f| f.size),
            })
            .collect(),
        next: page.next,
    })
}

/// `GET /api/archive/diff`.
#[utoipa::path(
    get,
    path = "/api/archive/diff",
    summary = "What differs between two snapshots of a collection (or a snapshot and now), a page at a time",
    params(DiffQuery),
    responses((status = 200, description = "the changes", body = DiffView), (status = 404, description = "no such collection or snapshot", body = ErrorBody))
)]
pub(crate) async fn api_diff(
    State(app): State<Arc<App>>,
    _member: Member,
    Query(q): Query<DiffQuery>,
) -> Result<Json<DiffView>, WebError> {
    Ok(Json(run(&app, move |app| diff(app, &q)).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct FindQuery {
    pub(crate) c: String,
    /// Letters the file's path contains (any case).
    pub(crate) q: String,
    #[serde(default)]
    pub(crate) at: String,
}

/// Files found by name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FoundView {
    pub(crate) files: Vec<ArchiveFile>,
    /// More matched than are listed (or the collection is larger than one search reads).
    pub(crate) more: bool,
}

fn find(app: &App, q: &FindQuery) -> Result<FoundView, WebError> {
    let c = collection(app, &q.c)?;
    let needle = q.q.trim().to_lowercase();
    if needle.is_empty() || needle.len() > 200 {
        return Err(WebError::bad_request(app.text.archive_find_hint));
    }
    let mut found = FoundView {
        files: Vec::new(),
        more: false,
    };
    let listing = c
        .list(point(&q.at), "")
        .map_err(|e| snapshot_error(app, e))?;
    for (scanned, item) in listing.enumerate() {
        let item = item.map_err(|e| storage(app, e))?;
        if scanned >= MAX_SCANNED || found.files.len() == MAX_FOUND {
            found.more = true;
            break;
        }
        if item.key.to_lowercase().contains(&needle) {
            found.files.push(item.into());
        }
    }
    Ok(found)
}

/// `GET /api/archive/find`.
#[utoipa::path(
    get,
    path = "/api/archive/find",
    summary = "Files of a collection whose path contains some letters (any case)",
    params(FindQuery),
    responses((status = 200, description = "what was found (200 at most)", body = FoundView), (status = 400, description = "nothing to look for", body = ErrorBody))
)]
pub(crate) async fn api_find(
    State(app): State<Arc<App>>,
    _member: Member,
    Query(q): Query<FindQuery>,
) -> Result<Json<FoundView>, WebError> {
    Ok(Json(run(&app, move |app| find(app, &q)).await?))
}

/// A snapshot to take.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct NewSnapshot {
    /// The collection.
    pub(crate) c: String,
    /// Its name: letters, digits, `-_.`.
    pub(crate) name: String,
}

fn take_snapshot(app: &App, new: &NewSnapshot) -> Result<SnapshotView, WebError> {
    let c = collection(app, &new.c)?;
    let s = c.snapshot(&new.name).map_err(|e| snapshot_error(app, e))?;
    Ok(SnapshotView {
        name: s.name,
        created: s.created.unix_millis(),
        files: s.files,
        bytes: s.bytes,
    })
}

/// `POST /api/archive/snapshots` (admins).
#[utoipa::path(
    post,
    path = "/api/archive/snapshots",
    summary = "Take a snapshot of a collection (admins only)",
    request_body = NewSnapshot,
    responses((status = 201, description = "the snapshot", body = SnapshotView), (status = 409, description = "a snapshot of that name exists", body = ErrorBody), (status = 403, description = "not an admin", body = ErrorBody))
)]
pub(crate) async fn api_snapshot(
    State(app): State<Arc<App>>,
    _admin: Admin,
    Json(new): Json<NewSnapshot>,
) -> Result<(StatusCode, Json<SnapshotView>), WebError> {
    let s = run(&app, move |app| take_snapshot(app, &new)).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct FileQuery {
    pub(crate) c: String,
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) at: String,
}

/// `GET /api/archive/content`: a file's bytes.
#[utoipa::path(
    get,
    path = "/api/archive/content",
    summary = "A file of a collection, now or at a snapshot (one `Range: bytes=` range is honoured with 206)",
    params(FileQuery),
    responses((status = 200, description = "the file"), (status = 206, description = "the range asked for"), (status = 404, description = "no such file", body = ErrorBody))
)]
pub(crate) async fn content(
    State(app): State<Arc<App>>,
    _member: Member,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let path = q.path.clone();
    let file = run(&app, move |app| {
        let c = collection(app, &q.c)?;
        archive_core::validate_key(&q.path).map_err(|e| WebError::bad_request(e.to_string()))?;
        c.get_at(&q.path, point(&q.at))
            .map_err(|e| snapshot_error(app, e))?
            .map(|i| i.file)
            .ok_or_else(|| WebError::new(StatusCode::NOT_FOUND, app.text.err_not_found))
    })
    .await?;
    serve_file(&app, &path, file, &headers)
}

/// Bytes from a blocking writer (the zip writer) to the response, a piece at a time.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= 256 * 1024 {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buf));
            self.tx.blocking_send(Ok(chunk)).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })?;
        }
        Ok(())
    }
}

/// `GET /api/archive/zip`: a folder as a zip file, streamed as it is made.
#[utoipa::path(
    get,
    path = "/api/archive/zip",
    summary = "A folder of a collection (now or at a snapshot) as a zip file (stored, not compressed), streamed",
    params(FolderQuery),
    responses((status = 200, description = "the zip file"), (status = 413, description = "more files than one download holds", body = ErrorBody), (status = 404, description = "no such collection, snapshot or folder", body = ErrorBody))
)]
pub(crate) async fn zip(
    State(app): State<Arc<App>>,
    _member: Member,
    Query(q): Query<FolderQuery>,
) -> Result<Response, WebError> {
    let folder = q.folder.trim_matches('/').to_owned();
    // Checked before the answer starts: the collection, the snapshot, the folder, its size.
    let (c, at, f) = (q.c.clone(), q.at.clone(), folder.clone());
    let count = run(&app, move |app| {
        let coll = collection(app, &c)?;
        if !f.is_empty() {
            archive_core::validate_key(&f).map_err(|e| WebError::bad_request(e.to_string()))?;
        }
        let mut n = 0;
        for item in coll
            .list(point(&at), &f)
            .map_err(|e| snapshot_error(app, e))?
        {
            item.map_err(|e| storage(app, e))?;
            n += 1;
            if n > MAX_ZIP_FILES {
                return Err(WebError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    app.text.err_zip_too_many,
                ));
            }
        }
        Ok(n)
    })
    .await?;
    if count == 0 {
        return Err(WebError::new(StatusCode::NOT_FOUND, app.text.err_not_found));
    }
    // The zip unpacks into one folder named after the folder (or the collection).
    let top = match folder.rsplit('/').next().filter(|s| !s.is_empty()) {
        Some(last) => last.to_owned(),
        None => q.c.replace('/', "-"),
    };
    let strip = if folder.is_empty() {
        0
    } else {
        folder.len() + 1
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let app2 = app.clone();
    let (c, at, top2) = (q.c.clone(), q.at.clone(), top.clone());
    tokio::task::spawn_blocking(move || {
        let error_tx = tx.clone();
        let mut out = ChannelWriter {
            tx,
            buf: Vec::new(),
        };
        if let Err(e) = write_zip(&app2, &c, &at, &folder, strip, &top2, &mut out) {
            tracing::warn!("web: zip of {c}/{folder}: {e}");
            // Cut the answer short: a partial zip must not look complete.
            let _ = error_tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = Body::from_stream(n0_future::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename*=UTF-8''{}.zip",
        encode_filename(&top)
    )) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    Ok(response)
}

fn write_zip(
    app: &App,
    c: &str,
    at: &str,
    folder: &str,
    strip: usize,
    top: &str,
    out: &mut ChannelWriter,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let coll = collection(app, c).map_err(|e| e.message)?;
    let mut zip = zip::ZipWriter::new_stream(&mut *out);
    let store = app.chat.store();
    let mut buf = vec![0u8; 256 * 1024];
    for item in coll.list(point(at), folder)? {
        let item = item?;
        let name = format!("{top}/{}", &item.key[strip.min(item.key.len())..]);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(item.file.size >= u64::from(u32::MAX))
            .last_modified_time(zip_time(item.time.unix_millis()));
        zip.start_file(name, options)?;
        let mut reader = store.blobs().reader(&item.file)?;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            zip.write_all(&buf[..n])?;
        }
    }
    zip.finish()?;
    out.flush()?;
    Ok(())
}

/// Unix milliseconds as a zip's (local, 2-second) time; 1980 for anything earlier.
fn zip_time(ms: u64) -> zip::DateTime {
    let text = ms_time(ms); // 2026-12-03T16:17:05Z
    let num = |r: std::ops::Range<usize>| text.get(r).and_then(|s| s.parse::<u16>().ok());
    (|| {
        zip::DateTime::from_date_and_time(
            num(0..4)?,
            num(5..7)? as u8,
            num(8..10)? as u8,
            num(11..13)? as u8,
            num(14..16)? as u8,
            num(17..19)? as u8,
        )
        .ok()
    })()
    .unwrap_or_default()
}

// Pages.

fn coll_link(c: &str, folder: &str, at: &str) -> String {
    let mut link = format!("/archive/c?c={}", urlencode(c));
    if !folder.is_empty() {
        link.push_str(&format!("&folder={}", urlencode(folder)));
    }
    if !at.is_empty() {
        link.push_str(&format!("&at={}", urlencode(at)));
    }
    link
}

/// `GET /archive`.
pub(crate) async fn collections_page(State(app): State<Arc<App>>, member: Member) -> PageResult {
    let admin = header_of(&app, &member).await?;
    let list = run(&app, collections).await.or_page(&app)?;
    let t = app.text;
    let header = Header::of(&member, admin);
    Ok(page(layout(
        t,
        t.nav_archive,
        Some(&header),
        html! {
            h1 { (t.nav_archive) }
            @if list.is_empty() { p.hint { (t.archive_empty) } }
            ul.entries {
                @for c in &list {
                    li {
                        a.name href=(coll_link(&c.name, "", "")) { (c.name) }
                        @if let Some(s) = c.snapshots.first() {
                            small { " · " (c.snapshots.len()) " " (t.archive_snapshots) " · " (t.archive_latest) " " (s.name) " (" (s.files) " " (t.archive_files) ", " (size(s.bytes)) ")" }
                        }
                    }
                }
            }
        },
    )))
}

/// `GET /archive/c?c=&folder=&at=`: a folder of a collection.
pub(crate) async fn folder_page(
    State(app): State<Arc<App>>,
    member: Member,
    Query(q): Query<FolderQuery>,
) -> PageResult {
    let admin = header_of(&app, &member).await?;
    let view = run(&app, move |app| folder(app, &q)).await.or_page(&app)?;
    let t = app.text;
    let header = Header::of(&member, admin);
    let (c, at, folder) = (&view.collection, &view.at, &view.folder);
    let mut crumbs = vec![(String::new(), c.clone())];
    let mut path = String::new();
    for part in folder.split('/').filter(|p| !p.is_empty()) {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(part);
        crumbs.push((path.clone(), part.to_owned()));
    }
    let zip_link = format!(
        "/archive/zip?c={}&folder={}&at={}",
        urlencode(c),
        urlencode(folder),
        urlencode(at)
    );
    Ok(page(layout(
        t,
        c,
        Some(&header),
        html! {
            p { a href="/archive" { "← " (t.nav_archive) } }
            h1 {
                @for (i, (p, name)) in crumbs.iter().enumerate() {
                    @if i > 0 { " / " }
                    @if i + 1 == crumbs.len() { (name) } @else { a href=(coll_link(c, p, at)) { (name) } }
                }
            }
            p.tabs {
                a href=(coll_link(c, folder, "")) class=[at.is_empty().then_some("on")] { (t.archive_now) }
                @for s in &view.snapshots {
                    a href=(coll_link(c, folder, &s.name)) class=[(at == &s.name).then_some("on")] { (s.name) }
                }
            }
            form.row method="get" action="/archive/find" {
                input type="hidden" name="c" value=(c);
                input type="hidden" name="at" value=(at);
                input name="q" placeholder=(t.archive_find_hint) required maxlength="200";
                button { (t.archive_find) }
            }
            @if view.folders.is_empty() && view.files.is_empty() { p.hint { (t.files_empty) } }
            ul.entries {
                @for sub in &view.folders {
                    @let p = if folder.is_empty() { sub.clone() } else { format!("{folder}/{sub}") };
                    li.folder { a href=(coll_link(c, &p, at)) { "📁 " (sub) } }
                }
                @for f in &view.files {
                    li {
                        a.name href={ "/archive/get?c=" (urlencode(c)) "&path=" (urlencode(&f.path)) "&at=" (urlencode(at)) } { (f.name) }
                        small { " " (size(f.size)) }
                    }
                }
            }
            @if view.more { p.hint { (t.files_more) } }
            @if !view.folders.is_empty() || !view.files.is_empty() {
                p { a href=(zip_link) { (t.archive_zip) } }
            }
            @if !view.snapshots.is_empty() {
                h2 { (t.archive_compare) }
                form.stack method="get" action="/archive/diff" {
                    input type="hidden" name="c" value=(c);
                    label { (t.archive_from)
                        select name="from" {
                            @for (i, s) in view.snapshots.iter().enumerate() {
                                option value=(s.name) selected[i == 0] { (s.name) }
                            }
                            option value="" { (t.archive_now) }
                        }
                    }
                    label { (t.archive_to)
                        select name="to" {
                            option value="" selected { (t.archive_now) }
                            @for s in &view.snapshots { option value=(s.name) { (s.name) } }
                        }
                    }
                    button { (t.archive_compare) }
                }
            }
            @if header.admin {
                h2 { (t.archive_take_snapshot) }
                form.row method="post" action="/archive/snapshot" {
                    input type="hidden" name="csrf" value=(member.csrf);
                    input type="hidden" name="c" value=(c);
                    input name="name" required placeholder=(t.archive_snapshot_name) maxlength=(archive_core::MAX_NAME_LEN);
                    button { (t.create) }
                }
            }
        },
    )))
}

fn kind_label(t: &super::strings::Text, kind: &str) -> &'static str {
    match kind {
        k if k == ChangeKind::Added.as_str() => t.archive_added,
        k if k == ChangeKind::Removed.as_str() => t.archive_removed,
        _ => t.archive_changed,
    }
}

/// `GET /archive/diff?c=&from=&to=`.
pub(crate) async fn diff_page(
    State(app): State<Arc<App>>,
    member: Member,
    Query(q): Query<DiffQuery>,
) -> PageResult {
    let admin = header_of(&app, &member).await?;
    let view = run(&app, move |app| diff(app, &q)).await.or_page(&app)?;
    let t = app.text;
    let header = Header::of(&member, admin);
    let name = |s: &str| {
        if s.is_empty() {
            t.archive_now.to_owned()
        } else {
            s.to_owned()
        }
    };
    Ok(page(layout(
        t,
        t.archive_compare,
        Some(&header),
        html! {
            p { a href=(coll_link(&view.collection, "", "")) { "← " (view.collection) } }
            h1 { (view.collection) ": " (name(&view.from)) " → " (name(&view.to)) }
            @if view.changes.is_empty() { p.hint { (t.archive_no_changes) } }
            ul.entries.changes {
                @for ch in &view.changes {
                    li class=(ch.kind) {
                        span.kind { (kind_label(t, &ch.kind)) } " " (ch.path)
                        small {
                            @match (ch.old_size, ch.new_size) {
                                (Some(a), Some(b)) => { " " (size(a)) " → " (size(b)) },
                                (None, Some(b)) => { " " (size(b)) },
                                (Some(a), None) => { " " (size(a)) },
                                (None, None) => {},
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &view.next {
                p { a href={ "/archive/diff?c=" (urlencode(&view.collection)) "&from=" (urlencode(&view.from)) "&to=" (urlencode(&view.to)) "&after=" (urlencode(next)) } { (t.more_results) } }
            }
        },
    )))
}

/// `GET /archive/find?c=&q=&at=`.
pub(crate) async fn find_page(
    State(app): State<Arc<App>>,
    member: Member,
    Query(q): Query<FindQuery>,
) -> PageResult {
    let admin = header_of(&app, &member).await?;
    let (c, at, needle) = (q.c.clone(), q.at.clone(), q.q.clone());
    let found = run(&app, move |app| find(app, &q)).await.or_page(&app)?;
    let t = app.text;
    let header = Header::of(&member, admin);
    Ok(page(layout(
        t,
        t.archive_find,
        Some(&header),
        html! {
            p { a href=(coll_link(&c, "", &at)) { "← " (c) } }
            h1 { (t.archive_find) ": " (needle) }
            @if found.files.is_empty() { p.hint { (t.no_results) } }
            ul.entries {
                @for f in &found.files {
                    li {
                        a.name href={ "/archive/get?c=" (urlencode(&c)) "&path=" (urlencode(&f.path)) "&at=" (urlencode(&at)) } { (f.path) }
                        small { " " (size(f.size)) }
                    }
                }
            }
            @if found.more { p.hint { (t.archive_found_more) } }
        },
    )))
}

/// The snapshot form.
#[derive(Debug, Deserialize)]
pub(crate) struct SnapshotForm {
    c: String,
    name: String,
}

/// `POST /archive/snapshot` (admins).
pub(crate) async fn snapshot_page(
    State(app): State<Arc<App>>,
    _admin: Admin,
    axum::Form(form): axum::Form<SnapshotForm>,
) -> PageResult {
    let back = coll_link(&form.c, "", "");
    let new = NewSnapshot {
        c: form.c,
        name: form.name,
    };
    run(&app, move |app| take_snapshot(app, &new))
        .await
        .or_page(&app)?;
    Ok(redirect(&back))
}
