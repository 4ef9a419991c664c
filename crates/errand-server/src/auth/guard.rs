//! The middleware that applies [`super::rules`] to every routed request: it finds who is
//! calling (a bearer token, or a dashboard session), refuses with 401 or 403 in the API's
//! error shape, checks a session's CSRF value on actions, hands the caller to handlers as a
//! [`Principal`] extension, and records audited actions that succeeded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use errand_core::NewAuditEntry;
use errand_engine::TokenRejected;

use super::rules::{api_rule, dashboard_rule, Access, QueueCheck};
use super::session::{self, SESSION_COOKIE};
use super::Principal;
use crate::{ApiError, AppState};

/// The operation id of each API route, by method and route template (from the OpenAPI
/// document the routes were built with).
#[derive(Debug, Default)]
pub(crate) struct Operations(HashMap<(Method, String), String>);

impl Operations {
    /// Every operation of `doc`.
    pub(crate) fn of(doc: &utoipa::openapi::OpenApi) -> Self {
        let mut map = HashMap::new();
        for (path, item) in &doc.paths.paths {
            let ops = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ];
            for (method, op) in ops {
                if let Some(id) = op.as_ref().and_then(|o| o.operation_id.clone()) {
                    map.insert((method, path.clone()), id);
                }
            }
        }
        Self(map)
    }

    fn get(&self, method: &Method, route: &str) -> Option<&str> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.0
            .get(&(method.clone(), route.to_string()))
            .map(String::as_str)
    }
}

/// What a handler adds to its audit entry's target beyond the route's parameters (for
/// example the name and id of a token it created), as a response extension.
#[derive(Debug, Clone)]
pub(crate) struct AuditTarget(pub(crate) String);

/// What the guard needs besides the request.
#[derive(Clone)]
pub(crate) struct GuardState {
    pub(crate) app: AppState,
    pub(crate) operations: Arc<Operations>,
    pub(crate) limits: Arc<super::limits::TokenLimiter>,
}

/// Whether a request may wait or stream (a claim, an event or live stream, a job read
/// with `?wait=`, a followed log): it holds one of its token's long-poll places.
fn waits(action: &str, route: &str, query: &str) -> bool {
    // Decoded as the handlers decode it: `w%61it` is `wait`.
    let has = |name: &str| url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == name);
    match action {
        "claim_jobs" | "stream_events" => true,
        "get_job" => has("wait"),
        "job_logs" => has("follow"),
        _ => route == "/ui/live",
    }
}

/// The 429 for a token over one of its limits.
fn limited(limit: super::limits::Limited) -> Response {
    use super::limits::Limited;
    let (retry, message) = match limit {
        Limited::Rate(wait) => (
            wait.as_secs_f64().ceil().max(1.0) as u64,
            "this token sends more requests a second than errand allows it (--token-rate); retry after Retry-After seconds".to_string(),
        ),
        Limited::LongPolls(n) => (
            1,
            format!("this token already holds {n} waiting calls or streams (--token-long-polls); retry after one ends"),
        ),
    };
    let mut r =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response();
    if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The rule of a routed request: its access, queue check and the action name the audit
/// trail records.
fn rule_of(operations: &Operations, method: &Method, route: &str) -> (Access, QueueCheck, String) {
    if let Some(op) = operations.get(method, route) {
        return match api_rule(op) {
            Some((access, queues)) => (access, queues, op.to_string()),
            // An operation without a rule: nobody may call it (the route table test fails).
            None => (
                Access::Needs {
                    any: &[],
                    audit: false,
                },
                QueueCheck::Refused,
                op.to_string(),
            ),
        };
    }
    match route {
        "/v1/openapi.json" | "/v1/limits/{scope}/{name}" => {
            (Access::Public, QueueCheck::Refused, route.to_string())
        }
        _ => (
            dashboard_rule(method, route),
            QueueCheck::Refused,
            format!("dashboard {method} {route}"),
        ),
    }
}

/// Whether a request is the dashboard's (a browser: sessions count, and a missing
/// sign-in leads to the sign-in page).
fn is_dashboard(route: &str) -> bool {
    route == "/" || route.starts_with("/ui")
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"errand\""),
    );
    r
}

fn forbidden(message: String) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response()
}

