//! The JSON API: the same operations as the pages, for the page's script, an embedder or a
//! phone app. Changes need the session's CSRF token in `X-CSRF-Token` (from
//! `GET /api/session`); errors are `{"error": "..."}` with a 4xx or 5xx status.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::guard::{new_pre_token, set_cookie, Admin, Member, Visitor, PRE_COOKIE, SESSION_COOKIE};
use super::service::{self, run, JoinRequest, NewMessage, NewRoom};
// The views named only in the API's description (`#[utoipa::path]`).
use super::service::{PersonView, ReportView, RoomList, RoomView, SearchView};
use super::{App, ErrorBody, WebError};
use crate::accounts::InviteInfo;

type ApiResult = Result<Response, WebError>;

/// Who is signed in, and the token changes must carry. Before signing in, it sets the
/// pre-session cookie whose token `POST /api/login` and `/api/join` must carry.
#[utoipa::path(
    get,
    path = "/api/session",
    summary = "Who is signed in, and the CSRF token changes must carry (sets the pre-session cookie before sign-in)",
    responses((status = 200, description = "`{account, display_name, admin, csrf}`; `account` null before sign-in"))
)]
pub(crate) async fn session(State(app): State<Arc<App>>, visitor: Visitor) -> ApiResult {
    match &visitor.signed {
        Some((_, s)) => {
            let account = app
                .chat
                .account(&s.account)
                .map_err(|e| WebError::from_chat(app.text, e))?;
            Ok(Json(json!({
                "account": s.account,
                "display_name": account.as_ref().map(|a| a.profile.display_name.clone()),
                "admin": account.is_some_and(|a| a.profile.role == chat::ServerRole::Admin),
                "csrf": s.csrf,
            }))
            .into_response())
        }
        None => {
            let pre = visitor.pre.clone().unwrap_or_else(new_pre_token);
            let mut response = Json(json!({ "account": null, "csrf": pre })).into_response();
            response
                .headers_mut()
                .insert(SET_COOKIE, set_cookie(PRE_COOKIE, &pre, 3600));
            Ok(response)
        }
    }
}

/// A sign-in.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct Login {
    pub(crate) name: String,
    pub(crate) password: String,
}

/// Signs in: a new session (any session cookie the browser had ends: rotation).
#[utoipa::path(
    post,
    path = "/api/login",
    summary = "Signs in: a new session cookie (the old one ends)",
    request_body = Login,
    responses((status = 200, description = "`{csrf}`: the session's token"), (status = 401, description = "refused or failed: the reason", body = ErrorBody), (status = 429, description = "refused or failed: the reason", body = ErrorBody))
)]
pub(crate) async fn login(
    State(app): State<Arc<App>>,
    visitor: Visitor,
    Json(login): Json<Login>,
) -> ApiResult {
    let (cookie, csrf) = sign_in(&app, &visitor, login).await?;
    let mut response = Json(json!({ "csrf": csrf })).into_response();
    response.headers_mut().insert(SET_COOKIE, cookie);
    Ok(response)
}

/// Checks the password and starts a session: the cookie to set and the session's CSRF token.
pub(crate) async fn sign_in(
    app: &Arc<App>,
    visitor: &Visitor,
    login: Login,
) -> Result<(axum::http::HeaderValue, String), WebError> {
    let name = login.name.trim().to_owned();
    let check = service::check_password(app, name.clone(), login.password);
    service::limited(app, &visitor.client, Some(&name), check).await?;
    let old = visitor.signed.as_ref().map(|(t, _)| t.clone());
    let (token, session) = run(app, move |app| {
        app.accounts
            .start_session(&name, old.as_deref())
            .map_err(|e| WebError::from_accounts(app.text, e))
    })
    .await?;
    let cookie = set_cookie(
        SESSION_COOKIE,
        &token,
        crate::accounts::SESSION_LIFETIME.as_secs(),
    );
    Ok((cookie, session.csrf))
}

