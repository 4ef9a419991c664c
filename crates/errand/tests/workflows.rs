//! Issue 12 over HTTP, through a real server process on SQLite: a diamond workflow run by
//! remote workers (results reach the join in its context), a step run by a script
//! definition (its context in `ERRAND_CONTEXT`), bad specs refused with nothing stored, a
//! schedule that starts a workflow template, a batch with `on_complete`, continuations via
//! `after`, `[[workflows]]` in errand.toml, and `errand workflows show`.

mod common;

use std::time::Duration;

use errand_api::{ClaimRequest, ClaimedJobView, CompleteRequest, EnqueueRequest, FailRequest};
use errand_client::Client;
use errand_core::JobState;
use errand_testkit::eventually;
use serde_json::{json, Value};

use common::jobs_dir::{loaded, JobsDir};
use common::{server, server_with, Raw};

/// Claims one job of `queue`, waiting for it.
async fn claim_one(client: &Client, queue: &str) -> ClaimedJobView {
    eventually(
        &format!("a job in queue {queue}"),
        Duration::from_secs(15),
        || async {
            client
                .claim(
                    queue,
                    &ClaimRequest {
                        worker: Some("test-worker".into()),
                        max: Some(1),
                        wait_ms: Some(1000),
                        ..ClaimRequest::default()
                    },
                )
                .await
                .ok()?
                .jobs
                .pop()
        },
    )
    .await
}

/// Nothing is claimable in `queue` right now.
async fn nothing_in(client: &Client, queue: &str) {
    let got = client
        .claim(
            queue,
            &ClaimRequest {
                worker: Some("test-worker".into()),
                max: Some(10),
                ..ClaimRequest::default()
            },
        )
        .await
        .expect("claim");
    assert!(got.jobs.is_empty(), "nothing should be ready: {got:?}");
}

async fn complete(client: &Client, job: &ClaimedJobView, result: Value) {
    client
        .complete(
            job.id,
            &CompleteRequest {
                lease_token: job.lease_token,
                result: Some(result),
                report: None,
                session_state: None,
            },
        )
        .await
        .expect("complete");
}

async fn fail_dead(client: &Client, job: &ClaimedJobView, error: &str) {
    client
        .fail(
            job.id,
            &FailRequest {
                lease_token: job.lease_token,
                error: Some(error.into()),
                retry_in_ms: None,
                dead: true,
                report: None,
            },
        )
        .await
        .expect("fail");
}

/// Polls a workflow until `pred` holds.
async fn workflow_until(raw: &Raw, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    eventually(what, Duration::from_secs(15), || async {
        let (status, wf) = raw.get(&format!("/v1/workflows/{id}")).await;
        (status == 200 && pred(&wf)).then_some(wf)
    })
    .await
}

fn step<'a>(wf: &'a Value, name: &str) -> &'a Value {
    wf["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {wf}"))
}

fn diamond(queue: &str) -> Value {
    let job = |kind: &str| json!({"kind": kind, "queue": queue});
    json!({
        "name": "diamond",
        "input": {"order": 42},
        "steps": [
            {"name": "join", "job": job("join"), "depends_on": ["left", "right"]},
            {"name": "start", "job": job("start")},
            {"name": "left", "job": job("left"), "depends_on": ["start"]},
            {"name": "right", "job": job("right"), "depends_on": ["start"]},
        ]
    })
}

