//! The OpenAPI document describes exactly the routes the server serves, is a valid
//! OpenAPI 3.1 document, and states the errors and input rules the server enforces.

mod common;

use std::collections::BTreeSet;

use common::{server, Raw};
use errand_core::limits::{MAX_CLAIM, MAX_LEASE_MS, MAX_WAIT_MS, MIN_LEASE_MS, PRIORITY_RANGE};
use errand_core::names::{MAX_KIND_LEN, MAX_QUEUE_NAME_LEN};
use serde_json::Value;

const EXPECTED: &[&str] = &[
    "GET /",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /v1/dead",
    "GET /v1/events",
    "GET /v1/jobs",
    "GET /v1/jobs/{id}",
    "GET /v1/jobs/{id}/attempts",
    "GET /v1/jobs/{id}/logs",
    "GET /v1/definitions",
    "GET /v1/definitions/{name}",
    "GET /v1/definitions/{name}/instances/{instance}/logs",
    "POST /v1/definitions/{name}/run",
    "POST /v1/definitions/{name}/start",
    "POST /v1/definitions/{name}/stop",
    "POST /v1/hooks/{name}",
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
    "PATCH /v1/queues/{queue}",
    "GET /v1/jobs/{id}/explain",
    "GET /v1/workers",
    "GET /v1/limits",
    "GET /v1/limits/kind/{name}",
    "PUT /v1/limits/kind/{name}",
    "DELETE /v1/limits/kind/{name}",
    "GET /v1/limits/key/{name}",
    "PUT /v1/limits/key/{name}",
    "DELETE /v1/limits/key/{name}",
    "GET /v1/sessions",
    "GET /v1/sessions/{key}",
    "PUT /v1/sessions/{key}/state",
    "POST /v1/sessions/{key}/unblock",
    "POST /v1/dead/purge",
    "POST /v1/dead/requeue",
    "POST /v1/jobs",
    "POST /v1/jobs/batch",
    "POST /v1/jobs/settle",
    "POST /v1/jobs/{id}/cancel",
    "POST /v1/jobs/{id}/complete",
    "POST /v1/jobs/{id}/fail",
    "POST /v1/jobs/{id}/heartbeat",
    "POST /v1/jobs/{id}/release",
    "POST /v1/jobs/{id}/logs",
    "POST /v1/jobs/{id}/retry",
    "POST /v1/queues/{queue}/claim",
    "POST /v1/queues/{queue}/pause",
    "POST /v1/queues/{queue}/resume",
    "GET /v1/jobs/{id}/deliveries",
    "GET /v1/subscriptions",
    "POST /v1/subscriptions",
    "GET /v1/subscriptions/{id}",
    "PATCH /v1/subscriptions/{id}",
    "DELETE /v1/subscriptions/{id}",
    "POST /v1/subscriptions/{id}/pause",
    "POST /v1/subscriptions/{id}/resume",
    "GET /v1/subscriptions/{id}/deliveries",
    "POST /v1/workflows",
    "GET /v1/workflows",
    "GET /v1/workflows/{id}",
    "POST /v1/workflows/{id}/cancel",
    "POST /v1/workflows/{id}/retry",
    "GET /v1/workflow-templates",
    "GET /v1/workflow-templates/{name}",
    "PUT /v1/workflow-templates/{name}",
    "DELETE /v1/workflow-templates/{name}",
    "POST /v1/batches",
    "GET /v1/batches",
    "GET /v1/batches/{id}",
    "POST /v1/batches/{id}/jobs",
    "POST /v1/batches/{id}/close",
    "POST /v1/tokens",
    "GET /v1/tokens",
    "DELETE /v1/tokens/{id}",
    "GET /v1/audit",
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
        // The event stream never ends: a bad filter gets its JSON answer instead.
        let concrete = if concrete == "/v1/events" {
            "/v1/events?type=none".to_string()
        } else {
            concrete
        };
        if concrete == "/" {
            // An HTML page by default (JSON on request): checked in server_start.rs.
            let status = raw
                .http
                .get(format!("{}/", raw.base))
                .send()
                .await
                .expect("GET /")
                .status();
            assert_eq!(status, 200, "GET / is documented and served");
            continue;
        }
        if concrete == "/metrics" {
            // The Prometheus text format: checked in observability.rs.
            let status = raw
                .http
                .get(format!("{}/metrics", raw.base))
                .send()
                .await
                .expect("GET /metrics")
                .status();
            assert_eq!(status, 200, "GET /metrics is documented and served");
            continue;
        }
        let body = (method == "POST").then(|| b"{}".to_vec());
        let (status, json) = raw.send(method, &concrete, body).await;
        let message = json["error"]["message"].as_str().unwrap_or("");
        assert!(
            status != 405 && !message.contains("no such endpoint"),
            "{op} is documented but not served: {status} {json}"
        );
    }
    assert!(
        doc["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]
            .get("text/event-stream")
            .is_some(),
        "the event stream is documented as text/event-stream"
    );
    assert!(
        doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
            .get("text/plain")
            .is_some(),
        "/metrics is documented as text/plain (the Prometheus text format)"
    );
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

/// The document the server serves.
async fn served_document() -> Value {
    let s = server().await;
    let (status, doc) = Raw::new(&s).get("/v1/openapi.json").await;
    assert_eq!(status, 200);
    doc
}

/// Every operation as (`METHOD path`, operation object).
fn operations(doc: &Value) -> Vec<(String, &Value)> {
    let mut out = vec![];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            out.push((format!("{} {path}", method.to_uppercase()), op));
        }
    }
    out
}

