//! API tokens and scopes against a real server with `--require-auth`: every operation of
//! the OpenAPI document is called with no token and with a token of each scope, against a
//! table of what each operation needs kept here (an operation missing from the table fails
//! the test, so a new route cannot ship without a rule); queue-limited tokens; revocation;
//! the dashboard's sign-in, session and CSRF value; the audit trail; refusal to start on a
//! network address without tokens.

mod common;

use std::process::Command;
use std::time::Duration;

use errand_testkit::ServerProcess;
use serde_json::{json, Value};

/// What an operation needs: `None` public, else any of the scopes (admin holds all).
fn needs(op: &str) -> Option<&'static [&'static str]> {
    const READ: &[&str] = &["read"];
    const ENQUEUE: &[&str] = &["enqueue"];
    const WORK: &[&str] = &["work"];
    const ADMIN: &[&str] = &["admin"];
    Some(match op {
        "get_server_info" | "healthz" | "readyz" | "receive_hook" => return None,
        "enqueue_job" | "enqueue_jobs" | "create_batch" | "add_batch_jobs" | "close_batch"
        | "create_workflow" | "run_definition" | "cancel_job" => ENQUEUE,
        "get_job" => &["read", "enqueue", "work"],
        "claim_jobs" | "heartbeat_job" | "complete_job" | "fail_job" | "release_job"
        | "settle_jobs" | "append_job_logs" | "put_session_state" => WORK,
        "get_metrics"
        | "list_batches"
        | "get_batch"
        | "list_dead_jobs"
        | "list_definitions"
        | "get_definition"
        | "instance_logs"
        | "stream_events"
        | "list_jobs"
        | "list_job_attempts"
        | "list_job_deliveries"
        | "explain_job"
        | "job_logs"
        | "list_limits"
        | "get_key_limit"
        | "get_kind_limit"
        | "list_nodes"
        | "list_queues"
        | "get_queue"
        | "list_schedules"
        | "get_schedule"
        | "list_schedule_fire_times"
        | "list_sessions"
        | "get_session"
        | "list_subscriptions"
        | "get_subscription"
        | "list_subscription_deliveries"
        | "list_workers"
        | "list_workflow_templates"
        | "get_workflow_template"
        | "list_workflows"
        | "get_workflow" => READ,
        "update_queue"
        | "pause_queue"
        | "resume_queue"
        | "list_tokens"
        | "list_audit"
        | "create_token"
        | "revoke_token"
        | "retry_job"
        | "purge_dead_jobs"
        | "requeue_dead_jobs"
        | "start_definition"
        | "stop_definition"
        | "put_key_limit"
        | "delete_key_limit"
        | "put_kind_limit"
        | "delete_kind_limit"
        | "create_schedule"
        | "put_schedule"
        | "delete_schedule"
        | "backfill_schedule"
        | "pause_schedule"
        | "resume_schedule"
        | "trigger_schedule"
        | "unblock_session"
        | "create_subscription"
        | "update_subscription"
        | "delete_subscription"
        | "pause_subscription"
        | "resume_subscription"
        | "put_workflow_template"
        | "delete_workflow_template"
        | "cancel_workflow"
        | "retry_workflow" => ADMIN,
        other => panic!("operation `{other}` has no expected rule in this test: add one"),
    })
}

