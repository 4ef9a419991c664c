//! errand's HTTP server: the `/v1` API over the engine, `/healthz`, `/readyz`, `/metrics`,
//! the OpenAPI document at `/v1/openapi.json`, which is built from the same route table that
//! serves requests, so the two cannot drift apart, and the web dashboard (`/`, `/ui/...`).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod auth;
mod dashboard;
pub mod edge;
mod error;
mod extract;
mod openapi;
mod request_log;
mod routes;
pub mod scripts;
mod site_guard;
mod state;
mod strict_json;

pub use auth::{
    load_session_secret, session_secret_from_env, AuthConfig, AuthConfigError, SessionSecretSource,
    SESSION_SECRET_FILE,
};
pub use error::ApiError;
pub use site_guard::{SitePolicy, SitePolicyError};
pub use state::{AppState, AppStateFields, ServerLimits};

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

/// Reads a JSON request body as every `/v1` route does (UTF-8 only, structs from objects
/// only, whole floats as integers, the field at fault named, nothing after the value): the
/// first step of `POST /v1/jobs`, `/v1/jobs/batch`, `/v1/schedules` and the others, before
/// the request's own checks. Public for the fuzz targets (`fuzz/`).
///
/// # Errors
/// The `400` the route would answer.
pub fn parse_json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    extract::parse_json(bytes)
}

/// The whole HTTP application, and the OpenAPI document describing it.
pub fn app(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let body_limit = state.limits.max_request_bytes;
    let site = state.site.clone();
    let (router, mut api) = routes::router().split_for_parts();
    openapi::add_error_responses(&mut api, state.auth.enabled);
    openapi::add_field_relations(&mut api);
    let doc = api.clone();
    let guard_state = auth::GuardState {
        app: state.clone(),
        operations: std::sync::Arc::new(auth::Operations::of(&api)),
        limits: std::sync::Arc::new(auth::limits::TokenLimiter::new(
            state.auth.token_rate,
            state.auth.token_long_polls,
        )),
    };
    let dashboard = dashboard::Dashboard::start(&state.engine, state.auth.enabled);
    let router = router
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc) }
            }),
        )
        .route(
            "/v1/limits/{scope}/{name}",
            axum::routing::any(routes::limits_other_scope),
        )
        .merge(dashboard::router())
        .route(
            "/ui/login",
            axum::routing::get(auth::session::form).post(auth::session::sign_in),
        )
        .route("/ui/logout", axum::routing::post(auth::session::sign_out))
        // After every route: the guard sees each request's matched route.
        .route_layer(axum::middleware::from_fn_with_state(
            guard_state,
            auth::guard,
        ))
        .layer(axum::Extension(dashboard))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            site,
            site_guard::guard,
        ))
        .layer(axum::middleware::from_fn(request_log::log))
        .with_state(state);
    (router, api)
}

/// The application of a node without the `api` role: `/healthz`, `/readyz` and `/metrics`
/// only, so that probes, load balancers and Prometheus still see it, and nothing else is
/// served.
pub fn health_app(state: AppState) -> Router {
    let site = state.site.clone();
    let (router, doc) = routes::health_router().split_for_parts();
    // `/metrics` needs `read` here too when auth is on.
    let guard_state = auth::GuardState {
        app: state.clone(),
        operations: std::sync::Arc::new(auth::Operations::of(&doc)),
        limits: std::sync::Arc::new(auth::limits::TokenLimiter::new(
            state.auth.token_rate,
            state.auth.token_long_polls,
        )),
    };
    router
        .route_layer(axum::middleware::from_fn_with_state(
            guard_state,
            auth::guard,
        ))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            site,
            site_guard::guard,
        ))
        .layer(axum::middleware::from_fn(request_log::log))
        .with_state(state)
}
