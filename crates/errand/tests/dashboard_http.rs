//! The dashboard over plain HTTP (no browser): its security headers, the CSRF token,
//! escaping, GET changing nothing, versioned assets, cursor pages, the live stream, and
//! staying out of the OpenAPI document. The browser tests (dashboard_browser.rs) cover
//! what only a browser shows.

mod common;

use std::time::Duration;

use common::server;
use serde_json::{json, Value};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn enqueue(http: &reqwest::Client, base: &str, job: Value) -> Value {
    let r = http
        .post(format!("{base}/v1/jobs"))
        .json(&job)
        .send()
        .await
        .expect("enqueue");
    assert_eq!(r.status(), 201);
    r.json().await.expect("job")
}

/// The JSON `url` answers, or `None` when it cannot be had (for polling until it can).
async fn json_of(http: &reqwest::Client, url: &str) -> Option<Value> {
    http.get(url).send().await.ok()?.json().await.ok()
}

async fn page(
    http: &reqwest::Client,
    url: &str,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let r = http.get(url).send().await.expect("GET");
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.text().await.expect("body"))
}

/// The page's CSRF header value, from its `<meta>` tag.
fn token(html: &str) -> String {
    let start = html
        .find(r#"name="errand-csrf" content=""#)
        .expect("a csrf meta tag")
        + r#"name="errand-csrf" content=""#.len();
    let len = html[start..].find('"').expect("the tag's end");
    html[start..start + len].to_string()
}

#[tokio::test]
async fn every_page_carries_the_csp_and_escapes_what_jobs_hold() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    let job = enqueue(
        &http,
        base,
        json!({"kind": "<b>k</b>", "queue": "q", "payload": {"x": "<script>alert(1)</script>"}, "tags": ["\"><img src=x>"]}),
    )
    .await;
    let id = job["id"].as_str().expect("id");
    for path in [
        "/".to_string(),
        "/ui/queues".into(),
        "/ui/jobs".into(),
        "/ui/jobs?queue=q".into(),
        format!("/ui/jobs/{id}"),
        "/ui/dead".into(),
    ] {
        let (status, headers, html) = page(&http, &format!("{base}{path}")).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(headers["content-security-policy"], CSP, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert!(
            !html.contains("<script>alert"),
            "{path} shows a script: {html}"
        );
        assert!(!html.contains("<b>k</b>"), "{path} shows markup");
        assert!(
            !html.contains("\"><img"),
            "{path} lets a tag out of an attribute"
        );
        assert!(!html.contains(" style="), "{path} has an inline style");
        // No inline script: every <script> names a file of errand's.
        for tag in html.split("<script").skip(1) {
            assert!(
                tag.trim_start().starts_with("src=\"/ui/assets/"),
                "{path}: <script{tag}"
            );
        }
    }
    let (_, _, html) = page(&http, &format!("{base}/ui/jobs/{id}")).await;
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );
    // JSON clients of / still get JSON.
    let info: Value = http
        .get(format!("{base}/"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("GET / as JSON")
        .json()
        .await
        .expect("JSON");
    assert_eq!(info["name"], "errand");
}

#[tokio::test]
async fn actions_need_the_pages_token_and_get_changes_nothing() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    enqueue(
        &http,
        base,
        json!({"kind": "k", "queue": "q", "payload": {}}),
    )
    .await;
    let paused = |http: reqwest::Client| async move {
        let q: Value = http
            .get(format!("{base}/v1/queues/q"))
            .send()
            .await
            .expect("queue")
            .json()
            .await
            .expect("JSON");
        q["paused"].as_bool().expect("paused")
    };
    // A GET of an action is no action.
    let r = http
        .get(format!("{base}/ui/queues/pause?queue=q"))
        .send()
        .await
        .expect("GET");
    assert_ne!(r.status(), 200);
    assert!(!paused(http.clone()).await);
    // No header, an empty one: refused, in the API's error shape.
    for header in [None, Some(""), Some("  ")] {
        let mut req = http.post(format!("{base}/ui/queues/pause?queue=q"));
        if let Some(h) = header {
            req = req.header("x-errand-csrf", h);
        }
        let r = req.send().await.expect("POST");
        assert_eq!(r.status(), 403);
        let body: Value = r.json().await.expect("JSON");
        assert_eq!(body["error"]["code"], "csrf");
        assert!(!paused(http.clone()).await);
    }
    // A form posted from another site is refused before the token is even looked at.
    let (_, _, html) = page(&http, &format!("{base}/ui/queues")).await;
    let token = token(&html);
    let r = http
        .post(format!("{base}/ui/queues/pause?queue=q"))
        .header("origin", "https://attacker.example")
        .header("x-errand-csrf", &token)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 403);
    assert!(!paused(http.clone()).await);
    // The page's value works; it is no secret, the same on every node and over restarts,
    // so a page served by one node acts through another behind a load balancer.
    assert!(!token.is_empty());
    let other = server().await;
    let (_, _, other_html) = page(&http, &format!("{}/ui/queues", other.url())).await;
    assert_eq!(
        self::token(&other_html),
        token,
        "every node's pages send the same value"
    );
    let r = http
        .post(format!("{base}/ui/queues/pause?queue=q"))
        .header("x-errand-csrf", &token)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    assert!(paused(http.clone()).await);
}

