//! `/readyz` over the real application and a real SQLite store, in process: the one place a
//! test can hold a node between "shutting down" and "stopped serving".

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use errand_engine::{Engine, EngineConfig};
use errand_server::{AppState, ServerLimits, SitePolicy};
use errand_store_sqlite::{SqliteOptions, SqliteStore};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

async fn readyz(router: axum::Router) -> (StatusCode, Value) {
    let req = Request::get("/readyz")
        .header("host", "localhost")
        .body(Body::empty())
        .expect("request");
    let resp = router.oneshot(req).await.expect("answer");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

#[tokio::test]
async fn a_node_shutting_down_is_not_ready_and_names_the_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&SqliteOptions::in_dir(dir.path())).expect("open");
    let engine = Engine::new(Arc::new(store), EngineConfig::default());
    let site = SitePolicy::new(&[], &[], true).expect("site policy");
    let state = AppState::new(engine.clone(), ServerLimits::default(), Arc::new(site));
    let (router, _) = errand_server::app(state);

    let (status, body) = readyz(router.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    for check in ["store", "migrations", "shutdown"] {
        assert_eq!(body["checks"][check], "ok", "{check}: {body}");
    }

    engine.shutdown();
    let (status, body) = readyz(router).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not_ready", "{body}");
    assert_eq!(body["checks"]["shutdown"], "shutting down", "{body}");
    assert_eq!(
        body["checks"]["store"], "ok",
        "the store still answers: {body}"
    );
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shutdown:")),
        "the message names the failed check: {body}"
    );
}

/// Sets the SQLite file's migration count as another build would have left it.
fn set_schema_version(dir: &std::path::Path, version: i64) {
    let conn = rusqlite::Connection::open(dir.join("errand.sqlite3")).expect("open the file");
    conn.pragma_update(None, "user_version", version)
        .expect("set user_version");
}

#[tokio::test]
async fn a_schema_moved_under_the_node_makes_it_not_ready() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&SqliteOptions::in_dir(dir.path())).expect("open");
    let engine = Engine::new(Arc::new(store), EngineConfig::default());
    let site = SitePolicy::new(&[], &[], true).expect("site policy");
    let state = AppState::new(engine.clone(), ServerLimits::default(), Arc::new(site));
    let (router, _) = errand_server::app(state);
    let ours = engine.schema_version().await.expect("version").expected;
    let ours = i64::from(ours);

    // A newer build migrated the file: this node's queries are for an older schema.
    set_schema_version(dir.path(), ours + 1);
    let (status, body) = readyz(router.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let why = body["checks"]["migrations"].as_str().expect("a reason");
    assert!(why.contains("newer than this build's"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("migrations:")),
        "the message names the failed check: {body}"
    );

    // Restored from a backup of an older schema.
    set_schema_version(dir.path(), ours - 1);
    let (status, body) = readyz(router.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let why = body["checks"]["migrations"].as_str().expect("a reason");
    assert!(why.contains("older than this build's"), "{body}");

    set_schema_version(dir.path(), ours);
    let (status, body) = readyz(router).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