/// Joins with an invite code, then is signed in.
#[utoipa::path(
    post,
    path = "/api/join",
    summary = "Joins with an invite code, then is signed in",
    request_body = JoinRequest,
    responses((status = 201, description = "`{csrf}`"), (status = 400, description = "refused or failed: the reason", body = ErrorBody))
)]
pub(crate) async fn join(
    State(app): State<Arc<App>>,
    visitor: Visitor,
    Json(request): Json<JoinRequest>,
) -> ApiResult {
    let login = Login {
        name: request.name.clone(),
        password: request.password.clone(),
    };
    service::limited(&app, &visitor.client, None, service::join(&app, request)).await?;
    let (cookie, csrf) = start_after_join(&app, &visitor, login).await?;
    let mut response = (StatusCode::CREATED, Json(json!({ "csrf": csrf }))).into_response();
    response.headers_mut().insert(SET_COOKIE, cookie);
    Ok(response)
}

/// The session of someone who just joined (their password was just set: no second hash).
pub(crate) async fn start_after_join(
    app: &Arc<App>,
    visitor: &Visitor,
    login: Login,
) -> Result<(axum::http::HeaderValue, String), WebError> {
    let old = visitor.signed.as_ref().map(|(t, _)| t.clone());
    let name = login.name.trim().to_owned();
    let (token, session) = run(app, move |app| {
        app.accounts
            .start_session(&name, old.as_deref())
            .map_err(|e| WebError::from_accounts(app.text, e))
    })
    .await?;
    Ok((
        set_cookie(
            SESSION_COOKIE,
            &token,
            crate::accounts::SESSION_LIFETIME.as_secs(),
        ),
        session.csrf,
    ))
}

/// Ends this session.
#[utoipa::path(
    post,
    path = "/api/logout",
    summary = "Ends this session",
    responses((status = 204, description = "done"))
)]
pub(crate) async fn logout(State(app): State<Arc<App>>, member: Member) -> ApiResult {
    end_session(&app, &member).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    Ok(response)
}

pub(crate) async fn end_session(app: &Arc<App>, member: &Member) -> Result<(), WebError> {
    let token = member.token.clone();
    run(app, move |app| {
        app.accounts
            .end_session(&token)
            .map_err(|e| WebError::from_accounts(app.text, e))
    })
    .await
}

/// Ends every session of the signed-in person, on every device.
#[utoipa::path(
    post,
    path = "/api/logout-everywhere",
    summary = "Ends every session of the signed-in person",
    responses((status = 200, description = "`{ended}`: how many"))
)]
pub(crate) async fn logout_everywhere(State(app): State<Arc<App>>, member: Member) -> ApiResult {
    let ended = end_everywhere(&app, &member).await?;
    let mut response = Json(json!({ "ended": ended })).into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    Ok(response)
}

pub(crate) async fn end_everywhere(app: &Arc<App>, member: &Member) -> Result<usize, WebError> {
    let account = member.account.clone();
    run(app, move |app| {
        app.accounts
            .end_sessions(&account)
            .map_err(|e| WebError::from_accounts(app.text, e))
    })
    .await
}

fn json<T: Serialize>(value: T) -> ApiResult {
    Ok(Json(value).into_response())
}

#[utoipa::path(
    get,
    path = "/api/rooms",
    summary = "The rooms the signed-in person may read, with unread counts",
    responses((status = 200, description = "ok", body = RoomList))
)]
pub(crate) async fn rooms(State(app): State<Arc<App>>, member: Member) -> ApiResult {
    json(run(&app, move |app| app.rooms(&member.account)).await?)
}