/// The live stream's URL in a page (`data-live`), unescaped.
fn live_url(html: &str) -> String {
    let start = html.find("data-live=\"").expect("a live stream") + "data-live=\"".len();
    let end = start + html[start..].find('"').expect("end");
    html[start..end].replace("&#38;", "&")
}

/// Reads `stream` until it has said every one of `events`, or 10 s passed; what it read.
async fn read_until(stream: &mut reqwest::Response, events: &[&str]) -> String {
    let mut seen = String::new();
    let done = |seen: &str| {
        events
            .iter()
            .all(|e| seen.contains(&format!("event: {e}\n")))
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.chunk().await.expect("chunk") {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if done(&seen) {
                return;
            }
        }
    })
    .await;
    seen
}

#[tokio::test]
async fn a_page_from_another_node_gets_everything_at_once_on_this_one() {
    let one = server().await;
    let two = server().await;
    let http = common::http_client();
    let (_, _, html) = page(&http, &format!("{}/ui/queues", one.url())).await;
    let url = live_url(&html);
    assert!(url.contains("since="), "{url}");
    // The same node, nothing changed since the page: nothing to say yet.
    let mut same = http
        .get(format!("{}{url}", one.url()))
        .send()
        .await
        .expect("live");
    let quiet = tokio::time::timeout(Duration::from_millis(1500), same.chunk()).await;
    assert!(
        quiet.is_err(),
        "a stream of an unchanged page spoke: {quiet:?}"
    );
    // Another node counts its changes from another start: the page may have missed any of
    // them, so its regions refresh at once.
    let mut other = http
        .get(format!("{}{url}", two.url()))
        .send()
        .await
        .expect("live");
    let seen = read_until(&mut other, &["changed-queues"]).await;
    assert!(seen.contains("event: changed-queues\n"), "{seen}");
}

#[tokio::test]
async fn the_jobs_page_follows_cursors_and_finds_ids() {
    let s = server().await;
    let http = common::http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = s.url();
    let jobs: Vec<Value> = (0..60)
        .map(|i| json!({"kind": "k", "queue": "q", "payload": {"i": i}}))
        .collect();
    let r = http
        .post(format!("{base}/v1/jobs/batch"))
        .json(&json!({ "jobs": jobs }))
        .send()
        .await
        .expect("batch");
    assert_eq!(r.status(), 201);
    let (_, _, first) = page(&http, &format!("{base}/ui/jobs?queue=q")).await;
    assert_eq!(first.matches("class=\"id\" href=\"/ui/jobs/").count(), 50);
    let next = first
        .split("href=\"")
        .find_map(|rest| {
            let href = &rest[..rest.find('"')?];
            href.contains("cursor=").then(|| href.replace("&#38;", "&"))
        })
        .expect("a next-page link");
    let (_, _, second) = page(&http, &format!("{base}{next}")).await;
    assert_eq!(second.matches("class=\"id\" href=\"/ui/jobs/").count(), 10);
    assert!(!second.contains("rel=\"next\""), "no page after the last");
    // An id typed into the search goes to the job's page.
    let id = first
        .split("class=\"id\" href=\"/ui/jobs/")
        .nth(1)
        .map(|rest| &rest[..36])
        .expect("an id");
    let r = http
        .get(format!("{base}/ui/jobs?id={id}"))
        .send()
        .await
        .expect("find");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], format!("/ui/jobs/{id}").as_str());
}

