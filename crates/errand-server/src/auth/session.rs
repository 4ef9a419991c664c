//! The dashboard's sign-in: a token pasted once into `/ui/login` becomes a session cookie,
//! so the browser never holds the token itself.
//!
//! The cookie is `<token id>.<expiry>.<mac>`, the MAC an HMAC-SHA256 keyed with the hash
//! of the token's secret (which only the store holds) mixed with the server's session
//! secret (which the store does not hold, so reading the store or a backup of it mints no
//! session): nodes sharing the session secret check a session without shared state, a
//! session ends at its expiry on the server's clock (not only when the browser forgets
//! it), and revoking the token ends every session made from it. It is
//! `HttpOnly` and `SameSite=Strict` (`Secure` under TLS). Actions also need the session's
//! CSRF value, an HMAC of the session under the same key, which pages read from a second,
//! script-readable cookie and send as `X-Errand-Csrf`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use errand_core::TokenId;
use hmac::{KeyInit, Mac};
use jiff::Timestamp;
use serde::Deserialize;

use super::{AuthConfig, Principal};
use crate::AppState;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "errand_session";

/// The CSRF cookie's name (readable by app.js).
pub(crate) const CSRF_COOKIE: &str = "errand_csrf";

/// How long a sign-in lasts.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// [`SESSION_TTL`] in milliseconds, the unit of a cookie's expiry.
const SESSION_TTL_MS: i64 = SESSION_TTL.as_millis() as i64;

/// The id part of a session made with `ERRAND_ADMIN_TOKEN`.
const ENV_ADMIN_ID: &str = "env";

/// A checked session: what its CSRF value must be.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The value actions must send in `X-Errand-Csrf`.
    pub(crate) csrf: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(key: &[u8; 32], parts: &[&str]) -> Vec<u8> {
    // HMAC takes keys of any length; a 32-byte key cannot fail.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    for p in parts {
        m.update(p.as_bytes());
        m.update(b"|");
    }
    m.finalize().into_bytes().to_vec()
}

/// The cookie value of a new session for `id` keyed by `key`, ending at `expires` (ms).
fn issue(id: &str, key: &[u8; 32], expires: i64) -> String {
    let exp = expires.to_string();
    let tag = hex(&mac(key, &["errand-session", id, &exp]));
    format!("{id}.{exp}.{tag}")
}

/// The CSRF value of a session cookie.
fn csrf_of(key: &[u8; 32], cookie: &str) -> String {
    hex(&mac(key, &["errand-csrf", cookie]))[..32].to_string()
}

