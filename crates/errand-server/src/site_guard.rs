//! Keeps web pages a developer visits from driving errand through their browser.
//!
//! With auth off (loopback) errand has no token, so without these checks any page could purge dead jobs with a
//! `text/plain` form post (a "simple" request a browser sends cross-site without asking),
//! or reach a server on `localhost` through a name it controls that resolves to
//! `127.0.0.1` (DNS rebinding). Every request passes three checks, in this order:
//!
//! 1. **Host** (only when errand listens on a loopback address): the `Host` must be a
//!    loopback name (`localhost`, `127.0.0.1`, `[::1]`, with or without a port) or one of
//!    `allowed_hosts`; otherwise `421 misdirected_request`.
//! 2. **Origin**: a request carrying `Origin` must come from errand's own origin (the same
//!    host and port as `Host`) or one of `allowed_origins`; one without `Origin` but with
//!    `Sec-Fetch-Site: cross-site` is refused too; otherwise `403 cross_origin`.
//! 3. **Content type**: a request with a body (`Content-Length` above zero, or
//!    `Transfer-Encoding`) must say `Content-Type: application/json` (parameters such as
//!    `charset` allowed), which a browser never sends cross-site without a preflight that
//!    errand does not answer; otherwise `415 unsupported_media_type`. Bodiless requests,
//!    such as a claim with no options, need no type. Webhook deliveries
//!    (`POST /v1/hooks/{name}`) take any type. Dashboard actions (`/ui/...`) may send a
//!    form (`application/x-www-form-urlencoded`) when they carry the dashboard's CSRF
//!    header, which a browser never sends cross-site without a preflight either; the
//!    dashboard then checks the header's value. The sign-in and sign-out forms
//!    (`/ui/login`, `/ui/logout`) are plain forms, guarded by the `Origin` check alone.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// Which hosts and origins errand answers, beyond its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SitePolicy {
    allowed_origins: Vec<String>,
    allowed_hosts: Vec<String>,
    loopback: bool,
}

/// A setting of [`SitePolicy`] that cannot be an origin or a host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SitePolicyError {
    /// An `allowed_origins` entry that is not `scheme://host[:port]`.
    #[error("allowed_origins: `{0}` is not an origin (write scheme://host[:port], e.g. https://ops.example.com)")]
    Origin(String),
    /// An `allowed_hosts` entry that is not `host` or `host:port`.
    #[error(
        "allowed_hosts: `{0}` is not a host name (write host or host:port, e.g. errand.internal)"
    )]
    Host(String),
}

impl SitePolicy {
    /// A policy for a server that listens on a loopback address (`loopback`) or not, with
    /// the origins and host names the operator allows besides errand's own.
    ///
    /// # Errors
    /// An entry that is not an origin (`scheme://host[:port]`) or a host (`host[:port]`).
    pub fn new(
        allowed_origins: &[String],
        allowed_hosts: &[String],
        loopback: bool,
    ) -> Result<Self, SitePolicyError> {
        let allowed_origins = allowed_origins
            .iter()
            .map(|o| normal_origin(o).ok_or_else(|| SitePolicyError::Origin(o.clone())))
            .collect::<Result<_, _>>()?;
        let allowed_hosts = allowed_hosts
            .iter()
            .map(|h| {
                let host = h.trim().to_ascii_lowercase();
                match host.parse::<axum::http::uri::Authority>() {
                    Ok(a) if a.as_str() == host && !host.contains('@') => Ok(host),
                    _ => Err(SitePolicyError::Host(h.clone())),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            allowed_origins,
            allowed_hosts,
            loopback,
        })
    }

    /// Whether `host` (a `Host` header's value) is a name a loopback server answers to.
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let (name, _) = split_port(&host);
        is_loopback_name(name)
            || self
                .allowed_hosts
                .iter()
                .any(|allowed| *allowed == host || allowed == name)
    }

    /// Whether `origin` (an `Origin` header's value) may call errand, given the request's
    /// `host`.
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let Some(origin) = normal_origin(origin) else {
            return false;
        };
        self.allowed_origins.contains(&origin) || host.is_some_and(|h| same_site(&origin, h))
    }
}

/// `scheme://host[:port]` in lower case, or `None` when `text` is not an origin.
fn normal_origin(text: &str) -> Option<String> {
    let text = text.trim().to_ascii_lowercase();
    let uri: Uri = text.parse().ok()?;
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?;
    let bare = uri.path_and_query().is_none_or(|p| p.as_str() == "/");
    (bare && !authority.as_str().contains('@')).then(|| format!("{scheme}://{authority}"))
}