#[tokio::test]
async fn assets_are_versioned_and_cached_for_a_year() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    let (_, _, html) = page(&http, &format!("{base}/ui/queues")).await;
    let end = html.find("/app.css\"").expect("a stylesheet link") + "/app.css".len();
    let start = html[..end].rfind("\"").expect("start") + 1;
    let css = &html[start..end];
    assert!(css.ends_with("/app.css"), "{css}");
    let r = http
        .get(format!("{base}{css}"))
        .send()
        .await
        .expect("asset");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/css"));
    let r = http
        .get(format!("{base}/ui/assets/000000000000/app.css"))
        .send()
        .await
        .expect("old version");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let r = http
        .get(format!("{base}/ui/assets/000000000000/nope.js"))
        .send()
        .await
        .expect("missing");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn the_charts_count_jobs_while_no_tab_is_open() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    for _ in 0..3 {
        enqueue(
            &http,
            base,
            json!({"kind": "k", "queue": "q", "payload": {}}),
        )
        .await;
    }
    // Nobody follows the dashboard: its reader reads the log every few seconds instead of
    // live, and the charts still see every job.
    errand_testkit::eventually(
        "the charts to count 3 jobs",
        Duration::from_secs(20),
        || {
            let http = http.clone();
            async move {
                let series = json_of(&http, &format!("{base}/ui/series")).await?;
                let enqueued: u64 = series["enqueued"]
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_u64)
                    .sum();
                (enqueued == 3).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn the_live_stream_says_what_changed() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    let r = http
        .get(format!("{base}/ui/live?topics=nonsense"))
        .send()
        .await
        .expect("bad topic");
    assert_eq!(r.status(), 400);
    let mut stream = http
        .get(format!("{base}/ui/live?topics=queues,dead"))
        .send()
        .await
        .expect("live");
    assert_eq!(stream.status(), 200);
    enqueue(
        &http,
        base,
        json!({"kind": "k", "queue": "q", "payload": {}}),
    )
    .await;
    let seen = read_until(&mut stream, &["changed-queues"]).await;
    assert!(
        seen.contains("event: changed-queues\n"),
        "no changed-queues event in 10 s: {seen}"
    );
    assert!(!seen.contains("changed-dead"), "nothing died: {seen}");
    // A job dies: both topics change; both events are read however the chunks fall.
    dead_jobs(&http, base, "q2", 1).await;
    let seen = read_until(&mut stream, &["changed-queues", "changed-dead"]).await;
    assert!(
        seen.contains("event: changed-queues\n") && seen.contains("event: changed-dead\n"),
        "no changed-queues and changed-dead in 10 s: {seen}"
    );
}

#[tokio::test]
async fn dashboard_routes_are_not_in_the_openapi_document() {
    let s = server().await;
    let doc: Value = common::http_client()
        .get(format!("{}/v1/openapi.json", s.url()))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("JSON");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/"));
    assert!(
        paths.keys().all(|p| !p.starts_with("/ui")),
        "{:?}",
        paths
            .keys()
            .filter(|p| p.starts_with("/ui"))
            .collect::<Vec<_>>()
    );
}

/// Kills `n` jobs of `queue` through the worker protocol; their ids, oldest first.
async fn dead_jobs(http: &reqwest::Client, base: &str, queue: &str, n: usize) -> Vec<String> {
    let jobs: Vec<Value> = (0..n)
        .map(|i| json!({"kind": "k", "queue": queue, "payload": {"i": i}, "max_attempts": 1}))
        .collect();
    let r = http
        .post(format!("{base}/v1/jobs/batch"))
        .json(&json!({ "jobs": jobs }))
        .send()
        .await
        .expect("batch");
    assert_eq!(r.status(), 201);
    let claimed: Value = http
        .post(format!("{base}/v1/queues/{queue}/claim"))
        .json(&json!({"worker": "w", "max": n}))
        .send()
        .await
        .expect("claim")
        .json()
        .await
        .expect("JSON");
    let mut ids = Vec::new();
    for job in claimed["jobs"].as_array().expect("jobs") {
        let id = job["id"].as_str().expect("id").to_string();
        let r = http
            .post(format!("{base}/v1/jobs/{id}/fail"))
            .json(&json!({"lease_token": job["lease_token"], "error": "no", "dead": true}))
            .send()
            .await
            .expect("fail");
        assert_eq!(r.status(), 200);
        ids.push(id);
    }
    assert_eq!(ids.len(), n);
    ids
}

/// The ids of a page's job rows, in order.
fn row_ids(html: &str) -> Vec<String> {
    html.split("class=\"id\" href=\"/ui/jobs/")
        .skip(1)
        .map(|rest| rest[..36].to_string())
        .collect()
}

#[tokio::test]
async fn dead_jobs_of_several_queues_page_newest_first() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    let mut all = dead_jobs(&http, base, "one", 30).await;
    all.extend(dead_jobs(&http, base, "two", 30).await);
    // Newest first: ids are time-ordered UUIDs.
    all.sort();
    all.reverse();
    let (_, _, first) = page(&http, &format!("{base}/ui/dead")).await;
    let mut seen = row_ids(&first);
    assert_eq!(seen.len(), 50);
    let next = first
        .split("href=\"")
        .find_map(|rest| {
            let href = &rest[..rest.find('"')?];
            href.contains("cursor=").then(|| href.replace("&#38;", "&"))
        })
        .expect("a next-page link");
    let (_, _, second) = page(&http, &format!("{base}{next}")).await;
    seen.extend(row_ids(&second));
    assert_eq!(seen, all);
    let (_, _, by_state) = page(&http, &format!("{base}/ui/jobs?state=dead")).await;
    assert_eq!(row_ids(&by_state), all[..50].to_vec());
}

