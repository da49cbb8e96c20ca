//! A message's files: received with the composer's multipart form, served back to readers.
//!
//! Files are held in memory while a message is written (the messenger stores them with the
//! message), so a message's files are at most [`MAX_MESSAGE_FILES`] bytes and at most
//! [`CONCURRENT_UPLOADS`] messages with files are received at once. Larger files belong in the
//! file shares.
//!
//! Serving what people uploaded is serving what an attacker may have written: only images
//! (not SVG), audio and video are shown in the page, with their own type; anything else is
//! a download (`application/octet-stream`, `attachment`). Every answer says `nosniff` and a
//! sandboxing Content-Security-Policy, so a file can never run as a page of this server.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::guard::Member;
use super::service::{parse_message_ref, room_id, run};
use super::{App, WebError};

/// Most bytes of files one message carries.
pub(crate) const MAX_MESSAGE_FILES: usize = 8 * 1024 * 1024;
/// Messages with files received at once.
pub(crate) const CONCURRENT_UPLOADS: usize = 2;

/// How a file is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Image,
    Video,
    Audio,
    Other,
}

impl Kind {
    /// By the name's extension (the content is never trusted to say).
    pub(crate) fn of(name: &str) -> Kind {
        match media_type(name) {
            Some(t) if t.starts_with("image/") => Kind::Image,
            Some(t) if t.starts_with("video/") => Kind::Video,
            Some(t) if t.starts_with("audio/") => Kind::Audio,
            _ => Kind::Other,
        }
    }
}

/// The types shown in the page; nothing that a browser would run.
pub(crate) fn media_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "ogv" => "video/ogg",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "m4a" => "audio/mp4",
        "wav" => "audio/wav",
        _ => return None,
    })
}

/// A file's name as given by a browser, made safe to store and show: the last path
/// component, without control characters, at most [`chat::MAX_ATTACHMENT_NAME_LEN`] bytes.
pub(crate) fn clean_name(given: &str) -> String {
    let last = given.rsplit(['/', '\\']).next().unwrap_or("");
    let mut name: String = last.chars().filter(|c| !c.is_control()).collect();
    let name_trimmed = name.trim().trim_start_matches('.');
    name = name_trimmed.to_owned();
    while name.len() > chat::MAX_ATTACHMENT_NAME_LEN {
        name.pop();
    }
    if name.is_empty() {
        "file".to_owned()
    } else {
        name
    }
}

/// How long a message's files may take to arrive: 8 MB at 250 kbit/s. A client that sends
/// slower (or not at all) gives its place back to the others.
const UPLOAD_TIME: Duration = Duration::from_secs(300);
/// How long a message with files waits for its turn before the server says it is busy.
const UPLOAD_WAIT: Duration = Duration::from_secs(30);

/// Receives the composer's multipart form (`text`, `reply_to`, files in `file`) and sends the
/// message: at most [`CONCURRENT_UPLOADS`] at once, each within [`UPLOAD_TIME`].
pub(crate) async fn send_with_files(
    app: &Arc<App>,
    member: Member,
    room: String,
    request: Request,
) -> Result<String, WebError> {
    let _permit = tokio::time::timeout(UPLOAD_WAIT, app.uploads.acquire())
        .await
        .map_err(|_| WebError::new(StatusCode::SERVICE_UNAVAILABLE, app.text.err_busy))?
        .map_err(|e| WebError::internal(app.text, e))?;
    tokio::time::timeout(UPLOAD_TIME, receive(app, member, room, request))
        .await
        .map_err(|_| {
            WebError::new(
                StatusCode::REQUEST_TIMEOUT,
                "the files took too long to arrive; try again on a better connection",
            )
        })?
}

