//! Every bad request gets a 4xx JSON error naming what is wrong, and changes nothing.

mod common;

use common::{server, Raw};

/// (method, path, body, expected status, expected code, a word the message must contain)
const CASES: &[(&str, &str, &str, u16, &str, &str)] = &[
    ("POST", "/v1/jobs", "{", 400, "invalid_json", "malformed"),
    (
        "POST",
        "/v1/jobs",
        "[1,2]",
        400,
        "invalid_request",
        "invalid type",
    ),
    ("POST", "/v1/jobs", "", 400, "invalid_json", "EOF"),
    (
        "POST",
        "/v1/jobs",
        r#"{"queue":"q"}"#,
        400,
        "invalid_request",
        "kind",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":42}"#,
        400,
        "invalid_request",
        "invalid type",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","surprise":1}"#,
        400,
        "invalid_request",
        "surprise",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":""}"#,
        400,
        "invalid_request",
        "kind",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"has space"}"#,
        400,
        "invalid_request",
        "kind",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","queue":"a/b"}"#,
        400,
        "invalid_request",
        "queue",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k\u0000"}"#,
        400,
        "invalid_request",
        "kind",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","payload":{"a":"\u0000"}}"#,
        400,
        "invalid_request",
        "NUL",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","priority":5000}"#,
        400,
        "invalid_request",
        "priority",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","priority":"high"}"#,
        400,
        "invalid_request",
        "invalid type",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","delay":"soon"}"#,
        400,
        "invalid_request",
        "soon",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","delay":-5}"#,
        400,
        "invalid_request",
        "delay",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","delay":"1s","run_at":"2030-01-01T00:00:00Z"}"#,
        400,
        "invalid_request",
        "not both",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","run_at":"tomorrow"}"#,
        400,
        "invalid_request",
        "run_at",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","max_attempts":0}"#,
        400,
        "invalid_request",
        "max_attempts",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","timeout":0}"#,
        400,
        "invalid_request",
        "timeout",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","tags":[""]}"#,
        400,
        "invalid_request",
        "tags[0]",
    ),
    (
        "POST",
        "/v1/jobs/batch",
        r#"{"jobs":[]}"#,
        400,
        "invalid_request",
        "batch",
    ),
    (
        "POST",
        "/v1/jobs/batch",
        r#"{"jobs":[{"kind":"ok"},{"kind":""}]}"#,
        400,
        "invalid_request",
        "jobs[1].kind",
    ),
    (
        "GET",
        "/v1/jobs/not-a-uuid",
        "",
        400,
        "invalid_request",
        "not a job id",
    ),
    (
        "GET",
        "/v1/jobs/01936f3c-0000-7000-8000-000000000000",
        "",
        404,
        "not_found",
        "job",
    ),
    (
        "GET",
        "/v1/jobs/01936f3c-0000-7000-8000-000000000000?wait=forever",
        "",
        400,
        "invalid_request",
        "wait",
    ),
    (
        "GET",
        "/v1/jobs/01936f3c-0000-7000-8000-000000000000?wait=5m",
        "",
        400,
        "invalid_request",
        "wait",
    ),
    (
        "GET",
        "/v1/jobs?state=sleeping",
        "",
        400,
        "invalid_request",
        "sleeping",
    ),
    (
        "GET",
        "/v1/jobs?limit=0",
        "",
        400,
        "invalid_request",
        "limit",
    ),
    (
        "GET",
        "/v1/jobs?limit=abc",
        "",
        400,
        "invalid_request",
        "limit",
    ),
    (
        "GET",
        "/v1/jobs?cursor=zzz",
        "",
        400,
        "invalid_request",
        "zzz",
    ),
    (
        "GET",
        "/v1/jobs?bogus=1",
        "",
        400,
        "invalid_request",
        "bogus",
    ),
    (
        "POST",
        "/v1/jobs/01936f3c-0000-7000-8000-000000000000/cancel",
        "",
        404,
        "not_found",
        "job",
    ),
    (
        "POST",
        "/v1/jobs/01936f3c-0000-7000-8000-000000000000/complete",
        r#"{"lease_token":"nope"}"#,
        400,
        "invalid_request",
        "lease_token",
    ),
    (
        "POST",
        "/v1/jobs/01936f3c-0000-7000-8000-000000000000/complete",
        r#"{"lease_token":"01936f3c-0000-7000-8000-000000000000"}"#,
        404,
        "not_found",
        "job",
    ),
    (
        "POST",
        "/v1/jobs/01936f3c-0000-7000-8000-000000000000/heartbeat",
        r#"{"lease_token":"01936f3c-0000-7000-8000-000000000000","progress":{"percent":150}}"#,
        400,
        "invalid_request",
        "percent",
    ),
    (
        "POST",
        "/v1/jobs/01936f3c-0000-7000-8000-000000000000/fail",
        r#"{"lease_token":"01936f3c-0000-7000-8000-000000000000","error":"a\u0000b"}"#,
        400,
        "invalid_request",
        "error",
    ),
    (
        "POST",
        "/v1/jobs/01936f3c-0000-7000-8000-000000000000/complete",
        r#"{"lease_token":"01936f3c-0000-7000-8000-000000000000","result":{"x":"a\u0000b"}}"#,
        400,
        "invalid_request",
        "result",
    ),
    (
        "POST",
        "/v1/jobs/01936f3c-0000-7000-8000-000000000000/heartbeat",
        r#"{"lease_token":"01936f3c-0000-7000-8000-000000000000","checkpoint":{"x":"\u0000"}}"#,
        400,
        "invalid_request",
        "checkpoint",
    ),
    (
        "POST",
        "/v1/jobs/settle",
        r#"{"failures":[{"id":"01936f3c-0000-7000-8000-000000000000","lease_token":"01936f3c-0000-7000-8000-000000000000","error":"\u0000"}]}"#,
        400,
        "invalid_request",
        "failures[0].error",
    ),
    (
        "POST",
        "/v1/queues/default/claim",
        r#"{"max":0}"#,
        400,
        "invalid_request",
        "max",
    ),
    (
        "POST",
        "/v1/queues/default/claim",
        r#"{"max":5000}"#,
        400,
        "invalid_request",
        "max",
    ),
    (
        "POST",
        "/v1/queues/default/claim",
        r#"{"lease_ms":1}"#,
        400,
        "invalid_request",
        "lease_ms",
    ),
    (
        "POST",
        "/v1/queues/default/claim",
        r#"{"wait_ms":999999}"#,
        400,
        "invalid_request",
        "wait_ms",
    ),
    (
        "POST",
        "/v1/queues/default/claim",
        r#"{"worker":""}"#,
        400,
        "invalid_request",
        "worker",
    ),
    (
        "POST",
        "/v1/queues/bad%20name/claim",
        "",
        400,
        "invalid_request",
        "queue",
    ),
    (
        "POST",
        "/v1/jobs/settle",
        r#"{}"#,
        400,
        "invalid_request",
        "settle",
    ),
    ("GET", "/v1/queues/nope", "", 404, "not_found", "queue"),
    (
        "POST",
        "/v1/queues/nope/pause",
        "",
        404,
        "not_found",
        "queue",
    ),
    (
        "POST",
        "/v1/dead/purge",
        r#"{}"#,
        400,
        "invalid_request",
        "all",
    ),
    (
        "POST",
        "/v1/dead/purge",
        r#"{"all": true, "queue": "mail"}"#,
        400,
        "invalid_request",
        "cannot be combined",
    ),
    (
        "POST",
        "/v1/schedules",
        r#"{"name": "w", "every": "1s", "job": {"kind": "k"}, "catch_up": "all", "catch_up_window": "8d"}"#,
        400,
        "invalid_request",
        "catch_up_window",
    ),
    (
        "GET",
        "/v1/dead?state=running",
        "",
        400,
        "invalid_request",
        "dead",
    ),
    ("GET", "/v1/no/such/thing", "", 404, "not_found", "endpoint"),
    (
        "DELETE",
        "/v1/jobs",
        "",
        405,
        "method_not_allowed",
        "DELETE",
    ),
];