/// Whether a normalised origin names the same host and port as a `Host` header. A `Host`
/// without a port matches only an origin without one (its scheme's default port), so a
/// page served by a TLS proxy in front of errand still matches.
fn same_site(origin: &str, host: &str) -> bool {
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host.trim()))
}

/// Splits `host[:port]` (also `[v6]:port`) into the name and the port.
fn split_port(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((v6, port)) => (&host[..v6.len() + 2], port.strip_prefix(':')),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (name, Some(port)),
        _ => (host, None),
    }
}

/// `localhost`, or a loopback address (`127.0.0.1`, `[::1]`).
fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host the request was sent to: its `Host` header, or the authority of its URI
/// (HTTP/2 carries it there).
fn request_host(req: &Request) -> Option<String> {
    match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok().map(str::to_string),
        None => req.uri().authority().map(|a| a.as_str().to_string()),
    }
}

/// Whether the request carries a body: a `Transfer-Encoding`, or a `Content-Length` that
/// is not zero.
fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) != Some(0))
}

/// Whether the request's `Content-Type` is `application/json`, parameters allowed.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.essence_str() == "application/json")
}

/// Whether the request is a webhook delivery (`POST /v1/hooks/...`): senders such as
/// GitHub post form-encoded bodies too, so hooks take any type. The Host and Origin checks
/// still apply (a browser sends `Origin` with a cross-site POST), and a signed hook takes
/// only requests signed with its secret.
fn is_hook(req: &Request) -> bool {
    req.uri().path().starts_with("/v1/hooks/")
}

/// Whether the request is a dashboard form post: under `/ui/`, form-encoded, with the
/// dashboard's CSRF header (whose value the dashboard checks).
fn is_dashboard_form(req: &Request) -> bool {
    let headers = req.headers();
    // The sign-in and sign-out forms are plain HTML forms (their pages hold no script):
    // a foreign `Origin` or `Sec-Fetch-Site: cross-site` is refused above all the same.
    let plain_form = matches!(req.uri().path(), "/ui/login" | "/ui/logout");
    req.uri().path().starts_with("/ui/")
        && (plain_form || headers.contains_key(crate::dashboard::CSRF_HEADER))
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| m.essence_str() == "application/x-www-form-urlencoded")
}

