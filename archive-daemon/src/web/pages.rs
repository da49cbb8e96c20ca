//! The pages: server-rendered HTML (maud), readable and usable without JavaScript (forms
//! post and redirect); one small script ([`SCRIPT`]) adds live updates and sending without
//! a reload. Each handler calls the same operation as its API route ([`super::service`]).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;

use super::api::{self, Login};
use super::guard::{new_pre_token, redirect, set_cookie, Admin, Member, Visitor, PRE_COOKIE};
use super::service::{
    self, run, AdminView, JoinRequest, MessageView, NewMessage, NewRoom, RoomList, RoomView,
    SearchView,
};
use super::strings::Text;
use super::{App, WebError};

/// The page's script: live updates over server-sent events, sending without a reload, local
/// times. Served at `/app.js`.
pub(crate) const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

/// A failed page: the error shown on a page, with its status.
pub(crate) struct PageError {
    error: WebError,
    text: &'static Text,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let t = self.text;
        let body = layout(
            t,
            t.error_title,
            None,
            html! {
                h1 { (t.error_title) }
                p.error { (self.error.message) }
                p { a href="javascript:history.back()" { (t.back) } " · " a href="/" { (t.app_name) } }
            },
        );
        (self.error.status, body).into_response()
    }
}

pub(super) type PageResult = Result<Response, PageError>;

pub(super) trait OrPage<T> {
    fn or_page(self, app: &App) -> Result<T, PageError>;
}

impl<T> OrPage<T> for Result<T, WebError> {
    fn or_page(self, app: &App) -> Result<T, PageError> {
        self.map_err(|error| PageError {
            error,
            text: app.text,
        })
    }
}

/// The top of every page for a signed-in person.
pub(super) struct Header<'a> {
    pub(super) account: &'a str,
    pub(super) csrf: &'a str,
    pub(super) admin: bool,
}

impl Header<'_> {
    /// The header for `member`; `admin` from [`header_of`].
    pub(super) fn of(member: &Member, admin: bool) -> Header<'_> {
        Header {
            account: &member.account,
            csrf: &member.csrf,
            admin,
        }
    }
}

pub(super) fn layout(t: &Text, title: &str, header: Option<&Header<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(t.lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (t.app_name) }
                style { (PreEscaped(STYLE)) }
                script src="/app.js" defer {}
            }
            body {
                @if let Some(h) = header {
                    nav {
                        a href="/rooms" { (t.nav_chat) }
                        a href="/files/community" { (t.nav_files) }
                        a href="/archive" { (t.nav_archive) }
                        a href="/search" { (t.nav_search) }
                        @if h.admin { a href="/peers" { (t.nav_peers) } a href="/admin" { (t.nav_admin) } }
                        details.me {
                            summary { (h.account) }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(h.csrf);
                                button { (t.sign_out) }
                            }
                            form method="post" action="/logout-everywhere" {
                                input type="hidden" name="csrf" value=(h.csrf);
                                button { (t.sign_out_everywhere) }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub(super) fn page(markup: Markup) -> Response {
    ([(CACHE_CONTROL, "no-store")], markup).into_response()
}

pub(super) async fn header_of(app: &Arc<App>, member: &Member) -> Result<bool, PageError> {
    let account = member.account.clone();
    run(app, move |app| {
        Ok(app
            .chat
            .account(&account)
            .map_err(|e| WebError::from_chat(app.text, e))?
            .is_some_and(|a| a.profile.role == chat::ServerRole::Admin))
    })
    .await
    .or_page(app)
}

pub(crate) async fn home(visitor: Visitor) -> Response {
    if visitor.signed.is_some() {
        redirect("/rooms")
    } else {
        redirect("/login")
    }
}

pub(crate) async fn script() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "max-age=300"),
        ],
        SCRIPT,
    )
        .into_response()
}

// Signing in and joining.

/// A form's token before there is a session: the visitor's pre-session cookie, or a new one
/// (then set along with the page).
fn pre_token(visitor: &Visitor) -> (String, bool) {
    match &visitor.pre {
        Some(p) => (p.clone(), false),
        None => (new_pre_token(), true),
    }
}