#[tokio::test]
async fn a_diamond_runs_by_remote_workers_and_the_join_gets_both_results() {
    let s = server().await;
    let client = s.client().unwrap();
    let raw = Raw::new(&s);
    // Job fields a step leaves out take its queue's defaults, as an enqueue's do.
    let (status, q) = raw
        .send(
            "PATCH",
            "/v1/queues/wf",
            Some(br#"{"max_attempts": 7}"#.to_vec()),
        )
        .await;
    assert_eq!(status, 200, "{q}");
    let (status, wf) = raw.post("/v1/workflows", &diamond("wf").to_string()).await;
    assert_eq!(status, 201, "{wf}");
    let id = wf["id"].as_str().expect("id").to_string();
    assert_eq!(wf["state"], "running");
    assert_eq!(step(&wf, "start")["state"], "available");
    assert_eq!(step(&wf, "join")["state"], "blocked");
    assert_eq!(step(&wf, "join")["max_attempts"], 7, "{wf}");

    // Only the root is ready.
    let start = claim_one(&client, "wf").await;
    assert_eq!(start.kind.as_str(), "start");
    assert_eq!(start.step.as_deref(), Some("start"));
    assert_eq!(
        start.context.as_ref().expect("context")["input"],
        json!({"order": 42})
    );
    nothing_in(&client, "wf").await;
    complete(&client, &start, json!({"from": "start"})).await;

    // Both branches become ready with the root's result.
    let a = claim_one(&client, "wf").await;
    let b = claim_one(&client, "wf").await;
    let mut kinds = vec![a.kind.to_string(), b.kind.to_string()];
    kinds.sort();
    assert_eq!(kinds, vec!["left", "right"]);
    assert_eq!(
        a.context.as_ref().expect("context")["parents"]["start"],
        json!({"from": "start"})
    );
    nothing_in(&client, "wf").await;
    complete(&client, &a, json!({"from": a.kind.to_string()})).await;
    nothing_in(&client, "wf").await;
    complete(&client, &b, json!({"from": b.kind.to_string()})).await;

    // The join gets both parents' results by step name, and the workflow input.
    let join = claim_one(&client, "wf").await;
    assert_eq!(join.kind.as_str(), "join");
    let ctx = join.context.clone().expect("join context");
    assert_eq!(ctx["input"], json!({"order": 42}));
    assert_eq!(ctx["parents"]["left"], json!({"from": "left"}));
    assert_eq!(ctx["parents"]["right"], json!({"from": "right"}));
    assert_eq!(ctx["workflow"]["id"], json!(id));
    assert_eq!(ctx["workflow"]["step"], "join");
    complete(&client, &join, json!({"done": true})).await;

    let wf = workflow_until(&raw, &id, "the workflow to succeed", |w| {
        w["state"] == "succeeded"
    })
    .await;
    for name in ["start", "left", "right", "join"] {
        assert_eq!(step(&wf, name)["state"], "succeeded", "{wf}");
    }
    assert_eq!(step(&wf, "join")["result"], json!({"done": true}));
    let (_, list) = raw.get("/v1/workflows?state=succeeded").await;
    assert_eq!(list["workflows"][0]["id"], json!(id), "{list}");
    assert_eq!(list["workflows"][0]["steps_succeeded"], 4);

    // The terminal drawing names every step with its state, parents above children.
    let out = tokio::process::Command::new(common::bin())
        .args(["--server", s.url(), "workflows", "show", &id])
        .output()
        .await
        .expect("errand workflows show");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let listed = tokio::process::Command::new(common::bin())
        .args([
            "--server",
            s.url(),
            "--json",
            "workflows",
            "list",
            "--state",
            "succeeded",
        ])
        .output()
        .await
        .expect("errand workflows list");
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(listed["workflows"][0]["id"], json!(id), "{listed}");
    for name in ["start", "left", "right", "join"] {
        assert!(text.contains(name), "{text}");
    }
    assert!(text.contains("succeeded"), "{text}");
    assert!(text.contains("<- left, right"), "{text}");
    let at = |needle: &str| text.find(needle).unwrap_or(usize::MAX);
    assert!(at("[✓] start") < at("[✓] left"), "{text}");
    assert!(at("[✓] left") < at("[✓] join"), "{text}");
}

#[tokio::test]
async fn a_failed_step_fails_the_workflow_and_show_names_it_and_retry_resumes() {
    let s = server().await;
    let client = s.client().unwrap();
    let raw = Raw::new(&s);
    let body = json!({
        "steps": [
            {"name": "pay", "job": {"kind": "pay", "queue": "saga"},
             "compensate": {"kind": "refund", "queue": "saga"}},
            {"name": "ship", "job": {"kind": "ship", "queue": "saga"}, "depends_on": ["pay"]},
        ]
    });
    let (status, wf) = raw.post("/v1/workflows", &body.to_string()).await;
    assert_eq!(status, 201, "{wf}");
    let id = wf["id"].as_str().expect("id").to_string();
    let pay = claim_one(&client, "saga").await;
    complete(&client, &pay, json!({"charge": 7})).await;
    let ship = claim_one(&client, "saga").await;
    fail_dead(&client, &ship, "no truck").await;
    // The paid step is undone with its result.
    let refund = claim_one(&client, "saga").await;
    assert_eq!(refund.kind.as_str(), "refund");
    let ctx = refund.context.clone().expect("compensation context");
    assert_eq!(ctx["compensates"], "pay");
    assert_eq!(ctx["result"], json!({"charge": 7}));
    complete(&client, &refund, json!(null)).await;
    let wf = workflow_until(&raw, &id, "compensated", |w| w["state"] == "compensated").await;
    assert_eq!(wf["failed_step"], "ship");
    assert!(
        wf["error"].as_str().unwrap_or("").contains("no truck"),
        "{wf}"
    );

    let out = tokio::process::Command::new(common::bin())
        .args(["--server", s.url(), "workflows", "show", &id])
        .output()
        .await
        .expect("errand workflows show");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.contains("failed step: ship"), "{text}");
    assert!(text.contains("no truck"), "{text}");
    assert!(text.contains("compensation succeeded"), "{text}");

    // A running workflow cannot be retried; an ended one resumes.
    let (status, retried) = raw.post(&format!("/v1/workflows/{id}/retry"), "").await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["state"], "running");
    let (status, again) = raw.post(&format!("/v1/workflows/{id}/retry"), "").await;
    assert_eq!(status, 409, "{again}");
}

