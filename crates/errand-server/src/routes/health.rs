//! Liveness and readiness.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

use crate::{ApiError, AppState};

/// What `/readyz` answers: `ready` or `not_ready`, and each check's result (`ok`, or why it
/// failed). A 503 carries the same fields beside the usual `error`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Readiness {
    /// `ready` when every check passed.
    status: &'static str,
    /// Each check by name (`store`, `migrations`, `shutdown`): `ok`, or why it failed.
    checks: BTreeMap<&'static str, String>,
}

/// What `/healthz` answers while the process is alive: `{"status": "ok"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Liveness {
    /// Always `ok`.
    status: &'static str,
}

/// The value of a check that passed.
const OK: &str = "ok";

/// `ok` when the store's schema is at the migration this build expects, else why not.
async fn migrations(state: &AppState) -> String {
    match state.engine.schema_version().await {
        Ok(v) if v.applied == v.expected => OK.to_string(),
        Ok(v) if v.applied > v.expected => format!(
            "the store's schema is at migration {}, newer than this build's {}: a newer errand migrated it; upgrade this node",
            v.applied, v.expected
        ),
        Ok(v) => format!(
            "the store's schema is at migration {}, older than this build's {}: restart this node to migrate it",
            v.applied, v.expected
        ),
        Err(e) => e.to_string(),
    }
}

/// The process is up and can work: 503 when something only a restart fixes has stopped
/// (the SQLite writer thread), so a supervisor restarts it. A store that is merely
/// unreachable leaves this at 200; that is `/readyz`.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Liveness), (status = 503, description = "A part of the process that only a restart brings back has stopped", body = errand_api::ErrorBody)))]
pub(crate) async fn healthz(State(state): State<AppState>) -> Result<Json<Liveness>, ApiError> {
    state.engine.live()?;
    Ok(Json(Liveness { status: OK }))
}

/// This node can accept a job, so an autoscaler or load balancer may send it work. Three
/// checks, each named in the answer:
/// - `store`: the store answers and takes writes (on SQLite: the file opened is still the
///   one at its path, and writable; on PostgreSQL: the connection works and the database
///   is not read-only);
/// - `migrations`: the store's schema is the one this build's queries are written for.
///   `errand serve` migrates before it serves, so this fails only when the schema moved
///   under a running node: a node of a newer build migrated the shared database (this node
///   is older), or the database was restored from a backup of an older schema;
/// - `shutdown`: the node is not shutting down. On SIGTERM it fails from the signal on,
///   through the drain during which the node still serves, so load balancers see it
///   before the listener closes.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "health",
    responses((status = 200, description = "Ready: every check passed", body = Readiness), (status = 503, description = "Not ready: the store cannot accept a job (unreachable, read-only, or on SQLite its file gone or replaced since start), its schema is not the one this build expects (another build migrated it), or the node is shutting down. Besides `error` (whose message starts with the failed check's name), the body has `status` (`not_ready`) and `checks`, as the 200 answer does", body = errand_api::ErrorBody)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let mut checks = BTreeMap::new();
    let store = match state.engine.ready().await {
        Ok(()) => OK.to_string(),
        Err(e) => e.to_string(),
    };
    checks.insert("store", store);
    checks.insert("migrations", migrations(&state).await);
    let shutdown = if state.engine.shutting_down() {
        "shutting down".to_string()
    } else {
        OK.to_string()
    };
    checks.insert("shutdown", shutdown);
    let failed = checks.iter().find(|(_, v)| v.as_str() != OK);
    match failed {
        None => Json(Readiness {
            status: "ready",
            checks,
        })
        .into_response(),
        Some((name, why)) => {
            let body = json!({
                "error": {"code": "unavailable", "message": format!("{name}: {why}")},
                "status": "not_ready",
                "checks": checks,
            });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}