/// Asserts a page of the dashboard answers 200 with its security headers, no inline script
/// or style and no unescaped `<script>alert`; returns its HTML.
async fn safe_page(http: &reqwest::Client, base: &str, path: &str) -> String {
    let (status, headers, html) = page(http, &format!("{base}{path}")).await;
    assert_eq!(status, 200, "{path}: {html}");
    assert_eq!(headers["content-security-policy"], CSP, "{path}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    assert!(
        !html.contains("<script>alert"),
        "{path} shows a script: {html}"
    );
    assert!(!html.contains(" style="), "{path} has an inline style");
    for tag in html.split("<script").skip(1) {
        assert!(
            tag.trim_start().starts_with("src=\"/ui/assets/"),
            "{path}: <script{tag}"
        );
    }
    html
}

/// POSTs `path` as the page would (with `token`) or as a forger would (without); returns
/// the status.
async fn post_ui(http: &reqwest::Client, base: &str, path: &str, token: Option<&str>) -> u16 {
    let mut req = http.post(format!("{base}{path}"));
    if let Some(t) = token {
        req = req.header("x-errand-csrf", t);
    }
    req.send().await.expect("POST").status().as_u16()
}

#[tokio::test]
async fn the_nodes_page_shows_nodes_and_workers_seen() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    enqueue(
        &http,
        base,
        json!({"kind": "k", "queue": "q", "payload": {}}),
    )
    .await;
    let r = http
        .post(format!("{base}/v1/queues/q/claim"))
        .json(&json!({"worker": "<script>alert(1)</script>w", "max": 1, "kinds": ["k"]}))
        .send()
        .await
        .expect("claim");
    assert_eq!(r.status(), 200);
    let nodes: Value = http
        .get(format!("{base}/v1/nodes"))
        .send()
        .await
        .expect("nodes")
        .json()
        .await
        .expect("JSON");
    let node = nodes["this_node"].as_str().expect("node id");
    let html = safe_page(&http, base, "/ui/nodes").await;
    assert!(html.contains(&format!("data-node=\"{node}\"")), "{html}");
    assert!(html.contains("state-alive"), "{html}");
    assert!(html.contains("(this node)"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;w"),
        "{html}"
    );
    assert!(html.contains("<time datetime="), "{html}");
    // In the navigation of every page.
    assert!(safe_page(&http, base, "/ui/queues")
        .await
        .contains("href=\"/ui/nodes\""));
}

#[tokio::test]
async fn the_workflows_pages_draw_steps_in_layers_and_cancel_with_the_token() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    let job = |step: &str| json!({"kind": "step", "queue": "wf", "payload": {"step": step}});
    let r = http
        .post(format!("{base}/v1/workflows"))
        .json(&json!({
            "name": "<script>alert(1)</script>",
            "input": {"x": "<script>alert(2)</script>"},
            "steps": [
                {"name": "fetch-data", "job": job("a")},
                {"name": "<script>alert(3)</script>", "job": job("b"), "depends_on": ["fetch-data"]},
                {"name": "publish", "job": job("c"), "depends_on": ["<script>alert(3)</script>"]},
            ]
        }))
        .send()
        .await
        .expect("start");
    assert_eq!(r.status(), 201);
    let wf: Value = r.json().await.expect("JSON");
    let id = wf["id"].as_str().expect("id").to_string();
    let list = safe_page(&http, base, "/ui/workflows").await;
    assert!(
        list.contains(&format!("href=\"/ui/workflows/{id}\"")),
        "{list}"
    );
    assert!(
        list.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{list}"
    );
    let filtered = safe_page(&http, base, "/ui/workflows?state=succeeded&limit=5").await;
    assert!(!filtered.contains(&id), "{filtered}");
    let paged = safe_page(&http, base, "/ui/workflows?state=running&limit=1").await;
    assert!(paged.contains(&id), "{paged}");
    let html = safe_page(&http, base, &format!("/ui/workflows/{id}")).await;
    // Three layers, parents first, each step a box with its state and its job.
    let at = |needle: &str| {
        html.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {html}"))
    };
    assert!(at("layer 0") < at("data-step=\"fetch-data\""));
    assert!(at("data-step=\"fetch-data\"") < at("layer 1"));
    assert!(at("layer 1") < at("data-step=\"&#60;script&#62;alert(3)&#60;/script&#62;\""));
    assert!(at("layer 2") < at("data-step=\"publish\""));
    assert!(html.contains("state-available"), "{html}");
    assert!(html.contains("state-blocked"), "{html}");
    let step_job = wf["steps"][0]["job_id"].as_str().expect("job id");
    assert!(
        html.contains(&format!("href=\"/ui/jobs/{step_job}\"")),
        "{html}"
    );
    // Cancel: refused without the token, done with it.
    let cancel = format!("/ui/workflows/{id}/cancel");
    assert_eq!(post_ui(&http, base, &cancel, None).await, 403);
    let state = |http: reqwest::Client, id: String| async move {
        let w: Value = http
            .get(format!("{base}/v1/workflows/{id}"))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        w["state"].as_str().expect("state").to_string()
    };
    assert_eq!(state(http.clone(), id.clone()).await, "running");
    assert_eq!(
        post_ui(&http, base, &cancel, Some(&token(&html))).await,
        200
    );
    assert_ne!(state(http.clone(), id.clone()).await, "running");
}