#[utoipa::path(
    post,
    path = "/api/rooms",
    summary = "Creates a room (shared with paired servers named in `share_with`)",
    request_body = NewRoom,
    responses((status = 201, description = "`{id}`"), (status = 400, description = "refused or failed: the reason", body = ErrorBody))
)]
pub(crate) async fn create_room(
    State(app): State<Arc<App>>,
    member: Member,
    Json(new): Json<NewRoom>,
) -> ApiResult {
    let id = run(&app, move |app| app.create_room(&member.account, &new)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

/// `?before=`: the messages before this one.
#[derive(Debug, Deserialize)]
pub(crate) struct Before {
    pub(crate) before: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/rooms/{room}",
    summary = "A room's latest 50 messages (before `before`), and where its live feed starts",
    params(("room" = String, Path, description = "the room's id"), ("before" = Option<String>, Query, description = "show the messages before this one")),
    responses((status = 200, description = "ok", body = RoomView), (status = 404, description = "refused or failed: the reason", body = ErrorBody))
)]
pub(crate) async fn room(
    State(app): State<Arc<App>>,
    member: Member,
    Path(room): Path<String>,
    Query(q): Query<Before>,
) -> ApiResult {
    json(
        run(&app, move |app| {
            app.room(&member.account, &room, q.before.as_deref())
        })
        .await?,
    )
}

#[utoipa::path(
    post,
    path = "/api/rooms/{room}/messages",
    summary = "Sends a message",
    request_body = NewMessage,
    params(("room" = String, Path, description = "the room's id")),
    responses((status = 201, description = "`{id}`"), (status = 400, description = "refused or failed: the reason", body = ErrorBody), (status = 429, description = "refused or failed: the reason", body = ErrorBody))
)]
pub(crate) async fn send(
    State(app): State<Arc<App>>,
    member: Member,
    Path(room): Path<String>,
    Json(new): Json<NewMessage>,
) -> ApiResult {
    let id = run(&app, move |app| app.send(&member.account, &room, &new)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

/// An edit.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct Edit {
    pub(crate) text: String,
}

#[utoipa::path(
    put,
    path = "/api/rooms/{room}/messages/{message}",
    summary = "Edits one's own message",
    request_body = Edit,
    params(("room" = String, Path, description = "the room's id"), ("message" = String, Path, description = "the message's id (time-server-account)")),
    responses((status = 204, description = "done"), (status = 403, description = "refused or failed: the reason", body = ErrorBody))
)]
pub(crate) async fn edit(
    State(app): State<Arc<App>>,
    member: Member,
    Path((room, message)): Path<(String, String)>,
    Json(edit): Json<Edit>,
) -> ApiResult {
    run(&app, move |app| {
        app.edit(&member.account, &room, &message, &edit.text)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    delete,
    path = "/api/rooms/{room}/messages/{message}",
    summary = "Deletes a message (one's own, or as a moderator of the room)",
    params(("room" = String, Path, description = "the room's id"), ("message" = String, Path, description = "the message's id (time-server-account)")),
    responses((status = 204, description = "done"), (status = 403, description = "refused or failed: the reason", body = ErrorBody))
)]
pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    member: Member,
    Path((room, message)): Path<(String, String)>,
) -> ApiResult {
    run(&app, move |app| {
        app.delete(&member.account, &room, &message)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A reaction given or taken back.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct Reaction {
    pub(crate) reaction: String,
    #[serde(default = "yes")]
    pub(crate) on: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(
    post,
    path = "/api/rooms/{room}/messages/{message}/reactions",
    summary = "Gives or takes back a reaction",
    request_body = Reaction,
    params(("room" = String, Path, description = "the room's id"), ("message" = String, Path, description = "the message's id (time-server-account)")),
    responses((status = 204, description = "done"), (status = 400, description = "refused or failed: the reason", body = ErrorBody))
)]
pub(crate) async fn react(
    State(app): State<Arc<App>>,
    member: Member,
    Path((room, message)): Path<(String, String)>,
    Json(r): Json<Reaction>,
) -> ApiResult {
    run(&app, move |app| {
        app.react(&member.account, &room, &message, &r.reaction, r.on)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Read up to a message.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct ReadUpTo {
    pub(crate) message: String,
}

#[utoipa::path(
    post,
    path = "/api/rooms/{room}/read",
    summary = "Marks the room read up to a message",
    request_body = ReadUpTo,
    params(("room" = String, Path, description = "the room's id")),
    responses((status = 204, description = "done"))
)]
pub(crate) async fn mark_read(
    State(app): State<Arc<App>>,
    member: Member,
    Path(room): Path<String>,
    Json(read): Json<ReadUpTo>,
) -> ApiResult {
    run(&app, move |app| {
        app.mark_read(&member.account, &room, &read.message)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    get,
    path = "/api/people",
    summary = "The people of this server",
    responses((status = 200, description = "ok", body = Vec<PersonView>))
)]
pub(crate) async fn people(State(app): State<Arc<App>>, _member: Member) -> ApiResult {
    json(run(&app, |app| app.people()).await?)
}

#[utoipa::path(
    post,
    path = "/api/people/{account}/direct",
    summary = "The direct room with a person (made if missing)",
    params(("account" = String, Path, description = "an account of this server")),
    responses((status = 200, description = "`{id}`"))
)]
pub(crate) async fn direct(
    State(app): State<Arc<App>>,
    member: Member,
    Path(other): Path<String>,
) -> ApiResult {
    let id = run(&app, move |app| app.direct(&member.account, &other)).await?;
    json(json!({ "id": id }))
}

/// A search.
#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    pub(crate) q: String,
    pub(crate) after: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/search",
    summary = "Finds messages in the rooms the person may read, newest first",
    params(("q" = String, Query, description = "words"), ("after" = Option<String>, Query, description = "the `next` of the page before")),
    responses((status = 200, description = "ok", body = SearchView), (status = 400, description = "refused or failed: the reason", body = ErrorBody))
)]
pub(crate) async fn search(
    State(app): State<Arc<App>>,
    member: Member,
    Query(query): Query<SearchQuery>,
) -> ApiResult {
    json(
        run(&app, move |app| {
            app.search(&member.account, &query.q, query.after.as_deref())
        })
        .await?,
    )
}

/// A report.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct ReportRequest {
    #[serde(default)]
    pub(crate) reason: String,
}

