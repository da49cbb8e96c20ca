//! A room's changes as server-sent events: `GET /api/rooms/{room}/events?from=A.M`.
//!
//! Each event is `message` (data: `{"id", "message": view or null, "html": the page's
//! fragment}`, null when the message is no longer shown) or `reload` (the room's settings or
//! roles changed: read the room again). The last event of each batch carries the room's
//! resume token as its SSE `id`, so a browser that reconnects sends it back as
//! `Last-Event-ID` and misses nothing; events after the last id may come twice, and a client
//! replaces a message by its id.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chat::{ResumeToken, RoomEvent};
use n0_future::StreamExt;
use serde::Deserialize;

use super::guard::Member;
use super::limits::ClientKey;
use super::service::{message_ref, room_id, run, Names};
use super::{pages, App, WebError};

/// Live feeds open at once on this server.
pub(crate) const MAX_STREAMS: usize = 1000;
/// Live feeds one client address may hold (tabs and phones behind one router).
pub(crate) const MAX_STREAMS_PER_CLIENT: usize = 32;

/// Where to start.
#[derive(Debug, Deserialize)]
pub(crate) struct From {
    pub(crate) from: Option<String>,
}

/// Counts open feeds.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    total: AtomicUsize,
    per_client: Mutex<HashMap<ClientKey, usize>>,
}

/// An open feed's place in [`Streams`]; given back when the feed ends.
struct StreamSlot {
    app: Arc<App>,
    client: ClientKey,
}

impl Streams {
    fn open(app: &Arc<App>, client: ClientKey) -> Option<StreamSlot> {
        let streams = &app.streams;
        let mut per = streams
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = per.entry(client).or_default();
        if *mine >= MAX_STREAMS_PER_CLIENT || streams.total.load(Ordering::Relaxed) >= MAX_STREAMS {
            return None;
        }
        *mine += 1;
        streams.total.fetch_add(1, Ordering::Relaxed);
        Some(StreamSlot {
            app: app.clone(),
            client,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let streams = &self.app.streams;
        let mut per = streams
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = per.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.client);
            }
        }
        streams.total.fetch_sub(1, Ordering::Relaxed);
    }
}

#[utoipa::path(
    get,
    path = "/api/rooms/{room}/events",
    summary = "The room's changes as server-sent events: `message` ({id, message, html}) and `reload`; each batch's last event carries the resume token as its id",
    params(("room" = String, Path, description = "the room's id"), ("from" = Option<String>, Query, description = "a resume token (`Last-Event-ID` wins)")),
    responses((status = 200, description = "text/event-stream"), (status = 404, description = "refused or failed: the reason", body = super::ErrorBody))
)]
pub(crate) async fn events(
    State(app): State<Arc<App>>,
    member: Member,
    visitor: super::guard::Visitor,
    Path(room): Path<String>,
    Query(from): Query<From>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let room_text = room.clone();
    let account = member.account.clone();
    // The room must be readable now; the feed checks again with every batch.
    run(&app, move |app| app.room_readable(&account, &room_text)).await?;
    let room = room_id(&app, &room)?;
    let resume_text = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(from.from);
    let start = match resume_text.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => t
            .parse::<ResumeToken>()
            .map_err(|e| WebError::bad_request(e.to_string()))?,
        None => app
            .chat
            .resume_now(&room)
            .map_err(|e| WebError::from_chat(app.text, e))?,
    };
    let Some(slot) = Streams::open(&app, visitor.client) else {
        return Err(WebError::new(
            StatusCode::TOO_MANY_REQUESTS,
            app.text.err_too_many,
        ));
    };
    let person = app.chat.person(&member.account);
    let feed = app.chat.subscribe(&room, start);
    let mut names = Names::default();
    let stream = feed
        .map(move |page| {
            let _slot = &slot;
            let app = &slot.app;
            let page = page.map_err(|e| e.to_string())?;
            let authority = app.chat.authority(&room).map_err(|e| e.to_string())?;
            if !authority.may_read_room(&person) {
                return Err("no longer a reader of this room".to_owned());
            }
            let mut out = Vec::new();
            for event in &page.events {
                match event {
                    RoomEvent::Authority => out.push(Event::default().event("reload").data("")),
                    RoomEvent::Message { id, now } | RoomEvent::Reactions { id, now } => {
                        let shown = now.as_ref().filter(|_| authority.may_read(&person, id));
                        let view = match shown {
                            Some(m) => Some(
                                app.message_view(&member.account, m, &mut names)
                                    .map_err(|e| e.message)?,
                            ),
                            None => None,
                        };
                        let html = view.as_ref().map(|v| {
                            pages::message_html(app.text, &room.to_string(), v, "").into_string()
                        });
                        let data = serde_json::json!({
                            "id": message_ref(id),
                            "message": view,
                            "html": html,
                        });
                        out.push(
                            Event::default()
                                .event("message")
                                .json_data(data)
                                .map_err(|e| e.to_string())?,
                        );
                    }
                }
            }
            if let Some(last) = out.pop() {
                out.push(last.id(page.resume.to_string()));
            }
            Ok::<_, String>(out)
        })
        // A failed read or a lost right ends the feed (the browser reconnects and is
        // refused with a reason, or resumes).
        .take_while(Result::is_ok)
        .flat_map(|batch| n0_future::stream::iter(batch.unwrap_or_default()))
        .map(Ok::<_, Infallible>);
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    Ok(sse.into_response())
}