/// Every `$ref` anywhere in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                match (k.as_str(), val) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(val, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

#[tokio::test]
async fn document_is_valid_openapi_3_1_with_every_reference_resolved() {
    let doc = served_document().await;
    let text = serde_json::to_string(&doc).expect("serialise");
    let spec = oas3::from_json(&text).expect("the document parses as OpenAPI 3.1");
    let version = spec
        .validate_version()
        .expect("an OpenAPI version oas3 supports");
    assert_eq!((version.major, version.minor), (3, 1));
    for (path, method, op) in spec.operations() {
        op.parameters(&spec)
            .unwrap_or_else(|e| panic!("{method} {path}: parameters: {e}"));
        op.request_body(&spec)
            .unwrap_or_else(|e| panic!("{method} {path}: request body: {e}"));
        let declared = op.responses.as_ref().map_or(0, |r| r.len());
        assert_eq!(
            op.responses(&spec).len(),
            declared,
            "{method} {path}: a response does not resolve"
        );
    }
    let mut all = vec![];
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r} points outside the schemas"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} does not resolve"
        );
    }
}

#[tokio::test]
async fn operation_ids_are_unique_and_name_their_resource() {
    let doc = served_document().await;
    let mut seen = BTreeSet::new();
    for (op, body) in operations(&doc) {
        let id = body["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{op}: no operationId"));
        assert!(
            seen.insert(id.to_string()),
            "{op}: operationId `{id}` repeats"
        );
        assert!(
            id.contains('_') || id.ends_with('z'),
            "{op}: `{id}` does not say what it acts on"
        );
    }
}

#[tokio::test]
async fn every_operation_documents_every_error_it_can_answer_with_the_error_shape() {
    let doc = served_document().await;
    for (op, body) in operations(&doc) {
        let responses = body["responses"].as_object().expect("responses");
        let params = body["parameters"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let has_path_param = params.iter().any(|p| p["in"] == "path");
        let has_body = body.get("requestBody").is_some();
        let mut wanted = vec!["403", "414", "421", "431", "500", "503"];
        if has_path_param || has_body || !params.is_empty() {
            wanted.push("400");
        }
        if has_body {
            wanted.extend(["408", "413", "415"]);
        }
        if body["tags"][0] != "health" {
            let busy = &responses["503"];
            assert_eq!(
                busy["headers"]["Retry-After"]["schema"]["type"], "integer",
                "{op}: 503 busy carries Retry-After"
            );
            let long_poll =
                ["POST /v1/queues/{queue}/claim", "GET /v1/jobs/{id}"].contains(&op.as_str());
            assert_eq!(
                busy["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("max_waiting")),
                long_poll,
                "{op}: only long polls are bounded by max_waiting"
            );
        }
        for status in wanted {
            assert!(
                responses.contains_key(status),
                "{op} does not document {status}"
            );
        }
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{op} {status} does not answer the error shape"
                );
                assert!(
                    !response["description"].as_str().unwrap_or("").is_empty(),
                    "{op} {status} has no description"
                );
            }
        }
    }
}