#[tokio::test]
async fn a_failed_workflow_is_retried_from_its_page_with_the_token() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    let r = http
        .post(format!("{base}/v1/workflows"))
        .json(&json!({"steps": [{"name": "only", "job": {"kind": "step", "queue": "wf-retry", "payload": {}}}]}))
        .send()
        .await
        .expect("start");
    assert_eq!(r.status(), 201);
    let wf: Value = r.json().await.expect("JSON");
    let id = wf["id"].as_str().expect("id").to_string();
    let claimed: Value = http
        .post(format!("{base}/v1/queues/wf-retry/claim"))
        .json(&json!({"worker": "w", "max": 1}))
        .send()
        .await
        .expect("claim")
        .json()
        .await
        .expect("JSON");
    let job = &claimed["jobs"][0];
    let r = http
        .post(format!(
            "{base}/v1/jobs/{}/fail",
            job["id"].as_str().expect("id")
        ))
        .json(&json!({"lease_token": job["lease_token"], "error": "boom", "dead": true}))
        .send()
        .await
        .expect("fail");
    assert_eq!(r.status(), 200);
    let state = || async {
        let w: Value = http
            .get(format!("{base}/v1/workflows/{id}"))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        w["state"].as_str().expect("state").to_string()
    };
    assert_eq!(state().await, "failed");
    let html = safe_page(&http, base, &format!("/ui/workflows/{id}")).await;
    let retry = format!("/ui/workflows/{id}/retry");
    assert!(html.contains(&format!("hx-post=\"{retry}\"")), "{html}");
    assert_eq!(post_ui(&http, base, &retry, None).await, 403);
    assert_eq!(state().await, "failed");
    assert_eq!(post_ui(&http, base, &retry, Some(&token(&html))).await, 200);
    assert_eq!(state().await, "running");
}