fn with_pre(status: StatusCode, markup: Markup, token: &str, new: bool) -> Response {
    let mut response = (status, [(CACHE_CONTROL, "no-store")], markup).into_response();
    if new {
        response
            .headers_mut()
            .insert(SET_COOKIE, set_cookie(PRE_COOKIE, token, 3600));
    }
    response
}

fn login_form(t: &Text, csrf: &str, error: Option<&str>, name: &str) -> Markup {
    layout(
        t,
        t.sign_in,
        None,
        html! {
            h1 { (t.sign_in_title) }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.stack method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                label { (t.name) input name="name" value=(name) autocomplete="username" required autocapitalize="none"; }
                label { (t.password) input type="password" name="password" autocomplete="current-password" required; }
                button.primary { (t.sign_in) }
            }
            p { a href="/join" { (t.have_invite) } }
        },
    )
}

pub(crate) async fn login_page(State(app): State<Arc<App>>, visitor: Visitor) -> Response {
    if visitor.signed.is_some() {
        return redirect("/rooms");
    }
    let (token, new) = pre_token(&visitor);
    with_pre(
        StatusCode::OK,
        login_form(app.text, &token, None, ""),
        &token,
        new,
    )
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

pub(crate) async fn login(
    State(app): State<Arc<App>>,
    visitor: Visitor,
    Form(form): Form<LoginForm>,
) -> Response {
    let name = form.name.clone();
    let login = Login {
        name: form.name,
        password: form.password,
    };
    match api::sign_in(&app, &visitor, login).await {
        Ok((cookie, _)) => {
            let mut response = redirect("/rooms");
            response.headers_mut().insert(SET_COOKIE, cookie);
            response
        }
        Err(e) => {
            let (token, new) = pre_token(&visitor);
            with_pre(
                e.status,
                login_form(app.text, &token, Some(&e.message), &name),
                &token,
                new,
            )
        }
    }
}

/// `?code=` prefills the join form (an invite link).
#[derive(Debug, Deserialize)]
pub(crate) struct CodeQuery {
    #[serde(default)]
    code: String,
}

fn join_form(
    t: &Text,
    csrf: &str,
    error: Option<&str>,
    code: &str,
    name: &str,
    display: &str,
) -> Markup {
    layout(
        t,
        t.join,
        None,
        html! {
            h1 { (t.join_title) }
            p.hint { (t.join_hint) }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.stack method="post" action="/join" {
                input type="hidden" name="csrf" value=(csrf);
                label { (t.invite_code) input name="code" value=(code) required autocapitalize="none" autocomplete="off"; }
                label { (t.name) input name="name" value=(name) required autocapitalize="none" autocomplete="username" pattern="[A-Za-z0-9._\\-]+" maxlength="128"; }
                label { (t.display_name) input name="display_name" value=(display) maxlength=(chat::MAX_DISPLAY_NAME_LEN); }
                label { (t.new_password) input type="password" name="password" autocomplete="new-password" required minlength=(crate::accounts::MIN_PASSWORD_LEN); }
                button.primary { (t.join) }
            }
            p { a href="/login" { (t.have_account) } }
        },
    )
}

pub(crate) async fn join_page(
    State(app): State<Arc<App>>,
    visitor: Visitor,
    Query(q): Query<CodeQuery>,
) -> Response {
    let (token, new) = pre_token(&visitor);
    with_pre(
        StatusCode::OK,
        join_form(app.text, &token, None, &q.code, "", ""),
        &token,
        new,
    )
}

pub(crate) async fn join(
    State(app): State<Arc<App>>,
    visitor: Visitor,
    Form(form): Form<JoinRequest>,
) -> Response {
    let shown = (
        form.code.clone(),
        form.name.clone(),
        form.display_name.clone(),
    );
    let login = Login {
        name: form.name.clone(),
        password: form.password.clone(),
    };
    let joined = async {
        service::limited(&app, &visitor.client, None, service::join(&app, form)).await?;
        api::start_after_join(&app, &visitor, login).await
    }
    .await;
    match joined {
        Ok((cookie, _)) => {
            let mut response = redirect("/rooms");
            response.headers_mut().insert(SET_COOKIE, cookie);
            response
        }
        Err(e) => {
            let (token, new) = pre_token(&visitor);
            let markup = join_form(
                app.text,
                &token,
                Some(&e.message),
                &shown.0,
                &shown.1,
                &shown.2,
            );
            with_pre(e.status, markup, &token, new)
        }
    }
}

pub(crate) async fn logout(State(app): State<Arc<App>>, member: Member) -> PageResult {
    api::end_session(&app, &member).await.or_page(&app)?;
    let mut response = redirect("/login");
    response
        .headers_mut()
        .insert(SET_COOKIE, set_cookie(super::guard::SESSION_COOKIE, "", 0));
    Ok(response)
}

pub(crate) async fn logout_everywhere(State(app): State<Arc<App>>, member: Member) -> PageResult {
    api::end_everywhere(&app, &member).await.or_page(&app)?;
    let mut response = redirect("/login");
    response
        .headers_mut()
        .insert(SET_COOKIE, set_cookie(super::guard::SESSION_COOKIE, "", 0));
    Ok(response)
}

// Chat.

fn room_item(t: &Text, r: &service::RoomSummary) -> Markup {
    html! {
        li {
            a href={ "/rooms/" (r.id) } {
                @match &r.with { Some(w) => (w), None => (r.name) }
                @if r.invite_only { " 🔒" }
            }
            @if r.unread > 0 { " " span.badge title=(t.unread) { (r.unread) } }
            @if !r.topic.is_empty() && r.with.is_none() { br; small { (r.topic) } }
        }
    }
}

pub(crate) async fn rooms(State(app): State<Arc<App>>, member: Member) -> PageResult {
    let admin = header_of(&app, &member).await?;
    let account = member.account.clone();
    let (list, people, paired): (RoomList, _, _) = run(&app, move |app| {
        Ok((app.rooms(&account)?, app.people()?, app.paired()?))
    })
    .await
    .or_page(&app)?;
    let t = app.text;
    let header = Header::of(&member, admin);
    Ok(page(layout(
        t,
        t.rooms,
        Some(&header),
        html! {
            h1 { (t.rooms) }
            @if list.rooms.is_empty() { p.hint { (t.no_rooms) } }
            ul.rooms { @for r in &list.rooms { (room_item(t, r)) } }
            @if !list.direct.is_empty() {
                h2 { (t.direct_messages) }
                ul.rooms { @for r in &list.direct { (room_item(t, r)) } }
            }
            details {
                summary { (t.new_room) }
                form.stack method="post" action="/rooms" {
                    input type="hidden" name="csrf" value=(member.csrf);
                    label { (t.room_name) input name="name" required maxlength=(chat::MAX_ROOM_NAME_LEN); }
                    label { (t.room_topic) input name="topic"; }
                    label.check { input type="checkbox" name="invite_only" value="true"; " " (t.invite_only) }
                    @if !paired.is_empty() {
                        fieldset {
                            legend { (t.share_with) }
                            @for p in &paired {
                                label.check { input type="checkbox" name="share_with" value=(p); " " (p) }
                            }
                        }
                    }
                    button.primary { (t.create) }
                }
            }
            details {
                summary { (t.people) }
                ul.people {
                    @for p in people.iter().filter(|p| p.name != member.account) {
                        li {
                            (p.display_name) " " small { "(" (p.name) ")" }
                            form.inline method="post" action={ "/people/" (p.name) "/direct" } {
                                input type="hidden" name="csrf" value=(member.csrf);
                                button { (t.message_person) }
                            }
                        }
                    }
                }
            }
        },
    )))
}

/// The new-room form: `name`, `topic`, `invite_only` (present when ticked) and one
/// `share_with` per ticked server, read as pairs (a field may repeat).
pub(crate) async fn create_room(
    State(app): State<Arc<App>>,
    member: Member,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let new = NewRoom {
        name: field("name").unwrap_or_default(),
        topic: field("topic").unwrap_or_default(),
        invite_only: field("invite_only").is_some(),
        share_with: fields
            .iter()
            .filter(|(k, _)| k == "share_with")
            .map(|(_, v)| v.clone())
            .collect(),
    };
    let id = run(&app, move |app| app.create_room(&member.account, &new))
        .await
        .or_page(&app)?;
    Ok(redirect(&format!("/rooms/{id}")))
}

/// `?reply=` opens the composer as a reply; `?before=` pages back.
#[derive(Debug, Deserialize)]
pub(crate) struct ReplyQuery {
    reply: Option<String>,
    /// Show the messages before this one.
    before: Option<String>,
}

/// One message, as the room's list shows it. Also sent live ([`super::live`]), where the
/// session is not at hand: `csrf` is then empty and the script fills it in.
pub(crate) fn message_html(t: &Text, room: &str, m: &MessageView, csrf: &str) -> Markup {
    let time = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(m.time_ms),
    )
    .to_string();
    html! {
        li.msg.mine[m.mine] id={ "m-" (m.id) } data-id=(m.id) {
            div.meta {
                b { (m.author_name) }
                " "
                time datetime=(time) { (time[11..16]) }
                @if m.edited { " · " small { (t.edited) } }
            }
            @if let Some(r) = &m.reply_to { a.replyref href={ "#m-" (r) } { "↪ " (t.replying_to) } }
            p.text { (m.text) }
            @if !m.attachments.is_empty() {
                ul.files {
                    @for (i, a) in m.attachments.iter().enumerate() {
                        @let href = format!("/rooms/{room}/m/{}/files/{i}", m.id);
                        li {
                            @match super::attachments::Kind::of(&a.name) {
                                super::attachments::Kind::Image => {
                                    a href=(href) { img src=(href) alt=(a.name) loading="lazy"; }
                                }
                                super::attachments::Kind::Video => {
                                    video src=(href) controls preload="none" {}
                                }
                                super::attachments::Kind::Audio => {
                                    audio src=(href) controls preload="none" {}
                                }
                                super::attachments::Kind::Other => {}
                            }
                            a href=(href) download=(a.name) { "📎 " (a.name) } " (" (size(a.size)) ")"
                        }
                    }
                }
            }
            div.actions {
                a href={ "/rooms/" (room) "?reply=" (m.id) "#composer" } { (t.reply) }
                @if !m.reactions.is_empty() { (reactions_form(t, room, m, csrf, false)) }
                // Reacting with a new reaction, editing, deleting: on the message's own page,
                // which keeps the room's page light.
                a href={ "/rooms/" (room) "/m/" (m.id) } title=(t.more) { "⋯" }
            }
        }
    }
}