/// Checks `cookie` against `key` at `now` (ms): the MAC matches and the expiry has not
/// passed. Gives the session's expiry.
fn verify(cookie: &str, key: &[u8; 32], now: i64) -> Option<i64> {
    let mut parts = cookie.splitn(3, '.');
    let (Some(id), Some(exp), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let expires = exp.parse::<i64>().ok()?;
    // No session outlives the TTL from now, whatever its cookie claims.
    if expires > now + SESSION_TTL_MS {
        return None;
    }
    let want = hex(&mac(key, &["errand-session", id, exp]));
    use subtle::ConstantTimeEq;
    let same: bool = want.as_bytes().ct_eq(tag.as_bytes()).into();
    (same && expires > now).then_some(expires)
}

/// Whether a session ending at `expires` (ms) was made after its token's sessions were
/// last ended (signed out) at `ended`.
fn made_after(expires: i64, ended: Option<Timestamp>) -> bool {
    ended.is_none_or(|at| expires - SESSION_TTL_MS > at.as_millisecond())
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The signed-in caller of a request carrying a session cookie, if the session is good.
pub(crate) async fn principal(
    state: &AppState,
    config: &AuthConfig,
    cookie: &str,
) -> Option<Principal> {
    let now = Timestamp::now().as_millisecond();
    let id = cookie.split('.').next()?;
    if id == ENV_ADMIN_ID {
        let key = config.session_key(&config.env_admin?);
        verify(cookie, &key, now)?;
        return Some(Principal {
            session: Some(Session {
                csrf: csrf_of(&key, cookie),
            }),
            ..Principal::env_admin()
        });
    }
    let (token, key) = token_session(state, config, cookie, now).await?;
    state.engine.note_session_use(token.id);
    Some(Principal {
        name: token.name,
        scopes: token.scopes,
        queues: token.queues,
        session: Some(Session {
            csrf: csrf_of(&key, cookie),
        }),
    })
}

/// The token of a good session `cookie` (not the env admin's) and the session's key:
/// signed with the key, not expired, and made after the token's last sign-out.
async fn token_session(
    state: &AppState,
    config: &AuthConfig,
    cookie: &str,
    now: i64,
) -> Option<(errand_core::ApiToken, [u8; 32])> {
    let id = cookie.split('.').next()?;
    let id: TokenId = uuid::Uuid::try_parse(id).ok().map(TokenId)?;
    let (token, stored, ended) = state.engine.token_session_key(id).await.ok()?;
    let key = config.session_key(&stored);
    let expires = verify(cookie, &key, now)?;
    made_after(expires, ended).then_some((token, key))
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct SignIn {
    token: String,
    #[serde(default)]
    next: String,
}

/// Where to go after signing in: a path on this site, never another site.
fn safe_next(next: &str) -> &str {
    // Browsers drop tabs and line breaks from URLs, so `/\t/evil` would become `//evil`.
    if next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        next
    } else {
        "/"
    }
}

fn set_cookie(value: &str, http_only: bool, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let mut c = format!("{value}; Path=/; SameSite=Strict; Max-Age={max_age}");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).ok()
}

/// `GET /ui/login`: the sign-in form.
pub(crate) async fn form(
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    page(
        StatusCode::OK,
        q.get("next").map_or("/", |n| safe_next(n)),
        None,
    )
}

/// The sign-in page, with `problem` when the last try failed.
fn page(status: StatusCode, next: &str, problem: Option<&str>) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let problem = problem.map_or(String::new(), |p| {
        format!("<p class=\"problem\" role=\"alert\">{}</p>", esc(p))
    });
    let assets = crate::dashboard::asset_urls();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"color-scheme\" content=\"light dark\"><title>Sign in · errand</title>\
<link rel=\"stylesheet\" href=\"{css}\"></head><body><main id=\"main\" class=\"sign-in\">\
<h1>Sign in to errand</h1>{problem}\
<form method=\"post\" action=\"/ui/login\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
<label for=\"token\">API token (<code>errand tokens create --name dashboard --scopes read</code> makes one)</label>\
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required autofocus>\
<button type=\"submit\">Sign in</button></form>\
<p class=\"hint\">The token stays on the server: the browser keeps a session cookie for 12 hours.</p>\
</main></body></html>",
        css = assets.app_css,
        next = esc(next),
    );
    crate::dashboard::security_headers((status, Html(body)).into_response())
}

/// `POST /ui/login`: checks the token and starts a session.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    axum::Form(form): axum::Form<SignIn>,
) -> Response {
    let config = state.auth.clone();
    let presented = form.token.trim();
    let next = safe_next(&form.next);
    let expires = Timestamp::now().as_millisecond() + SESSION_TTL_MS;
    let cookie = if config.env_admin_matches(presented) {
        config
            .env_admin
            .map(|stored| config.session_key(&stored))
            .map(|key| (issue(ENV_ADMIN_ID, &key, expires), key))
    } else {
        match state.engine.token_check(presented).await {
            Ok(token)
                if !errand_core::Scope::Read.granted_by(&token.scopes)
                    || !token.queues.is_empty() =>
            {
                state.engine.note_auth_refused("forbidden");
                return page(
                    StatusCode::FORBIDDEN,
                    next,
                    Some(
                        "That token cannot see the dashboard: it needs the read (or admin) \
                         scope and no --queues limit, since the pages show every queue.",
                    ),
                );
            }
            Ok(token) => match state.engine.token_session_key(token.id).await {
                Ok((_, stored, _)) => {
                    let key = config.session_key(&stored);
                    Some((issue(&token.id.0.simple().to_string(), &key, expires), key))
                }
                Err(_) => None,
            },
            Err(_) => None,
        }
    };
    let Some((cookie, key)) = cookie else {
        state.engine.note_auth_refused("invalid");
        return page(
            StatusCode::UNAUTHORIZED,
            next,
            Some("That token is not valid (unknown, revoked or expired)."),
        );
    };
    let csrf = csrf_of(&key, &cookie);
    let mut response = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, next.to_string())],
    )
        .into_response();
    let ttl = SESSION_TTL.as_secs();
    let headers = response.headers_mut();
    for c in [
        set_cookie(
            &format!("{SESSION_COOKIE}={cookie}"),
            true,
            ttl,
            config.secure_cookies,
        ),
        set_cookie(
            &format!("{CSRF_COOKIE}={csrf}"),
            false,
            ttl,
            config.secure_cookies,
        ),
    ]
    .into_iter()
    .flatten()
    {
        headers.append(header::SET_COOKIE, c);
    }
    response
}