#[tokio::test]
async fn the_batches_pages_count_jobs_and_close_with_the_token() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    let r = http
        .post(format!("{base}/v1/batches"))
        .json(&json!({
            "open": true,
            "jobs": [
                {"kind": "part", "queue": "b", "payload": {}},
                {"kind": "part", "queue": "b", "payload": {}},
            ],
            "on_complete": {"kind": "<script>alert(1)</script>", "queue": "b"},
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("JSON");
    let id = created["batch"]["id"].as_str().expect("id").to_string();
    let list = safe_page(&http, base, "/ui/batches").await;
    assert!(
        list.contains(&format!("href=\"/ui/batches/{id}\"")),
        "{list}"
    );
    assert!(
        list.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{list}"
    );
    let closed = safe_page(&http, base, "/ui/batches?state=closed&limit=5").await;
    assert!(!closed.contains(&id), "{closed}");
    let html = safe_page(&http, base, &format!("/ui/batches/{id}")).await;
    assert!(html.contains("<dt>Jobs</dt><dd>2</dd>"), "{html}");
    assert!(html.contains("<dt>Pending</dt><dd>2</dd>"), "{html}");
    assert!(html.contains("state-open"), "{html}");
    let close = format!("/ui/batches/{id}/close");
    let batch_state = |http: reqwest::Client, id: String| async move {
        let b: Value = http
            .get(format!("{base}/v1/batches/{id}"))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        b["state"].as_str().expect("state").to_string()
    };
    assert_eq!(post_ui(&http, base, &close, None).await, 403);
    assert_eq!(batch_state(http.clone(), id.clone()).await, "open");
    assert_eq!(post_ui(&http, base, &close, Some(&token(&html))).await, 200);
    assert_eq!(batch_state(http.clone(), id.clone()).await, "closed");
}

#[tokio::test]
async fn the_definitions_page_runs_stops_and_shows_instance_logs() {
    let jobs = common::jobs_dir::JobsDir::new();
    jobs.add("nightly", "", "run.sh", "#!/bin/bash\necho ran\n");
    jobs.add(
        "looper",
        "mode = \"continuous\"\n",
        "run.sh",
        "#!/bin/bash\necho '<script>alert(1)</script>'\nexec sleep 60\n",
    );
    let (s, _data) = common::server_with(&["--jobs-dir", &jobs.path_str()]).await;
    let http = common::http_client();
    let base = s.url();
    let client = s.client().expect("client");
    common::jobs_dir::loaded(&client, "looper").await;
    common::jobs_dir::loaded(&client, "nightly").await;
    // The instance is up and has said its line.
    let instance =
        errand_testkit::eventually("the instance logged", Duration::from_secs(20), || async {
            let d = client.definition("looper").await.ok()?;
            let i = d.instances.first()?.instance.to_string();
            let page = json_of(
                &http,
                &format!("{base}/v1/definitions/looper/instances/{i}/logs"),
            )
            .await?;
            (!page["lines"].as_array()?.is_empty()).then_some(i)
        })
        .await;
    let html = safe_page(&http, base, "/ui/definitions").await;
    assert!(html.contains("data-definition=\"nightly\""), "{html}");
    assert!(html.contains("data-definition=\"looper\""), "{html}");
    let logs_href = format!("/ui/definitions/looper/instances/{instance}/logs");
    assert!(html.contains(&logs_href), "{html}");
    let log = safe_page(&http, base, &logs_href).await;
    assert!(
        log.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{log}"
    );
    let token = token(&html);
    // Run now: refused without the token, a job with it.
    assert_eq!(
        post_ui(&http, base, "/ui/definitions/nightly/run", None).await,
        403
    );
    let r = http
        .post(format!("{base}/ui/definitions/nightly/run"))
        .header("x-errand-csrf", &token)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .expect("body")
        .contains("nightly runs now: job "));
    // Stop: refused without the token, stopped with it.
    assert_eq!(
        post_ui(&http, base, "/ui/definitions/looper/stop", None).await,
        403
    );
    assert!(!client.definition("looper").await.expect("def").stopped);
    assert_eq!(
        post_ui(&http, base, "/ui/definitions/looper/stop", Some(&token)).await,
        200
    );
    assert!(client.definition("looper").await.expect("def").stopped);
}

#[tokio::test]
async fn the_sessions_page_shows_a_blocked_session_and_unblocks_it_with_the_token() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    let key = "<script>alert(1)</script>";
    enqueue(
        &http,
        base,
        json!({"kind": "k", "queue": "sq", "payload": {}, "session_key": key, "max_attempts": 1}),
    )
    .await;
    enqueue(
        &http,
        base,
        json!({"kind": "k", "queue": "sq", "payload": {}, "session_key": "calm-session"}),
    )
    .await;
    // The first job of the session dies: the session blocks behind it.
    let claimed: Value = http
        .post(format!("{base}/v1/queues/sq/claim"))
        .json(&json!({"worker": "w", "max": 1}))
        .send()
        .await
        .expect("claim")
        .json()
        .await
        .expect("JSON");
    let job = &claimed["jobs"][0];
    let r = http
        .post(format!(
            "{base}/v1/jobs/{}/fail",
            job["id"].as_str().expect("id")
        ))
        .json(&json!({"lease_token": job["lease_token"], "error": "boom", "dead": true}))
        .send()
        .await
        .expect("fail");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let html = safe_page(&http, base, "/ui/sessions").await;
    assert!(html.contains("data-session=\"calm-session\""), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );
    let blocked = safe_page(&http, base, "/ui/sessions?blocked=true").await;
    assert!(!blocked.contains("calm-session"), "{blocked}");
    assert!(blocked.contains("dead job</a>"), "{blocked}");
    // The key rides in the query (a key such as `..` would not survive as a path segment).
    let unblock = "/ui/sessions/unblock?key=%3Cscript%3Ealert%281%29%3C%2Fscript%3E";
    assert!(blocked.contains(unblock), "{blocked}");
    let is_blocked = |http: reqwest::Client| async move {
        let s: Value = http
            .get(format!(
                "{base}/v1/sessions/%3Cscript%3Ealert(1)%3C%2Fscript%3E"
            ))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        !s["blocked_by"].is_null()
    };
    assert!(is_blocked(http.clone()).await);
    assert_eq!(post_ui(&http, base, unblock, None).await, 403);
    assert!(is_blocked(http.clone()).await);
    assert_eq!(
        post_ui(&http, base, unblock, Some(&token(&html))).await,
        200
    );
    assert!(!is_blocked(http.clone()).await);
}