#[tokio::test]
async fn every_bad_request_gets_a_clear_json_error_and_changes_nothing() {
    let s = server().await;
    let raw = Raw::new(&s);
    let (status, _) = raw
        .post("/v1/jobs", r#"{"kind":"keep","queue":"default"}"#)
        .await;
    assert_eq!(status, 201);
    for (method, path, body, want_status, want_code, word) in CASES {
        let body = (!body.is_empty()).then(|| body.as_bytes().to_vec());
        let (status, json) = raw.send(method, path, body).await;
        let code = json["error"]["code"].as_str().unwrap_or("<none>");
        let message = json["error"]["message"].as_str().unwrap_or("");
        assert_eq!(
            (status, code),
            (*want_status, *want_code),
            "{method} {path}: {json}"
        );
        assert!(
            message.contains(word),
            "{method} {path}: message {message:?} should mention {word:?}"
        );
    }
    let (_, page) = raw.get("/v1/jobs").await;
    let jobs = page["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 1, "bad requests stored nothing");
    assert_eq!(
        jobs[0]["state"], "available",
        "bad requests changed nothing"
    );
}

#[tokio::test]
async fn invalid_utf8_is_refused() {
    let s = server().await;
    let raw = Raw::new(&s);
    let (status, json) = raw
        .send("POST", "/v1/jobs", Some(b"{\"kind\":\"a\xff\"}".to_vec()))
        .await;
    assert_eq!(status, 400);
    assert_eq!(json["error"]["code"], "invalid_json");
}

#[tokio::test]
async fn oversized_bodies_and_payloads_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = errand_testkit::ServerProcess::start_in(
        &common::bin(),
        dir.path(),
        &[
            "--max-payload-bytes",
            "1000",
            "--max-request-bytes",
            "65536",
        ],
    )
    .await
    .expect("start");
    let raw = Raw::new(&s);
    let big = "x".repeat(2000);
    let (status, json) = raw
        .post("/v1/jobs", &format!(r#"{{"kind":"k","payload":"{big}"}}"#))
        .await;
    assert_eq!(status, 400, "{json}");
    assert!(json["error"]["message"]
        .as_str()
        .expect("msg")
        .contains("limit"));
    let huge = "y".repeat(70_000);
    let (status, json) = raw
        .post("/v1/jobs", &format!(r#"{{"kind":"k","payload":"{huge}"}}"#))
        .await;
    assert_eq!(status, 413, "{json}");
    assert_eq!(json["error"]["code"], "payload_too_large");
    let (_, page) = raw.get("/v1/jobs").await;
    assert_eq!(page["jobs"].as_array().expect("jobs").len(), 0);
}