async fn receive(
    app: &Arc<App>,
    member: Member,
    room: String,
    request: Request,
) -> Result<String, WebError> {
    let mut form = Multipart::from_request(request, app)
        .await
        .map_err(|e| WebError::bad_request(e.body_text()))?;
    let (mut text, mut reply_to) = (String::new(), None);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut total = 0usize;
    let too_big = || {
        WebError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a message's files may be {} MB at most",
                MAX_MESSAGE_FILES >> 20
            ),
        )
    };
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| WebError::new(e.status(), e.body_text()))?
    {
        match field.name() {
            Some("text") => {
                text = field
                    .text()
                    .await
                    .map_err(|e| WebError::bad_request(e.body_text()))?
            }
            Some("reply_to") => {
                reply_to = Some(
                    field
                        .text()
                        .await
                        .map_err(|e| WebError::bad_request(e.body_text()))?,
                )
            }
            Some("file") => {
                // An empty file input sends a part without a name.
                let given = field.file_name().unwrap_or("").to_owned();
                if given.is_empty() {
                    continue;
                }
                let name = clean_name(&given);
                let mut bytes = Vec::new();
                while let Some(chunk) = field
                    .chunk()
                    .await
                    .map_err(|e| WebError::new(e.status(), e.body_text()))?
                {
                    total += chunk.len();
                    if total > MAX_MESSAGE_FILES {
                        return Err(too_big());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                files.push((name, bytes));
            }
            _ => {}
        }
    }
    if files.len() > chat::MAX_ATTACHMENTS {
        return Err(WebError::bad_request(format!(
            "a message carries {} files at most",
            chat::MAX_ATTACHMENTS
        )));
    }
    let account = member.account;
    run(app, move |app| {
        app.send_with_files(&account, &room, &text, reply_to.as_deref(), files)
    })
    .await
}

/// `GET .../m/{message}/files/{index}`: a message's file, fetched from a peer first when it
/// was written on another server and is not here yet.
#[utoipa::path(
    get,
    path = "/api/rooms/{room}/messages/{message}/files/{index}",
    summary = "A message's file (images, audio and video with their type; anything else as an attachment)",
    params(("room" = String, Path, description = "the room's id"), ("message" = String, Path, description = "the message's id"), ("index" = u8, Path, description = "which file")),
    responses((status = 200, description = "the file's bytes"), (status = 404, description = "refused or failed: the reason", body = super::ErrorBody))
)]
pub(crate) async fn download(
    State(app): State<Arc<App>>,
    member: Member,
    Path((room, message, index)): Path<(String, String, u8)>,
) -> Result<Response, WebError> {
    let (r, m) = (room.clone(), message.clone());
    let account = member.account.clone();
    let found = run(&app, move |app| app.attachment(&account, &r, &m, index)).await?;
    let (name, bytes) = match found {
        (name, Some(bytes)) => (name, bytes),
        (name, None) => {
            let delivery = app
                .delivery
                .clone()
                .ok_or_else(|| WebError::new(StatusCode::NOT_FOUND, app.text.err_not_found))?;
            let (room_id, id) = (room_id(&app, &room)?, parse_message_ref(&app, &message)?);
            delivery
                .fetch_attachment(&room_id, &id, index)
                .await
                .map_err(|e| WebError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
            let account = member.account.clone();
            match run(&app, move |app| {
                app.attachment(&account, &room, &message, index)
            })
            .await?
            {
                (_, Some(bytes)) => (name, bytes),
                (_, None) => {
                    return Err(WebError::new(StatusCode::NOT_FOUND, app.text.err_not_found))
                }
            }
        }
    };
    let (content_type, disposition) = match media_type(&name) {
        Some(t) => (t, "inline"),
        None => ("application/octet-stream", "attachment"),
    };
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("{disposition}; filename*=UTF-8''{encoded}")) {
        headers.insert(CONTENT_DISPOSITION, v);
    }
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; img-src 'self'; media-src 'self'"),
    );
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_path_and_control_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\bo\\photo.jpg"), "photo.jpg");
        assert_eq!(clean_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name(".hidden"), "hidden");
        assert_eq!(clean_name(""), "file");
        assert!(clean_name(&"é".repeat(300)).len() <= chat::MAX_ATTACHMENT_NAME_LEN);
    }

    #[test]
    fn only_media_is_shown_and_nothing_runnable() {
        assert_eq!(Kind::of("IMG_1.JPG"), Kind::Image);
        assert_eq!(Kind::of("clip.webm"), Kind::Video);
        assert_eq!(Kind::of("song.mp3"), Kind::Audio);
        for runnable in ["page.html", "x.htm", "logo.svg", "a.js", "noext", "x.xhtml"] {
            assert_eq!(Kind::of(runnable), Kind::Other, "{runnable}");
            assert_eq!(media_type(runnable), None, "{runnable}");
        }
    }
}