#[utoipa::path(
    post,
    path = "/api/rooms/{room}/messages/{message}/report",
    summary = "Reports a message to this server's moderators",
    request_body = ReportRequest,
    params(("room" = String, Path, description = "the room's id"), ("message" = String, Path, description = "the message's id (time-server-account)")),
    responses((status = 201, description = "`{key}`"), (status = 400, description = "refused or failed: the reason", body = ErrorBody))
)]
pub(crate) async fn report(
    State(app): State<Arc<App>>,
    member: Member,
    Path((room, message)): Path<(String, String)>,
    Json(r): Json<ReportRequest>,
) -> ApiResult {
    let key = run(&app, move |app| {
        app.report(&member.account, &room, &message, &r.reason)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "key": key }))).into_response())
}

/// A resolution of a report.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct Resolve {
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) note: String,
}

#[utoipa::path(
    get,
    path = "/api/reports",
    summary = "The open reports (admins)",
    responses((status = 200, description = "ok", body = Vec<ReportView>), (status = 403, description = "refused or failed: the reason", body = ErrorBody))
)]
pub(crate) async fn reports(State(app): State<Arc<App>>, Admin(admin): Admin) -> ApiResult {
    json(
        run(&app, move |app| {
            app.admin_view(&admin.account).map(|v| v.reports)
        })
        .await?,
    )
}