#[tokio::test]
async fn names_bounds_and_optional_bodies_match_what_the_server_enforces() {
    let doc = served_document().await;
    let schemas = &doc["components"]["schemas"];
    for (name, max) in [
        ("QueueName", MAX_QUEUE_NAME_LEN),
        ("ScheduleName", MAX_QUEUE_NAME_LEN),
        ("JobKind", MAX_KIND_LEN),
        ("Tag", errand_core::limits::MAX_LABEL_LEN),
    ] {
        let s = &schemas[name];
        assert_eq!(s["minLength"], 1, "{name}");
        assert_eq!(s["maxLength"], max, "{name}");
        assert!(
            s["pattern"].as_str().is_some_and(|p| p.starts_with('^')),
            "{name}"
        );
    }
    let claim = &schemas["ClaimRequest"]["properties"];
    assert_eq!(claim["max"]["maximum"], MAX_CLAIM);
    assert_eq!(claim["wait_ms"]["maximum"], MAX_WAIT_MS);
    assert_eq!(claim["lease_ms"]["minimum"], MIN_LEASE_MS);
    assert_eq!(claim["lease_ms"]["maximum"], MAX_LEASE_MS);
    let enqueue = &schemas["EnqueueRequest"]["allOf"][0]["properties"];
    assert_eq!(enqueue["priority"]["minimum"], *PRIORITY_RANGE.start());
    assert_eq!(enqueue["priority"]["maximum"], *PRIORITY_RANGE.end());
    for (op, body) in operations(&doc) {
        for p in body["parameters"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            if p["in"] == "path" {
                assert!(
                    p["schema"]["$ref"].as_str().is_some(),
                    "{op}: path parameter {} has no rule",
                    p["name"]
                );
            }
        }
    }
    let claim_op = &doc["paths"]["/v1/queues/{queue}/claim"]["post"];
    assert_ne!(
        claim_op["requestBody"]["required"], true,
        "a claim's body may be left out"
    );
    let s = server().await;
    let (status, json) = Raw::new(&s)
        .send("POST", "/v1/queues/default/claim", None)
        .await;
    assert_eq!(status, 200, "{json}");
}

#[tokio::test]
async fn every_route_the_rust_client_and_worker_libraries_call_is_documented() {
    let doc = served_document().await;
    let documented: BTreeSet<String> = operations(&doc).into_iter().map(|(op, _)| op).collect();
    for (method, path) in errand_client::LIBRARY_ROUTES {
        let op = format!("{method} {path}");
        assert!(
            documented.contains(&op),
            "the Rust libraries call {op}, which the OpenAPI document does not list"
        );
    }
    // The bodies they send: every field of each is a property of the documented schema.
    let full_enqueue = serde_json::json!({
        "kind": "k", "queue": "q", "payload": {}, "priority": 1, "run_at": "2030-01-01T00:00:00Z",
        "delay": "1s", "max_attempts": 2, "timeout": "5s", "tags": ["t"], "idempotency_key": "i",
        "reply_to": "r", "correlation_id": "c", "callback_url": "https://example.com/cb",
        "lock_key": "l", "concurrency_key": "c", "concurrency_limit": 2, "session_key": "s",
        "session_on_dead": "continue", "fairness_key": "f", "fairness_weight": 2, "rate_key": "r",
        "after": ["01936f3c-0000-7000-8000-000000000000"], "after_any_end": true,
    });
    // Deserialising proves the example is the library's own type, every field named.
    let typed: errand_api::EnqueueRequest =
        serde_json::from_value(full_enqueue.clone()).expect("an EnqueueRequest");
    let bodies = [
        (
            "POST",
            "/v1/jobs",
            serde_json::to_value(&typed).expect("json"),
        ),
        (
            "POST",
            "/v1/queues/{queue}/claim",
            serde_json::to_value(errand_api::ClaimRequest {
                worker: Some("w".into()),
                max: Some(1),
                wait_ms: Some(1),
                lease_ms: Some(1000),
                kinds: vec!["k".into()],
                completions: vec![errand_api::SettleCompletion {
                    id: errand_core::JobId::new(),
                    lease_token: errand_core::LeaseToken::new(),
                    result: None,
                    report: None,
                    session_state: None,
                }],
                failures: vec![errand_api::SettleFailure {
                    id: errand_core::JobId::new(),
                    lease_token: errand_core::LeaseToken::new(),
                    error: None,
                    retry_in_ms: None,
                    dead: false,
                    report: None,
                }],
            })
            .expect("json"),
        ),
        (
            "POST",
            "/v1/jobs/{id}/release",
            serde_json::to_value(errand_api::ReleaseRequest {
                lease_token: errand_core::LeaseToken::new(),
            })
            .expect("json"),
        ),
    ];
    let schemas = &doc["components"]["schemas"];
    for (method, path, body) in bodies {
        // The body's schema, by reference (an optional body wraps it in a `oneOf`).
        let mut found = vec![];
        refs(
            &doc["paths"][path][method.to_lowercase()]["requestBody"],
            &mut found,
        );
        let schema_ref = found
            .first()
            .unwrap_or_else(|| panic!("{method} {path} documents its body by reference"));
        let name = schema_ref.trim_start_matches("#/components/schemas/");
        // Properties of the schema itself and of its `allOf` parts (field relations are
        // documented as an `allOf` around the plain object).
        let mut properties = BTreeSet::new();
        let parts = std::iter::once(&schemas[name])
            .chain(schemas[name]["allOf"].as_array().into_iter().flatten());
        for part in parts {
            for key in part["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                properties.insert(key.clone());
            }
        }
        assert!(!properties.is_empty(), "schema {name} lists properties");
        for key in body.as_object().expect("object").keys() {
            assert!(
                properties.contains(key),
                "{method} {path}: the library sends `{key}`, which schema {name} does not list"
            );
        }
    }
}
