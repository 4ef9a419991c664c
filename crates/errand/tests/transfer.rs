//! `errand export` / `errand import` move a whole store from SQLite to PostgreSQL and back.

mod common;

use std::path::Path;
use std::process::Output;

use errand_api::{ClaimRequest, CompleteRequest, EnqueueRequest, FailRequest, JobListQuery};
use errand_client::Client;
use errand_core::{Job, JobState};
use errand_testkit::{PgSchema, ServerProcess};

use common::bin;
use serde_json::json;

async fn errand(args: &[&str]) -> Output {
    let out = tokio::process::Command::new(bin())
        .args(args)
        .output()
        .await
        .expect("run errand");
    assert!(
        out.status.success(),
        "errand {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `errand args`, which may fail: its exit code, and what it said on stderr.
async fn errand_may_fail(args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(bin())
        .args(args)
        .output()
        .await
        .expect("run errand");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The exit code of an import that read its whole file but did not bring all of it.
const INCOMPLETE: Option<i32> = Some(7);

/// `errand export` or `errand import` (`verb`) between the SQLite store in `data_dir`
/// and `file`; what it said on stderr.
async fn sqlite_transfer(verb: &str, data_dir: &Path, file: &Path) -> String {
    errand_said(&[
        verb,
        "--data-dir",
        data_dir.to_str().expect("a UTF-8 path"),
        "--file",
        file.to_str().expect("a UTF-8 path"),
    ])
    .await
}

/// `errand args`, which must succeed; what it said on stderr.
async fn errand_said(args: &[&str]) -> String {
    String::from_utf8_lossy(&errand(args).await.stderr).into_owned()
}

/// Claims the next job of `queue` and completes it with `result`; the job's id.
async fn run_next(
    client: &Client,
    queue: &str,
    result: Option<serde_json::Value>,
) -> errand_core::JobId {
    let claimed = client
        .claim(queue, &ClaimRequest::default())
        .await
        .expect("claim")
        .jobs
        .remove(0);
    client
        .complete(
            claimed.id,
            &CompleteRequest {
                lease_token: claimed.lease_token,
                result,
                report: None,
                session_state: None,
            },
        )
        .await
        .expect("complete");
    claimed.id
}

async fn all_jobs(client: &Client) -> Vec<Job> {
    let mut page = client
        .jobs(&JobListQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("list")
        .jobs;
    page.sort_by_key(|j| j.id);
    page
}

/// Jobs in every interesting state, and a paused queue.
async fn fill(client: &Client) {
    for kind in ["done", "dead", "waiting", "running"] {
        client
            .enqueue(&EnqueueRequest {
                queue: Some(kind.into()),
                payload: Some(serde_json::json!({"kind": kind})),
                ..EnqueueRequest::new(kind)
            })
            .await
            .expect("enqueue");
    }
    let claim = |q: &'static str| {
        let client = client.clone();
        async move {
            client
                .claim(q, &ClaimRequest::default())
                .await
                .expect("claim")
                .jobs
                .remove(0)
        }
    };
    run_next(client, "done", Some(serde_json::json!(42))).await;
    let f = claim("dead").await;
    client
        .fail(
            f.id,
            &FailRequest {
                lease_token: f.lease_token,
                error: Some("boom".into()),
                retry_in_ms: None,
                dead: true,
                report: None,
            },
        )
        .await
        .expect("fail");
    claim("running").await;
    client.set_paused("waiting", true).await.expect("pause");
    let http = common::http_client();
    let settings = r#"{"concurrency": 3, "rate": {"limit": 100, "period": "1s"}, "max_attempts": 7, "timeout": "5m"}"#;
    let resp = http
        .patch(format!("{}/v1/queues/waiting", client.base_url()))
        .header("content-type", "application/json")
        .body(settings)
        .send()
        .await
        .expect("queue settings");
    assert_eq!(resp.status().as_u16(), 200);
    for (path, body) in [
        ("kind/report", r#"{"concurrency": 1}"#),
        (
            "key/partner-api",
            r#"{"rate": {"limit": 10, "period": "1m"}}"#,
        ),
    ] {
        let resp = http
            .put(format!("{}/v1/limits/{path}", client.base_url()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("limit");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    let resp = common::http_client()
        .post(format!("{}/v1/schedules", client.base_url()))
        .header("content-type", "application/json")
        .body(r#"{"name":"nightly","cron":"0 3 * * *","timezone":"Asia/Tokyo","job":{"kind":"report"}}"#)
        .send()
        .await
        .expect("schedule");
    assert_eq!(resp.status().as_u16(), 201);
}

fn same_except_running(a: &[Job], b: &[Job]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        if x.state == JobState::Running {
            assert_eq!(
                y.state,
                JobState::Available,
                "a running job arrives ready to run"
            );
            assert_eq!((x.id, x.attempt), (y.id, y.attempt));
        } else {
            assert_eq!(x, y);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_and_back() {
    let Some(schema) = PgSchema::create("sqlite_to_postgres_and_back").await else {
        return;
    };
    let work = tempfile::tempdir().expect("temp dir");
    let sqlite_dir = work.path().join("sqlite");
    let mut source = ServerProcess::start_in(&bin(), &sqlite_dir, &[])
        .await
        .expect("start");
    let client = source.client().expect("client");
    fill(&client).await;
    let original = all_jobs(&client).await;
    assert!(source.terminate().await);

    let export = work.path().join("export.jsonl");
    sqlite_transfer("export", &sqlite_dir, &export).await;
    let file = export.to_str().expect("path");
    let pg = [
        "--store",
        schema.url.as_str(),
        "--pg-schema",
        schema.name.as_str(),
    ];
    let imported = errand(&[&["import", "--file", file], &pg[..]].concat()).await;
    assert!(String::from_utf8_lossy(&imported.stderr)
        .contains(": 4 of 4 jobs (0 were already there), 4 queues, 1 schedule,"));
    let again = errand(&[&["import", "--file", file], &pg[..]].concat()).await;
    assert!(
        String::from_utf8_lossy(&again.stderr).contains(": 0 of 4 jobs (4 were already there)"),
        "import is repeatable"
    );

    let pg_node = ServerProcess::start_in(&bin(), &work.path().join("unused"), &pg)
        .await
        .expect("start");
    let pg_client = pg_node.client().expect("client");
    let on_pg = all_jobs(&pg_client).await;
    same_except_running(&original, &on_pg);
    let waiting = pg_client.queue("waiting").await.expect("queue");
    assert!(waiting.paused, "queue pauses travel");
    assert_eq!(
        serde_json::to_value(&waiting.settings).expect("JSON"),
        serde_json::json!({"concurrency": 3, "rate": {"limit": 100, "period": "1s"}, "defaults": {"max_attempts": 7, "timeout": "5m"}}),
        "queue settings travel"
    );
    let limits: serde_json::Value = common::http_client()
        .get(format!("{}/v1/limits", pg_client.base_url()))
        .send()
        .await
        .expect("limits")
        .json()
        .await
        .expect("JSON");
    let names: Vec<_> = limits["limits"]
        .as_array()
        .expect("limits")
        .iter()
        .map(|l| {
            (
                l["scope"].clone(),
                l["name"].clone(),
                l["concurrency"].clone(),
                l["rate"].clone(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            (
                json!("key"),
                json!("partner-api"),
                json!(null),
                json!({"limit": 10, "period": "1m"})
            ),
            (json!("kind"), json!("report"), json!(1), json!(null)),
        ],
        "limits travel: {limits}"
    );
    let schedule = pg_client
        .schedule("nightly")
        .await
        .expect("schedules travel");
    assert_eq!(schedule.spec.timezone, "Asia/Tokyo");
    drop(pg_node);

    let back = work.path().join("back.jsonl");
    let back_s = back.to_str().expect("path");
    errand(&[&["export", "--file", back_s], &pg[..]].concat()).await;
    let round_dir = work.path().join("round-trip");
    sqlite_transfer("import", &round_dir, &back).await;
    let round = ServerProcess::start_in(&bin(), Path::new(&round_dir), &[])
        .await
        .expect("start");
    let round_jobs = all_jobs(&round.client().expect("client")).await;
    same_except_running(&original, &round_jobs);
}

async fn backfill(base: &str, range: &serde_json::Value) -> serde_json::Value {
    let resp = common::http_client()
        .post(format!("{base}/v1/schedules/hourly/backfill"))
        .header("content-type", "application/json")
        .body(range.to_string())
        .send()
        .await
        .expect("backfill");
    assert_eq!(resp.status().as_u16(), 201);
    resp.json().await.expect("json")
}

/// The slot ledger travels with the jobs: a backfill after an import does not run the
/// slots that ran before the move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_records_travel_so_a_backfill_after_import_repeats_nothing() {
    let work = tempfile::tempdir().expect("temp dir");
    let (from_dir, to_dir) = (work.path().join("from"), work.path().join("to"));
    let mut source = ServerProcess::start_in(&bin(), &from_dir, &[])
        .await
        .expect("start");
    let base = source.url().to_string();
    let resp = common::http_client()
        .post(format!("{base}/v1/schedules"))
        .header("content-type", "application/json")
        .body(r#"{"name":"hourly","cron":"0 * * * *","job":{"kind":"k","queue":"hourly"}}"#)
        .send()
        .await
        .expect("schedule");
    assert_eq!(resp.status().as_u16(), 201);
    let now = jiff::Timestamp::now().as_second();
    let hour = |ago: i64| {
        jiff::Timestamp::from_second(now - now.rem_euclid(3600) - ago * 3600).expect("time")
    };
    let range = serde_json::json!({"from": hour(30), "to": hour(24)});
    assert_eq!(backfill(&base, &range).await["inserted"], 6);
    assert!(source.terminate().await);

    let file = work.path().join("export.jsonl");
    sqlite_transfer("export", &from_dir, &file).await;
    let said = sqlite_transfer("import", &to_dir, &file).await;
    let target = ServerProcess::start_in(&bin(), &to_dir, &[])
        .await
        .expect("start");
    let again = backfill(target.url(), &range).await;
    assert_eq!(
        again["inserted"], 0,
        "those slots ran before the move: {again}"
    );
    assert!(said.contains("6 schedule slot records"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_continuation_is_exported_with_a_warning_and_explains_itself_after_import() {
    use errand_core::explain::ReasonCode;
    let work = tempfile::tempdir().expect("temp dir");
    let source_dir = work.path().join("source");
    let mut source = ServerProcess::start_in(&bin(), &source_dir, &[])
        .await
        .expect("start");
    let client = source.client().expect("client");
    let parent = client
        .enqueue(&EnqueueRequest::new("parent"))
        .await
        .expect("enqueue the parent");
    let child = client
        .enqueue(&EnqueueRequest {
            after: vec![parent.id],
            ..EnqueueRequest::new("child")
        })
        .await
        .expect("enqueue the continuation");
    assert_eq!(child.state, JobState::Blocked);
    // Here it waits for its parent, and says so first.
    let why = client.explain(child.id).await.expect("explain");
    assert_eq!(why.reasons[0].code, ReasonCode::WaitingForJobs, "{why:?}");
    assert_eq!(why.reasons[0].jobs, vec![parent.id], "{why:?}");
    assert!(source.terminate().await);

    let file = work.path().join("export.jsonl");
    let said = sqlite_transfer("export", &source_dir, &file).await;
    assert!(
        said.contains("warning: 1 unfinished job is part of a workflow, a batch or a continuation")
            && said.contains("1 job is blocked and waits forever where it arrives"),
        "{said}"
    );
    let target_dir = work.path().join("target");
    sqlite_transfer("import", &target_dir, &file).await;
    let target = ServerProcess::start_in(&bin(), &target_dir, &[])
        .await
        .expect("start");
    // Without its flow nothing releases it, and explain says so rather than "no worker".
    let target_client = target.client().expect("client");
    let why = target_client.explain(child.id).await.expect("explain");
    assert_eq!(why.state, JobState::Blocked);
    assert_eq!(why.reasons[0].code, ReasonCode::FlowMissing, "{why:?}");
    // Moved on again, it is still counted: blocked with no flow left, it would wait there
    // as well.
    let again_file = work.path().join("again.jsonl");
    let said = sqlite_transfer("export", &target_dir, &again_file).await;
    assert!(
        said.contains("1 job is blocked and waits forever where it arrives")
            && !said.contains("unfinished job is part of"),
        "{said}"
    );
    // What it advises works: cancelled, then retried, it runs as a plain job.
    target_client.cancel(child.id).await.expect("cancel");
    let again = target_client.retry(child.id).await.expect("retry");
    assert_eq!(again.state, JobState::Available, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_of_job_definitions_stay_with_their_jobs_directory() {
    let jobs = common::jobs_dir::JobsDir::new();
    for name in ["nightly", "weekly"] {
        jobs.add(
            name,
            "schedule = \"0 3 * * *\"\n",
            "run.sh",
            "#!/bin/bash\necho night\n",
        );
    }
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path().join("source");
    let mut source = ServerProcess::start_in(&bin(), &dir, &["--jobs-dir", &jobs.path_str()])
        .await
        .expect("start");
    let client = source.client().expect("client");
    for name in ["nightly", "weekly"] {
        common::jobs_dir::loaded(&client, name).await;
        errand_testkit::eventually(
            "the definition's schedule",
            std::time::Duration::from_secs(20),
            || async { client.schedule(&format!("definition:{name}")).await.ok() },
        )
        .await;
    }
    // A paused one travels, so that its pause outlives the move.
    client
        .schedule_set_paused("definition:weekly", true)
        .await
        .expect("pause");
    assert!(source.terminate().await);
    let file = work.path().join("export.jsonl");
    let said = sqlite_transfer("export", &dir, &file).await;
    assert!(
        said.contains("left out 1 schedule of job definitions"),
        "{said}"
    );
    let text = std::fs::read_to_string(&file).expect("the export");
    assert!(!text.contains("definition:nightly"), "{text}");
    assert!(text.contains("definition:weekly"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_token_listing_on_a_schema_without_a_store_create_nothing() {
    let Some(schema) = PgSchema::create("export_on_a_schema_without_a_store").await else {
        return;
    };
    let store = [
        "--store",
        schema.url.as_str(),
        "--pg-schema",
        schema.name.as_str(),
    ];
    for (command, nothing) in [
        (&["export"][..], "nothing to export"),
        (&["tokens", "list"], "no token to list"),
    ] {
        let out = tokio::process::Command::new(bin())
            .args(command)
            .args(store)
            .output()
            .await
            .expect("run errand");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command:?}: {said}");
        assert!(
            said.contains(nothing) && said.contains("no errand store in schema"),
            "{command:?}: {said}"
        );
    }
    let admin = errand_testkit::pg_connect(&schema.url)
        .await
        .expect("connect");
    let row = admin
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
            &[&schema.name],
        )
        .await
        .expect("look for the schema");
    assert_eq!(row.get::<_, i64>(0), 0, "a schema was created");
}

/// `errand tokens <args>` against `store`; what it printed on stdout.
async fn tokens(args: &[&str], store: &[&str]) -> String {
    let out = errand(&[&["tokens"], args, store].concat()).await;
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `method path` on `base` with `token`; the status and the JSON body.
async fn call(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = common::http_client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// What a user made through the API besides jobs: its templates, subscriptions (with
/// their pause) and tokens, as `GET`s show them, with the times the target sets cut out.
async fn configuration(base: &str, token: &str) -> serde_json::Value {
    use reqwest::Method;
    let (_, templates) = call(base, token, Method::GET, "/v1/workflow-templates", None).await;
    let (_, mut subs) = call(base, token, Method::GET, "/v1/subscriptions", None).await;
    for s in subs["subscriptions"].as_array_mut().expect("subscriptions") {
        let s = s.as_object_mut().expect("a subscription");
        s.remove("created_at");
        s.remove("updated_at");
    }
    serde_json::json!({"templates": templates, "subscriptions": subs})
}

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The tokens `errand tokens list` shows that are not revoked, without the creation
/// time (an import's own).
async fn live_tokens(store: &[&str]) -> serde_json::Value {
    let text = tokens(&["list", "--json"], store).await;
    let mut list: Vec<serde_json::Value> = serde_json::from_str(&text).expect("JSON");
    list.retain(|t| t.get("revoked_at").is_none());
    for t in &mut list {
        t.as_object_mut().expect("a token").remove("created_at");
    }
    list.sort_by_key(|t| t["name"].as_str().unwrap_or_default().to_string());
    serde_json::Value::Array(list)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_subscriptions_and_tokens_travel_and_the_tokens_keep_working() {
    use reqwest::Method;
    let Some(schema) = PgSchema::create("configuration_travels").await else {
        return;
    };
    let work = tempfile::tempdir().expect("temp dir");
    let sqlite_dir = work.path().join("sqlite");
    let sqlite_str = sqlite_dir.to_str().expect("a UTF-8 path");
    let on_sqlite = ["--data-dir", sqlite_str];
    let admin = tokens(&["create", "--name", "ci", "--scopes", "admin"], &on_sqlite).await;
    let revoked = tokens(&["create", "--name", "old", "--scopes", "read"], &on_sqlite).await;
    tokens(&["revoke", "old"], &on_sqlite).await;
    let leaky = tokens(
        &[
            "create",
            "--name",
            "leaky",
            "--scopes",
            "read,enqueue",
            "--queues",
            "etl,web",
            "--expires",
            "30d",
        ],
        &on_sqlite,
    )
    .await;
    let serve = ["--require-auth", "--webhook-secret", WEBHOOK_SECRET];
    let mut source = ServerProcess::start_in(&bin(), &sqlite_dir, &serve)
        .await
        .expect("start");
    let base = source.url().to_string();
    let template = serde_json::json!({"steps": [
        {"name": "extract", "job": {"kind": "extract"}},
        {"name": "load", "job": {"kind": "load", "queue": "etl"}, "depends_on": ["extract"]},
    ]});
    let path = "/v1/workflow-templates/nightly-etl";
    let (status, _) = call(&base, &admin, Method::PUT, path, Some(template)).await;
    assert_eq!(status, 200);
    let mut ids = Vec::new();
    for (url, queue) in [
        ("https://example.com/a", "etl"),
        ("https://example.com/b", "web"),
    ] {
        let body = serde_json::json!({"url": url, "events": ["job.dead"], "queue": queue});
        let (status, sub) =
            call(&base, &admin, Method::POST, "/v1/subscriptions", Some(body)).await;
        assert_eq!(status, 201, "{sub}");
        ids.push(sub["id"].as_str().expect("an id").to_string());
    }
    let pause = format!("/v1/subscriptions/{}/pause", ids[1]);
    let reason = serde_json::json!({"reason": "endpoint moved"});
    let (status, _) = call(&base, &admin, Method::POST, &pause, Some(reason)).await;
    assert_eq!(status, 200);
    // Used once, so its last use has something to carry.
    let job = || Some(serde_json::json!({"kind": "extract", "queue": "etl"}));
    let (status, _) = call(&base, &leaky, Method::POST, "/v1/jobs", job()).await;
    assert_eq!(status, 201);
    let before = configuration(&base, &admin).await;
    // The use is recorded beside the request; wait until it is, so that it travels.
    errand_testkit::eventually(
        "leaky's last use",
        std::time::Duration::from_secs(10),
        || async {
            let (_, list) = call(&base, &admin, Method::GET, "/v1/tokens", None).await;
            list["tokens"]
                .as_array()?
                .iter()
                .find(|t| t["name"] == "leaky" && t.get("last_used_at").is_some())
                .cloned()
        },
    )
    .await;
    assert!(source.terminate().await);
    let tokens_before = live_tokens(&on_sqlite).await;

    let export = work.path().join("export.jsonl");
    let said = sqlite_transfer("export", &sqlite_dir, &export).await;
    assert!(
        said.contains("1 workflow template, 2 subscriptions, 3 API tokens (each as the hash of its secret, never the secret; 1 revoked"),
        "{said}"
    );
    let text = std::fs::read_to_string(&export).expect("the export");
    for secret in [&admin, &revoked, &leaky] {
        let secret = secret.rsplit('_').next().expect("the secret part");
        assert!(!text.contains(secret), "a token's secret was exported");
    }

    let pg = [
        "--store",
        schema.url.as_str(),
        "--pg-schema",
        schema.name.as_str(),
    ];
    let file = export.to_str().expect("path");
    let import = [&["import", "--file", file], &pg[..]].concat();
    let said = errand_said(&import).await;
    assert!(
        said.contains(
            ", 1 workflow template, 2 subscriptions (0 already there, 0 of those paused again), 2 API tokens (0 already there, 0 revoked, 0 left out)"
        ) && said.contains("made token `leaky` (")
            && said.contains("scopes enqueue,read, queues etl,web, expires ")
            && said.contains("subscriptions deliver from nodes started with a webhook secret"),
        "{said}"
    );
    assert_eq!(
        live_tokens(&pg).await,
        tokens_before,
        "scopes, queues, expiry and last use travel"
    );
    let said = errand_said(&import).await;
    assert!(
        said.contains("0 subscriptions (2 already there, 0 of those paused again), 0 API tokens (2 already there, 0 revoked"),
        "import is repeatable: {said}"
    );
    let pg_args = [&pg[..], &serve].concat();
    let (errand_bin, unused) = (bin(), work.path().join("unused"));
    let pg_serve = || ServerProcess::start_in(&errand_bin, &unused, &pg_args);
    let pg_node = pg_serve().await.expect("start");
    assert_eq!(configuration(pg_node.url(), &admin).await, before);
    let (_, trail) = call(
        pg_node.url(),
        &admin,
        Method::GET,
        "/v1/audit?action=import_token",
        None,
    )
    .await;
    let entries = trail["entries"].as_array().expect("entries");
    assert_eq!(
        entries.len(),
        2,
        "the import's tokens are in the audit trail: {trail}"
    );
    let (status, _) = call(pg_node.url(), &revoked, Method::GET, "/v1/queues", None).await;
    assert_eq!(status, 401, "a revoked token stays behind");
    let (status, _) = call(pg_node.url(), &leaky, Method::POST, "/v1/jobs", job()).await;
    assert_eq!(status, 201, "a token keeps working after the move");
    // A workflow starts from the template that travelled.
    let start = serde_json::json!({"template": "nightly-etl"});
    let (status, body) = call(
        pg_node.url(),
        &admin,
        Method::POST,
        "/v1/workflows",
        Some(start),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Resumed here, the subscription the file has paused is paused again by a newer import.
    let resume = format!("/v1/subscriptions/{}/resume", ids[1]);
    let (status, _) = call(pg_node.url(), &admin, Method::POST, &resume, None).await;
    assert_eq!(status, 200);
    drop(pg_node);

    // Revoked at the source after the first import, a token stops working at the target
    // when a newer export is imported.
    tokens(&["revoke", "leaky"], &on_sqlite).await;
    sqlite_transfer("export", &sqlite_dir, &export).await;
    let said = errand_said(&import).await;
    assert!(
        said.contains("0 subscriptions (2 already there, 1 of those paused again)")
            && said.contains("0 API tokens (1 already there, 1 revoked, 0 left out)")
            && said.contains("revoked token `leaky` ("),
        "{said}"
    );
    let pg_node = pg_serve().await.expect("start");
    let (status, _) = call(pg_node.url(), &leaky, Method::POST, "/v1/jobs", job()).await;
    assert_eq!(status, 401, "the revocation travelled");
    let sub = format!("/v1/subscriptions/{}", ids[1]);
    let (_, sub) = call(pg_node.url(), &admin, Method::GET, &sub, None).await;
    assert_eq!(sub["state"], "paused", "{sub}");
    drop(pg_node);

    // Back to SQLite, into a store whose own `ci` token keeps its name: the import says
    // what it left out, and fails.
    let back = work.path().join("back.jsonl");
    let back_s = back.to_str().expect("path");
    errand(&[&["export", "--file", back_s], &pg[..]].concat()).await;
    let round_dir = work.path().join("round-trip");
    let round_str = round_dir.to_str().expect("a UTF-8 path");
    let own = tokens(
        &["create", "--name", "ci", "--scopes", "admin"],
        &["--data-dir", round_str],
    )
    .await;
    let (code, said) =
        errand_may_fail(&["import", "--data-dir", round_str, "--file", back_s]).await;
    assert!(
        code == INCOMPLETE
            && said.contains("0 API tokens (0 already there, 0 revoked, 1 left out)")
            && said.contains("token `ci` (")
            && said.contains("left out: a token of that name, not revoked, is here")
            && said.contains("the import did not bring everything as the file has it"),
        "{code:?}: {said}"
    );
    let round = ServerProcess::start_in(&bin(), &round_dir, &serve)
        .await
        .expect("start");
    let (status, _) = call(round.url(), &admin, Method::GET, "/v1/queues", None).await;
    assert_eq!(status, 401, "the token left out does not work here");
    assert_eq!(configuration(round.url(), &own).await, before);
    drop(round);

    // A copy for staging leaves the credentials and webhooks behind.
    let staging = work.path().join("staging.jsonl");
    let staging_s = staging.to_str().expect("path");
    let (code, said) = errand_may_fail(&[
        "export",
        "--data-dir",
        sqlite_str,
        "--file",
        staging_s,
        "--without",
        "tokens,subscriptions",
    ])
    .await;
    assert!(
        code == Some(0)
            && said.contains("; left out: tokens, subscriptions")
            && !said.contains("API token"),
        "{said}"
    );
    let text = std::fs::read_to_string(&staging).expect("the export");
    assert!(
        !text.contains("\"token\"")
            && !text.contains("\"subscription\"")
            && text.contains("\"template\""),
        "{text}"
    );
    // And an import can leave them out of a full export.
    let staging_dir = work.path().join("staging");
    let staging_str = staging_dir.to_str().expect("path");
    let file = export.to_str().expect("path");
    let (code, said) = errand_may_fail(&[
        "import",
        "--data-dir",
        staging_str,
        "--file",
        file,
        "--without",
        "tokens",
    ])
    .await;
    assert!(
        code == Some(0) && said.contains("skipped 3 lines left out by --without"),
        "{said}"
    );
    assert_eq!(live_tokens(&["--data-dir", staging_str]).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_import_keeps_the_targets_jobs_and_fails_naming_those_that_changed() {
    let work = tempfile::tempdir().expect("temp dir");
    let (from_dir, to_dir) = (work.path().join("from"), work.path().join("to"));
    let mut source = ServerProcess::start_in(&bin(), &from_dir, &[])
        .await
        .expect("start");
    let client = source.client().expect("client");
    let job = client
        .enqueue(&EnqueueRequest::new("charge.card"))
        .await
        .expect("enqueue");
    client
        .enqueue(&EnqueueRequest::new("send.receipt"))
        .await
        .expect("enqueue");
    // Exported while its node serves it: said, not refused.
    let first = work.path().join("first.jsonl");
    let said = sqlite_transfer("export", &from_dir, &first).await;
    assert!(said.contains("is serving this store"), "{said}");
    sqlite_transfer("import", &to_dir, &first).await;

    // The job runs at the source after the first import; the second finds it changed.
    assert_eq!(run_next(&client, "default", None).await, job.id);
    assert!(source.terminate().await);
    let second = work.path().join("second.jsonl");
    sqlite_transfer("export", &from_dir, &second).await;
    let (to, second_s) = (
        to_dir.to_str().expect("path"),
        second.to_str().expect("path"),
    );
    let (code, said) = errand_may_fail(&["import", "--data-dir", to, "--file", second_s]).await;
    assert!(
        code == INCOMPLETE
            && said.contains("1 job already here differs from the file")
            && said.contains(&job.id.to_string())
            && said.contains("import it into an empty store"),
        "{code:?}: {said}"
    );
    // With --json: the summary on stdout, the error alone on stderr.
    let out = tokio::process::Command::new(bin())
        .args(["--json", "import", "--data-dir", to, "--file", second_s])
        .output()
        .await
        .expect("run errand");
    assert_eq!(out.status.code(), INCOMPLETE);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one object");
    assert_eq!(
        summary["import"]["jobs"]["differing"],
        json!([job.id.to_string()]),
        "{summary}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let error: serde_json::Value = serde_json::from_str(&stderr).expect("JSON");
    assert_eq!(error["error"]["code"], "incomplete", "{error}");

    // A file cut short stops at its bad line and says what it did not reach.
    let cut = work.path().join("cut.jsonl");
    let mut text = std::fs::read_to_string(&first).expect("the export");
    text.push_str("not json\n");
    std::fs::write(&cut, text).expect("write");
    let cut_dir = work.path().join("cut");
    let (code, said) = errand_may_fail(&[
        "import",
        "--data-dir",
        cut_dir.to_str().expect("path"),
        "--file",
        cut.to_str().expect("path"),
    ])
    .await;
    assert!(
        code == Some(1)
            && said.contains(
                "0 of 2 jobs (0 were already there, 2 not reached: the import stopped before them)"
            )
            && said.contains("the import stopped part-way"),
        "{code:?}: {said}"
    );

    // The same file again into a store that has it all as it is: nothing to say.
    let first_s = first.to_str().expect("path");
    let again_dir = work.path().join("again");
    let again = again_dir.to_str().expect("path");
    for _ in 0..2 {
        let (code, said) =
            errand_may_fail(&["import", "--data-dir", again, "--file", first_s]).await;
        assert!(
            code == Some(0) && !said.contains("differ"),
            "{code:?}: {said}"
        );
    }
    let target = ServerProcess::start_in(&bin(), &to_dir, &[])
        .await
        .expect("start");
    let kept = target
        .client()
        .expect("client")
        .job(job.id, None)
        .await
        .expect("the job");
    assert_eq!(
        kept.state,
        JobState::Available,
        "the target kept its own copy"
    );
}

#[tokio::test]
async fn an_import_of_a_file_that_is_not_an_export_creates_no_store() {
    let work = tempfile::tempdir().expect("temp dir");
    let junk = work.path().join("junk.jsonl");
    std::fs::write(&junk, "{\"hello\": 1}\n").expect("write");
    let dir = work.path().join("typo-dir");
    let import = |file: std::path::PathBuf| {
        let dir = dir.clone();
        async move {
            errand_may_fail(&[
                "import",
                "--data-dir",
                dir.to_str().expect("path"),
                "--file",
                file.to_str().expect("path"),
            ])
            .await
        }
    };
    let (code, said) = import(junk).await;
    assert!(
        code == Some(1) && said.contains("not an errand export"),
        "{said}"
    );
    assert!(!dir.exists(), "a store was created at {}", dir.display());
    // A real export into a new place says that it made the store.
    let empty = work.path().join("empty.jsonl");
    std::fs::write(
        &empty,
        "{\"format\":{\"name\":\"errand-export\",\"version\":2}}\n",
    )
    .expect("write");
    let (code, said) = import(empty).await;
    assert!(
        code == Some(0) && said.contains("created a new store: sqlite "),
        "{said}"
    );
}