/// Makes a token with `errand tokens create` against `data_dir`; its text.
fn make_token(
    data_dir: &std::path::Path,
    name: &str,
    scopes: &str,
    queues: Option<&str>,
) -> String {
    let mut cmd = Command::new(common::bin());
    cmd.args([
        "tokens",
        "create",
        "--name",
        name,
        "--scopes",
        scopes,
        "--data-dir",
    ])
    .arg(data_dir);
    if let Some(q) = queues {
        cmd.args(["--queues", q]);
    }
    let out = cmd.output().expect("errand tokens create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_string();
    assert!(text.starts_with("errand_"), "{text}");
    text
}

struct Fixture {
    server: ServerProcess,
    _dir: tempfile::TempDir,
    tokens: Vec<(&'static str, String)>,
    http: reqwest::Client,
}

impl Fixture {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    async fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let tokens: Vec<(&'static str, String)> = ["enqueue", "work", "read", "admin"]
            .into_iter()
            .map(|s| (s, make_token(dir.path(), &format!("{s}-token"), s, None)))
            .collect();
        let mut args = vec!["--require-auth"];
        args.extend_from_slice(extra);
        let server = ServerProcess::start_in(&common::bin(), dir.path(), &args)
            .await
            .expect("start errand serve --require-auth");
        Self {
            server,
            _dir: dir,
            tokens,
            http: common::http_builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client"),
        }
    }

    fn token(&self, scope: &str) -> &str {
        &self
            .tokens
            .iter()
            .find(|(s, _)| *s == scope)
            .expect("scope")
            .1
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = tokio::time::timeout(Duration::from_millis(500), r.text())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            // A long poll that was allowed to wait.
            Err(e) if e.is_timeout() => (0, Value::Null),
            Err(e) => panic!("{path}: {e}"),
        }
    }
}

/// The path of an operation with its parameters filled with values that name nothing.
fn concrete(path: &str) -> String {
    let any_id = "0190c5a8-0000-7000-8000-000000000001";
    path.replace("{id}", any_id)
        .replace("{queue}", "authq")
        .replace("{name}", "authname")
        .replace("{key}", "authkey")
        .replace("{instance}", "i1")
}

#[tokio::test]
async fn every_operation_refuses_callers_without_its_scope() {
    let f = Fixture::start().await;
    let (status, doc) = f.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, 200, "the OpenAPI document is public");
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let id = op["operationId"].as_str().expect("operationId");
            let body = (method != "get" && method != "delete").then(|| json!({}));
            let url = concrete(path);
            let m = method.to_uppercase();
            let (anon, answer) = f.call(&m, &url, None, body.clone()).await;
            match needs(id) {
                None => {
                    assert_ne!(anon, 401, "{m} {path} ({id}) is public");
                    // A stale token on a public route changes nothing either.
                    let (stale, _) = f
                        .call(&m, &url, Some("errand_nonsense"), body.clone())
                        .await;
                    assert_ne!(stale, 401, "{m} {path} ({id}) with a stale token");
                }
                Some(scopes) => {
                    assert_eq!(anon, 401, "{m} {path} ({id}) without a token: {answer}");
                    assert_eq!(answer["error"]["code"], "unauthorized", "{id}");
                    for (scope, token) in &f.tokens {
                        let (status, answer) = f.call(&m, &url, Some(token), body.clone()).await;
                        if *scope == "admin" || scopes.contains(scope) {
                            assert!(
                                status != 401 && status != 403,
                                "{m} {path} ({id}) with a {scope} token: {status} {answer}"
                            );
                        } else {
                            assert_eq!(
                                status, 403,
                                "{m} {path} ({id}) with a {scope} token: {answer}"
                            );
                            assert_eq!(answer["error"]["code"], "forbidden", "{id}");
                        }
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 80, "only {checked} operations in the document");
    // `GET /` is public as JSON; its HTML is the overview, which needs `read`.
    let html = f
        .http
        .get(format!("{}/", f.server.url()))
        .header("accept", "text/html")
        .send()
        .await
        .expect("GET /");
    assert_eq!(
        html.status(),
        303,
        "the overview without a session leads to sign-in"
    );
    let json = f
        .http
        .get(format!("{}/", f.server.url()))
        .header("accept", "application/json")
        .send()
        .await
        .expect("GET /");
    assert_eq!(json.status(), 200);
    // A malformed or unknown token is a 401 too, whatever the route.
    let (status, _) = f
        .call("GET", "/v1/queues", Some("errand_nonsense"), None)
        .await;
    assert_eq!(status, 401);
    let forged = format!("errand_{}_{}", "0".repeat(32), "ab".repeat(32));
    let (status, _) = f.call("GET", "/v1/queues", Some(&forged), None).await;
    assert_eq!(status, 401);
    // Refusals are counted, never by token.
    let metrics = f
        .http
        .get(format!("{}/metrics", f.server.url()))
        .bearer_auth(f.token("read"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for reason in ["missing", "invalid", "forbidden"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "errand_http_auth_refused_total{{reason=\"{reason}\"}}"
                ))
            })
            .unwrap_or_else(|| panic!("no {reason} refusals counted:\n{metrics}"));
        let n: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("value");
        assert!(n >= 1.0, "{line}");
    }
}