/// A message's reactions as buttons that give or take back each (`all`: the quick ones
/// too). One form per message.
fn reactions_form(t: &Text, room: &str, m: &MessageView, csrf: &str, all: bool) -> Markup {
    html! {
        form.reactions method="post" action={ "/rooms/" (room) "/m/" (m.id) "/react" } {
            input type="hidden" name="csrf" value=(csrf);
            @for (r, n) in &m.reactions {
                button.on[m.my_reactions.contains(r)] name="reaction" value=(r) title=(t.react) { (r) " " (n) }
            }
            @if all {
                @for q in QUICK_REACTIONS.iter().filter(|q| !m.reactions.contains_key(**q)) {
                    button name="reaction" value=(q) title=(t.react) { (q) }
                }
            }
        }
    }
}

/// One message's page: react, reply, and (one's own) edit or delete.
pub(crate) async fn message_page(
    State(app): State<Arc<App>>,
    member: Member,
    Path((room, message)): Path<(String, String)>,
) -> PageResult {
    let admin = header_of(&app, &member).await?;
    let account = member.account.clone();
    let (summary, m) = run(&app, move |app| app.one_message(&account, &room, &message))
        .await
        .or_page(&app)?;
    let t = app.text;
    let header = Header::of(&member, admin);
    let room = &summary.id;
    let csrf = &member.csrf;
    Ok(page(layout(
        t,
        &summary.name,
        Some(&header),
        html! {
            p { a href={ "/rooms/" (room) "#m-" (m.id) } { "← " (summary.with.as_deref().unwrap_or(&summary.name)) } }
            ol id="messages" { (message_html(t, room, &m, csrf)) }
            h2 { (t.react) }
            (reactions_form(t, room, &m, csrf, true))
            h2 { (t.report) }
            form.row method="post" action={ "/rooms/" (room) "/m/" (m.id) "/report" } {
                input type="hidden" name="csrf" value=(csrf);
                input name="reason" placeholder=(t.report_reason) required maxlength="500";
                button { (t.report) }
            }
            @if m.mine {
                h2 { (t.edit) }
                form.stack method="post" action={ "/rooms/" (room) "/m/" (m.id) "/edit" } {
                    input type="hidden" name="csrf" value=(csrf);
                    textarea name="text" required maxlength=(chat::MAX_TEXT_LEN) { (m.text) }
                    button.primary { (t.save) }
                }
                form method="post" action={ "/rooms/" (room) "/m/" (m.id) "/delete" } {
                    input type="hidden" name="csrf" value=(csrf);
                    button.danger { (t.delete) }
                }
            }
        },
    )))
}

