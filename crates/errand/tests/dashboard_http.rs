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
    let http = reqwest::Client::new();
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
    let http = reqwest::Client::new();
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
    let http = reqwest::Client::new();
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
    let http = reqwest::Client::builder()
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
    let http = reqwest::Client::new();
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
async fn the_live_stream_says_what_changed() {
    let s = server().await;
    let http = reqwest::Client::new();
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
    let doc: Value = reqwest::get(format!("{}/v1/openapi.json", s.url()))
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
    let http = reqwest::Client::new();
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
    let http = reqwest::Client::new();
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
    let http = reqwest::Client::new();
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
    let http = reqwest::Client::new();
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
    let http = reqwest::Client::new();
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