#[utoipa::path(
    post,
    path = "/api/reports/resolve",
    summary = "Closes a report with a note (admins)",
    request_body = Resolve,
    responses((status = 204, description = "done"))
)]
pub(crate) async fn resolve_report(
    State(app): State<Arc<App>>,
    Admin(admin): Admin,
    Json(r): Json<Resolve>,
) -> ApiResult {
    run(&app, move |app| {
        app.resolve_report(&admin.account, &r.key, &r.note)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A role.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct RoleRequest {
    pub(crate) role: String,
}

#[utoipa::path(
    put,
    path = "/api/people/{account}/role",
    summary = "Sets a person's role: member, moderator or admin (admins)",
    request_body = RoleRequest,
    params(("account" = String, Path, description = "an account of this server")),
    responses((status = 204, description = "done"), (status = 400, description = "refused or failed: the reason", body = ErrorBody))
)]
pub(crate) async fn set_role(
    State(app): State<Arc<App>>,
    Admin(admin): Admin,
    Path(account): Path<String>,
    Json(r): Json<RoleRequest>,
) -> ApiResult {
    run(&app, move |app| {
        app.set_role(&admin.account, &account, &r.role)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    get,
    path = "/api/invites",
    summary = "The open invites, never their codes (admins)",
    responses((status = 200, description = "ok", body = Vec<InviteInfo>))
)]
pub(crate) async fn invites(State(app): State<Arc<App>>, Admin(_admin): Admin) -> ApiResult {
    json(
        run(&app, |app| {
            app.accounts
                .invites()
                .map_err(|e| WebError::from_accounts(app.text, e))
        })
        .await?,
    )
}

#[utoipa::path(
    post,
    path = "/api/invites",
    summary = "Makes an invite: its code, shown once (admins)",
    responses((status = 201, description = "`{code}`"))
)]
pub(crate) async fn create_invite(State(app): State<Arc<App>>, Admin(admin): Admin) -> ApiResult {
    let code = run(&app, move |app| app.create_invite(&admin.account)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "code": code }))).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/invites/{id}",
    summary = "Cancels an open invite (admins)",
    params(("id" = String, Path, description = "the invite's id from the list")),
    responses((status = 204, description = "done"), (status = 404, description = "refused or failed: the reason", body = ErrorBody))
)]
pub(crate) async fn cancel_invite(
    State(app): State<Arc<App>>,
    Admin(_admin): Admin,
    Path(id): Path<String>,
) -> ApiResult {
    run(&app, move |app| app.cancel_invite(&id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    delete,
    path = "/api/people/{account}",
    summary = "Removes a person: they cannot sign in; what they wrote stays (admins)",
    params(("account" = String, Path, description = "an account of this server")),
    responses((status = 204, description = "done"))
)]
pub(crate) async fn remove_person(
    State(app): State<Arc<App>>,
    Admin(admin): Admin,
    Path(account): Path<String>,
) -> ApiResult {
    run(&app, move |app| app.remove_person(&admin.account, &account)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A new password.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct NewPassword {
    pub(crate) password: String,
}

/// An admin sets someone's password; their sessions end.
#[utoipa::path(
    put,
    path = "/api/people/{account}/password",
    summary = "Sets a person's password; their sessions end (admins)",
    request_body = NewPassword,
    params(("account" = String, Path, description = "an account of this server")),
    responses((status = 204, description = "done"), (status = 400, description = "refused or failed: the reason", body = ErrorBody))
)]
pub(crate) async fn reset_password(
    State(app): State<Arc<App>>,
    Admin(_admin): Admin,
    Path(account): Path<String>,
    Json(new): Json<NewPassword>,
) -> ApiResult {
    reset(&app, account, new.password).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn reset(
    app: &Arc<App>,
    account: String,
    password: String,
) -> Result<(), WebError> {
    let name = account.clone();
    let exists = run(app, move |app| {
        app.chat
            .account(&name)
            .map_err(|e| WebError::from_chat(app.text, e))
    })
    .await?;
    if exists.is_none() {
        return Err(WebError::new(StatusCode::NOT_FOUND, app.text.err_not_found));
    }
    service::set_password(app, account, password).await
}