/// The bearer token of a request, if it has one.
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Applies the rules; see the module's documentation.
pub(crate) async fn guard(
    State(gs): State<GuardState>,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    mut req: Request,
    next: Next,
) -> Response {
    let params = params.ok();
    let state = &gs.app;
    let config = state.auth.clone();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let (access, queue_check, action) = rule_of(&gs.operations, &method, &route);
    let dashboard = is_dashboard(&route);

    let public = access == Access::Public;
    let principal = if !config.enabled {
        Some(Principal::local())
    } else if let Some(token) = bearer(&req).filter(|_| !public) {
        if config.env_admin_matches(token) {
            Some(Principal::env_admin())
        } else {
            match state.engine.token_check(token).await {
                Ok(t) => Some(Principal {
                    name: t.name,
                    scopes: t.scopes,
                    queues: t.queues,
                    session: None,
                }),
                Err(TokenRejected::Store(e)) => {
                    return ApiError::from(e).into_response();
                }
                Err(reason) => {
                    tracing::debug!(%reason, "refused a token");
                    state.engine.note_auth_refused("invalid");
                    return unauthorized(
                        "the bearer token is not valid (unknown, revoked or expired)",
                    );
                }
            }
        }
    } else if public && bearer(&req).is_some() {
        // A public route answers as it would without the token (a probe or a hook sender
        // that adds a stale one still gets through); only `GET /` looks at who calls.
        match bearer(&req) {
            Some(token) if route == "/" => {
                state
                    .engine
                    .token_check(token)
                    .await
                    .ok()
                    .map(|t| Principal {
                        name: t.name,
                        scopes: t.scopes,
                        queues: t.queues,
                        session: None,
                    })
            }
            _ => None,
        }
    } else if dashboard {
        match session::cookie(req.headers(), SESSION_COOKIE) {
            Some(c) if !c.is_empty() => session::principal(state, &config, c).await,
            _ => None,
        }
    } else {
        None
    };

    let Access::Needs { any, audit } = access else {
        if let Some(p) = principal {
            req.extensions_mut().insert(p);
        }
        return next.run(req).await;
    };
    let Some(principal) = principal else {
        state.engine.note_auth_refused("missing");
        if dashboard && (method == Method::GET || method == Method::HEAD) {
            let target = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let login = crate::dashboard::query_url("/ui/login", &[("next", target)]);
            return Redirect::to(&login).into_response();
        }
        return unauthorized(
            "this needs an API token: send `Authorization: Bearer <token>` (errand tokens create makes one)",
        );
    };
    if !any.iter().any(|s| s.granted_by(&principal.scopes)) {
        state.engine.note_auth_refused("forbidden");
        let names: Vec<&str> = any.iter().map(|s| s.as_str()).collect();
        return forbidden(format!(
            "token `{}` lacks the scope this needs ({})",
            principal.name,
            names.join(" or ")
        ));
    }
    if !principal.queues.is_empty() {
        let allowed = match queue_check {
            QueueCheck::Lease | QueueCheck::Handler => Ok(()),
            QueueCheck::Path => {
                let queue = params
                    .as_ref()
                    .and_then(|p| {
                        p.iter()
                            .find(|(k, _)| *k == "queue")
                            .map(|(_, v)| v.to_string())
                    })
                    .unwrap_or_default();
                principal
                    .check_queue(&queue)
                    .map_err(IntoResponse::into_response)
            }
            QueueCheck::Refused => Err(forbidden(format!(
                "token `{}` is limited to some queues and this spans every queue",
                principal.name
            ))),
        };
        if let Err(r) = allowed {
            state.engine.note_auth_refused("forbidden");
            return r;
        }
    }
    // A signed-in browser's action carries the session's CSRF value.
    if let Some(s) = &principal.session {
        if method != Method::GET && method != Method::HEAD {
            let sent = req
                .headers()
                .get(crate::dashboard::CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            use subtle::ConstantTimeEq;
            let same: bool = sent.ct_eq(s.csrf.as_bytes()).into();
            if !same {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "this action needs the session's X-Errand-Csrf value; reload the page",
                )
                .into_response();
            }
        }
    }
    // Abuse limits apply to tokens, not to the local admin of a server without auth.
    let mut place = None;
    if config.enabled {
        if let Err(l) = gs
            .limits
            .request(&principal.name, std::time::Instant::now())
        {
            state.engine.note_auth_refused("limited");
            return limited(l);
        }
        if waits(&action, &route, req.uri().query().unwrap_or_default()) {
            match gs.limits.long_poll(&principal.name) {
                Ok(p) => place = p,
                Err(l) => {
                    state.engine.note_auth_refused("limited");
                    return limited(l);
                }
            }
        }
    }
    let actor = principal.name.clone();
    req.extensions_mut().insert(principal);
    if !audit {
        let response = next.run(req).await;
        return match place {
            // Held until the answer (a stream) has been sent or dropped.
            Some(p) => {
                response.map(|b| axum::body::Body::new(crate::edge::body::GuardedBody::new(b, p)))
            }
            None => response,
        };
    }
    let origin = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let target: Vec<String> = params
        .as_ref()
        .map(|p| p.iter().map(|(k, v)| format!("{k}={v}")).collect())
        .unwrap_or_default();
    let query = req.uri().query().unwrap_or_default().to_string();
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    if response.status().is_success() {
        let mut target = target.join(" ");
        if let Some(AuditTarget(more)) = response.extensions().get::<AuditTarget>() {
            if !target.is_empty() {
                target.push(' ');
            }
            target.push_str(more);
        }
        let entry = NewAuditEntry {
            actor,
            action,
            target,
            detail: serde_json::json!({
                "method": method.as_str(),
                "path": path,
                "query": query,
                "status": response.status().as_u16(),
            }),
            origin,
        };
        // Its own task: a client that hangs up once the action is done cannot cancel the
        // record of it (the request's future would be dropped mid-write).
        let engine = state.engine.clone();
        let write = tokio::spawn(async move { engine.audit_record(entry).await });
        match write.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "could not record an action in the audit trail")
            }
            Err(e) => tracing::error!(error = %e, "the audit trail's write failed"),
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::waits;

    #[test]
    fn a_wait_is_a_wait_however_its_query_is_spelled() {
        assert!(waits("claim_jobs", "/v1/queues/{queue}/claim", ""));
        assert!(waits("get_job", "/v1/jobs/{id}", "wait=1s"));
        assert!(waits("get_job", "/v1/jobs/{id}", "w%61it=1s"));
        assert!(!waits("get_job", "/v1/jobs/{id}", "waiting=1s"));
        assert!(waits("job_logs", "/v1/jobs/{id}/logs", "f%6Fllow=true"));
        assert!(!waits("job_logs", "/v1/jobs/{id}/logs", ""));
        assert!(waits("dashboard GET /ui/live", "/ui/live", "topics=jobs"));
        assert!(!waits("list_jobs", "/v1/jobs", "wait=1s"));
    }
}
