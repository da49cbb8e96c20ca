//! What every request passes before its route: the per-address rate limit, the session
//! lookup, and the CSRF check on every change (any method but GET and HEAD).
//!
//! CSRF: a signed-in browser's changes carry its session's token (a form's hidden `csrf`
//! field, or the `X-CSRF-Token` header of the script and API clients). Before signing in,
//! the sign-in and join forms carry the token of a `archive_pre` cookie the form's page set
//! (double submit). Cookies are `SameSite=Strict` besides, so another site's page cannot
//! send them at all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::limits::ClientKey;
use super::{App, WebError, MAX_BODY};
use crate::accounts::Session;

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "archive_session";
/// The cookie the sign-in and join forms echo before there is a session.
pub(crate) const PRE_COOKIE: &str = "archive_pre";
/// The header scripts and API clients send the CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// Who is asking: where from, and their session if they have one.
#[derive(Debug, Clone)]
pub(crate) struct Visitor {
    pub(crate) client: ClientKey,
    /// The session cookie's token and its session, when it is a live one.
    pub(crate) signed: Option<(String, Session)>,
    /// The `archive_pre` cookie, if sent.
    pub(crate) pre: Option<String>,
}

impl Visitor {
    /// The token this visitor's forms must carry: its session's, else its pre-session one.
    pub(crate) fn csrf(&self) -> Option<&str> {
        match &self.signed {
            Some((_, s)) => Some(&s.csrf),
            None => self.pre.as_deref(),
        }
    }
}

/// The middleware: rate limit, session, CSRF.
pub(crate) async fn guard(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let client = ClientKey::of(addr.ip());
    if !app.limits.requests.take(&client, Instant::now()) {
        return WebError::new(StatusCode::TOO_MANY_REQUESTS, app.text.err_too_many).into_response();
    }
    // A query whose values are not UTF-8 would be decoded with replacement characters, and
    // a file or folder could get a name nobody typed: refused instead.
    if request
        .uri()
        .query()
        .is_some_and(|q| !form_is_utf8(q.as_bytes()))
    {
        return WebError::bad_request(app.text.err_bad_request).into_response();
    }
    let session_cookie = cookie(request.headers(), SESSION_COOKIE);
    let pre_cookie = cookie(request.headers(), PRE_COOKIE);
    let signed = match session_cookie {
        Some(token) => match app.accounts.session(&token) {
            Ok(session) => session.map(|s| (token, s)),
            Err(e) => return WebError::internal(app.text, e).into_response(),
        },
        None => None,
    };
    let visitor = Visitor {
        client,
        signed,
        pre: pre_cookie.filter(|p| p.len() >= 16 && p.len() <= 64),
    };
    let (mut parts, body) = request.into_parts();
    let body = if matches!(parts.method, Method::GET | Method::HEAD) {
        body
    } else {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (sent, body) = match sent {
            Some(token) => (Some(token), body),
            // A form with files: its body is not read here; its token is in the address.
            None if is_multipart(&parts.headers) => (
                parts
                    .uri
                    .query()
                    .and_then(|q| form_field(q.as_bytes(), "csrf")),
                body,
            ),
            None if is_form(&parts.headers) => {
                // Forms are small (the body limit holds them); read the token out of it.
                let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
                    Ok(b) => b,
                    Err(_) => {
                        return WebError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            app.text.err_bad_request,
                        )
                        .into_response()
                    }
                };
                if !form_is_utf8(&bytes) {
                    return WebError::bad_request(app.text.err_bad_request).into_response();
                }
                let token = form_field(&bytes, "csrf");
                (token, Body::from(bytes))
            }
            None => (None, body),
        };
        let expected = visitor.csrf();
        let ok = matches!((sent.as_deref(), expected), (Some(s), Some(e)) if same(s, e));
        if !ok {
            return WebError::new(StatusCode::FORBIDDEN, app.text.err_csrf).into_response();
        }
        body
    };
    parts.extensions.insert(visitor);
    next.run(Request::from_parts(parts, body)).await
}

/// A signed-in person. A page without one sends the browser to the sign-in page; the API
/// answers 401.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) account: String,
    pub(crate) token: String,
    pub(crate) csrf: String,
}

impl FromRequestParts<Arc<App>> for Member {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let signed = parts
            .extensions
            .get::<Visitor>()
            .and_then(|v| v.signed.clone());
        match signed {
            Some((token, session)) => Ok(Member {
                account: session.account,
                token,
                csrf: session.csrf,
            }),
            None if parts.uri.path().starts_with("/api/") => Err(WebError::new(
                StatusCode::UNAUTHORIZED,
                app.text.err_not_signed_in,
            )
            .into_response()),
            None => Err(redirect("/login")),
        }
    }
}

impl FromRequestParts<Arc<App>> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        parts.extensions.get::<Visitor>().cloned().ok_or_else(|| {
            WebError::internal(app.text, "no visitor: guard not run").into_response()
        })
    }
}

/// A signed-in admin of this server.
#[derive(Debug, Clone)]
pub(crate) struct Admin(pub(crate) Member);

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let member = Member::from_request_parts(parts, app).await?;
        match app.chat.account(&member.account) {
            Ok(Some(a)) if a.profile.role == chat::ServerRole::Admin => Ok(Admin(member)),
            Ok(_) => {
                Err(WebError::new(StatusCode::FORBIDDEN, app.text.err_admins_only).into_response())
            }
            Err(e) => Err(WebError::from_chat(app.text, e).into_response()),
        }
    }
}

/// A `303 See Other` to `to` (after a form, the browser loads the page).
pub(crate) fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, v);
    }
    response
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, for the whole site; `max_age` 0 deletes.
pub(crate) fn set_cookie(name: &str, value: &str, max_age_secs: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}"
    ))
    .expect("cookie names and tokens are ASCII")
}

/// A new pre-session token.
pub(crate) fn new_pre_token() -> String {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).expect("the system's random source works");
    data_encoding::HEXLOWER.encode(&raw)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"))
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded_pairs(body)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// `a=b&c=d` pairs (percent- and plus-decoded); none if the body is not such a form.
fn serde_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

/// Whether every name and value of a form body decodes to UTF-8 (a form parser would
/// otherwise replace what does not, and store the replacement characters).
fn form_is_utf8(body: &[u8]) -> bool {
    let mut decoded = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'&' | b'=' => {
                if std::str::from_utf8(&decoded).is_err() {
                    return false;
                }
                decoded.clear();
            }
            b'%' => {
                let hex = body
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        decoded.push(b);
                        i += 2;
                    }
                    None => decoded.push(b'%'),
                }
            }
            b => decoded.push(b),
        }
        i += 1;
    }
    std::str::from_utf8(&decoded).is_ok()
}

/// Compares two tokens in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_must_decode_to_utf8() {
        for good in [
            &b"a=b&c=d"[..],
            b"text=caf%C3%A9",
            b"x=100%",
            b"x=%zz",
            b"",
            b"a+b=%E2%9C%93",
        ] {
            assert!(form_is_utf8(good), "{}", String::from_utf8_lossy(good));
        }
        for bad in [&b"text=%FF%FE"[..], b"%C3=x", b"a=b&c=%C3", b"t=\xff"] {
            assert!(!form_is_utf8(bad), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            form_field(b"text=hi&csrf=abc%2B", "csrf").as_deref(),
            Some("abc+")
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }
}