pub(crate) async fn room(
    State(app): State<Arc<App>>,
    member: Member,
    Path(room): Path<String>,
    Query(q): Query<ReplyQuery>,
) -> PageResult {
    let admin = header_of(&app, &member).await?;
    let account = member.account.clone();
    let id = room.clone();
    let before = q.before.clone();
    let view: RoomView = run(&app, move |app| {
        let view = app.room(&account, &id, before.as_deref())?;
        // What a person's page showed, they have read.
        if let Some(last) = view.messages.last() {
            app.mark_read(&account, &id, &last.id)?;
        }
        Ok(view)
    })
    .await
    .or_page(&app)?;
    let t = app.text;
    let header = Header::of(&member, admin);
    let title = view
        .room
        .with
        .clone()
        .unwrap_or_else(|| view.room.name.clone());
    let reply = q
        .reply
        .as_deref()
        .and_then(|r| view.messages.iter().find(|m| m.id == r));
    Ok(page(layout(
        t,
        &title,
        Some(&header),
        html! {
            section.room data-room=(view.room.id) data-resume=(view.resume) data-csrf=(member.csrf) {
                h1 { (title) }
                @if !view.room.topic.is_empty() { p.hint { (view.room.topic) } }
                p.hint id="live" hidden { (t.live_offline) }
                @if let Some(earlier) = &view.earlier {
                    p { a href={ "/rooms/" (view.room.id) "?before=" (earlier) } { (t.earlier) } }
                }
                @if view.messages.is_empty() { p.hint id="empty" { (t.no_messages) } }
                ol id="messages" { @for m in &view.messages { (message_html(t, &view.room.id, m, &member.csrf)) } }
                form.stack id="composer" method="post" enctype="multipart/form-data"
                    action={ "/rooms/" (view.room.id) "/send?csrf=" (member.csrf) } {
                    input type="hidden" name="csrf" value=(member.csrf);
                    @if let Some(r) = reply {
                        p.hint { (t.replying_to) " " b { (r.author_name) } ": " (excerpt(&r.text)) }
                        input type="hidden" name="reply_to" value=(r.id);
                    } @else {
                        input type="hidden" name="reply_to" value="";
                    }
                    label { span.sr { (t.message_to_room) } textarea name="text" maxlength=(chat::MAX_TEXT_LEN) placeholder=(t.message_to_room) {} }
                    label.files { (t.attach) " " input type="file" name="file" multiple; }
                    button.primary { (t.send) }
                }
            }
        },
    )))
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(80).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

pub(super) fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b if b < 1024 * 1024 * 1024 => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
        b => format!("{:.1} GiB", b as f64 / (1024.0 * 1024.0 * 1024.0)),
    }
}

