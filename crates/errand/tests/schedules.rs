//! Schedules against a real server: defining, previewing, firing once per slot, catch-up
//! after a restart, and overlap with a job that outlives its interval.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use errand_api::{ClaimRequest, CompleteRequest, JobListQuery};
use errand_client::Client;
use errand_core::Job;
use errand_testkit::{eventually, ServerProcess};
use serde_json::json;

use common::{bin, server, Raw};

async fn jobs_of(client: &Client, queue: &str) -> Vec<Job> {
    let mut jobs = client
        .jobs(&JobListQuery {
            queue: Some(queue.into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("list")
        .jobs;
    jobs.sort_by_key(|j| j.slot);
    jobs
}

fn every_second(name: &str, queue: &str, extra: serde_json::Value) -> String {
    let mut body = json!({
        "name": name,
        "every": "1s",
        "job": {"kind": "tick", "queue": queue, "payload": {"from": name}},
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    body.to_string()
}

/// The times of a `GET /v1/schedules/{name}/next` answer.
fn fire_times(next: &serde_json::Value) -> Vec<jiff::Timestamp> {
    next["next"]
        .as_array()
        .expect("next")
        .iter()
        .map(|t| t.as_str().expect("time").parse().expect("timestamp"))
        .collect()
}

#[tokio::test]
async fn define_preview_fire_trigger_and_delete() {
    let s = server().await;
    let raw = Raw::new(&s);
    let client = s.client().expect("client");
    let (status, defaults) = raw
        .post(
            "/v1/schedules",
            r#"{"name":"defaults","cron":"@daily","job":{"kind":"k"}}"#,
        )
        .await;
    assert_eq!(status, 201, "{defaults}");
    assert_eq!(defaults["overlap"], "skip");
    assert_eq!(defaults["catch_up"], "once");
    assert_eq!(defaults["timezone"], "UTC");
    // Nobody works these jobs, so runs never end: `allow` lets every slot fire anyway.
    let ticker = every_second("ticker", "ticks", json!({"overlap": "allow"}));
    let (status, created) = raw.post("/v1/schedules", &ticker).await;
    assert_eq!(status, 201, "{created}");
    let (status, again) = raw.post("/v1/schedules", &ticker).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("already_exists"))
    );
    let (_, next) = raw.get("/v1/schedules/ticker/next?count=3").await;
    let times = fire_times(&next);
    assert_eq!(times.len(), 3);
    assert_eq!((times[1] - times[0]).get_seconds(), 1);
    // Fires on its own, one job per slot, each naming its schedule and slot.
    let fired = eventually("three slots fired", Duration::from_secs(10), || async {
        let jobs = jobs_of(&client, "ticks").await;
        (jobs.len() >= 3).then_some(jobs)
    })
    .await;
    let slots: BTreeSet<_> = fired.iter().map(|j| j.slot.expect("slot")).collect();
    assert_eq!(slots.len(), fired.len(), "one job per slot");
    assert!(fired
        .iter()
        .all(|j| j.schedule.as_deref() == Some("ticker")));
    assert!(fired.iter().all(|j| j.payload == json!({"from": "ticker"})));
    let (status, manual) = raw.post("/v1/schedules/ticker/trigger", "").await;
    assert_eq!(status, 201);
    assert!(manual.get("slot").is_none(), "an on-demand run has no slot");
    let (_, shown) = raw.get("/v1/schedules/ticker").await;
    assert!(shown["last_fire_at"].is_string());
    assert!(shown["next_fire_at"].is_string());
    assert!(shown["last_job_state"].is_string());
    let (status, _) = raw.send("DELETE", "/v1/schedules/ticker", None).await;
    assert_eq!(status, 200);
    let (status, _) = raw.get("/v1/schedules/ticker").await;
    assert_eq!(status, 404);
}

/// A paused schedule's next fire times are still to come, though its `next_fire_at` stays
/// at the slot the pause held back.
#[tokio::test]
async fn a_paused_schedules_next_times_are_still_to_come() {
    let s = server().await;
    let raw = Raw::new(&s);
    let (status, _) = raw
        .post("/v1/schedules", &every_second("held", "held", json!({})))
        .await;
    assert_eq!(status, 201);
    let (status, paused) = raw.post("/v1/schedules/held/pause", "").await;
    assert_eq!(status, 200, "{paused}");
    let held: jiff::Timestamp = paused["next_fire_at"]
        .as_str()
        .expect("next_fire_at")
        .parse()
        .expect("timestamp");
    // Once that slot has passed (this machine's clock is the store's)...
    eventually("the held slot passes", Duration::from_secs(10), || async {
        (jiff::Timestamp::now() > held + jiff::SignedDuration::from_secs(1)).then_some(())
    })
    .await;
    let before = jiff::Timestamp::now();
    let (status, next) = raw.get("/v1/schedules/held/next?count=3").await;
    assert_eq!(status, 200, "{next}");
    let times = fire_times(&next);
    assert_eq!(times.len(), 3);
    assert!(
        times[0] > before,
        "{times:?} listed at {before} (held {held})"
    );
    let (_, shown) = raw.get("/v1/schedules/held").await;
    assert_eq!(shown["next_fire_at"], paused["next_fire_at"], "{shown}");
}

#[tokio::test]
async fn bad_schedules_say_exactly_what_is_wrong() {
    let s = server().await;
    let raw = Raw::new(&s);
    let cases = [
        (
            r#"{"name":"a","cron":"61 * * * *","job":{"kind":"k"}}"#,
            "cron",
        ),
        (
            r#"{"name":"a","cron":"0 3 * * *","timezone":"Mars/Olympus","job":{"kind":"k"}}"#,
            "timezone",
        ),
        (
            r#"{"name":"a","job":{"kind":"k"}}"#,
            "exactly one of cron and every",
        ),
        (
            r#"{"name":"a","cron":"@daily","every":"1s","job":{"kind":"k"}}"#,
            "exactly one of cron and every",
        ),
        (
            r#"{"name":"a","every":"10ms","job":{"kind":"k"}}"#,
            "at least 1s",
        ),
        (r#"{"name":"a b","every":"1s","job":{"kind":"k"}}"#, "name"),
        (r#"{"name":"a","every":"1s","job":{"kind":""}}"#, "job.kind"),
        (
            r#"{"name":"a","every":"1s","job":{"kind":"k"},"overlap":"sometimes"}"#,
            "overlap",
        ),
        (
            r#"{"name":"a","every":"1s","job":{"kind":"k"},"catch_up_window":0}"#,
            "catch_up_window",
        ),
    ];
    for (body, word) in cases {
        let (status, json) = raw.post("/v1/schedules", body).await;
        let message = json["error"]["message"].as_str().unwrap_or("");
        assert_eq!(status, 400, "{body}: {json}");
        assert!(
            message.contains(word),
            "{body}: {message:?} should mention {word:?}"
        );
    }
    let (status, json) = raw
        .send(
            "PUT",
            "/v1/schedules/other",
            Some(every_second("a", "q", json!({})).into_bytes()),
        )
        .await;
    assert_eq!(status, 400, "{json}");
    let (status, _) = raw.get("/v1/schedules/a/next?count=0").await;
    assert_eq!(status, 400);
    let (_, list) = raw.get("/v1/schedules").await;
    assert_eq!(
        list["schedules"].as_array().expect("list").len(),
        0,
        "nothing was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_across_missed_slots_follows_each_catch_up_policy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = ServerProcess::start_in(&bin(), dir.path(), &[])
        .await
        .expect("start");
    let raw = Raw::new(&node);
    for policy in ["skip", "once", "all"] {
        let body = every_second(
            policy,
            policy,
            json!({"catch_up": policy, "overlap": "allow"}),
        );
        assert_eq!(raw.post("/v1/schedules", &body).await.0, 201);
    }
    let client = node.client().expect("client");
    for q in ["skip", "once", "all"] {
        eventually("a first slot fired", Duration::from_secs(10), || async {
            (!jobs_of(&client, q).await.is_empty()).then_some(())
        })
        .await;
    }
    // Slots after this (with a second's margin for jobs written ahead of their slot) and
    // more than the 5 s grace before the restart began are surely missed: the first pass
    // after the restart comes later still.
    let killed_at = jiff::Timestamp::now();
    node.kill9().await;
    // Down long enough that slots are missed, not merely late (more than the 5 s grace).
    tokio::time::sleep(Duration::from_secs(9)).await;
    let restart_began = jiff::Timestamp::now();
    node.restart().await.expect("restart");
    let surely_missed = |jobs: &[Job]| {
        jobs.iter()
            .filter(|j| {
                let slot = j.slot.expect("slot");
                slot > killed_at + jiff::SignedDuration::from_secs(1)
                    && slot < restart_began - jiff::SignedDuration::from_secs(5)
            })
            .count()
    };
    let client = node.client().expect("client");
    // A catch-up job is one enqueued more than the grace after its slot. (A slot just
    // inside the grace when the pass looked may be enqueued a moment past it, so this
    // only counts catch-ups, and the policies are told apart by the surely missed slots.)
    let missed_jobs = |jobs: &[Job]| {
        jobs.iter()
            .filter(|j| {
                j.created_at.duration_since(j.slot.expect("slot"))
                    > jiff::SignedDuration::from_secs(5)
            })
            .count()
    };
    // The pass after restart fires the catch-up at once; give it a moment to land.
    let all = eventually(
        "catch-up fired for `all`",
        Duration::from_secs(10),
        || async {
            let jobs = jobs_of(&client, "all").await;
            (missed_jobs(&jobs) >= 3).then_some(jobs)
        },
    )
    .await;
    let once = eventually(
        "catch-up fired for `once`",
        Duration::from_secs(10),
        || async {
            let jobs = jobs_of(&client, "once").await;
            (missed_jobs(&jobs) >= 1).then_some(jobs)
        },
    )
    .await;
    // By now the `skip` schedule has had its pass too (all three run in the same passes).
    let skip = jobs_of(&client, "skip").await;
    assert!(
        surely_missed(&all) >= 2,
        "the outage surely missed slots (`all` ran them): the test proves nothing"
    );
    assert_eq!(surely_missed(&skip), 0, "skip drops missed slots");
    assert!(
        surely_missed(&once) <= 1,
        "once runs one late job for all missed slots"
    );
    assert!(missed_jobs(&all) >= 3, "all runs every missed slot");
    for jobs in [&skip, &once, &all] {
        let slots: BTreeSet<_> = jobs.iter().map(|j| j.slot).collect();
        assert_eq!(slots.len(), jobs.len(), "never two jobs for one slot");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_skip_and_buffer_one_with_a_job_that_outlives_its_interval() {
    let s = server().await;
    let raw = Raw::new(&s);
    let client = s.client().expect("client");
    for policy in ["skip", "buffer_one"] {
        let body = every_second(policy, policy, json!({"overlap": policy}));
        assert_eq!(raw.post("/v1/schedules", &body).await.0, 201);
    }
    let mut held = Vec::new();
    for q in ["skip", "buffer_one"] {
        let claim = ClaimRequest {
            wait_ms: Some(10_000),
            lease_ms: Some(60_000),
            ..Default::default()
        };
        held.push((
            q,
            client.claim(q, &claim).await.expect("claim").jobs.remove(0),
        ));
    }
    // The held runs outlive three intervals; nothing new may start meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (q, _) in &held {
        let jobs = jobs_of(&client, q).await;
        assert_eq!(jobs.len(), 1, "{q}: no new run while the previous one runs");
    }
    let ended_at = jiff::Timestamp::now();
    for (_, job) in &held {
        client
            .complete(
                job.id,
                &CompleteRequest {
                    lease_token: job.lease_token,
                    result: None,
                    report: None,
                    session_state: None,
                },
            )
            .await
            .expect("complete");
    }
    let buffered = eventually(
        "buffer_one runs once more at once",
        Duration::from_secs(5),
        || async {
            let jobs = jobs_of(&client, "buffer_one").await;
            (jobs.len() >= 2).then_some(jobs)
        },
    )
    .await;
    let extra = &buffered[1];
    assert!(
        extra.slot.expect("slot") < ended_at,
        "the buffered run stands for a slot that came while the first run was going"
    );
    assert!(
        extra.created_at >= ended_at,
        "and it was enqueued only once that run had ended"
    );
    eventually(
        "skip fires again on the next slot",
        Duration::from_secs(5),
        || async { (jobs_of(&client, "skip").await.len() >= 2).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_declared_in_errand_toml_are_created_once_and_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("errand.toml");
    std::fs::write(
        &config,
        r#"
[[schedules]]
name = "report"
cron = "0 3 * * *"
timezone = "Europe/Paris"
catch_up = "skip"

[schedules.job]
kind = "report.build"
queue = "reports"
payload = { month = "current" }
"#,
    )
    .expect("write config");
    let config_arg = config.to_str().expect("path");
    let data = dir.path().join("data");
    let mut node = ServerProcess::start_in(&bin(), &data, &["--config", config_arg])
        .await
        .expect("start");
    let first = node
        .client()
        .expect("client")
        .schedule("report")
        .await
        .expect("declared");
    assert_eq!(first.spec.timezone, "Europe/Paris");
    assert_eq!(first.spec.job.queue.as_str(), "reports");
    node.restart().await.expect("restart");
    let client = node.client().expect("client");
    let again = client.schedule("report").await.expect("declared");
    assert_eq!(
        again.created_at, first.created_at,
        "declaring again changes nothing"
    );
    assert_eq!(again.updated_at, first.updated_at);
    assert_eq!(client.schedules().await.expect("list").schedules.len(), 1);
    drop(node);

    std::fs::write(
        &config,
        "[[schedules]]\nname = \"broken\"\ncron = \"99 * * * *\"\n[schedules.job]\nkind = \"k\"\n",
    )
    .expect("write config");
    let out = tokio::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config_arg,
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .await
        .expect("run");
    assert!(
        !out.status.success(),
        "a bad declared schedule stops the start"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken") && err.contains("cron"), "{err}");
}

#[tokio::test]
async fn cli_schedule_commands() {
    let s = server().await;
    let run = |args: Vec<&str>| {
        let url = s.url().to_string();
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        async move {
            let out = tokio::process::Command::new(bin())
                .arg("--server")
                .arg(url)
                .args(&args)
                .output()
                .await
                .expect("run");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    run(vec![
        "schedules",
        "add",
        "nightly",
        "--kind",
        "cleanup",
        "--cron",
        "0 3 * * *",
        "--timezone",
        "America/New_York",
        "--overlap",
        "replace",
    ])
    .await;
    let listed: serde_json::Value =
        serde_json::from_str(&run(vec!["--json", "schedules", "list"]).await).expect("json");
    assert_eq!(listed[0]["name"], "nightly");
    assert_eq!(listed[0]["overlap"], "replace");
    let next: serde_json::Value = serde_json::from_str(
        &run(vec![
            "--json",
            "schedules",
            "next",
            "nightly",
            "--count",
            "2",
        ])
        .await,
    )
    .expect("json");
    assert_eq!(next["next"].as_array().expect("next").len(), 2);
    let table = run(vec!["schedules", "list"]).await;
    assert!(table.contains("0 3 * * * (America/New_York)"), "{table}");
    run(vec!["schedules", "pause", "nightly"]).await;
    run(vec!["schedules", "trigger", "nightly"]).await;
    run(vec!["schedules", "rm", "nightly"]).await;
    assert!(run(vec!["--json", "schedules", "list"])
        .await
        .contains("[]"));
}

/// The start of the hour `hours_ago` hours before now, as RFC 3339.
fn hour_ago(hours_ago: i64) -> jiff::Timestamp {
    let now = jiff::Timestamp::now().as_second();
    jiff::Timestamp::from_second(now - now.rem_euclid(3600) - hours_ago * 3600).expect("time")
}

#[tokio::test]
async fn backfill_runs_each_past_slot_once() {
    let s = server().await;
    let raw = Raw::new(&s);
    let client = s.client().expect("client");
    let body = r#"{"name":"hourly","cron":"0 * * * *","job":{"kind":"k","queue":"back"}}"#;
    assert_eq!(raw.post("/v1/schedules", body).await.0, 201);
    let (from, to) = (hour_ago(48), hour_ago(43));
    let range = json!({"from": from, "to": to}).to_string();
    let (status, first) = raw.post("/v1/schedules/hourly/backfill", &range).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["inserted"], 5, "five hours: the start is exclusive");
    let (_, again) = raw.post("/v1/schedules/hourly/backfill", &range).await;
    assert_eq!(
        again["inserted"], 0,
        "each slot runs once, however often it is backfilled"
    );
    let jobs = jobs_of(&client, "back").await;
    let slots: Vec<jiff::Timestamp> = jobs.iter().map(|j| j.slot.expect("slot")).collect();
    assert_eq!(slots.first(), Some(&hour_ago(47)));
    assert_eq!(slots.last(), Some(&to));
    let (status, _) = raw
        .post(
            "/v1/schedules/hourly/backfill",
            &json!({"from": to, "to": from}).to_string(),
        )
        .await;
    assert_eq!(status, 400);
    let (status, json) = raw
        .post(
            "/v1/schedules/hourly/backfill",
            &json!({"from": hour_ago(1), "to": hour_ago(-2)}).to_string(),
        )
        .await;
    assert_eq!(status, 400, "{json}");
    assert!(json["error"]["message"]
        .as_str()
        .expect("msg")
        .contains("future"));
    // Older than the slot ledger keeps: whether those slots ran is no longer known.
    let (status, json) = raw
        .post(
            "/v1/schedules/hourly/backfill",
            &json!({"from": hour_ago(8 * 24), "to": hour_ago(7 * 24 - 2)}).to_string(),
        )
        .await;
    assert_eq!(status, 400, "{json}");
    let message = json["error"]["message"].as_str().expect("msg");
    assert!(message.contains("at most 167 hours"), "{message}");
    let minutely = r#"{"name":"minutely","cron":"* * * * *","job":{"kind":"k","queue":"back"}}"#;
    assert_eq!(raw.post("/v1/schedules", minutely).await.0, 201);
    let (status, json) = raw
        .post(
            "/v1/schedules/minutely/backfill",
            &json!({"from": hour_ago(72), "to": hour_ago(48)}).to_string(),
        )
        .await;
    assert_eq!(status, 400, "{json}");
    assert!(json["error"]["message"]
        .as_str()
        .expect("msg")
        .contains("1000"));
}

/// A manual run follows the overlap policy and counts as the schedule's run: under `skip`
/// a second run is refused while one goes on (and the slots that follow see the manual
/// run as the last job); under `replace` the running job is cancelled; `allow` starts
/// another.
#[tokio::test]
async fn manual_trigger_follows_the_overlap_policy() {
    let s = server().await;
    let raw = Raw::new(&s);
    let client = s.client().expect("client");
    // Yearly: no slot fires during the test, so only manual runs are in play.
    for policy in ["skip", "replace", "allow"] {
        let body = json!({"name": policy, "cron": "0 0 1 1 *", "overlap": policy,
            "job": {"kind": "k", "queue": policy}});
        assert_eq!(raw.post("/v1/schedules", &body.to_string()).await.0, 201);
    }
    let (status, first) = raw.post("/v1/schedules/skip/trigger", "").await;
    assert_eq!(status, 201, "{first}");
    let (_, shown) = raw.get("/v1/schedules/skip").await;
    assert_eq!(
        shown["last_job_id"], first["id"],
        "the manual run is the last job"
    );
    let (status, refused) = raw.post("/v1/schedules/skip/trigger", "").await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{refused}"
    );
    assert!(refused["error"]["message"]
        .as_str()
        .expect("message")
        .contains("run in progress"));
    let held = client
        .claim("skip", &ClaimRequest::default())
        .await
        .expect("claim")
        .jobs
        .remove(0);
    assert_eq!(raw.post("/v1/schedules/skip/trigger", "").await.0, 409);
    client
        .complete(
            held.id,
            &CompleteRequest {
                lease_token: held.lease_token,
                result: None,
                report: None,
                session_state: None,
            },
        )
        .await
        .expect("complete");
    assert_eq!(
        raw.post("/v1/schedules/skip/trigger", "").await.0,
        201,
        "the run ended: a new one may start"
    );

    let (_, old) = raw.post("/v1/schedules/replace/trigger", "").await;
    let running = client
        .claim("replace", &ClaimRequest::default())
        .await
        .expect("claim")
        .jobs
        .remove(0);
    assert_eq!(running.id.to_string(), old["id"].as_str().expect("id"));
    let (status, new) = raw.post("/v1/schedules/replace/trigger", "").await;
    assert_eq!(status, 201, "{new}");
    let (_, old_now) = raw
        .get(&format!("/v1/jobs/{}", old["id"].as_str().expect("id")))
        .await;
    assert_eq!(
        old_now["state"], "cancelled",
        "replace cancels the running job"
    );
    let (_, shown) = raw.get("/v1/schedules/replace").await;
    assert_eq!(shown["last_job_id"], new["id"]);

    assert_eq!(raw.post("/v1/schedules/allow/trigger", "").await.0, 201);
    assert_eq!(raw.post("/v1/schedules/allow/trigger", "").await.0, 201);
    assert_eq!(jobs_of(&client, "allow").await.len(), 2);
}
