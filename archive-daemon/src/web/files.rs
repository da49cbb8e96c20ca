//! The files page and its API: the community's folder and each person's own, on
//! [`archive_core::shares`] (which holds the logic: folders, uploads in parts, versions,
//! trash); this module only turns requests into its calls and answers.
//!
//! Downloads honour one HTTP byte range (`206 Partial Content`), so a video plays and seeks in
//! the browser and a broken-off download resumes. What a file may show is decided as for a
//! message's files: images, audio and video inline with their type; anything else only as a
//! sandboxed download.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use archive_core::shares::{Share, ShareError, ShareFile};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::html;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::attachments::{clean_name, media_type};
use super::guard::{redirect, Member};
use super::pages::{header_of, layout, page, size, Header, OrPage, PageResult};
use super::service::run;
use super::{App, ErrorBody, WebError};

/// Most bytes of one part of an upload (the page's script sends 4 MiB parts).
pub(crate) const MAX_PART: usize = 8 * 1024 * 1024;
/// How long an upload through the plain form may wait for its next bytes.
const FORM_IDLE: Duration = Duration::from_secs(60);

/// Which folder an address names: `community` or `mine`.
fn share_of(app: &App, which: &str, member: &Member) -> Result<Share, WebError> {
    match which {
        "community" => Ok(Share::Community),
        "mine" => Ok(Share::Person(member.account.clone())),
        _ => Err(WebError::new(StatusCode::NOT_FOUND, app.text.err_not_found)),
    }
}

impl WebError {
    pub(crate) fn from_share(text: &super::strings::Text, e: ShareError) -> WebError {
        use ShareError as E;
        let status = match &e {
            E::Name(_) => StatusCode::BAD_REQUEST,
            E::NotFound(_) | E::NoSuchUpload => StatusCode::NOT_FOUND,
            E::TooLarge { .. } | E::OverQuota { .. } | E::PastDeclaredSize { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            E::TooManyUploads => StatusCode::TOO_MANY_REQUESTS,
            E::DiskFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
            E::WrongOffset { .. } | E::Incomplete { .. } => StatusCode::CONFLICT,
            E::Gone(_) => StatusCode::GONE,
            _ => return WebError::internal(text, e),
        };
        WebError::new(status, e.to_string())
    }
}

/// Runs a file-share call off the async threads.
async fn shares<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&archive_core::shares::Shares) -> Result<T, ShareError> + Send + 'static,
) -> Result<T, WebError> {
    run(app, move |app| {
        f(&app.shares).map_err(|e| WebError::from_share(app.text, e))
    })
    .await
}

/// A file in a listing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct FileInfo {
    /// Its path in the folder's share.
    pub(crate) path: String,
    /// The last part of the path.
    pub(crate) name: String,
    pub(crate) size: u64,
    /// When it was written, Unix milliseconds.
    pub(crate) time: u64,
    /// Its content's BLAKE3 hash.
    pub(crate) hash: String,
}

impl From<ShareFile> for FileInfo {
    fn from(f: ShareFile) -> FileInfo {
        FileInfo {
            name: f.path.rsplit('/').next().unwrap_or(&f.path).to_owned(),
            path: f.path,
            size: f.file.size,
            time: f.time.unix_millis(),
            hash: f.file.hash.to_string(),
        }
    }
}