/// The composer: a plain form, or (with files) a multipart one.
pub(crate) async fn send(
    State(app): State<Arc<App>>,
    member: Member,
    Path(room): Path<String>,
    request: axum::extract::Request,
) -> PageResult {
    let multipart = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let id = room.clone();
    if multipart {
        super::attachments::send_with_files(&app, member, id, request)
            .await
            .or_page(&app)?;
    } else {
        use axum::extract::FromRequest;
        let Form(new) = Form::<NewMessage>::from_request(request, &app)
            .await
            .map_err(|e| WebError::bad_request(e.body_text()))
            .or_page(&app)?;
        run(&app, move |app| app.send(&member.account, &id, &new))
            .await
            .or_page(&app)?;
    }
    Ok(redirect(&format!("/rooms/{room}#composer")))
}

/// The edit form.
#[derive(Debug, Deserialize)]
pub(crate) struct EditForm {
    #[serde(default)]
    text: String,
}

pub(crate) async fn edit(
    State(app): State<Arc<App>>,
    member: Member,
    Path((room, message)): Path<(String, String)>,
    Form(form): Form<EditForm>,
) -> PageResult {
    let id = room.clone();
    let m = message.clone();
    run(&app, move |app| {
        app.edit(&member.account, &id, &m, &form.text)
    })
    .await
    .or_page(&app)?;
    Ok(redirect(&format!("/rooms/{room}#m-{message}")))
}

pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    member: Member,
    Path((room, message)): Path<(String, String)>,
) -> PageResult {
    let id = room.clone();
    run(&app, move |app| app.delete(&member.account, &id, &message))
        .await
        .or_page(&app)?;
    Ok(redirect(&format!("/rooms/{room}")))
}

/// The report form.
#[derive(Debug, Deserialize)]
pub(crate) struct ReportForm {
    #[serde(default)]
    reason: String,
}

pub(crate) async fn report(
    State(app): State<Arc<App>>,
    member: Member,
    Path((room, message)): Path<(String, String)>,
    Form(form): Form<ReportForm>,
) -> PageResult {
    let (r, m) = (room.clone(), message.clone());
    run(&app, move |app| {
        app.report(&member.account, &r, &m, &form.reason)
    })
    .await
    .or_page(&app)?;
    Ok(redirect(&format!("/rooms/{room}#m-{message}")))
}

/// The resolve form.
#[derive(Debug, Deserialize)]
pub(crate) struct ResolveForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    note: String,
}

pub(crate) async fn resolve_report(
    State(app): State<Arc<App>>,
    Admin(admin): Admin,
    Form(form): Form<ResolveForm>,
) -> PageResult {
    run(&app, move |app| {
        app.resolve_report(&admin.account, &form.key, &form.note)
    })
    .await
    .or_page(&app)?;
    Ok(redirect("/admin"))
}

/// The role form.
#[derive(Debug, Deserialize)]
pub(crate) struct RoleForm {
    #[serde(default)]
    role: String,
}

pub(crate) async fn set_role(
    State(app): State<Arc<App>>,
    Admin(admin): Admin,
    Path(account): Path<String>,
    Form(form): Form<RoleForm>,
) -> PageResult {
    run(&app, move |app| {
        app.set_role(&admin.account, &account, &form.role)
    })
    .await
    .or_page(&app)?;
    Ok(redirect("/admin"))
}

/// The reactions offered with one tap.
const QUICK_REACTIONS: [&str; 6] = ["👍", "❤️", "😂", "🎉", "🙏", "😮"];

/// The reaction form: a button's reaction, given or (if already given) taken back.
#[derive(Debug, Deserialize)]
pub(crate) struct ReactForm {
    #[serde(default)]
    reaction: String,
}

pub(crate) async fn react(
    State(app): State<Arc<App>>,
    member: Member,
    Path((room, message)): Path<(String, String)>,
    Form(form): Form<ReactForm>,
) -> PageResult {
    let (id, m) = (room.clone(), message.clone());
    run(&app, move |app| {
        app.toggle_reaction(&member.account, &id, &m, &form.reaction)
    })
    .await
    .or_page(&app)?;
    Ok(redirect(&format!("/rooms/{room}#m-{message}")))
}

