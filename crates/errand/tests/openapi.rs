//! The OpenAPI document describes exactly the routes the server serves.

mod common;

use std::collections::BTreeSet;

use common::{server, Raw};

const EXPECTED: &[&str] = &[
    "GET /healthz",
    "GET /readyz",
    "GET /v1/dead",
    "GET /v1/jobs",
    "GET /v1/jobs/{id}",
    "GET /v1/jobs/{id}/attempts",
    "GET /v1/nodes",
    "GET /v1/schedules",
    "GET /v1/schedules/{name}",
    "GET /v1/schedules/{name}/next",
    "PUT /v1/schedules/{name}",
    "DELETE /v1/schedules/{name}",
    "POST /v1/schedules",
    "POST /v1/schedules/{name}/backfill",
    "POST /v1/schedules/{name}/pause",
    "POST /v1/schedules/{name}/resume",
    "POST /v1/schedules/{name}/trigger",
    "GET /v1/queues",
    "GET /v1/queues/{queue}",
    "POST /v1/dead/purge",
    "POST /v1/dead/requeue",
    "POST /v1/jobs",
    "POST /v1/jobs/batch",
    "POST /v1/jobs/settle",
    "POST /v1/jobs/{id}/cancel",
    "POST /v1/jobs/{id}/complete",
    "POST /v1/jobs/{id}/fail",
    "POST /v1/jobs/{id}/heartbeat",
    "POST /v1/jobs/{id}/retry",
    "POST /v1/queues/{queue}/claim",
    "POST /v1/queues/{queue}/pause",
    "POST /v1/queues/{queue}/resume",
];

#[tokio::test]
async fn document_lists_every_route_and_every_listed_route_is_served() {
    let s = server().await;
    let raw = Raw::new(&s);
    let (status, doc) = raw.get("/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            operations.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let expected: BTreeSet<String> = EXPECTED.iter().map(|s| s.to_string()).collect();
    assert_eq!(operations, expected);
    for op in &operations {
        let (method, path) = op.split_once(' ').expect("op");
        let concrete = path
            .replace("{id}", "01936f3c-0000-7000-8000-000000000000")
            .replace("{queue}", "default")
            .replace("{name}", "nightly");
        let body = (method == "POST").then(|| b"{}".to_vec());
        let (status, json) = raw.send(method, &concrete, body).await;
        let message = json["error"]["message"].as_str().unwrap_or("");
        assert!(
            status != 405 && !message.contains("no such endpoint"),
            "{op} is documented but not served: {status} {json}"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "Job",
        "EnqueueRequest",
        "ClaimRequest",
        "ErrorBody",
        "QueueInfo",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
}