/// One level of a folder.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FolderView {
    /// `community` or `mine`.
    pub(crate) share: String,
    /// The folder's path (`""`: the top).
    pub(crate) folder: String,
    /// Folders in it (names).
    pub(crate) folders: Vec<String>,
    pub(crate) files: Vec<FileInfo>,
    /// More entries than a listing shows.
    pub(crate) more: bool,
    /// Bytes the share holds, and may hold.
    pub(crate) used: u64,
    pub(crate) quota: u64,
    /// The largest file.
    pub(crate) max_file: u64,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub(crate) struct FolderQuery {
    /// A folder's path (`""` or absent: the top).
    #[serde(default)]
    pub(crate) folder: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct PathQuery {
    /// A file's path in the share.
    pub(crate) path: String,
}

async fn folder_view(
    app: &Arc<App>,
    which: &str,
    member: &Member,
    folder: String,
) -> Result<FolderView, WebError> {
    let share = share_of(app, which, member)?;
    let which = which.to_owned();
    shares(app, move |s| {
        let listing = s.list(&share, &folder)?;
        Ok(FolderView {
            share: which,
            folder: folder.trim_matches('/').to_owned(),
            folders: listing.folders,
            files: listing.files.into_iter().map(FileInfo::from).collect(),
            more: listing.more,
            used: s.used(&share)?,
            quota: s.quota(&share),
            max_file: s.limits().max_file,
        })
    })
    .await
}

/// `GET /api/files/{share}`: one level of a folder.
#[utoipa::path(
    get,
    path = "/api/files/{share}",
    summary = "One level of a folder of the community's files (`community`) or your own (`mine`)",
    params(("share" = String, Path, description = "`community` or `mine`"), FolderQuery),
    responses((status = 200, description = "the folder", body = FolderView), (status = 400, description = "a bad folder path", body = ErrorBody))
)]
pub(crate) async fn api_folder(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
    Query(q): Query<FolderQuery>,
) -> Result<Json<FolderView>, WebError> {
    Ok(Json(folder_view(&app, &which, &member, q.folder).await?))
}

/// An upload to begin.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct NewUpload {
    /// Where the file goes (`folder/name`).
    pub(crate) path: String,
    /// Its size in bytes.
    pub(crate) size: u64,
}

/// An upload under way.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UploadView {
    pub(crate) id: String,
    pub(crate) path: String,
    pub(crate) size: u64,
    /// Bytes received: the next part starts here.
    pub(crate) received: u64,
}

impl From<archive_core::shares::Upload> for UploadView {
    fn from(u: archive_core::shares::Upload) -> UploadView {
        UploadView {
            id: u.id,
            path: u.path,
            size: u.size,
            received: u.received,
        }
    }
}

/// `POST /api/files/{share}/uploads`: begins an upload.
#[utoipa::path(
    post,
    path = "/api/files/{share}/uploads",
    summary = "Begin an upload (then send its parts with PUT, then finish it)",
    params(("share" = String, Path, description = "`community` or `mine`")),
    request_body = NewUpload,
    responses((status = 200, description = "the upload", body = UploadView), (status = 413, description = "too large, or over the quota", body = ErrorBody), (status = 400, description = "a bad path", body = ErrorBody))
)]
pub(crate) async fn begin_upload(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
    Json(new): Json<NewUpload>,
) -> Result<Json<UploadView>, WebError> {
    let share = share_of(&app, &which, &member)?;
    let owner = member.account;
    let up = shares(&app, move |s| {
        s.begin_upload(&owner, &share, &new.path, new.size)
    })
    .await?;
    Ok(Json(up.into()))
}

/// `GET /api/files/uploads/{id}`: where an upload stands.
#[utoipa::path(
    get,
    path = "/api/files/uploads/{id}",
    summary = "Where one of your uploads stands (to resume it)",
    params(("id" = String, Path, description = "the upload's id")),
    responses((status = 200, description = "the upload", body = UploadView), (status = 404, description = "no such upload of yours", body = ErrorBody))
)]
pub(crate) async fn upload_status(
    State(app): State<Arc<App>>,
    member: Member,
    Path(id): Path<String>,
) -> Result<Json<UploadView>, WebError> {
    let owner = member.account;
    Ok(Json(
        shares(&app, move |s| s.upload(&owner, &id)).await?.into(),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct PartQuery {
    /// Where this part starts: the bytes received so far.
    pub(crate) offset: u64,
}

/// `PUT /api/files/uploads/{id}?offset=N`: one part (the body's bytes).
#[utoipa::path(
    put,
    path = "/api/files/uploads/{id}",
    summary = "Send one part of an upload (at most 8 MiB), starting at the bytes received so far",
    params(("id" = String, Path, description = "the upload's id"), PartQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "the upload after this part", body = UploadView), (status = 409, description = "the part does not start where the upload stands: ask where it stands", body = ErrorBody), (status = 413, description = "past the declared size or over 8 MiB", body = ErrorBody))
)]
pub(crate) async fn upload_part(
    State(app): State<Arc<App>>,
    member: Member,
    Path(id): Path<String>,
    Query(q): Query<PartQuery>,
    bytes: Bytes,
) -> Result<Json<UploadView>, WebError> {
    let owner = member.account;
    let up = shares(&app, move |s| {
        s.write_part(&owner, &id, q.offset, &bytes)?;
        s.upload(&owner, &id)
    })
    .await?;
    Ok(Json(up.into()))
}

