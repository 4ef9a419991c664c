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
        "priority: invalid type: string \"high\", expected an integer",
    ),
    (
        "GET",
        "/v1/jobs?limit=abc",
        "",
        400,
        "invalid_request",
        "query: limit: not a whole number",
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
    // An array is never read as an object by field position, at the top or nested.
    (
        "POST",
        "/v1/jobs",
        r#"["k","q",{"x":1},5]"#,
        400,
        "invalid_request",
        "invalid type: array, expected a JSON object",
    ),
    (
        "POST",
        "/v1/jobs/batch",
        r#"{"jobs":[{"kind":"a"},{"kind":"b"},{"kind":"c"},["k","q"]]}"#,
        400,
        "invalid_request",
        "jobs[3]: invalid type: array, expected a JSON object",
    ),
    (
        "POST",
        "/v1/queues/default/claim",
        r#"["w",1]"#,
        400,
        "invalid_request",
        "invalid type: array, expected a JSON object",
    ),
    (
        "POST",
        "/v1/schedules",
        r#"{"name":"s","every":"1m","job":["k"]}"#,
        400,
        "invalid_request",
        "job: invalid type: array, expected a JSON object",
    ),
    // Whole floats are integers; fractions are not.
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","priority":0.5}"#,
        400,
        "invalid_request",
        "priority",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","delay":0.5}"#,
        400,
        "invalid_request",
        "delay",
    ),
    // Names: characters, not bytes; nothing invisible or reordering.
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"payment\u202egnp.exe"}"#,
        400,
        "invalid_request",
        "kind: must not contain U+202E",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"send\u200bmail"}"#,
        400,
        "invalid_request",
        "U+200B",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","tags":["ok","a\u2066b"]}"#,
        400,
        "invalid_request",
        "tags[1]: must not contain U+2066",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","idempotency_key":"\ufeffkey"}"#,
        400,
        "invalid_request",
        "idempotency_key: must not contain U+FEFF",
    ),
    (
        "POST",
        "/v1/queues/default/claim",
        r#"{"worker":"w\u2067"}"#,
        400,
        "invalid_request",
        "worker: must not contain U+2067",
    ),
    // Times past the year 9999 are refused, not clamped.
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","delay":"99999999h"}"#,
        400,
        "invalid_request",
        "past the year 9999",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","delay":252460800000000}"#,
        400,
        "invalid_request",
        "past the year 9999",
    ),
    (
        "POST",
        "/v1/jobs",
        r#"{"kind":"k","timeout":9223372036854775807}"#,
        400,
        "invalid_request",
        "timeout: ",
    ),
    (
        "POST",
        "/v1/schedules",
        r#"{"name":"t","every":"1h","job":{"kind":"k","timeout":"99999999h"}}"#,
        400,
        "invalid_request",
        "job.timeout: ",
    ),
    (
        "POST",
        "/v1/jobs/01936f3c-0000-7000-8000-000000000000/fail",
        r#"{"lease_token":"01936f3c-0000-7000-8000-000000000000","retry_in_ms":252460800000000}"#,
        400,
        "invalid_request",
        "retry_in_ms: ",
    ),
    (
        "POST",
        "/v1/jobs/settle",
        r#"{"failures":[{"id":"01936f3c-0000-7000-8000-000000000000","lease_token":"01936f3c-0000-7000-8000-000000000000","retry_in_ms":18446744073709551615}]}"#,
        400,
        "invalid_request",
        "failures[0].retry_in_ms",
    ),
    // Schedules that cannot run as meant.
    (
        "POST",
        "/v1/schedules",
        r#"{"name":"feb30","cron":"0 0 30 2 *","job":{"kind":"k"}}"#,
        400,
        "invalid_request",
        "never fires",
    ),
    (
        "POST",
        "/v1/schedules",
        r#"{"name":"j","cron":"0 3 * * *","job":{"kind":"k"},"jitter":"99999999h"}"#,
        400,
        "invalid_request",
        "jitter",
    ),
    (
        "POST",
        "/v1/schedules",
        r#"{"name":"j","every":"1m","job":{"kind":"k"},"jitter":"2m"}"#,
        400,
        "invalid_request",
        "longer than the interval",
    ),
    (
        "PUT",
        "/v1/schedules/feb30",
        r#"{"name":"feb30","cron":"0 0 31 4 *","job":{"kind":"k"}}"#,
        400,
        "invalid_request",
        "never fires",
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
    let (_, schedules) = raw.get("/v1/schedules").await;
    assert_eq!(
        schedules["schedules"],
        serde_json::json!([]),
        "no schedule stored"
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
    let (s, _dir) = common::server_with(&[
        "--max-payload-bytes",
        "1000",
        "--max-request-bytes",
        "65536",
    ])
    .await;
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

/// A dead job, as the issue's attacker would find it.
async fn dead_job(client: &errand_client::Client) -> errand_core::JobId {
    let job = client
        .enqueue(&errand_api::EnqueueRequest {
            max_attempts: Some(1),
            ..errand_api::EnqueueRequest::new("doomed")
        })
        .await
        .expect("enqueue");
    let claimed = client
        .claim("default", &errand_api::ClaimRequest::default())
        .await
        .expect("claim");
    let lease_token = claimed.jobs[0].lease_token;
    let failed = client
        .fail(
            job.id,
            &errand_api::FailRequest {
                lease_token,
                error: None,
                retry_in_ms: None,
                dead: true,
                report: None,
            },
        )
        .await
        .expect("fail");
    assert_eq!(failed.state, errand_core::JobState::Dead);
    job.id
}

/// Request headers as a test writes them.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// Sends `body` to `path` with `headers` as given, and returns the status and the JSON.
async fn send_with(
    raw: &Raw,
    path: &str,
    headers: Headers<'_>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut req = raw.http.post(format!("{}{path}", raw.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body.to_string()).send().await.expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, json)
}

#[tokio::test]
async fn the_issues_cross_site_purge_is_refused_and_purges_nothing() {
    let s = server().await;
    let client = s.client().expect("client");
    let raw = Raw::new(&s);
    let dead = dead_job(&client).await;
    let authority = raw.base.trim_start_matches("http://").to_string();
    let rebound = format!(
        "attacker.example:{}",
        authority.rsplit(':').next().expect("port")
    );
    let attempts: &[(Headers, u16, &str)] = &[
        // The issue's curl: a foreign page posting text/plain.
        (
            &[
                ("origin", "https://attacker.example"),
                ("content-type", "text/plain"),
            ],
            403,
            "cross_origin",
        ),
        // Even as JSON, a foreign origin is refused.
        (
            &[
                ("origin", "https://attacker.example"),
                ("content-type", "application/json"),
            ],
            403,
            "cross_origin",
        ),
        // A cross-site fetch that sends no Origin.
        (
            &[
                ("sec-fetch-site", "cross-site"),
                ("content-type", "application/json"),
            ],
            403,
            "cross_origin",
        ),
        // No origin, but not JSON.
        (
            &[("content-type", "text/plain")],
            415,
            "unsupported_media_type",
        ),
        (&[], 415, "unsupported_media_type"),
        // DNS rebinding: the page's own name, resolved to 127.0.0.1.
        (
            &[
                ("host", rebound.as_str()),
                ("origin", &format!("http://{rebound}")),
                ("content-type", "application/json"),
            ],
            421,
            "misdirected_request",
        ),
    ];
    for (headers, want, code) in attempts {
        let (status, json) = send_with(&raw, "/v1/dead/purge", headers, r#"{"all":true}"#).await;
        assert_eq!(
            (status, json["error"]["code"].as_str()),
            (*want, Some(*code)),
            "{headers:?}: {json}"
        );
    }
    let still = client.job(dead, None).await.expect("the dead job");
    assert_eq!(
        still.state,
        errand_core::JobState::Dead,
        "nothing was purged"
    );

    // errand's own pages and plain clients still purge.
    let own = format!("http://{authority}");
    let (status, json) = send_with(
        &raw,
        "/v1/dead/purge",
        &[
            ("origin", own.as_str()),
            ("content-type", "application/json; charset=utf-8"),
        ],
        r#"{"all":true}"#,
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert!(
        client.job(dead, None).await.is_err(),
        "purged by errand's own origin"
    );
}

#[tokio::test]
async fn listed_origins_and_hosts_are_let_in_and_bodiless_posts_need_no_type() {
    // Origins from errand.toml, hosts from a flag (comma-separated).
    let config_dir = tempfile::tempdir().expect("temp dir");
    let config = config_dir.path().join("errand.toml");
    std::fs::write(
        &config,
        "allowed_origins = [\"https://ops.example.com\", \"https://other.example.com\"]\n",
    )
    .expect("write config");
    let (s, _dir) = common::server_with(&[
        "--config",
        config.to_str().expect("utf-8 path"),
        "--allowed-hosts",
        "errand.internal,errand.example",
    ])
    .await;
    let raw = Raw::new(&s);
    let port = raw.base.rsplit(':').next().expect("port").to_string();
    let json = ("content-type", "application/json");
    let (status, body) = send_with(
        &raw,
        "/v1/jobs",
        &[("origin", "https://other.example.com"), json],
        r#"{"kind":"from-dashboard"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let internal = format!("errand.internal:{port}");
    let (status, body) = send_with(
        &raw,
        "/v1/jobs",
        &[("host", &internal), json],
        r#"{"kind":"k"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send_with(
        &raw,
        "/v1/jobs",
        &[("host", &format!("errand.other:{port}")), json],
        r#"{"kind":"k"}"#,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (421, Some("misdirected_request")),
        "{body}"
    );
    // A claim with no body at all needs no content type.
    let (status, body) = send_with(&raw, "/v1/queues/default/claim", &[], "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobs"].as_array().map(Vec::len), Some(1), "{body}");
}

#[tokio::test]
async fn two_idempotency_key_headers_are_refused_and_store_nothing() {
    let s = server().await;
    let raw = Raw::new(&s);
    let (status, json) = send_with(
        &raw,
        "/v1/jobs",
        &[
            ("content-type", "application/json"),
            ("idempotency-key", "first"),
            ("idempotency-key", "second"),
        ],
        r#"{"kind":"charge"}"#,
    )
    .await;
    assert_eq!(status, 400, "{json}");
    let message = json["error"]["message"].as_str().expect("message");
    assert!(message.contains("Idempotency-Key"), "{message}");
    let (_, page) = raw.get("/v1/jobs").await;
    assert_eq!(page["jobs"], serde_json::json!([]), "nothing stored");
}

#[tokio::test]
async fn lengths_count_characters_and_whole_floats_are_integers() {
    let s = server().await;
    let raw = Raw::new(&s);
    let kind = "é".repeat(255);
    let (status, job) = raw
        .post(
            "/v1/jobs",
            &serde_json::json!({"kind": kind, "tags": ["日".repeat(255)], "priority": 5.0, "max_attempts": 3.0, "delay": 0.0})
                .to_string(),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["kind"], kind.as_str());
    assert_eq!(job["priority"], 5);
    assert_eq!(job["max_attempts"], 3);
    let (status, json) = raw
        .post(
            "/v1/jobs",
            &serde_json::json!({"kind": "é".repeat(256)}).to_string(),
        )
        .await;
    assert_eq!(status, 400, "{json}");
    assert!(json["error"]["message"]
        .as_str()
        .expect("message")
        .contains("1 to 255 characters"));

    let (status, claimed) = raw
        .post(
            "/v1/queues/default/claim",
            r#"{"max":1.0,"lease_ms":60000.0}"#,
        )
        .await;
    assert_eq!(status, 200, "{claimed}");
    let id = claimed["jobs"][0]["id"].as_str().expect("id").to_string();
    let token = claimed["jobs"][0]["lease_token"]
        .as_str()
        .expect("token")
        .to_string();
    let (status, failed) = raw
        .post(
            &format!("/v1/jobs/{id}/fail"),
            &serde_json::json!({"lease_token": token, "retry_in_ms": 0.0}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["state"], "available", "retry_in_ms 0.0 is 0");
}

#[tokio::test]
async fn a_schedule_in_errand_toml_that_never_fires_stops_the_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("errand.toml");
    std::fs::write(
        &config,
        "[[schedules]]\nname = \"feb30\"\ncron = \"0 0 30 2 *\"\n[schedules.job]\nkind = \"k\"\n",
    )
    .expect("write config");
    let config = config.to_str().expect("utf-8 path");
    let stderr = serve_refuses(&["--config", config], dir.path()).await;
    assert!(
        stderr.contains("feb30") && stderr.contains("never fires"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_null_claim_body_is_an_absent_one() {
    // The document states the claim body as optional; a client (or a fuzzer) that sends
    // `null` for "no body" gets the defaults, not a 400.
    let s = server().await;
    let raw = Raw::new(&s);
    let (status, body) = raw.post("/v1/jobs", r#"{"kind":"k"}"#).await;
    assert_eq!(status, 201, "{body}");
    let json = ("content-type", "application/json");
    let (status, body) = send_with(&raw, "/v1/queues/default/claim", &[json], "null").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobs"].as_array().map(Vec::len), Some(1), "{body}");
    // A run report's figure no store can keep (beyond a signed 64-bit integer) refuses the
    // call, in a claim's settlements as in a settle.
    let too_big = r#"{"failures": [{"id": "e3e70682-c209-1cac-a29f-6fbed82c07cd",
        "lease_token": "e3e70682-c209-1cac-a29f-6fbed82c07cd",
        "report": {"duration_ms": 0, "cpu_ms": 0, "max_rss_bytes": 9223372036854775808}}]}"#;
    for path in ["/v1/queues/default/claim", "/v1/jobs/settle"] {
        let (status, body) = send_with(&raw, path, &[json], too_big).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.to_string().contains("max_rss_bytes"), "{path}: {body}");
    }
    // A body of whitespace is not JSON: refused, not taken for an absent body.
    let (status, body) = send_with(&raw, "/v1/queues/default/claim", &[json], "\r\n").await;
    assert_eq!(status, 400, "{body}");
}

/// An optional JSON field whose schema allows `null` is stated once as such: the document
/// does not wrap it in a `oneOf` with `null` (which `null` would then match twice, so a
/// validator would refuse a `null` the server takes).
#[tokio::test]
async fn a_nullable_json_field_is_stated_without_a_second_null() {
    let s = server().await;
    let raw = Raw::new(&s);
    let (status, doc) = raw.get("/v1/openapi.json").await;
    assert_eq!(status, 200);
    for (schema, field) in [
        ("ScheduledWorkflow", "input"),
        ("SettleCompletion", "result"),
        ("SettleCompletion", "session_state"),
    ] {
        let stated = &doc["components"]["schemas"][schema]["properties"][field];
        assert!(
            stated.to_string().contains("StorableJson"),
            "{schema}.{field}: {stated}"
        );
        assert!(stated.get("oneOf").is_none(), "{schema}.{field}: {stated}");
    }
}

#[tokio::test]
async fn limits_that_leave_nothing_to_serve_stop_the_start() {
    for (flag, value, named) in [
        ("--max-connections", "0", "max_connections"),
        ("--max-request-bytes", "0", "max_request_bytes"),
        ("--max-waiting", "0", "max_waiting"),
        ("--idle-timeout", "2", "idle_timeout"),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr = serve_refuses(&[flag, value], dir.path()).await;
        assert!(stderr.contains(named), "{flag} {value}: {stderr}");
    }
}

/// Runs `errand serve` with `args` on a data directory under `dir`, expects it to stop at
/// once with a failure, and returns what it printed on stderr.
async fn serve_refuses(args: &[&str], dir: &std::path::Path) -> String {
    let run = tokio::process::Command::new(common::bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .unwrap_or_else(|_| panic!("errand serve {args:?} should stop at once"))
        .expect("run errand serve");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "errand serve {args:?} started: {stderr}"
    );
    stderr
}