/// `POST /ui/logout`: ends every dashboard session made from the signed-in token, in every
/// browser and on every node (within the token cache's 5 s elsewhere), and forgets the
/// cookies here. A session of `ERRAND_ADMIN_TOKEN` is only forgotten here: rotate the
/// variable to end it.
pub(crate) async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let config = state.auth.clone();
    if let Some(value) = cookie(&headers, SESSION_COOKIE) {
        let now = Timestamp::now().as_millisecond();
        if let Some((token, _)) = token_session(&state, &config, value, now).await {
            if let Err(e) = state.engine.token_end_sessions(token.id).await {
                return crate::ApiError::from(e).into_response();
            }
        }
    }
    let secure = state.auth.secure_cookies;
    let mut response = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "/ui/login".to_string())],
    )
        .into_response();
    let headers = response.headers_mut();
    for c in [
        set_cookie(&format!("{SESSION_COOKIE}="), true, 0, secure),
        set_cookie(&format!("{CSRF_COOKIE}="), false, 0, secure),
    ]
    .into_iter()
    .flatten()
    {
        headers.append(header::SET_COOKIE, c);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_checks_only_with_its_key_and_before_its_expiry() {
        let key = [7u8; 32];
        let cookie = issue("abc", &key, 1_000);
        assert_eq!(verify(&cookie, &key, 999), Some(1_000));
        assert!(verify(&cookie, &key, 1_000).is_none(), "expired");
        assert!(verify(&cookie, &[8u8; 32], 999).is_none(), "another key");
        let longer = cookie.replace(".1000.", ".9999.");
        assert!(verify(&longer, &key, 999).is_none(), "a changed expiry");
        let far = issue("abc", &key, 999 + SESSION_TTL_MS + 1);
        assert!(
            verify(&far, &key, 999).is_none(),
            "an expiry past the TTL from now"
        );
        assert!(verify("abc.1000", &key, 999).is_none());
        assert_ne!(csrf_of(&key, &cookie), csrf_of(&[8u8; 32], &cookie));
    }

    #[test]
    fn a_session_made_before_its_tokens_sign_out_is_over() {
        let ended = Timestamp::from_millisecond(5_000).ok();
        assert!(made_after(5_001 + SESSION_TTL_MS, ended), "made after");
        assert!(!made_after(5_000 + SESSION_TTL_MS, ended), "made then");
        assert!(!made_after(4_000 + SESSION_TTL_MS, ended), "made before");
        assert!(made_after(4_000 + SESSION_TTL_MS, None), "never signed out");
    }

    #[test]
    fn only_paths_of_this_site_are_followed_after_sign_in() {
        assert_eq!(safe_next("/ui/jobs?queue=a"), "/ui/jobs?queue=a");
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("https://evil.example/"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        assert_eq!(safe_next("/\t/evil.example/x"), "/");
        assert_eq!(safe_next("/\n/evil.example"), "/");
    }
}