pub(crate) async fn direct(
    State(app): State<Arc<App>>,
    member: Member,
    Path(other): Path<String>,
) -> PageResult {
    let id = run(&app, move |app| app.direct(&member.account, &other))
        .await
        .or_page(&app)?;
    Ok(redirect(&format!("/rooms/{id}")))
}

pub(crate) async fn search(
    State(app): State<Arc<App>>,
    member: Member,
    Query(q): Query<api::SearchQuery>,
) -> PageResult {
    let admin = header_of(&app, &member).await?;
    let account = member.account.clone();
    let query = q.q.clone();
    let view: Option<SearchView> = if query.trim().is_empty() {
        None
    } else {
        Some(
            run(&app, move |app| {
                app.search(&account, &q.q, q.after.as_deref())
            })
            .await
            .or_page(&app)?,
        )
    };
    let t = app.text;
    let header = Header::of(&member, admin);
    Ok(page(layout(
        t,
        t.search,
        Some(&header),
        html! {
            h1 { (t.search) }
            form.row method="get" action="/search" {
                input type="search" name="q" value=(query) placeholder=(t.search_hint) maxlength=(chat::MAX_QUERY_LEN) required;
                button.primary { (t.search) }
            }
            @if let Some(v) = &view {
                @if v.hits.is_empty() { p.hint { (t.no_results) } }
                ol.hits {
                    @for h in &v.hits {
                        li {
                            div.meta { b { (h.message.author_name) } " " (t.in_room) " " a href={ "/rooms/" (h.room) "#m-" (h.message.id) } { (h.room_name) } }
                            p.text { (h.message.text) }
                        }
                    }
                }
                @if let Some(next) = &v.next {
                    a href={ "/search?q=" (urlencode(&v.query)) "&after=" (next) } { (t.more_results) }
                }
            }
        },
    )))
}

pub(super) fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|e| e.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

// Admin.

fn admin_page(t: &Text, member: &Member, view: &AdminView, notice: Option<Markup>) -> Markup {
    let header = Header::of(member, true);
    let csrf = &member.csrf;
    layout(
        t,
        t.admin_title,
        Some(&header),
        html! {
            h1 { (t.admin_title) }
            @if let Some(n) = notice { div.notice role="status" { (n) } }
            h2 { (t.invites) }
            form method="post" action="/admin/invites" {
                input type="hidden" name="csrf" value=(csrf);
                button.primary { (t.new_invite) }
            }
            @if view.invites.is_empty() { p.hint { (t.no_invites) } }
            ul {
                @for i in &view.invites {
                    li {
                        code { (i.id) } " · " (t.invite_expires) " "
                        time.date datetime=(ms_time(i.invite.expires_ms)) { (ms_time(i.invite.expires_ms)[..10]) }
                        form.inline method="post" action={ "/admin/invites/" (i.id) "/cancel" } {
                            input type="hidden" name="csrf" value=(csrf);
                            button { (t.cancel) }
                        }
                    }
                }
            }
            h2 { (t.people) }
            ul.people {
                @for p in &view.people {
                    li {
                        b { (p.display_name) } " " small { "(" (p.name) ", " (p.role) ")" }
                        details {
                            summary { (t.manage) }
                            @if p.name != member.account {
                                form.row method="post" action={ "/admin/people/" (p.name) "/role" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    select name="role" aria-label=(t.role) {
                                        @for (value, label) in [("member", t.role_member), ("moderator", t.role_moderator), ("admin", t.role_admin)] {
                                            option value=(value) selected[p.role == value] { (label) }
                                        }
                                    }
                                    button { (t.set_role) }
                                }
                            }
                            form.stack method="post" action={ "/admin/people/" (p.name) "/password" } {
                                input type="hidden" name="csrf" value=(csrf);
                                label { (t.new_password) input type="password" name="password" required minlength=(crate::accounts::MIN_PASSWORD_LEN) autocomplete="new-password"; }
                                button { (t.reset_password) }
                            }
                            @if p.name != member.account {
                                form method="post" action={ "/admin/people/" (p.name) "/remove" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button.danger { (t.remove_person) }
                                }
                            }
                        }
                    }
                }
            }
            h2 { (t.moderation_queue) }
            @if view.reports.is_empty() { p.hint { (t.no_reports) } }
            ul.people {
                @for r in &view.reports {
                    li {
                        b { (r.by) } ": " (r.reason)
                        @if let Some(text) = &r.text {
                            br; a href={ "/rooms/" (r.room) "/m/" (r.message) } { "“" (excerpt(text)) "”" }
                        }
                        form.row method="post" action="/admin/reports/resolve" {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="key" value=(r.key);
                            input name="note" placeholder=(t.resolution) maxlength="500";
                            button { (t.resolve) }
                        }
                    }
                }
            }
            @if let Some(h) = &view.health {
                h2 { (t.health) }
                p { (h.room_syncs) " " (t.room_syncs) " · " (h.failed_syncs) " " (t.failed_syncs) " · " (h.refused_entries) " " (t.refused_entries) }
                @if let Some(f) = &h.last_failure { p.hint { (t.last_failure) ": " (f) } }
                @if !h.recent_refusals.is_empty() {
                    details { summary { (t.recent_refusals) } ul { @for r in &h.recent_refusals { li { small { (r) } } } } }
                }
            }
            h2 { (t.storage) }
            p {
                (view.storage.entries) " entries · " (view.storage.files) " files · "
                (size(view.storage.stored_bytes)) " stored · " (view.storage.indexed_messages) " messages indexed"
            }
        },
    )
}

