//! Cross-site request forgery: every dashboard request that is not a GET (or HEAD) must
//! carry the header `X-Errand-Csrf` with this process's random token.
//!
//! The token is in a `<meta>` tag of every page; app.js hands it to htmx, which sends it
//! with each request. Another site can make a browser send a form post to errand, but it
//! cannot add a custom header (that takes a CORS preflight errand never grants) nor read a
//! page of errand to learn the token (same-origin policy). The site guard refuses foreign
//! `Origin`s before this check; the token also covers browsers and proxies that drop
//! `Origin`. A new token every start is enough: a tab left open over a restart gets a 403
//! that says to reload.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::Dashboard;
use crate::ApiError;

/// The header that carries the token.
pub(crate) const HEADER: &str = "x-errand-csrf";

/// A per-process secret: 122 random bits from the operating system (a v4 UUID), as hex.
pub(crate) struct Token(String);

impl Token {
    /// A fresh token.
    pub(crate) fn random() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The token as pages show it.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is the token, compared in time that does not depend on where the
    /// first difference is.
    fn matches(&self, given: &[u8]) -> bool {
        let want = self.0.as_bytes();
        want.len() == given.len()
            && want
                .iter()
                .zip(given)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// Refuses a dashboard request that may change something (any method but GET and HEAD)
/// without the right token: 403 `csrf` in the API's error shape, nothing done.
pub(crate) async fn guard(
    Extension(dash): Extension<Arc<Dashboard>>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return next.run(req).await;
    }
    let ok = req
        .headers()
        .get(HEADER)
        .is_some_and(|v| dash.csrf.matches(v.as_bytes()));
    if ok {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "a dashboard action needs the X-Errand-Csrf header of the page it came from; reload the page",
        )
        .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_matches() {
        let t = Token::random();
        assert_eq!(t.as_str().len(), 32);
        assert!(t.matches(t.as_str().as_bytes()));
        assert!(!t.matches(b""));
        assert!(!t.matches(&t.as_str().as_bytes()[..31]));
        let mut other = t.as_str().as_bytes().to_vec();
        other[5] ^= 1;
        assert!(!t.matches(&other));
        assert_ne!(Token::random().as_str(), t.as_str());
    }
}
