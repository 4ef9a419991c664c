//! Workflows and batches across real server processes (issue 12): three nodes on one
//! PostgreSQL schema racing to complete the steps of diamond workflows, a node killed with
//! SIGKILL in the middle of workflows, and a 10,000-job batch on SQLite with exactly one
//! `on_complete`.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use errand_api::{ClaimRequest, ClaimedJobView, SettleCompletion, SettleFailure, SettleRequest};
use errand_client::Client;
use errand_core::JobId;
use errand_testkit::{eventually, PgSchema, ServerProcess};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use common::{pg_node, Raw};

async fn nodes(schema: &PgSchema, n: usize) -> Vec<(ServerProcess, tempfile::TempDir)> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(pg_node(schema).await);
    }
    out
}

fn claim(worker: &str, max: u32, wait_ms: u64, lease_ms: u64) -> ClaimRequest {
    ClaimRequest {
        worker: Some(worker.into()),
        max: Some(max),
        wait_ms: Some(wait_ms),
        lease_ms: Some(lease_ms),
        kinds: vec![],
        ..Default::default()
    }
}

/// Starts a workflow; returns its id.
async fn start(raw: &Raw, body: &Value) -> String {
    let (status, answer) = raw.post("/v1/workflows", &body.to_string()).await;
    assert_eq!(status, 201, "POST /v1/workflows: {answer}");
    answer["id"]
        .as_str()
        .or_else(|| answer["workflow"]["id"].as_str())
        .unwrap_or_else(|| panic!("no workflow id in {answer}"))
        .to_string()
}

async fn workflow(raw: &Raw, id: &str) -> Value {
    let (status, answer) = raw.get(&format!("/v1/workflows/{id}")).await;
    assert_eq!(status, 200, "GET /v1/workflows/{id}: {answer}");
    answer
}

/// A step's job template: noop work in `queue`, its payload naming the workflow (by index)
/// and the step, so a worker knows what it was handed.
fn step_job(queue: &str, wf: usize, step: &str) -> Value {
    json!({"kind": "step", "queue": queue, "payload": {"wf": wf, "step": step}})
}

/// Every `(workflow index, step)` a worker was handed, with the attempt, in claim order.
type Handed = Arc<Mutex<Vec<(usize, String, u32)>>>;

fn key(job: &ClaimedJobView) -> (usize, String) {
    (
        job.payload["wf"].as_u64().expect("wf") as usize,
        job.payload["step"].as_str().expect("step").to_string(),
    )
}

/// Claims from `queues` in turn and completes everything it gets (result: the step's name),
/// recording what it was handed, until `stop` says so.
async fn step_worker(
    client: Client,
    name: String,
    queues: Vec<&'static str>,
    handed: Handed,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let req = claim(&name, 10, 200, 300_000);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for q in &queues {
            let got = client.claim(q, &req).await.expect("claim");
            if got.jobs.is_empty() {
                continue;
            }
            {
                let mut h = handed.lock().await;
                for j in &got.jobs {
                    let (wf, step) = key(j);
                    h.push((wf, step, j.attempt));
                }
            }
            let settle = SettleRequest {
                completions: got
                    .jobs
                    .iter()
                    .map(|j| SettleCompletion {
                        id: j.id,
                        lease_token: j.lease_token,
                        result: Some(json!({"from": j.payload["step"]})),
                        report: None,
                        session_state: None,
                    })
                    .collect(),
                failures: vec![],
            };
            let out = client.settle(&settle).await.expect("settle");
            for (j, r) in got.jobs.iter().zip(&out.results) {
                assert!(r.error.is_none(), "completing {:?}: {:?}", key(j), r.error);
            }
        }
    }
}