/// `POST /api/files/uploads/{id}/finish`: adds a complete upload to its folder.
#[utoipa::path(
    post,
    path = "/api/files/uploads/{id}/finish",
    summary = "Finish an upload: the file takes its place (a new version if one was there)",
    params(("id" = String, Path, description = "the upload's id")),
    responses((status = 200, description = "the file", body = FileInfo), (status = 409, description = "not every byte has arrived", body = ErrorBody))
)]
pub(crate) async fn finish_upload(
    State(app): State<Arc<App>>,
    member: Member,
    Path(id): Path<String>,
) -> Result<Json<FileInfo>, WebError> {
    let owner = member.account;
    let file = shares(&app, move |s| s.finish_upload(&owner, &id)).await?;
    Ok(Json(file.into()))
}

/// `DELETE /api/files/uploads/{id}`: abandons an upload.
#[utoipa::path(
    delete,
    path = "/api/files/uploads/{id}",
    summary = "Abandon one of your uploads",
    params(("id" = String, Path, description = "the upload's id")),
    responses((status = 204, description = "deleted"), (status = 404, description = "no such upload of yours", body = ErrorBody))
)]
pub(crate) async fn cancel_upload(
    State(app): State<Arc<App>>,
    member: Member,
    Path(id): Path<String>,
) -> Result<StatusCode, WebError> {
    let owner = member.account;
    shares(&app, move |s| s.cancel_upload(&owner, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/files/{share}/content?path=`: a file's bytes, or one range of them.
#[utoipa::path(
    get,
    path = "/api/files/{share}/content",
    summary = "A file's bytes (one `Range: bytes=` range is honoured with 206)",
    params(("share" = String, Path, description = "`community` or `mine`"), PathQuery),
    responses((status = 200, description = "the file"), (status = 206, description = "the range asked for"), (status = 416, description = "a range outside the file", body = ErrorBody), (status = 404, description = "no such file", body = ErrorBody))
)]
pub(crate) async fn content(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
    Query(q): Query<PathQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let share = share_of(&app, &which, &member)?;
    let path = q.path.clone();
    let file = shares(&app, move |s| s.get(&share, &path))
        .await?
        .ok_or_else(|| WebError::new(StatusCode::NOT_FOUND, app.text.err_not_found))?;
    serve_file(&app, &q.path, file.file, &headers)
}

/// A byte range `start..end` of a file of `size` bytes, from a `Range` header: `Ok(None)`
/// for the whole file (no header, or a form this server does not serve: several ranges, or
/// another unit), `Err(())` for a range that lies outside the file (416).
pub(crate) fn parse_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (first, last) = spec.split_once('-').ok_or(())?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        // The last N bytes.
        let n: u64 = last.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size)
    } else {
        let start: u64 = first.parse().map_err(|_| ())?;
        let end = if last.is_empty() {
            size
        } else {
            let last: u64 = last.parse().map_err(|_| ())?;
            if last < start {
                return Err(());
            }
            last.saturating_add(1).min(size)
        };
        if start >= size {
            return Err(());
        }
        (start, end)
    };
    Ok(Some(range))
}

/// Streams `start..end` of a file, verified as it is read, a piece at a time.
fn stream_file(app: &Arc<App>, file: archive_core::FileRef, start: u64, end: u64) -> Body {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = app.shares.store().clone();
    tokio::task::spawn_blocking(move || {
        let mut reader = match store.blobs().reader(&file) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(std::io::Error::other(e)));
                return;
            }
        };
        if let Err(e) = reader.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = end - start;
        while left > 0 {
            let mut buf = vec![0u8; left.min(256 * 1024) as usize];
            match reader.read(&mut buf) {
                Ok(0) => {
                    let _ = tx.blocking_send(Err(std::io::ErrorKind::UnexpectedEof.into()));
                    return;
                }
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return; // The client went away.
                    }
                }
                Err(e) => {
                    // Damaged content: the answer is cut short, never wrong bytes.
                    tracing::error!("web: reading {}: {e}", file.hash);
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    Body::from_stream(n0_future::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// Answers with a file (its name decides how it is shown), or the range `headers` ask for.
pub(crate) fn serve_file(
    app: &Arc<App>,
    path: &str,
    file: archive_core::FileRef,
    headers: &HeaderMap,
) -> Result<Response, WebError> {
    let size = file.size;
    let range = match headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        Some(h) => match parse_range(h, size) {
            Ok(r) => r,
            Err(()) => {
                let mut response =
                    WebError::new(StatusCode::RANGE_NOT_SATISFIABLE, app.text.err_range)
                        .into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(CONTENT_RANGE, v);
                }
                return Ok(response);
            }
        },
        None => None,
    };
    let (start, end) = range.unwrap_or((0, size));
    let name = path.rsplit('/').next().unwrap_or(path);
    let (content_type, disposition) = match media_type(name) {
        Some(t) => (t, "inline"),
        None => ("application/octet-stream", "attachment"),
    };
    let mut response = stream_file(app, file, start, end).into_response();
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let v = format!("bytes {start}-{}/{size}", end.saturating_sub(1));
        if let Ok(v) = HeaderValue::from_str(&v) {
            response.headers_mut().insert(CONTENT_RANGE, v);
        }
    }
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", file.hash)) {
        h.insert(ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{disposition}; filename*=UTF-8''{}",
        encode_filename(name)
    )) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; img-src 'self'; media-src 'self'"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    Ok(response)
}

/// A file name for `filename*=UTF-8''` (RFC 5987).
pub(crate) fn encode_filename(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A path in a share.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct PathBody {
    pub(crate) path: String,
}

/// `DELETE /api/files/{share}/content?path=`: moves a file to the trash.
#[utoipa::path(
    delete,
    path = "/api/files/{share}/content",
    summary = "Move a file to the trash",
    params(("share" = String, Path, description = "`community` or `mine`"), PathQuery),
    responses((status = 204, description = "in the trash"), (status = 404, description = "no such file", body = ErrorBody))
)]
pub(crate) async fn api_remove(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<StatusCode, WebError> {
    let share = share_of(&app, &which, &member)?;
    shares(&app, move |s| s.remove(&share, &q.path)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A file in the trash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TrashInfo {
    pub(crate) path: String,
    pub(crate) size: u64,
    /// When it was removed, Unix milliseconds.
    pub(crate) removed: u64,
}

async fn trash_of(app: &Arc<App>, share: Share) -> Result<Vec<TrashInfo>, WebError> {
    shares(app, move |s| {
        Ok(s.trash(&share)?
            .into_iter()
            .map(|t| TrashInfo {
                path: t.path,
                size: t.file.size,
                removed: t.removed.unix_millis(),
            })
            .collect())
    })
    .await
}

/// `GET /api/files/{share}/trash`.
#[utoipa::path(
    get,
    path = "/api/files/{share}/trash",
    summary = "Removed files that can still be restored (gc empties the trash after a set time)",
    params(("share" = String, Path, description = "`community` or `mine`")),
    responses((status = 200, description = "the trash, newest removal first", body = Vec<TrashInfo>))
)]
pub(crate) async fn api_trash(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
) -> Result<Json<Vec<TrashInfo>>, WebError> {
    let share = share_of(&app, &which, &member)?;
    Ok(Json(trash_of(&app, share).await?))
}

/// `POST /api/files/{share}/trash/restore`.
#[utoipa::path(
    post,
    path = "/api/files/{share}/trash/restore",
    summary = "Put a removed file back",
    params(("share" = String, Path, description = "`community` or `mine`")),
    request_body = PathBody,
    responses((status = 204, description = "restored"), (status = 404, description = "not in the trash", body = ErrorBody))
)]
pub(crate) async fn api_restore(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
    Json(body): Json<PathBody>,
) -> Result<StatusCode, WebError> {
    let share = share_of(&app, &which, &member)?;
    shares(&app, move |s| s.restore(&share, &body.path)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A version of a file.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct VersionInfo {
    /// The entry that wrote it (what restoring it names).
    pub(crate) entry: String,
    /// Unix milliseconds.
    pub(crate) time: u64,
    /// `None` for a removal.
    pub(crate) size: Option<u64>,
    /// Its content is still kept.
    pub(crate) available: bool,
    /// The version shown now.
    pub(crate) current: bool,
}

async fn versions_of(
    app: &Arc<App>,
    share: Share,
    path: String,
) -> Result<Vec<VersionInfo>, WebError> {
    shares(app, move |s| {
        Ok(s.versions(&share, &path)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| VersionInfo {
                entry: v.entry.to_string(),
                time: v.time.unix_millis(),
                size: v.file.map(|f| f.size),
                available: v.available,
                current: i == 0 && v.file.is_some(),
            })
            .collect())
    })
    .await
}

/// `GET /api/files/{share}/versions?path=`.
#[utoipa::path(
    get,
    path = "/api/files/{share}/versions",
    summary = "A file's versions, newest first",
    params(("share" = String, Path, description = "`community` or `mine`"), PathQuery),
    responses((status = 200, description = "its versions", body = Vec<VersionInfo>), (status = 404, description = "no such file", body = ErrorBody))
)]
pub(crate) async fn api_versions(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<Json<Vec<VersionInfo>>, WebError> {
    let share = share_of(&app, &which, &member)?;
    Ok(Json(versions_of(&app, share, q.path).await?))
}

/// A version to make current again.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct RestoreVersion {
    pub(crate) path: String,
    /// A version's `entry`.
    pub(crate) entry: String,
}

async fn restore_version(
    app: &Arc<App>,
    share: Share,
    body: RestoreVersion,
) -> Result<(), WebError> {
    let entry: archive_core::EntryId = body
        .entry
        .parse()
        .map_err(|_| WebError::bad_request(app.text.err_bad_request))?;
    shares(app, move |s| s.restore_version(&share, &body.path, &entry)).await
}

/// `POST /api/files/{share}/versions/restore`.
#[utoipa::path(
    post,
    path = "/api/files/{share}/versions/restore",
    summary = "Make an earlier version of a file the current one",
    params(("share" = String, Path, description = "`community` or `mine`")),
    request_body = RestoreVersion,
    responses((status = 204, description = "restored"), (status = 410, description = "that version is no longer kept", body = ErrorBody), (status = 404, description = "no such version", body = ErrorBody))
)]
pub(crate) async fn api_restore_version(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
    Json(body): Json<RestoreVersion>,
) -> Result<StatusCode, WebError> {
    let share = share_of(&app, &which, &member)?;
    restore_version(&app, share, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/files/mine/share`.
#[utoipa::path(
    post,
    path = "/api/files/mine/share",
    summary = "Move one of your files to the community's folder (same path): from then on it syncs with the community's peers",
    request_body = PathBody,
    responses((status = 204, description = "shared"), (status = 404, description = "no such file of yours", body = ErrorBody))
)]
pub(crate) async fn api_share(
    State(app): State<Arc<App>>,
    member: Member,
    Json(body): Json<PathBody>,
) -> Result<StatusCode, WebError> {
    let person = member.account;
    shares(&app, move |s| s.share_with_community(&person, &body.path)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// Pages.

fn folder_link(which: &str, folder: &str) -> String {
    format!("/files/{which}?folder={}", super::pages::urlencode(folder))
}

fn file_link(which: &str, path: &str, what: &str) -> String {
    format!(
        "/files/{which}/{what}?path={}",
        super::pages::urlencode(path)
    )
}

/// `GET /files`: the community's folder.
pub(crate) async fn home(_member: Member) -> Response {
    redirect("/files/community")
}

/// `GET /files/{share}`: the folder page.
pub(crate) async fn folder_page(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
    Query(q): Query<FolderQuery>,
) -> PageResult {
    let admin = header_of(&app, &member).await?;
    let view = folder_view(&app, &which, &member, q.folder)
        .await
        .or_page(&app)?;
    let t = app.text;
    let header = Header::of(&member, admin);
    let folder = &view.folder;
    let mut crumbs = vec![(
        String::new(),
        match which.as_str() {
            "mine" => t.files_mine,
            _ => t.files_community,
        }
        .to_owned(),
    )];
    let mut at = String::new();
    for part in folder.split('/').filter(|p| !p.is_empty()) {
        if !at.is_empty() {
            at.push('/');
        }
        at.push_str(part);
        crumbs.push((at.clone(), part.to_owned()));
    }
    let upload_action = format!(
        "/files/{which}/upload?folder={}&csrf={}",
        super::pages::urlencode(folder),
        super::pages::urlencode(&member.csrf)
    );
    Ok(page(layout(
        t,
        t.nav_files,
        Some(&header),
        html! {
            p.tabs {
                a href="/files/community" class=[(which == "community").then_some("on")] { (t.files_community) }
                a href="/files/mine" class=[(which == "mine").then_some("on")] { (t.files_mine) }
            }
            h1 {
                @for (i, (path, name)) in crumbs.iter().enumerate() {
                    @if i > 0 { " / " }
                    @if i + 1 == crumbs.len() { (name) } @else { a href=(folder_link(&which, path)) { (name) } }
                }
            }
            @if which == "mine" { p.hint { (t.files_mine_hint) } }
            form.stack #upload method="post" enctype="multipart/form-data" action=(upload_action)
                data-share=(which) data-folder=(folder) data-csrf=(member.csrf) {
                label { (t.files_upload) input type="file" name="file" multiple required; }
                progress hidden max="1" value="0" {}
                small.status {}
                button.primary { (t.files_upload_button) }
            }
            details {
                summary { (t.files_new_folder) }
                // A folder exists while it holds files: this opens it, and uploads there make it.
                form.row method="get" action={ "/files/" (which) } {
                    input name="folder" required value=(if folder.is_empty() { String::new() } else { format!("{folder}/") });
                    button { (t.files_open_folder) }
                }
            }
            @if view.folders.is_empty() && view.files.is_empty() { p.hint { (t.files_empty) } }
            ul.entries {
                @for sub in &view.folders {
                    @let path = if folder.is_empty() { sub.clone() } else { format!("{folder}/{sub}") };
                    li.folder { a href=(folder_link(&which, &path)) { "📁 " (sub) } }
                }
                @for f in &view.files {
                    li {
                        a.name href=(file_link(&which, &f.path, "get")) { (f.name) }
                        small { " " (size(f.size)) " · " time.date datetime=(super::pages::ms_time(f.time)) { (super::pages::ms_time(f.time)) } }
                        div.actions {
                            a href=(file_link(&which, &f.path, "versions")) { (t.files_versions) }
                            @if which == "mine" {
                                form.inline method="post" action="/files/mine/share" {
                                    input type="hidden" name="csrf" value=(member.csrf);
                                    input type="hidden" name="path" value=(f.path);
                                    button { (t.files_share) }
                                }
                            }
                            form.inline method="post" action={ "/files/" (which) "/remove" } {
                                input type="hidden" name="csrf" value=(member.csrf);
                                input type="hidden" name="path" value=(f.path);
                                button.danger { (t.files_remove) }
                            }
                        }
                    }
                }
            }
            @if view.more { p.hint { (t.files_more) } }
            p.hint { (size(view.used)) " / " (size(view.quota)) " · " a href={ "/files/" (which) "/trash" } { (t.files_trash) } }
        },
    )))
}

/// `GET /files/{share}/get?path=`: the file itself (ranges honoured).
pub(crate) async fn get_page(
    state: State<Arc<App>>,
    member: Member,
    which: Path<String>,
    q: Query<PathQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    content(state, member, which, q, headers).await
}

/// The forms' one field besides the token.
#[derive(Debug, Deserialize)]
pub(crate) struct PathForm {
    path: String,
}

/// `POST /files/{share}/remove`.
pub(crate) async fn remove_page(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
    axum::Form(form): axum::Form<PathForm>,
) -> PageResult {
    let share = share_of(&app, &which, &member).or_page(&app)?;
    let path = form.path.clone();
    shares(&app, move |s| s.remove(&share, &path))
        .await
        .or_page(&app)?;
    Ok(redirect(&folder_link(&which, parent(&form.path))))
}

/// `POST /files/mine/share`.
pub(crate) async fn share_page(
    State(app): State<Arc<App>>,
    member: Member,
    axum::Form(form): axum::Form<PathForm>,
) -> PageResult {
    let person = member.account.clone();
    let path = form.path.clone();
    shares(&app, move |s| s.share_with_community(&person, &path))
        .await
        .or_page(&app)?;
    Ok(redirect(&folder_link("community", parent(&form.path))))
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// `GET /files/{share}/trash`.
pub(crate) async fn trash_page(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
) -> PageResult {
    let admin = header_of(&app, &member).await?;
    let share = share_of(&app, &which, &member).or_page(&app)?;
    let trash = trash_of(&app, share).await.or_page(&app)?;
    let t = app.text;
    let header = Header::of(&member, admin);
    Ok(page(layout(
        t,
        t.files_trash,
        Some(&header),
        html! {
            p { a href=(folder_link(&which, "")) { "← " (t.nav_files) } }
            h1 { (t.files_trash) }
            p.hint { (t.files_trash_hint) }
            @if trash.is_empty() { p.hint { (t.files_trash_empty) } }
            ul.entries {
                @for f in &trash {
                    li {
                        (f.path) small { " " (size(f.size)) " · " time.date datetime=(super::pages::ms_time(f.removed)) { (super::pages::ms_time(f.removed)) } }
                        form.inline method="post" action={ "/files/" (which) "/restore" } {
                            input type="hidden" name="csrf" value=(member.csrf);
                            input type="hidden" name="path" value=(f.path);
                            button { (t.files_restore) }
                        }
                    }
                }
            }
        },
    )))
}

/// `POST /files/{share}/restore`.
pub(crate) async fn restore_page(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
    axum::Form(form): axum::Form<PathForm>,
) -> PageResult {
    let share = share_of(&app, &which, &member).or_page(&app)?;
    let path = form.path.clone();
    shares(&app, move |s| s.restore(&share, &path))
        .await
        .or_page(&app)?;
    Ok(redirect(&folder_link(&which, parent(&form.path))))
}

/// `GET /files/{share}/versions?path=`.
pub(crate) async fn versions_page(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
    Query(q): Query<PathQuery>,
) -> PageResult {
    let admin = header_of(&app, &member).await?;
    let share = share_of(&app, &which, &member).or_page(&app)?;
    let versions = versions_of(&app, share, q.path.clone())
        .await
        .or_page(&app)?;
    let t = app.text;
    let header = Header::of(&member, admin);
    Ok(page(layout(
        t,
        t.files_versions,
        Some(&header),
        html! {
            p { a href=(folder_link(&which, parent(&q.path))) { "← " (t.nav_files) } }
            h1 { (t.files_versions) ": " (q.path) }
            ol.entries {
                @for v in &versions {
                    li {
                        time.date datetime=(super::pages::ms_time(v.time)) { (super::pages::ms_time(v.time)) }
                        " "
                        @match v.size {
                            Some(s) => small { (size(s)) },
                            None => small { (t.files_removed) },
                        }
                        @if v.current { " " strong { (t.files_current) } }
                        @else if v.available {
                            form.inline method="post" action={ "/files/" (which) "/versions/restore" } {
                                input type="hidden" name="csrf" value=(member.csrf);
                                input type="hidden" name="path" value=(q.path);
                                input type="hidden" name="entry" value=(v.entry);
                                button { (t.files_restore) }
                            }
                        } @else if v.size.is_some() { " " small { (t.files_not_kept) } }
                    }
                }
            }
        },
    )))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RestoreVersionForm {
    path: String,
    entry: String,
}

/// `POST /files/{share}/versions/restore`.
pub(crate) async fn restore_version_page(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
    axum::Form(form): axum::Form<RestoreVersionForm>,
) -> PageResult {
    let share = share_of(&app, &which, &member).or_page(&app)?;
    let back = file_link(&which, &form.path, "versions");
    restore_version(
        &app,
        share,
        RestoreVersion {
            path: form.path,
            entry: form.entry,
        },
    )
    .await
    .or_page(&app)?;
    Ok(redirect(&back))
}

/// `POST /files/{share}/upload?folder=&csrf=`: the plain form's upload (without the script,
/// which sends large files in parts instead). Each file is written to the uploads folder as
/// it arrives (never held in memory), then added; a client that stops sending for a minute is
/// cut off.
pub(crate) async fn upload_form(
    State(app): State<Arc<App>>,
    member: Member,
    Path(which): Path<String>,
    Query(q): Query<FolderQuery>,
    request: Request,
) -> PageResult {
    let share = share_of(&app, &which, &member).or_page(&app)?;
    let folder = q.folder.trim_matches('/').to_owned();
    receive_form(&app, share, &folder, request)
        .await
        .or_page(&app)?;
    Ok(redirect(&folder_link(&which, &folder)))
}

async fn receive_form(
    app: &Arc<App>,
    share: Share,
    folder: &str,
    request: Request,
) -> Result<(), WebError> {
    let max = app.shares.limits().max_file;
    let mut form = Multipart::from_request(request, app)
        .await
        .map_err(|e| WebError::bad_request(e.body_text()))?;
    let idle = || WebError::new(StatusCode::REQUEST_TIMEOUT, app.text.err_upload_stalled);
    let bad =
        |e: axum::extract::multipart::MultipartError| WebError::new(e.status(), e.body_text());
    while let Some(mut field) = tokio::time::timeout(FORM_IDLE, form.next_field())
        .await
        .map_err(|_| idle())?
        .map_err(bad)?
    {
        if field.name() != Some("file") {
            continue;
        }
        let given = field.file_name().unwrap_or("").to_owned();
        if given.is_empty() {
            continue;
        }
        let name = clean_name(&given);
        let path = if folder.is_empty() {
            name
        } else {
            format!("{folder}/{name}")
        };
        archive_core::validate_key(&path).map_err(|e| WebError::bad_request(e.to_string()))?;
        let temp = TempUpload::new(app.shares.uploads_dir());
        let mut out = tokio::fs::File::create(&temp.0)
            .await
            .map_err(|e| WebError::internal(app.text, e))?;
        let mut received = 0u64;
        while let Some(chunk) = tokio::time::timeout(FORM_IDLE, field.chunk())
            .await
            .map_err(|_| idle())?
            .map_err(bad)?
        {
            received += chunk.len() as u64;
            if received > max {
                return Err(WebError::from_share(
                    app.text,
                    ShareError::TooLarge {
                        size: received,
                        max,
                    },
                ));
            }
            out.write_all(&chunk)
                .await
                .map_err(|e| WebError::internal(app.text, e))?;
        }
        out.flush()
            .await
            .map_err(|e| WebError::internal(app.text, e))?;
        drop(out);
        let share = share.clone();
        shares(app, move |s| {
            let added = s.add_file(&share, &path, &temp.0);
            drop(temp);
            added
        })
        .await?;
    }
    Ok(())
}

/// A file in the uploads folder, deleted when dropped.
struct TempUpload(std::path::PathBuf);

impl TempUpload {
    fn new(dir: &std::path::Path) -> TempUpload {
        let mut bytes = [0u8; 16];
        let _ = getrandom::fill(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        TempUpload(dir.join(format!("form-{id}.part")))
    }
}

impl Drop for TempUpload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some((0, 100))));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some((900, 1000))));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some((900, 1000))));
        assert_eq!(parse_range("bytes=-5000", 1000), Ok(Some((0, 1000))));
        assert_eq!(parse_range("bytes=990-5000", 1000), Ok(Some((990, 1000))));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ok(None));
        assert_eq!(parse_range("items=0-1", 1000), Ok(None));
        for bad in [
            "bytes=1000-",
            "bytes=5-4",
            "bytes=-0",
            "bytes=x-1",
            "bytes=1",
            "bytes=18446744073709551616-",
        ] {
            assert_eq!(parse_range(bad, 1000), Err(()), "{bad}");
        }
        assert_eq!(parse_range("bytes=0-", 0), Err(()));
    }
}