/// Applies the three checks; see the module documentation.
pub(crate) async fn guard(
    State(policy): State<Arc<SitePolicy>>,
    req: Request,
    next: Next,
) -> Response {
    match check(&policy, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn check(policy: &SitePolicy, req: &Request) -> Result<(), ApiError> {
    let host = request_host(req);
    if policy.loopback && !host.as_deref().is_some_and(|h| policy.host_allowed(h)) {
        return Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected_request",
            format!(
                "errand listens on a loopback address and does not answer to the host `{}`; use localhost or 127.0.0.1, or add it to allowed_hosts",
                host.as_deref().unwrap_or("")
            ),
        ));
    }
    let headers = req.headers();
    match headers.get(header::ORIGIN) {
        Some(origin) => {
            let origin = origin.to_str().unwrap_or("");
            if !policy.origin_allowed(origin, host.as_deref()) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "cross_origin",
                    format!("requests from the origin `{origin}` are not allowed; add it to allowed_origins to let its pages call errand"),
                ));
            }
        }
        None => {
            let cross_site = headers
                .get("sec-fetch-site")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
            if cross_site {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "cross_origin",
                    "cross-site requests are not allowed",
                ));
            }
        }
    }
    if has_body(headers) && !is_json(headers) && !is_hook(req) && !is_dashboard_form(req) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a request body must be JSON, sent with Content-Type: application/json",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().method("POST").uri("/v1/dead/purge");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    fn status(policy: &SitePolicy, headers: &[(&str, &str)]) -> u16 {
        match check(policy, &request(headers)) {
            Ok(()) => 200,
            Err(e) => e.status.as_u16(),
        }
    }

    fn loopback() -> SitePolicy {
        SitePolicy::new(
            &["https://ops.example.com".into()],
            &["errand.internal".into(), "box:7878".into()],
            true,
        )
        .unwrap()
    }

    #[test]
    fn loopback_servers_answer_loopback_names_and_listed_hosts_only() {
        let p = loopback();
        for host in [
            "localhost",
            "localhost:7878",
            "127.0.0.1:7878",
            "127.0.0.1",
            "[::1]:7878",
            "[::1]",
            "errand.internal:9000",
            "ERRAND.internal",
            "box:7878",
        ] {
            assert_eq!(status(&p, &[("host", host)]), 200, "{host}");
        }
        for host in [
            "attacker.example:7878",
            "box:7879",
            "localhost.attacker.example",
            "",
        ] {
            assert_eq!(status(&p, &[("host", host)]), 421, "{host}");
        }
        assert_eq!(status(&p, &[]), 421, "no host at all");
        let open = SitePolicy::new(&[], &[], false).unwrap();
        assert_eq!(status(&open, &[("host", "errand.example.com")]), 200);
    }

    #[test]
    fn foreign_origins_and_cross_site_fetches_are_refused() {
        let p = loopback();
        let host = ("host", "127.0.0.1:7878");
        assert_eq!(
            status(&p, &[host, ("origin", "http://127.0.0.1:7878")]),
            200
        );
        assert_eq!(
            status(&p, &[host, ("origin", "https://ops.example.com")]),
            200
        );
        assert_eq!(
            status(&p, &[host, ("origin", "https://ops.example.com/")]),
            200
        );
        assert_eq!(
            status(&p, &[host, ("origin", "https://attacker.example")]),
            403
        );
        assert_eq!(
            status(&p, &[host, ("origin", "http://127.0.0.1:9999")]),
            403
        );
        assert_eq!(status(&p, &[host, ("origin", "null")]), 403);
        assert_eq!(status(&p, &[host, ("sec-fetch-site", "cross-site")]), 403);
        assert_eq!(status(&p, &[host, ("sec-fetch-site", "same-origin")]), 200);
    }

    #[test]
    fn bodies_must_be_json_and_bodiless_requests_need_no_type() {
        let p = loopback();
        let host = ("host", "localhost:7878");
        let len = ("content-length", "12");
        assert_eq!(status(&p, &[host]), 200);
        assert_eq!(status(&p, &[host, ("content-length", "0")]), 200);
        assert_eq!(
            status(&p, &[host, len, ("content-type", "application/json")]),
            200
        );
        assert_eq!(
            status(
                &p,
                &[
                    host,
                    len,
                    ("content-type", "Application/JSON; charset=utf-8")
                ]
            ),
            200
        );
        assert_eq!(
            status(&p, &[host, len, ("content-type", "text/plain")]),
            415
        );
        assert_eq!(status(&p, &[host, len]), 415);
        assert_eq!(status(&p, &[host, ("transfer-encoding", "chunked")]), 415);
        assert_eq!(
            status(&p, &[host, len, ("content-type", "application/jsonx")]),
            415
        );
    }

    #[test]
    fn dashboard_forms_need_the_csrf_header_and_their_path() {
        let p = loopback();
        let send = |path: &str, headers: &[(&str, &str)]| {
            let mut b = Request::builder().method("POST").uri(path);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            match check(&p, &b.body(axum::body::Body::empty()).unwrap()) {
                Ok(()) => 200,
                Err(e) => e.status.as_u16(),
            }
        };
        let host = ("host", "localhost:7878");
        let len = ("content-length", "40");
        let form = ("content-type", "application/x-www-form-urlencoded");
        let csrf = ("x-errand-csrf", "anything: the dashboard checks it");
        assert_eq!(send("/ui/dead/requeue", &[host, len, form, csrf]), 200);
        assert_eq!(send("/ui/dead/requeue", &[host, len, form]), 415);
        assert_eq!(send("/v1/dead/requeue", &[host, len, form, csrf]), 415);
        assert_eq!(
            send(
                "/ui/dead/requeue",
                &[host, len, ("content-type", "text/plain"), csrf]
            ),
            415
        );
        assert_eq!(
            send(
                "/ui/dead/requeue",
                &[
                    host,
                    len,
                    form,
                    csrf,
                    ("origin", "https://attacker.example")
                ]
            ),
            403
        );
    }

    #[test]
    fn settings_that_are_not_origins_or_hosts_are_refused() {
        assert!(SitePolicy::new(&["ops.example.com".into()], &[], true).is_err());
        assert!(SitePolicy::new(&["https://ops.example.com/app".into()], &[], true).is_err());
        assert!(SitePolicy::new(&[], &["http://x".into()], true).is_err());
        assert!(SitePolicy::new(&[], &["a/b".into()], true).is_err());
    }
}