#[tokio::test]
async fn the_subscriptions_pages_show_deliveries_and_pause_with_the_token() {
    let (s, _data) = common::server_with(&[
        "--webhook-secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "--allow-private-callbacks",
    ])
    .await;
    let http = common::http_client();
    let base = s.url();
    let r = http
        .post(format!("{base}/v1/subscriptions"))
        .json(&json!({
            "url": "http://127.0.0.1:9/hook",
            "events": ["job.enqueued"],
            "queue": "subs",
            "description": "<script>alert(1)</script>",
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 201);
    let sub: Value = r.json().await.expect("JSON");
    let id = sub["id"].as_str().expect("id").to_string();
    let job = enqueue(
        &http,
        base,
        json!({"kind": "k", "queue": "subs", "payload": {}}),
    )
    .await;
    let list = safe_page(&http, base, "/ui/subscriptions").await;
    assert!(
        list.contains(&format!("href=\"/ui/subscriptions/{id}\"")),
        "{list}"
    );
    assert!(
        list.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{list}"
    );
    assert!(list.contains("queue subs"), "{list}");
    let html = errand_testkit::eventually("a delivery shown", Duration::from_secs(10), || async {
        let html = safe_page(&http, base, &format!("/ui/subscriptions/{id}")).await;
        html.contains("data-delivery=").then_some(html)
    })
    .await;
    assert!(html.contains("job.enqueued"), "{html}");
    assert!(
        html.contains(&format!("/ui/jobs/{}", job["id"].as_str().expect("id"))),
        "{html}"
    );
    let sub_state = |http: reqwest::Client, id: String| async move {
        let s: Value = http
            .get(format!("{base}/v1/subscriptions/{id}"))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        s["state"].as_str().expect("state").to_string()
    };
    let pause = format!("/ui/subscriptions/{id}/pause");
    assert_eq!(post_ui(&http, base, &pause, None).await, 403);
    assert_eq!(sub_state(http.clone(), id.clone()).await, "active");
    assert_eq!(post_ui(&http, base, &pause, Some(&token(&html))).await, 200);
    assert_eq!(sub_state(http.clone(), id.clone()).await, "paused");
    let resume = format!("/ui/subscriptions/{id}/resume");
    assert_eq!(
        post_ui(&http, base, &resume, Some(&token(&html))).await,
        200
    );
    assert_eq!(sub_state(http.clone(), id.clone()).await, "active");
}

/// The state of job `id` through the API, or `None` once it is gone.
async fn job_state(http: &reqwest::Client, base: &str, id: &str) -> Option<String> {
    let r = http
        .get(format!("{base}/v1/jobs/{id}"))
        .send()
        .await
        .expect("job");
    if r.status() == 404 {
        return None;
    }
    let job: Value = r.json().await.expect("JSON");
    Some(job["state"].as_str().expect("state").to_string())
}

/// A dashboard action as its button sends it: POST with the CSRF header and a form body.
async fn act(http: &reqwest::Client, url: String, form: &str) -> reqwest::Response {
    http.post(url)
        .header("x-errand-csrf", "1")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .expect("POST")
}

#[tokio::test]
async fn dead_jobs_are_purged_and_requeued_one_ticked_or_by_queue() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    let purge = dead_jobs(&http, base, "p", 4).await;
    let requeue = dead_jobs(&http, base, "r", 2).await;
    let bystander = dead_jobs(&http, base, "other", 1).await;
    // One, from its row's button.
    let r = act(&http, format!("{base}/ui/dead/purge?id={}", purge[0]), "").await;
    assert_eq!(r.status(), 200);
    assert_eq!(job_state(&http, base, &purge[0]).await, None);
    assert_eq!(
        job_state(&http, base, &purge[1]).await.as_deref(),
        Some("dead")
    );
    // Ticked: the boxes' ids in the form body.
    let form = format!("id={}&id={}", purge[1], purge[2]);
    let r = act(&http, format!("{base}/ui/dead/purge"), &form).await;
    assert_eq!(r.status(), 200);
    assert_eq!(job_state(&http, base, &purge[1]).await, None);
    assert_eq!(job_state(&http, base, &purge[2]).await, None);
    assert_eq!(
        job_state(&http, base, &purge[3]).await.as_deref(),
        Some("dead")
    );
    // A whole queue: every dead job of it, none of another queue.
    let r = act(
        &http,
        format!("{base}/ui/dead/purge?scope=queue&queue=p"),
        "",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(job_state(&http, base, &purge[3]).await, None);
    let r = act(
        &http,
        format!("{base}/ui/dead/requeue?scope=queue&queue=r"),
        "",
    )
    .await;
    assert_eq!(r.status(), 200);
    for id in &requeue {
        assert_eq!(
            job_state(&http, base, id).await.as_deref(),
            Some("available"),
            "{id}"
        );
    }
    assert_eq!(
        job_state(&http, base, &bystander[0]).await.as_deref(),
        Some("dead")
    );
}

#[tokio::test]
async fn a_job_is_cancelled_from_its_page() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    let job = enqueue(
        &http,
        base,
        json!({"kind": "k", "queue": "q", "payload": {}}),
    )
    .await;
    let id = job["id"].as_str().expect("id");
    let r = act(&http, format!("{base}/ui/jobs/{id}/cancel"), "").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("body");
    assert!(html.contains("cancelled"), "{html}");
    assert_eq!(
        job_state(&http, base, id).await.as_deref(),
        Some("cancelled")
    );
}

#[tokio::test]
async fn no_dashboard_get_changes_anything() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    let dead = dead_jobs(&http, base, "d", 1).await;
    let job = enqueue(
        &http,
        base,
        json!({"kind": "k", "queue": "q", "payload": {}}),
    )
    .await;
    let id = job["id"].as_str().expect("id");
    let dead_id = dead[0].clone();
    let snapshot = || {
        let http = http.clone();
        let dead_id = dead_id.clone();
        async move {
            let queues: Value = http
                .get(format!("{base}/v1/queues"))
                .send()
                .await
                .expect("queues")
                .json()
                .await
                .expect("JSON");
            // What an action could change: pauses and counts (not the ages, which grow).
            let queues: Vec<(Value, Value, Value)> = queues["queues"]
                .as_array()
                .expect("queues")
                .iter()
                .map(|q| (q["name"].clone(), q["paused"].clone(), q["counts"].clone()))
                .collect();
            (
                queues,
                job_state(&http, base, id).await,
                job_state(&http, base, &dead_id).await,
            )
        }
    };
    let was = snapshot().await;
    // Every route of the dashboard, actions included, by GET (and HEAD).
    let paths = [
        "/".to_string(),
        "/ui".into(),
        "/ui/overview/live".into(),
        "/ui/series".into(),
        "/ui/queues".into(),
        "/ui/queues/rows".into(),
        "/ui/queues/pause?queue=q".into(),
        "/ui/queues/resume?queue=q".into(),
        "/ui/jobs".into(),
        "/ui/jobs/rows".into(),
        format!("/ui/jobs/{id}"),
        format!("/ui/jobs/{id}/live"),
        format!("/ui/jobs/{id}/cancel"),
        format!("/ui/jobs/{}/retry", dead[0]),
        "/ui/dead".into(),
        "/ui/dead/rows".into(),
        "/ui/dead/requeue?scope=queue&queue=d".into(),
        "/ui/dead/purge?scope=queue&queue=d".into(),
        format!("/ui/dead/purge?id={}", dead[0]),
        "/ui/schedules".into(),
        "/ui/schedules/rows".into(),
        "/ui/schedules/pause?name=s".into(),
        "/ui/schedules/trigger?name=s".into(),
        "/ui/schedules/backfill?name=s".into(),
    ];
    for path in &paths {
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let r = http
                .request(method.clone(), format!("{base}{path}"))
                .header("x-errand-csrf", "1")
                .send()
                .await
                .expect("request");
            assert!(r.status().as_u16() < 500, "{method} {path}: {}", r.status());
        }
    }
    assert_eq!(snapshot().await, was, "a GET changed something");
}

#[tokio::test]
async fn the_schedules_page_escapes_what_schedules_hold() {
    let s = server().await;
    let http = common::http_client();
    let base = s.url();
    let r = http
        .post(format!("{base}/v1/schedules"))
        .json(&json!({
            "name": "nightly",
            "cron": "0 3 * * *",
            "job": {"kind": "<b>kind</b>", "queue": "q", "payload": {"x": "<script>alert(1)</script>"}}
        }))
        .send()
        .await
        .expect("schedule");
    assert!(
        r.status().is_success(),
        "{}: {}",
        r.status(),
        r.text().await.unwrap_or_default()
    );
    for path in ["/ui/schedules", "/ui/schedules/rows"] {
        let (status, _, html) = page(&http, &format!("{base}{path}")).await;
        assert_eq!(status, 200);
        assert!(html.contains("nightly"), "{path}: {html}");
        assert!(!html.contains("<b>kind</b>"), "{path} shows markup: {html}");
        assert!(
            html.contains("&#60;b&#62;kind&#60;/b&#62;"),
            "{path}: {html}"
        );
    }
}