/// Waits until every workflow of `ids` reads `succeeded` (on `raw`), or fails naming the
/// first that does not.
async fn all_succeed(raw: &Raw, ids: &[String], within: Duration) -> Vec<Value> {
    eventually("every workflow succeeded", within, || async {
        let mut out = Vec::new();
        for id in ids {
            let w = workflow(raw, id).await;
            if w["state"] != "succeeded" {
                return None;
            }
            out.push(w);
        }
        Some(out)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_race_through_fifty_diamonds_and_each_join_runs_once() {
    let Some(schema) = PgSchema::create("flows_three_nodes_fifty_diamonds").await else {
        return;
    };
    let nodes = nodes(&schema, 3).await;
    let clients: Vec<Client> = nodes
        .iter()
        .map(|(s, _)| s.client().expect("client"))
        .collect();
    let raws: Vec<Raw> = nodes.iter().map(|(s, _)| Raw::new(s)).collect();
    // a -> (b, c) -> d, all in one queue, started on every node.
    let mut ids = Vec::new();
    for i in 0..50 {
        let body = json!({
            "name": format!("diamond-{i}"),
            "input": {"n": i},
            "steps": [
                {"name": "a", "job": step_job("diamond", i, "a")},
                {"name": "b", "job": step_job("diamond", i, "b"), "depends_on": ["a"]},
                {"name": "c", "job": step_job("diamond", i, "c"), "depends_on": ["a"]},
                {"name": "d", "job": step_job("diamond", i, "d"), "depends_on": ["b", "c"]},
            ]
        });
        ids.push(start(&raws[i % 3], &body).await);
    }
    // Two workers per node; b and c of one diamond end on different nodes at about the same
    // moment, and only the second end may release d.
    let handed: Handed = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            tokio::spawn(step_worker(
                clients[w % 3].clone(),
                format!("w{w}"),
                vec!["diamond"],
                handed.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let done = all_succeed(&raws[1], &ids, Duration::from_secs(120)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let handed = handed.lock().await;
    let mut times: HashMap<(usize, String), usize> = HashMap::new();
    for (wf, step, attempt) in handed.iter() {
        assert_eq!(*attempt, 1, "{wf}/{step} was handed out again");
        *times.entry((*wf, step.clone())).or_default() += 1;
    }
    assert_eq!(times.len(), 200, "every step of every diamond ran");
    for ((wf, step), n) in &times {
        assert_eq!(*n, 1, "diamond {wf} step {step} ran {n} times");
    }
    // Each join got both parents' results, on whichever node it is read.
    for (i, w) in done.iter().enumerate() {
        let steps = w["steps"].as_array().expect("steps");
        assert_eq!(steps.len(), 4);
        for s in steps {
            assert_eq!(s["state"], "succeeded", "{w}");
            assert_eq!(s["attempt"], 1, "{w}");
        }
        let join = steps.iter().find(|s| s["name"] == "d").expect("join");
        let (status, job) = raws[i % 3]
            .get(&format!(
                "/v1/jobs/{}",
                join["job_id"].as_str().expect("job id")
            ))
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            job["context"]["parents"],
            json!({"b": {"from": "b"}, "c": {"from": "c"}}),
            "{job}"
        );
        assert_eq!(job["context"]["input"], json!({"n": i}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_workflow_leaves_its_step_to_the_others_and_nothing_else_runs_twice() {
    let Some(schema) = PgSchema::create("flows_node_killed_mid_workflow").await else {
        return;
    };
    let mut nodes = nodes(&schema, 3).await;
    let clients: Vec<Client> = nodes
        .iter()
        .map(|(s, _)| s.client().expect("client"))
        .collect();
    let raws: Vec<Raw> = nodes.iter().map(|(s, _)| Raw::new(s)).collect();
    // 20 chains first -> middle -> last, each step in a queue of its own.
    let mut ids = Vec::new();
    for i in 0..20 {
        let body = json!({
            "steps": [
                {"name": "first", "job": step_job("kill-first", i, "first")},
                {"name": "middle", "job": step_job("kill-middle", i, "middle"), "depends_on": ["first"]},
                {"name": "last", "job": step_job("kill-last", i, "last"), "depends_on": ["middle"]},
            ]
        });
        ids.push(start(&raws[i % 3], &body).await);
    }
    // The third node's worker takes the middle steps of 5 workflows with a 2 s lease, then
    // the node dies with them (kill -9) before it reports anything. For that, the first
    // steps of those 5 complete first (on the third node too).
    let handed: Handed = Arc::new(Mutex::new(Vec::new()));
    let mut firsts = 0;
    while firsts < 5 {
        let got = clients[2]
            .claim("kill-first", &claim("early", 5 - firsts, 1000, 300_000))
            .await
            .expect("claim first");
        for j in &got.jobs {
            let (wf, step) = key(j);
            handed.lock().await.push((wf, step, j.attempt));
        }
        let out = clients[2]
            .settle(&SettleRequest::complete_all(&got.jobs))
            .await
            .expect("settle first");
        assert!(out.results.iter().all(|r| r.error.is_none()));
        firsts += got.jobs.len() as u32;
    }
    let mut doomed: Vec<ClaimedJobView> = Vec::new();
    while doomed.len() < 5 {
        let got = clients[2]
            .claim("kill-middle", &claim("doomed", 5, 2000, 2000))
            .await
            .expect("claim middle");
        doomed.extend(got.jobs);
    }
    let doomed_keys: HashSet<(usize, String)> = doomed.iter().map(key).collect();
    for j in &doomed {
        let (wf, step) = key(j);
        handed.lock().await.push((wf, step, j.attempt));
    }
    nodes[2].0.kill9().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(step_worker(
                clients[w % 2].clone(),
                format!("survivor{w}"),
                vec!["kill-first", "kill-middle", "kill-last"],
                handed.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let done = all_succeed(&raws[0], &ids, Duration::from_secs(90)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let handed = handed.lock().await;
    let mut times: HashMap<(usize, String), Vec<u32>> = HashMap::new();
    for (wf, step, attempt) in handed.iter() {
        times.entry((*wf, step.clone())).or_default().push(*attempt);
    }
    assert_eq!(times.len(), 60, "every step of every chain ran");
    for (k, attempts) in &times {
        if doomed_keys.contains(k) {
            assert_eq!(
                attempts,
                &vec![1, 2],
                "{k:?} ran on the killed node, then once more after its lease expired"
            );
        } else {
            assert_eq!(attempts, &vec![1], "{k:?} ran more than once");
        }
    }
    for w in &done {
        for s in w["steps"].as_array().expect("steps") {
            assert_eq!(s["state"], "succeeded");
            let wf = ids.iter().position(|id| w["id"] == *id).expect("ours");
            let expect = if doomed_keys.contains(&(wf, s["name"].as_str().unwrap().into())) {
                2
            } else {
                1
            };
            assert_eq!(s["attempt"], expect, "{w}");
        }
    }
}

/// The on_complete job's queue.
const FAN_IN: &str = "batch-done";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_ten_thousand_jobs_completes_once_with_one_on_complete() {
    let server = common::server().await;
    let client = server.client().expect("client");
    let raw = Raw::new(&server);
    let jobs: Vec<Value> = (0..10_000)
        .map(|i| json!({"kind": "part", "queue": "batch-work", "payload": {"i": i}, "max_attempts": 1}))
        .collect();
    let body = json!({
        "jobs": jobs,
        "on_complete": {"kind": "all-done", "queue": FAN_IN},
    });
    let (status, created) = raw.post("/v1/batches", &body.to_string()).await;
    assert_eq!(status, 201, "{created}");
    let batch_id = created["batch"]["id"]
        .as_str()
        .expect("batch id")
        .to_string();
    assert_eq!(created["jobs"].as_array().map(Vec::len), Some(10_000));
    // Four workers settle what they claim in one call each (`POST /v1/jobs/settle`): every
    // 1000th job fails for good, the rest complete.
    let failed: Arc<Mutex<HashSet<JobId>>> = Arc::new(Mutex::new(HashSet::new()));
    let ended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let client = client.clone();
            let failed = failed.clone();
            let ended = ended.clone();
            tokio::spawn(async move {
                let req = claim(&format!("b{w}"), 500, 200, 300_000);
                while ended.load(std::sync::atomic::Ordering::Relaxed) < 10_000 {
                    let got = client.claim("batch-work", &req).await.expect("claim");
                    let (bad, good): (Vec<_>, Vec<_>) = got
                        .jobs
                        .iter()
                        .partition(|j| j.payload["i"].as_u64().expect("i") % 1000 == 0);
                    let settle = SettleRequest {
                        completions: good
                            .iter()
                            .map(|j| SettleCompletion {
                                id: j.id,
                                lease_token: j.lease_token,
                                result: None,
                                report: None,
                                session_state: None,
                            })
                            .collect(),
                        failures: bad
                            .iter()
                            .map(|j| SettleFailure {
                                id: j.id,
                                lease_token: j.lease_token,
                                error: Some("bad part".into()),
                                retry_in_ms: None,
                                dead: true,
                                report: None,
                            })
                            .collect(),
                    };
                    if got.jobs.is_empty() {
                        continue;
                    }
                    let out = client.settle(&settle).await.expect("settle");
                    assert!(out.results.iter().all(|r| r.error.is_none()), "{out:?}");
                    failed.lock().await.extend(bad.iter().map(|j| j.id));
                    ended.fetch_add(got.jobs.len(), std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .expect("workers finish")
            .expect("worker");
    }
    let got = client
        .claim(FAN_IN, &claim("fan-in", 10, 5000, 60_000))
        .await
        .expect("claim on_complete");
    assert_eq!(got.jobs.len(), 1, "one on_complete job");
    let on_complete = &got.jobs[0];
    client
        .settle(&SettleRequest::complete_all(&got.jobs))
        .await
        .expect("complete on_complete");
    // Its context: the counts and the failed jobs' ids.
    let (status, job) = raw.get(&format!("/v1/jobs/{}", on_complete.id)).await;
    assert_eq!(status, 200);
    let ctx = &job["context"]["batch"];
    assert_eq!(ctx["id"], batch_id.as_str(), "{job}");
    assert_eq!(ctx["total"], 10_000);
    assert_eq!(ctx["succeeded"], 9_990);
    assert_eq!(ctx["dead"], 10);
    assert_eq!(ctx["failed_truncated"], false);
    let listed: HashSet<JobId> = ctx["failed"]
        .as_array()
        .expect("failed ids")
        .iter()
        .map(|v| v.as_str().expect("id").parse().expect("job id"))
        .collect();
    assert_eq!(listed, *failed.lock().await);
    // The batch reads completed, and no second on_complete ever appears.
    let (status, batch) = raw.get(&format!("/v1/batches/{batch_id}")).await;
    assert_eq!(status, 200);
    let batch = batch.get("batch").cloned().unwrap_or(batch);
    assert_eq!(batch["state"], "completed", "{batch}");
    assert_eq!(batch["on_complete_job_id"], on_complete.id.to_string());
    assert_eq!(
        batch["counts"],
        json!({"total": 10_000, "pending": 0, "succeeded": 9_990, "dead": 10, "cancelled": 0})
    );
    let again = client
        .claim(FAN_IN, &claim("fan-in", 10, 500, 60_000))
        .await
        .expect("claim again");
    assert!(
        again.jobs.is_empty(),
        "a second on_complete: {:?}",
        again.jobs
    );
    let all = common::all_jobs(
        &client,
        errand_api::JobListQuery {
            queue: Some(FAN_IN.into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(all.len(), 1, "exactly one on_complete job in its queue");
}