#[tokio::test]
async fn bad_specs_are_refused_naming_the_problem_and_nothing_is_stored() {
    let s = server().await;
    let raw = Raw::new(&s);
    let job = json!({"kind": "k", "queue": "bad"});
    let cases = [
        (
            json!({"steps": [
                {"name": "a", "job": job, "depends_on": ["b"]},
                {"name": "b", "job": job, "depends_on": ["a"]}]}),
            "cycle",
        ),
        (
            json!({"steps": [{"name": "a", "job": job, "depends_on": ["ghost"]}]}),
            "ghost",
        ),
        (
            json!({"steps": [{"name": "a", "job": job}, {"name": "a", "job": job}]}),
            "declared twice",
        ),
        (json!({"steps": []}), "steps"),
        (json!({"input": 1}), "steps"),
        (
            json!({"template": "t", "steps": [{"name": "a", "job": job}]}),
            "not both",
        ),
        (
            json!({"steps": [{"name": "a", "job": {"kind": "k", "priority": 5000}}]}),
            "steps[0].job.priority",
        ),
    ];
    for (body, needle) in cases {
        let (status, answer) = raw.post("/v1/workflows", &body.to_string()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(needle),
            "{body}: `{message}` should name {needle}"
        );
    }
    let (status, answer) = raw.post("/v1/workflows", r#"{"template": "nope"}"#).await;
    assert_eq!(status, 404, "{answer}");
    let (_, list) = raw.get("/v1/workflows").await;
    assert_eq!(list["workflows"], json!([]), "{list}");
    let (_, jobs) = raw.get("/v1/jobs?queue=bad").await;
    assert_eq!(jobs["jobs"], json!([]), "{jobs}");
    let (status, answer) = raw
        .send(
            "PUT",
            "/v1/workflow-templates/loop",
            Some(
                json!({"steps": [{"name": "a", "job": job, "depends_on": ["a"]}]})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let (status, _) = raw.get("/v1/workflow-templates/loop").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_step_run_by_a_script_definition_gets_its_context() {
    let jobs = JobsDir::new();
    jobs.add(
        "ctx",
        "timeout = \"30s\"\n",
        "run.sh",
        r#"#!/bin/bash
echo "{\"result\": {\"context\": $ERRAND_CONTEXT}}" > "$ERRAND_CONTROL"
"#,
    );
    let (s, _data) = server_with(&["--jobs-dir", &jobs.path_str()]).await;
    let client = s.client().unwrap();
    let raw = Raw::new(&s);
    loaded(&client, "ctx").await;
    let body = json!({
        "input": {"city": "Oslo"},
        "steps": [
            {"name": "first", "job": {"kind": "first", "queue": "remote"}},
            {"name": "script", "job": {"kind": "ctx"}, "depends_on": ["first"]},
        ]
    });
    let (status, wf) = raw.post("/v1/workflows", &body.to_string()).await;
    assert_eq!(status, 201, "{wf}");
    let id = wf["id"].as_str().expect("id").to_string();
    let first = claim_one(&client, "remote").await;
    complete(&client, &first, json!({"temp": 3})).await;
    let wf = workflow_until(&raw, &id, "the script step to end", |w| {
        w["state"] != "running"
    })
    .await;
    assert_eq!(wf["state"], "succeeded", "{wf}");
    let got = &step(&wf, "script")["result"]["context"];
    assert_eq!(got["input"], json!({"city": "Oslo"}), "{wf}");
    assert_eq!(got["parents"]["first"], json!({"temp": 3}), "{wf}");
    assert_eq!(got["workflow"]["step"], "script", "{wf}");
}

#[tokio::test]
async fn a_schedule_starts_a_workflow_template_declared_in_errand_toml() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("errand.toml");
    std::fs::write(
        &config,
        r#"
[[workflows]]
name = "nightly-etl"
on_failure = "cancel"

[[workflows.steps]]
name = "extract"
job = { kind = "extract", queue = "etl" }
deadline = "10m"

[[workflows.steps]]
name = "load"
job = { kind = "load", queue = "etl" }
depends_on = ["extract"]
"#,
    )
    .expect("config");
    let config = config.to_str().expect("utf-8").to_string();
    let (s, _data) = server_with(&["--config", &config]).await;
    let client = s.client().unwrap();
    let raw = Raw::new(&s);
    let (status, t) = raw.get("/v1/workflow-templates/nightly-etl").await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["spec"]["on_failure"], "cancel");
    assert_eq!(t["spec"]["steps"][0]["deadline_ms"], 600_000);

    let schedule = json!({
        "name": "etl-nightly",
        "cron": "0 3 * * *",
        "workflow": {"template": "nightly-etl", "input": {"day": "today"}},
    });
    let (status, sched) = raw.post("/v1/schedules", &schedule.to_string()).await;
    assert_eq!(status, 201, "{sched}");
    assert_eq!(sched["job"]["kind"], "errand.start_workflow");
    let (status, fired) = raw.post("/v1/schedules/etl-nightly/trigger", "").await;
    assert_eq!(status, 201, "{fired}");
    let start_job = fired["id"].as_str().expect("job id").to_string();

    // errand's own worker starts the template; the start job names the workflow.
    let start = eventually("the start job to end", Duration::from_secs(15), || async {
        let (_, j) = raw.get(&format!("/v1/jobs/{start_job}")).await;
        (j["state"] == "succeeded" || j["state"] == "dead").then_some(j)
    })
    .await;
    assert_eq!(start["state"], "succeeded", "{start}");
    let id = start["result"]["workflow_id"]
        .as_str()
        .expect("workflow id")
        .to_string();
    let (_, list) = raw.get("/v1/workflows?template=nightly-etl").await;
    assert_eq!(list["workflows"][0]["id"], json!(id), "{list}");

    let extract = claim_one(&client, "etl").await;
    assert_eq!(
        extract.context.as_ref().expect("context")["input"],
        json!({"day": "today"})
    );
    complete(&client, &extract, json!(1)).await;
    let load = claim_one(&client, "etl").await;
    complete(&client, &load, json!(2)).await;
    let wf = workflow_until(&raw, &id, "the scheduled workflow to succeed", |w| {
        w["state"] == "succeeded"
    })
    .await;
    assert_eq!(wf["template"], "nightly-etl");

    // A missing template fails the start job for good, with the reason.
    let (status, _) = raw
        .post(
            "/v1/schedules",
            &json!({"name": "ghost", "cron": "0 3 * * *", "workflow": {"template": "ghost"}})
                .to_string(),
        )
        .await;
    assert_eq!(status, 201);
    let (_, fired) = raw.post("/v1/schedules/ghost/trigger", "").await;
    let ghost_job = fired["id"].as_str().expect("id").to_string();
    let dead = eventually(
        "the ghost start to die",
        Duration::from_secs(15),
        || async {
            let (_, j) = raw.get(&format!("/v1/jobs/{ghost_job}")).await;
            (j["state"] == "dead").then_some(j)
        },
    )
    .await;
    assert!(
        dead["error"].as_str().unwrap_or("").contains("ghost"),
        "{dead}"
    );
}

#[tokio::test]
async fn a_bad_workflow_in_errand_toml_stops_the_start() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("errand.toml");
    std::fs::write(
        &config,
        r#"
[[workflows]]
name = "loop"

[[workflows.steps]]
name = "a"
job = { kind = "a" }
depends_on = ["b"]

[[workflows.steps]]
name = "b"
job = { kind = "b" }
depends_on = ["a"]
"#,
    )
    .expect("config");
    let out = tokio::process::Command::new(common::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .await
        .expect("run errand serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[[workflows]] `loop`") && err.contains("cycle"),
        "{err}"
    );
}

#[tokio::test]
async fn a_batch_enqueues_on_complete_once_with_counts_and_failed_ids() {
    let s = server().await;
    let client = s.client().unwrap();
    let raw = Raw::new(&s);
    let body = json!({
        "jobs": [{"kind": "part", "queue": "batch"}, {"kind": "part", "queue": "batch"}],
        "on_complete": {"kind": "summary", "queue": "batch-done"},
        "open": true,
    });
    let (status, created) = raw.post("/v1/batches", &body.to_string()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["batch"]["id"].as_str().expect("id").to_string();
    assert_eq!(created["batch"]["state"], "open");
    assert_eq!(created["jobs"].as_array().map(Vec::len), Some(2));
    let (status, added) = raw
        .post(
            &format!("/v1/batches/{id}/jobs"),
            &json!({"jobs": [{"kind": "part", "queue": "batch"}]}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["batch"]["counts"]["total"], 3);

    let mut failed = None;
    for i in 0..3 {
        let job = claim_one(&client, "batch").await;
        assert_eq!(job.batch_id.map(|b| b.to_string()), Some(id.clone()));
        if i == 1 {
            fail_dead(&client, &job, "broken part").await;
            failed = Some(job.id);
        } else {
            complete(&client, &job, json!(i)).await;
        }
    }
    // Open: every job ended, but nothing completes until it is closed.
    nothing_in(&client, "batch-done").await;
    let (status, closed) = raw.post(&format!("/v1/batches/{id}/close"), "").await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["state"], "completed", "{closed}");
    let (status, late) = raw
        .post(
            &format!("/v1/batches/{id}/jobs"),
            &json!({"jobs": [{"kind": "part", "queue": "batch"}]}).to_string(),
        )
        .await;
    assert_eq!(status, 409, "{late}");

    let summary = claim_one(&client, "batch-done").await;
    let ctx = summary.context.clone().expect("completion context");
    assert_eq!(ctx["batch"]["total"], 3, "{ctx}");
    assert_eq!(ctx["batch"]["succeeded"], 2, "{ctx}");
    assert_eq!(ctx["batch"]["dead"], 1, "{ctx}");
    assert_eq!(
        ctx["batch"]["failed"],
        json!([failed.expect("failed").to_string()])
    );
    nothing_in(&client, "batch-done").await;
    let (_, got) = raw.get(&format!("/v1/batches/{id}")).await;
    assert_eq!(got["on_complete_job_id"], json!(summary.id.to_string()));
    assert_eq!(got["counts"]["pending"], 0);
    let out = tokio::process::Command::new(common::bin())
        .args(["--server", s.url(), "batches", "show", &id])
        .output()
        .await
        .expect("errand batches show");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        text.contains("completed") && text.contains(&summary.id.to_string()),
        "{text}"
    );

    // A closed batch completes by itself when its last job ends.
    let body = json!({
        "jobs": [{"kind": "part", "queue": "batch2"}],
        "on_complete": {"kind": "summary", "queue": "batch2-done"},
    });
    let (_, created) = raw.post("/v1/batches", &body.to_string()).await;
    assert_eq!(created["batch"]["state"], "closed", "{created}");
    let job = claim_one(&client, "batch2").await;
    nothing_in(&client, "batch2-done").await;
    complete(&client, &job, json!(null)).await;
    let summary = claim_one(&client, "batch2-done").await;
    assert_eq!(summary.context.expect("context")["batch"]["succeeded"], 1);
}

#[tokio::test]
async fn a_continuation_waits_blocked_for_its_parents() {
    let s = server().await;
    let client = s.client().unwrap();
    let raw = Raw::new(&s);
    let parent = client
        .enqueue(&EnqueueRequest {
            queue: Some("chain".into()),
            ..EnqueueRequest::new("parent")
        })
        .await
        .expect("parent");
    let child = client
        .enqueue(&EnqueueRequest {
            queue: Some("chain".into()),
            after: vec![parent.id],
            ..EnqueueRequest::new("child")
        })
        .await
        .expect("child");
    assert_eq!(child.state, JobState::Blocked);
    assert_eq!(child.flow.after, vec![parent.id]);
    assert_eq!(child.flow.waiting_for, 1);
    // Any end releases this one: it runs even when the parent dies.
    let any = client
        .enqueue(&EnqueueRequest {
            queue: Some("chain-any".into()),
            after: vec![parent.id],
            after_any_end: true,
            ..EnqueueRequest::new("cleanup")
        })
        .await
        .expect("any-end child");

    let p = claim_one(&client, "chain").await;
    assert_eq!(p.id, parent.id);
    nothing_in(&client, "chain").await;
    fail_dead(&client, &p, "parent broke").await;
    // The success-only child is cancelled; the any-end one runs with the parent's end.
    let doomed = common::jobs_dir::finished(&client, child.id, Duration::from_secs(15)).await;
    assert_eq!(doomed.state, JobState::Cancelled, "{doomed:?}");
    let cleanup = claim_one(&client, "chain-any").await;
    assert_eq!(cleanup.id, any.id);
    let ctx = cleanup.context.clone().expect("continuation context");
    assert_eq!(
        ctx["parents"][parent.id.to_string()]["state"],
        "dead",
        "{ctx}"
    );
    complete(&client, &cleanup, json!(null)).await;

    // A continuation of a job that succeeded runs with its result.
    let a = client
        .enqueue(&EnqueueRequest {
            queue: Some("chain2".into()),
            ..EnqueueRequest::new("a")
        })
        .await
        .expect("a");
    let b = client
        .enqueue(&EnqueueRequest {
            queue: Some("chain2".into()),
            after: vec![a.id],
            ..EnqueueRequest::new("b")
        })
        .await
        .expect("b");
    let got = claim_one(&client, "chain2").await;
    assert_eq!(got.id, a.id);
    complete(&client, &got, json!({"n": 1})).await;
    let got = claim_one(&client, "chain2").await;
    assert_eq!(got.id, b.id);
    assert_eq!(
        got.context.expect("context")["parents"][a.id.to_string()]["result"],
        json!({"n": 1})
    );

    // An unknown parent stores nothing: 404.
    let (status, answer) = raw
        .post(
            "/v1/jobs",
            &json!({"kind": "x", "after": [errand_core::JobId::new()]}).to_string(),
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    // Via the CLI too.
    let out = tokio::process::Command::new(common::bin())
        .args([
            "--server",
            s.url(),
            "--json",
            "enqueue",
            "late",
            "--queue",
            "chain3",
        ])
        .args(["--after", &a.id.to_string(), "--after", &b.id.to_string()])
        .output()
        .await
        .expect("errand enqueue --after");
    assert!(out.status.success(), "{out:?}");
    let job: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(job["state"], "blocked", "{job}");
    assert_eq!(job["waiting_for"], 1, "{job}");
}

#[tokio::test]
async fn a_claim_parked_on_a_childs_queue_wakes_when_the_last_parent_completes() {
    let s = server().await;
    let client = s.client().unwrap();
    let raw = Raw::new(&s);
    // The child waits in a queue of its own: only the flow's wake-up can reach its claim
    // before the claim's periodic re-check (1 s).
    let (status, _) = raw
        .send(
            "PATCH",
            "/v1/queues/wake-child",
            Some(br#"{"priority": 0}"#.to_vec()),
        )
        .await;
    assert_eq!(status, 200);
    let parent = client
        .enqueue(&EnqueueRequest {
            queue: Some("wake-parent".into()),
            ..EnqueueRequest::new("parent")
        })
        .await
        .expect("parent");
    let child = client
        .enqueue(&EnqueueRequest {
            queue: Some("wake-child".into()),
            after: vec![parent.id],
            ..EnqueueRequest::new("child")
        })
        .await
        .expect("child");
    let p = claim_one(&client, "wake-parent").await;
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move {
            let got = client
                .claim(
                    "wake-child",
                    &ClaimRequest {
                        worker: Some("parked".into()),
                        max: Some(1),
                        wait_ms: Some(10_000),
                        ..ClaimRequest::default()
                    },
                )
                .await
                .expect("claim");
            (got, std::time::Instant::now())
        })
    };
    eventually("the claim to park", Duration::from_secs(10), || async {
        let q = client.queue("wake-child").await.ok()?;
        (q.waiting_claims == 1).then_some(())
    })
    .await;
    let t0 = std::time::Instant::now();
    complete(&client, &p, json!(null)).await;
    let (got, at) = waiting.await.expect("claim task");
    assert_eq!(got.jobs.first().map(|j| j.id), Some(child.id), "{got:?}");
    let took = at.duration_since(t0);
    assert!(
        took < Duration::from_millis(500),
        "the child was claimed {took:?} after its parent completed"
    );
}

/// A server whose workflow supervisor asks the store every `interval`; the directories
/// live as long as the server is used.
async fn server_supervising_every(
    interval: &str,
) -> (errand_testkit::ServerProcess, [tempfile::TempDir; 2]) {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("errand.toml");
    std::fs::write(
        &config,
        format!("workflow_supervise_interval = \"{interval}\"\n"),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8").to_string();
    let (s, data) = server_with(&["--config", &config]).await;
    (s, [dir, data])
}

#[tokio::test]
async fn the_supervisor_retries_a_stuck_step_once_then_fails_the_workflow() {
    let (s, _dirs) = server_supervising_every("50ms").await;
    let raw = Raw::new(&s);
    // Nobody works queue `stuck`: the step passes its deadline twice.
    let body = json!({"steps": [{"name": "slow", "job": {"kind": "slow", "queue": "stuck"},
                                 "deadline": "300ms", "on_deadline": "retry"}]});
    let (status, wf) = raw.post("/v1/workflows", &body.to_string()).await;
    assert_eq!(status, 201, "{wf}");
    let id = wf["id"].as_str().expect("id").to_string();
    let wf = workflow_until(&raw, &id, "the workflow to fail", |w| {
        w["state"] == "failed"
    })
    .await;
    let slow = step(&wf, "slow");
    assert_eq!(slow["state"], "dead", "{wf}");
    assert!(
        slow["error"].as_str().unwrap_or("").contains("deadline"),
        "{wf}"
    );
    let actions: Vec<&str> = slow["supervised"]
        .as_array()
        .expect("supervised")
        .iter()
        .map(|a| a["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions, vec!["retry", "fail"], "{wf}");
    assert_eq!(wf["failed_step"], "slow");
}

/// The supervisor sleeps until the deadlines this node knows of, not until its interval
/// (an hour here): a step's deadline is acted on when the workflow starts with it ready,
/// and when the store readied it as its parent completed.
#[tokio::test]
async fn the_supervisor_acts_at_a_deadline_not_at_its_interval() {
    let (s, _dirs) = server_supervising_every("1h").await;
    let client = s.client().unwrap();
    let raw = Raw::new(&s);
    let start = |body: Value| {
        let raw = &raw;
        async move {
            let (status, wf) = raw.post("/v1/workflows", &body.to_string()).await;
            assert_eq!(status, 201, "{wf}");
            wf["id"].as_str().expect("id").to_string()
        }
    };
    // Nobody works queue `unworked`: each `late` step passes its deadline. One at a time,
    // so that neither's pass finds the other's.
    let late = json!({"name": "late", "job": {"kind": "late", "queue": "unworked"},
                      "deadline": "300ms", "on_deadline": "fail"});
    let mut after_parent = late.clone();
    after_parent["depends_on"] = json!(["first"]);
    let readied = start(json!({"steps": [
        {"name": "first", "job": {"kind": "first", "queue": "deadline-first"}},
        after_parent]}))
    .await;
    let first = claim_one(&client, "deadline-first").await;
    complete(&client, &first, json!(null)).await;
    failed_by_its_deadline(&raw, &readied).await;
    let at_start = start(json!({"steps": [late]})).await;
    failed_by_its_deadline(&raw, &at_start).await;
}

async fn failed_by_its_deadline(raw: &Raw, id: &str) {
    let wf = workflow_until(raw, id, "the late step's workflow to fail", |w| {
        w["state"] == "failed"
    })
    .await;
    let late = step(&wf, "late");
    assert_eq!(late["state"], "dead", "{wf}");
    assert_eq!(late["supervised"][0]["action"], "fail", "{wf}");
}

#[tokio::test]
async fn a_completed_batch_posts_its_callback_signed_once() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rx = common::receiver::Receiver::answering(200).await;
    let (s, _data) = server_with(&["--webhook-secret", SECRET, "--allow-private-callbacks"]).await;
    let client = s.client().unwrap();
    let raw = Raw::new(&s);
    let body = json!({
        "jobs": [{"kind": "part", "queue": "cb-batch"}],
        "callback_url": rx.url("/batch-done"),
    });
    let (status, created) = raw.post("/v1/batches", &body.to_string()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["batch"]["id"].as_str().expect("id").to_string();
    let job = claim_one(&client, "cb-batch").await;
    complete(&client, &job, json!(null)).await;
    let got = eventually("the batch callback", Duration::from_secs(15), || async {
        let got = rx.received();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert!(common::receiver::verifies(SECRET, &got[0]), "{:?}", got[0]);
    let body = got[0].json();
    assert_eq!(body["type"], "batch.completed", "{body}");
    assert_eq!(body["data"]["batch"]["id"], json!(id), "{body}");
    assert_eq!(body["data"]["batch"]["counts"]["succeeded"], 1, "{body}");
    assert_eq!(rx.received().len(), 1);
}

#[tokio::test]
async fn a_thousand_step_fan_out_joins_with_every_result() {
    let s = server().await;
    let client = s.client().unwrap();
    let raw = Raw::new(&s);
    let n = 1000;
    let mut steps = vec![json!({"name": "root", "job": {"kind": "root", "queue": "fan"}})];
    for i in 0..n {
        steps.push(
            json!({"name": format!("m{i}"), "job": {"kind": "m", "queue": "fan"},
                          "depends_on": ["root"]}),
        );
    }
    let parents: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    steps.push(
        json!({"name": "join", "job": {"kind": "join", "queue": "fan-in"},
                      "depends_on": parents}),
    );
    let (status, wf) = raw
        .post("/v1/workflows", &json!({"steps": steps}).to_string())
        .await;
    assert_eq!(status, 201, "{wf}");
    let id = wf["id"].as_str().expect("id").to_string();
    let root = claim_one(&client, "fan").await;
    complete(&client, &root, json!("r")).await;
    let mut done = 0;
    while done < n {
        let got = client
            .claim(
                "fan",
                &ClaimRequest {
                    worker: Some("fan".into()),
                    max: Some(1000),
                    wait_ms: Some(1000),
                    ..ClaimRequest::default()
                },
            )
            .await
            .expect("claim")
            .jobs;
        assert!(
            !got.is_empty(),
            "{done} of {n} middle steps done, none ready"
        );
        let completions = got
            .iter()
            .map(|j| errand_api::SettleCompletion {
                id: j.id,
                lease_token: j.lease_token,
                result: Some(json!(j.step.clone())),
                report: None,
                session_state: None,
            })
            .collect();
        client
            .settle(&errand_api::SettleRequest {
                completions,
                failures: vec![],
            })
            .await
            .expect("settle");
        done += got.len();
    }
    let join = claim_one(&client, "fan-in").await;
    let ctx = join.context.clone().expect("context");
    let got = ctx["parents"].as_object().expect("parents");
    assert_eq!(got.len(), n, "the join sees every parent");
    assert_eq!(got["m999"], json!("m999"));
    complete(&client, &join, json!(null)).await;
    workflow_until(&raw, &id, "the fan-in to succeed", |w| {
        w["state"] == "succeeded"
    })
    .await;
}