#[tokio::test]
async fn a_queue_limited_token_reaches_its_queues_only_and_a_revoked_one_nothing() {
    let f = Fixture::start().await;
    let mail = make_token(f.server.data_dir(), "mailer", "enqueue,work", Some("mail"));
    let (s, job) = f
        .call(
            "POST",
            "/v1/jobs",
            Some(&mail),
            Some(json!({"kind": "k", "queue": "mail"})),
        )
        .await;
    assert_eq!(s, 201, "{job}");
    let (s, answer) = f
        .call(
            "POST",
            "/v1/jobs",
            Some(&mail),
            Some(json!({"kind": "k", "queue": "billing"})),
        )
        .await;
    assert_eq!(s, 403, "{answer}");
    let (s, _) = f
        .call("POST", "/v1/jobs/batch", Some(&mail), Some(json!({"jobs": [{"kind": "k", "queue": "mail"}, {"kind": "k", "queue": "billing"}]})))
        .await;
    assert_eq!(
        s, 403,
        "one job outside the token's queues refuses the batch"
    );
    let (s, _) = f
        .call(
            "POST",
            "/v1/queues/billing/claim",
            Some(&mail),
            Some(json!({"worker": "w"})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = f.call("GET", "/v1/jobs", Some(&mail), None).await;
    assert_eq!(s, 403, "a listing across queues");
    let mail_reader = make_token(f.server.data_dir(), "mail-reader", "read", Some("mail"));
    let overview = f
        .http
        .get(format!("{}/", f.server.url()))
        .bearer_auth(&mail_reader)
        .header("accept", "text/html")
        .send()
        .await
        .expect("GET /");
    assert_eq!(overview.status(), 403, "the overview shows every queue");
    // A job in another queue looks missing.
    let (_, other) = f
        .call(
            "POST",
            "/v1/jobs",
            Some(f.token("admin")),
            Some(json!({"kind": "k", "queue": "billing"})),
        )
        .await;
    let (s, _) = f
        .call(
            "GET",
            &format!("/v1/jobs/{}", other["id"].as_str().expect("id")),
            Some(&mail),
            None,
        )
        .await;
    assert_eq!(s, 404);
    // Nor can it reach other queues through what a job names beyond its queue: a reply
    // queue, a key every queue shares, or a parent (which answers as a missing one).
    let other_id = other["id"].as_str().expect("id");
    for (extra, want) in [
        (json!({"reply_to": "billing"}), 403),
        (json!({"session_key": "user-1"}), 403),
        (json!({"lock_key": "billing/x"}), 403),
        (json!({"lock_key": "mail:x"}), 403),
        (json!({"concurrency_key": "shared"}), 403),
        (json!({"rate_key": "smtp"}), 403),
        (json!({"after": [other_id]}), 404),
        (
            json!({"reply_to": "mail", "session_key": "mail/user-1"}),
            201,
        ),
        (
            json!({"after": [job["id"]], "idempotency_key": "fence-repeat"}),
            201,
        ),
        // An idempotent repeat (which the store answers without looking at parents) must
        // not tell a missing parent from a foreign one.
        (
            json!({"after": [other_id], "idempotency_key": "fence-repeat"}),
            404,
        ),
        (
            json!({"after": ["01a23c6e-dc7b-7678-8591-91bcb51fdeb0"], "idempotency_key": "fence-repeat"}),
            404,
        ),
    ] {
        let mut body = json!({"kind": "k", "queue": "mail"});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        let (s, answer) = f.call("POST", "/v1/jobs", Some(&mail), Some(body)).await;
        assert_eq!(s, want, "{extra}: {answer}");
        if want == 404 {
            assert!(
                answer.to_string().contains("not found"),
                "a foreign parent looks missing: {answer}"
            );
        }
    }
    let (s, got) = f
        .call(
            "GET",
            &format!("/v1/jobs/{}", job["id"].as_str().expect("id")),
            Some(&mail),
            None,
        )
        .await;
    assert_eq!(s, 200, "{got}");
    let (s, claimed) = f
        .call(
            "POST",
            "/v1/queues/mail/claim",
            Some(&mail),
            Some(json!({"worker": "w", "max": 1})),
        )
        .await;
    assert_eq!(s, 200, "{claimed}");
    assert_eq!(claimed["jobs"].as_array().map(Vec::len), Some(1));

    // The names the audit trail gives callers without a stored token are not for tokens.
    for reserved in ["local", "env-admin", "cli"] {
        let (s, answer) = f
            .call(
                "POST",
                "/v1/tokens",
                Some(f.token("admin")),
                Some(json!({"name": reserved, "scopes": ["read"]})),
            )
            .await;
        assert_eq!(s, 400, "{reserved}: {answer}");
    }

    // Revoked through the API: refused at once by this node.
    let (_, list) = f
        .call("GET", "/v1/tokens", Some(f.token("admin")), None)
        .await;
    let id = list["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["name"] == "mailer")
        .and_then(|t| t["id"].as_str())
        .expect("mailer's id")
        .to_string();
    assert!(
        list.to_string().find("errand_").is_none(),
        "no secret is ever listed"
    );
    let (s, _) = f
        .call(
            "DELETE",
            &format!("/v1/tokens/{id}"),
            Some(f.token("admin")),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = f.call("GET", "/v1/queues/mail", Some(&mail), None).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn admin_actions_land_in_the_audit_trail_with_who_what_and_where() {
    let f = Fixture::start().await;
    let (s, _) = f
        .call(
            "POST",
            "/v1/jobs",
            Some(f.token("admin")),
            Some(json!({"kind": "k", "queue": "audited"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = f
        .call(
            "POST",
            "/v1/queues/audited/pause",
            Some(f.token("admin")),
            None,
        )
        .await;
    assert_eq!(s, 200);
    // A read is not audited; a refused action is not either.
    f.call("GET", "/v1/queues", Some(f.token("read")), None)
        .await;
    f.call(
        "POST",
        "/v1/queues/audited/resume",
        Some(f.token("read")),
        None,
    )
    .await;
    let (s, page) = f
        .call(
            "GET",
            "/v1/audit?action=pause_queue",
            Some(f.token("admin")),
            None,
        )
        .await;
    assert_eq!(s, 200, "{page}");
    let entries = page["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{page}");
    let e = &entries[0];
    assert_eq!(e["actor"], "admin-token");
    assert_eq!(e["target"], "queue=audited");
    assert_eq!(e["origin"], "127.0.0.1");
    let (_, all) = f
        .call("GET", "/v1/audit", Some(f.token("admin")), None)
        .await;
    let actions: Vec<&str> = all["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(!actions.contains(&"resume_queue"), "{actions:?}");
    // A token made over the API is named in its entry.
    let (s, _) = f
        .call(
            "POST",
            "/v1/tokens",
            Some(f.token("admin")),
            Some(json!({"name": "api-made", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(s, 201);
    let (_, made) = f
        .call(
            "GET",
            "/v1/audit?action=create_token",
            Some(f.token("admin")),
            None,
        )
        .await;
    assert!(
        made["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["actor"] == "admin-token"
                && e["target"]
                    .as_str()
                    .is_some_and(|t| t.contains("token=api-made") && t.contains("scopes=read"))),
        "{made}"
    );
    let (_, all) = f
        .call("GET", "/v1/audit", Some(f.token("admin")), None)
        .await;
    // Tokens made on the command line are recorded as `cli`.
    assert!(
        all["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["actor"] == "cli" && e["action"] == "create_token"),
        "{all}"
    );
    // `errand audit` prints the same.
    let out = Command::new(common::bin())
        .args([
            "--server",
            f.server.url(),
            "--token",
            f.token("admin"),
            "audit",
            "--action",
            "pause_queue",
        ])
        .output()
        .expect("errand audit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("queue=audited"));
}

#[tokio::test]
async fn the_dashboard_signs_in_with_a_token_and_actions_need_the_session_csrf() {
    let f = Fixture::start().await;
    let base = f.server.url();
    let r = f
        .http
        .get(format!("{base}/ui/queues"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/ui/login?next=%2Fui%2Fqueues",
        "a page without a session leads to the sign-in page"
    );
    let sign_in = |token: &str| {
        f.http
            .post(format!("{base}/ui/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            // Tokens are letters, digits and `_`: nothing to escape.
            .body(format!("token={token}&next=%2Fui%2Fqueues"))
            .send()
    };
    let bad = sign_in("errand_nonsense").await.expect("POST");
    assert_eq!(bad.status(), 401);
    let blind = sign_in(f.token("work")).await.expect("POST");
    assert_eq!(blind.status(), 403, "a token without read gets no session");
    assert!(blind.headers().get("set-cookie").is_none());
    let ok = sign_in(f.token("admin")).await.expect("POST");
    assert_eq!(ok.status(), 303);
    let cookies: Vec<String> = ok
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ASCII").to_string())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("errand_session="))
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    assert!(
        !session.contains(f.token("admin")),
        "the browser never holds the token"
    );
    let csrf_cookie = cookies
        .iter()
        .find(|c| c.starts_with("errand_csrf="))
        .expect("csrf cookie");
    let pair = |c: &str| c.split(';').next().expect("pair").to_string();
    let jar = format!("{}; {}", pair(session), pair(csrf_cookie));
    let csrf = pair(csrf_cookie)
        .trim_start_matches("errand_csrf=")
        .to_string();
    let (s, _) = f
        .call(
            "POST",
            "/v1/jobs",
            Some(f.token("admin")),
            Some(json!({"kind": "k", "queue": "ui-q"})),
        )
        .await;
    assert_eq!(s, 201);
    let page = f
        .http
        .get(format!("{base}/ui/queues"))
        .header("cookie", &jar)
        .send()
        .await
        .expect("GET");
    assert_eq!(page.status(), 200);
    let pause = |value: &str| {
        f.http
            .post(format!("{base}/ui/queues/pause?queue=ui-q"))
            .header("cookie", &jar)
            .header("x-errand-csrf", value)
            .header("origin", base)
            .send()
    };
    assert_eq!(
        pause("1").await.expect("POST").status(),
        403,
        "any value will not do"
    );
    assert_eq!(pause(&csrf).await.expect("POST").status(), 200);
    // A session is no bearer token for the API.
    let api = f
        .http
        .get(format!("{base}/v1/queues"))
        .header("cookie", &jar)
        .send()
        .await
        .expect("GET");
    assert_eq!(api.status(), 401);
    // A read token's session sees pages but may not act.
    let ro = sign_in(f.token("read")).await.expect("POST");
    let ro_cookies: Vec<String> = ro
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| pair(v.to_str().expect("ASCII")))
        .collect();
    let ro_csrf = ro_cookies
        .iter()
        .find_map(|c| c.strip_prefix("errand_csrf="))
        .expect("csrf")
        .to_string();
    let refused = f
        .http
        .post(format!("{base}/ui/queues/pause?queue=ui-q"))
        .header("cookie", ro_cookies.join("; "))
        .header("x-errand-csrf", ro_csrf)
        .header("origin", base)
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn a_network_address_needs_tokens_or_an_explicit_insecure_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(common::bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("ERRAND_ADMIN_TOKEN")
        .output()
        .expect("errand serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("errand tokens create") && err.contains("--insecure-no-auth"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
        "a refused start creates nothing"
    );
    // With an admin token in the environment it starts, and that token works.
    let secret = "s".repeat(40);
    let mut child = Command::new(common::bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--require-auth",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("ERRAND_ADMIN_TOKEN", &secret)
        .env("ERRAND_SHUTDOWN_DRAIN", "0s")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("errand serve");
    let stdout = child.stdout.take().expect("stdout");
    // Read every line (a closed pipe would fail the server's later prints); hand over the
    // listening one.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("errand listening on ") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the listening line");
    let http = common::http_client();
    errand_testkit::eventually("the server is ready", Duration::from_secs(30), || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.get(format!("{url}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
                .then_some(())
        }
    })
    .await;
    let with = http
        .get(format!("{url}/v1/tokens"))
        .bearer_auth(&secret)
        .send()
        .await;
    let without = http.get(format!("{url}/v1/tokens")).send().await;
    // Stop what this test started before judging.
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(with.expect("GET").status(), 200);
    let without = without.expect("GET");
    assert_eq!(without.status(), 401);
    assert_eq!(
        without.headers()["www-authenticate"],
        "Bearer realm=\"errand\""
    );
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after() {
    let f = Fixture::start_with(&["--token-rate", "5"]).await;
    let read = f.token("read").to_string();
    let mut limited = None;
    for _ in 0..20 {
        let r = f
            .http
            .get(format!("{}/v1/queues", f.server.url()))
            .bearer_auth(&read)
            .send()
            .await
            .expect("GET");
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("20 requests at once exceed 5 a second");
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another token has its own bucket.
    let (s, _) = f
        .call("GET", "/v1/queues", Some(f.token("admin")), None)
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_token_holding_its_long_polls_gets_429_until_one_ends() {
    let f = Fixture::start_with(&["--token-long-polls", "1"]).await;
    let work = f.token("work").to_string();
    let claim = |wait: u64| {
        f.http
            .post(format!("{}/v1/queues/empty/claim", f.server.url()))
            .bearer_auth(&work)
            .json(&json!({"worker": "w", "wait_ms": wait}))
            .send()
    };
    // The queue exists (a job due in an hour), so it can say how many claims wait on it.
    let (s, _) = f
        .call(
            "POST",
            "/v1/jobs",
            Some(f.token("enqueue")),
            Some(json!({"kind": "k", "queue": "empty", "delay": "1h"})),
        )
        .await;
    assert_eq!(s, 201);
    let waiting = tokio::spawn(claim(3_000));
    // Once the first claim waits on the queue (the queue says so), a second is refused.
    errand_testkit::eventually("the first claim waits", Duration::from_secs(10), || async {
        let (_, q) = f
            .call("GET", "/v1/queues/empty", Some(f.token("admin")), None)
            .await;
        (q["waiting_claims"] == 1).then_some(())
    })
    .await;
    let second = claim(0).await.expect("POST");
    assert_eq!(second.status(), 429);
    let first = waiting.await.expect("join");
    assert_eq!(second.headers()["retry-after"], "1");
    assert_eq!(first.expect("POST").status(), 200);
    let r = claim(0).await.expect("POST");
    assert_eq!(
        r.status(),
        200,
        "the place is free once the first claim answered"
    );
}

/// Signs in to the dashboard at `base` with `token`; the session cookie's value.
async fn signed_in_session(http: &reqwest::Client, base: &str, token: &str) -> String {
    let answer = http
        .post(format!("{base}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&next=%2Fui%2Fqueues"))
        .send()
        .await
        .expect("POST /ui/login");
    assert_eq!(answer.status(), 303, "signed in");
    answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.split(';').next()?.strip_prefix("errand_session="))
        .expect("session cookie")
        .to_string()
}

#[tokio::test]
async fn a_session_needs_the_nodes_secret_outlives_a_restart_and_ends_at_sign_out() {
    use hmac::{KeyInit, Mac};
    let mut f = Fixture::start().await;
    let base = f.server.url().to_string();
    let session = signed_in_session(&f.http, &base, f.token("admin")).await;
    let page = |base: String, cookie: String| {
        let http = f.http.clone();
        async move {
            http.get(format!("{base}/ui/queues"))
                .header("cookie", format!("errand_session={cookie}"))
                .send()
                .await
                .expect("GET")
                .status()
                .as_u16()
        }
    };
    assert_eq!(page(base.clone(), session.clone()).await, 200);

    // Whoever reads the store holds the token's hash: a cookie made with it alone (the
    // cookie's shape, keyed by the stored hash) is refused.
    let db = rusqlite::Connection::open_with_flags(
        f.server.data_dir().join("errand.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the store");
    let (id, hash): (Vec<u8>, Vec<u8>) = db
        .query_row(
            "SELECT id, secret_hash FROM api_tokens WHERE name = 'admin-token'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the admin token's row");
    drop(db);
    let id = uuid::Uuid::from_slice(&id)
        .expect("uuid")
        .simple()
        .to_string();
    let exp = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600)
        .to_string();
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&hash).expect("key");
    for part in ["errand-session", &id, &exp] {
        mac.update(part.as_bytes());
        mac.update(b"|");
    }
    let tag: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let forged = format!("{id}.{exp}.{tag}");
    assert_eq!(
        page(base.clone(), forged).await,
        303,
        "a session minted from the store alone leads to sign-in"
    );

    // The secret lives in the data directory, readable by its owner only, and a restart
    // keeps it: the session made before still works.
    let secret = f.server.data_dir().join("session-secret");
    let mode = std::fs::metadata(&secret)
        .expect("session-secret")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077,
        0,
        "session-secret is private"
    );
    f.server.kill9().await;
    let again = ServerProcess::start_in(&common::bin(), f._dir.path(), &["--require-auth"])
        .await
        .expect("restart");
    assert_eq!(
        page(again.url().to_string(), session.clone()).await,
        200,
        "a session outlives a restart"
    );

    // Signing out ends the session on the server: a copy of the cookie is refused after.
    let out = f
        .http
        .post(format!("{}/ui/logout", again.url()))
        .header("cookie", format!("errand_session={session}"))
        .header("origin", again.url())
        .send()
        .await
        .expect("POST /ui/logout");
    assert_eq!(out.status(), 303);
    assert_eq!(
        page(again.url().to_string(), session).await,
        303,
        "a signed-out session leads to sign-in"
    );
    let fresh = signed_in_session(&f.http, again.url(), f.token("admin")).await;
    assert_eq!(
        page(again.url().to_string(), fresh).await,
        200,
        "signing in again works at once"
    );
}

#[test]
fn token_commands_on_a_missing_store_refuse_to_list_and_revoke_and_say_when_create_made_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let typo = dir.path().join("typo-dir");
    for args in [&["tokens", "list"][..], &["tokens", "revoke", "ci"]] {
        let out = Command::new(common::bin())
            .args(args)
            .arg("--data-dir")
            .arg(&typo)
            .output()
            .expect("errand tokens");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {said}");
        assert!(said.contains("no store at"), "{args:?}: {said}");
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    // The first admin token comes before the first start: create makes the store, aloud.
    let create = |name: &str, scopes: &str| {
        let out = Command::new(common::bin())
            .args(["tokens", "create", "--name", name, "--scopes", scopes])
            .arg("--data-dir")
            .arg(&typo)
            .output()
            .expect("errand tokens create");
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{said}");
        said
    };
    let said = create("admin", "admin");
    assert!(said.contains("created a new store: sqlite "), "{said}");
    // Made once: the next one says nothing about it.
    let said = create("second", "read");
    assert!(!said.contains("created a new"), "{said}");
}

#[tokio::test]
async fn a_weak_secret_is_refused_at_start_even_where_auth_is_off() {
    for (var, name) in [
        ("ERRAND_ADMIN_TOKEN", "admin"),
        ("ERRAND_SESSION_SECRET", "session"),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        // Loopback without --require-auth: tokens are off, yet the secret is checked.
        // A server that started anyway is killed when the deadline drops it.
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new(common::bin())
                .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(dir.path())
                .env_remove("ERRAND_ADMIN_TOKEN")
                .env_remove("ERRAND_SESSION_SECRET")
                .env(var, "short")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: the server started with a weak secret"))
        .expect("errand serve");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: {err}");
        assert!(
            err.contains(&format!("{var} must be at least 32 characters")),
            "{name}: {err}"
        );
        assert!(
            std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
            "{name}: a refused start creates nothing"
        );
    }
}

#[tokio::test]
async fn the_cli_without_a_token_hears_how_to_give_one() {
    let f = Fixture::start().await;
    let out = tokio::process::Command::new(common::bin())
        .args(["jobs", "list", "--server", f.server.url()])
        .env_remove("ERRAND_TOKEN")
        .output()
        .await
        .expect("errand jobs list");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("hint: give errand a token with --token or ERRAND_TOKEN"),
        "{said}"
    );
}
