//! Cross-site request forgery: every dashboard request that is not a GET (or HEAD) must
//! carry the header `X-Errand-Csrf`, with any non-empty value.
//!
//! The value is no secret: the protection is the header itself. Another site can make a
//! browser send a form post to errand, but it cannot add a custom header to a cross-site
//! request without a CORS preflight, which errand never grants; and the site guard refuses
//! foreign `Origin`s before this check. The header also covers browsers and proxies that drop
//! `Origin`. Being fixed, it works the same on every node behind a load balancer and over a
//! restart (a per-process token broke both). Pages carry the value in a `<meta>` tag and
//! app.js hands it to htmx; once the dashboard has sign-in sessions (issue 16) the value will
//! be tied to the session.

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// The header an action must carry.
pub(crate) const HEADER: &str = "x-errand-csrf";

/// The value pages send (any non-empty value passes).
pub(crate) const VALUE: &str = "1";

/// Refuses a dashboard request that may change something (any method but GET and HEAD)
/// without the header: 403 `csrf` in the API's error shape, nothing done.
pub(crate) async fn guard(req: Request, next: Next) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return next.run(req).await;
    }
    let ok = req
        .headers()
        .get(HEADER)
        .is_some_and(|v| !v.as_bytes().trim_ascii().is_empty());
    if ok {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "a dashboard action needs the X-Errand-Csrf header (the dashboard's pages send it); reload the page",
        )
        .into_response()
    }
}