pub(super) fn ms_time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

async fn admin_with(app: &Arc<App>, admin: Member, notice: Option<Markup>) -> PageResult {
    let account = admin.account.clone();
    let view = run(app, move |app| app.admin_view(&account))
        .await
        .or_page(app)?;
    Ok(page(admin_page(app.text, &admin, &view, notice)))
}

pub(crate) async fn admin(State(app): State<Arc<App>>, Admin(admin): Admin) -> PageResult {
    admin_with(&app, admin, None).await
}

/// Shows the new code on the page the form posted to: it is never stored, so it cannot be
/// shown again after a redirect.
pub(crate) async fn create_invite(
    State(app): State<Arc<App>>,
    Admin(admin): Admin,
    headers: axum::http::HeaderMap,
) -> PageResult {
    let by = admin.account.clone();
    let code = run(&app, move |app| app.create_invite(&by))
        .await
        .or_page(&app)?;
    let t = app.text;
    // The link as the admin's own browser reached this server (shown only to them).
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("");
    let link = format!("http://{host}/join?code={code}");
    // In groups of four, to read aloud; dashes and spaces do not count when typed.
    let grouped: Vec<String> = code
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let notice = html! {
        p { (t.invite_made) }
        p.code { code id="invite-code" { (grouped.join("-")) } }
        @if !host.is_empty() { p { a href=(link) { (link) } } }
    };
    admin_with(&app, admin, Some(notice)).await
}

pub(crate) async fn cancel_invite(
    State(app): State<Arc<App>>,
    Admin(_admin): Admin,
    Path(id): Path<String>,
) -> PageResult {
    run(&app, move |app| app.cancel_invite(&id))
        .await
        .or_page(&app)?;
    Ok(redirect("/admin"))
}

pub(crate) async fn remove_person(
    State(app): State<Arc<App>>,
    Admin(admin): Admin,
    Path(account): Path<String>,
) -> PageResult {
    run(&app, move |app| app.remove_person(&admin.account, &account))
        .await
        .or_page(&app)?;
    Ok(redirect("/admin"))
}

/// The admin's new-password form.
#[derive(Debug, Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    password: String,
}

pub(crate) async fn reset_password(
    State(app): State<Arc<App>>,
    Admin(admin): Admin,
    Path(account): Path<String>,
    Form(form): Form<PasswordForm>,
) -> PageResult {
    api::reset(&app, account, form.password)
        .await
        .or_page(&app)?;
    let notice = html! { p { (app.text.password_reset_done) } };
    admin_with(&app, admin, Some(notice)).await
}
