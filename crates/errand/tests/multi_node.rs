//! Several `errand serve` processes on one PostgreSQL: work is shared, nothing runs twice
//! without a fault, and a killed node's work is finished by the others.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use errand_api::{BatchEnqueueRequest, ClaimRequest, EnqueueRequest, SettleRequest};
use errand_client::Client;
use errand_core::{JobId, NodeStatus};
use errand_testkit::{eventually, PgSchema, ServerProcess};
use tokio::sync::Mutex;

use common::pg_node;

async fn nodes(schema: &PgSchema, n: usize) -> Vec<(ServerProcess, tempfile::TempDir)> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(pg_node(schema).await);
    }
    out
}

async fn enqueue_many(client: &Client, queue: &str, n: usize) -> Vec<JobId> {
    let req = BatchEnqueueRequest {
        jobs: (0..n)
            .map(|_| EnqueueRequest {
                queue: Some(queue.into()),
                ..EnqueueRequest::new("work")
            })
            .collect(),
    };
    client
        .enqueue_batch(&req)
        .await
        .expect("enqueue")
        .jobs
        .iter()
        .map(|j| j.id)
        .collect()
}

/// How a worker treats what it is handed.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// No lease can expire honestly (they outlast the test): every job arrives on its first
    /// attempt and every settle succeeds. A job handed to two workers fails this.
    FirstDelivery,
    /// Leases expire (a node dies with its jobs): later attempts arrive, and a settle may
    /// find its lease lost.
    Redeliveries,
}

/// Claims and completes jobs until `done` holds `total` ids; records every completion.
async fn work(
    client: Client,
    queue: &'static str,
    done: Arc<Mutex<Vec<JobId>>>,
    total: usize,
    expect: Expect,
) {
    let claim = ClaimRequest {
        worker: Some("w".into()),
        max: Some(100),
        wait_ms: Some(500),
        lease_ms: Some(300_000),
        kinds: vec![],
        ..Default::default()
    };
    while done.lock().await.len() < total {
        let got = client.claim(queue, &claim).await.expect("claim");
        if got.jobs.is_empty() {
            continue;
        }
        if expect == Expect::FirstDelivery {
            for job in &got.jobs {
                assert_eq!(job.attempt, 1, "job {} was handed out again", job.id);
            }
        }
        let out = client
            .settle(&SettleRequest::complete_all(&got.jobs))
            .await
            .expect("settle");
        let mut done = done.lock().await;
        for (job, r) in got.jobs.iter().zip(&out.results) {
            match &r.error {
                None => done.push(job.id),
                Some(e) if expect == Expect::Redeliveries && e.code == "lease_lost" => {}
                Some(e) => panic!("settling job {} failed: {e:?}", job.id),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_complete_every_job_exactly_once() {
    let Some(schema) = PgSchema::create("three_nodes_complete_every_job_exactly_once").await else {
        return;
    };
    let nodes = nodes(&schema, 3).await;
    let clients: Vec<Client> = nodes
        .iter()
        .map(|(s, _)| s.client().expect("client"))
        .collect();
    let mut enqueued = HashSet::new();
    for round in 0..40 {
        enqueued.extend(enqueue_many(&clients[round % 3], "shared", 500).await);
    }
    assert_eq!(enqueued.len(), 20_000);
    let done = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for i in 0..6 {
        workers.push(tokio::spawn(work(
            clients[i % 3].clone(),
            "shared",
            done.clone(),
            20_000,
            Expect::FirstDelivery,
        )));
    }
    for w in workers {
        tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .expect("workers finish")
            .expect("join");
    }
    let done = done.lock().await;
    let unique: HashSet<JobId> = done.iter().copied().collect();
    assert_eq!(
        done.len(),
        unique.len(),
        "{} completions were duplicates",
        done.len() - unique.len()
    );
    assert_eq!(
        unique, enqueued,
        "every enqueued job completed, nothing else"
    );
    let q = clients[1].queue("shared").await.expect("queue");
    assert_eq!(q.counts.succeeded, 20_000);
    let listed = common::all_jobs(
        &clients[0],
        errand_api::JobListQuery {
            queue: Some("shared".into()),
            ..Default::default()
        },
    )
    .await;
    for job in &listed {
        assert_eq!(job.attempt, 1, "job {} ran more than once", job.id);
    }
    assert_eq!(listed.len(), 20_000);
    let listed = clients[2].nodes().await.expect("nodes");
    let alive = listed
        .nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Alive)
        .count();
    assert_eq!(alive, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_three_nodes_loses_no_job() {
    let Some(schema) = PgSchema::create("killing_one_of_three_nodes_loses_no_job").await else {
        return;
    };
    let mut nodes = nodes(&schema, 3).await;
    let clients: Vec<Client> = nodes
        .iter()
        .map(|(s, _)| s.client().expect("client"))
        .collect();
    let enqueued: HashSet<JobId> = enqueue_many(&clients[0], "rescue", 1000)
        .await
        .into_iter()
        .collect();
    // A worker attached to the third node takes 200 jobs with a 2 s lease, then its node
    // dies with it (kill -9) before it reports anything.
    let doomed = clients[2]
        .claim(
            "rescue",
            &ClaimRequest {
                worker: Some("doomed".into()),
                max: Some(200),
                lease_ms: Some(2000),
                ..Default::default()
            },
        )
        .await
        .expect("claim")
        .jobs;
    assert_eq!(doomed.len(), 200);
    nodes[2].0.kill9().await;
    let killed_at = Instant::now();
    let done = Arc::new(Mutex::new(Vec::new()));
    let survivors: Vec<_> = (0..4)
        .map(|i| {
            tokio::spawn(work(
                clients[i % 2].clone(),
                "rescue",
                done.clone(),
                1000,
                Expect::Redeliveries,
            ))
        })
        .collect();
    for w in survivors {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("survivors finish")
            .expect("join");
    }
    let rescue_took = killed_at.elapsed();
    let done = done.lock().await;
    let unique: HashSet<JobId> = done.iter().copied().collect();
    assert_eq!(unique, enqueued, "every job completed");
    assert_eq!(done.len(), unique.len(), "no job completed twice");
    for j in &doomed {
        let job = clients[0].job(j.id, None).await.expect("job");
        assert_eq!(
            job.attempt, 2,
            "the dead node's lease expired and the job ran again"
        );
    }
    println!("rescue after kill -9 of one node: all 1000 jobs done {rescue_took:?} after the kill (leases of 2 s)");
    eventually(
        "the killed node is listed dead",
        Duration::from_secs(30),
        || async {
            let listed = clients[0].nodes().await.ok()?;
            listed
                .nodes
                .iter()
                .any(|n| n.status == NodeStatus::Dead)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_second_schedule_on_three_nodes_fires_each_slot_once_even_when_one_dies() {
    let Some(schema) = PgSchema::create("every_second_schedule_on_three_nodes").await else {
        return;
    };
    let mut nodes = nodes(&schema, 3).await;
    let clients: Vec<Client> = nodes
        .iter()
        .map(|(s, _)| s.client().expect("client"))
        .collect();
    let body = serde_json::json!({
        "name": "heartbeat",
        "every": "1s",
        "overlap": "allow",
        "job": {"kind": "beat", "queue": "beats"}
    });
    let resp = common::http_client()
        .post(format!("{}/v1/schedules", nodes[0].0.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("create");
    assert_eq!(resp.status().as_u16(), 201);
    let beats = |client: Client| async move {
        client
            .jobs(&errand_api::JobListQuery {
                queue: Some("beats".into()),
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .map(|p| p.jobs)
            .unwrap_or_default()
    };
    // Twenty seconds of slots: ten before one node dies, ten after.
    eventually("ten slots fired", Duration::from_secs(30), || async {
        (beats(clients[0].clone()).await.len() >= 10).then_some(())
    })
    .await;
    nodes[2].0.kill9().await;
    let after_kill = beats(clients[0].clone()).await.len();
    eventually(
        "ten more slots fired after the kill",
        Duration::from_secs(30),
        || async { (beats(clients[0].clone()).await.len() >= after_kill + 10).then_some(()) },
    )
    .await;
    let resp = common::http_client()
        .post(format!("{}/v1/schedules/heartbeat/pause", nodes[1].0.url()))
        .send()
        .await
        .expect("pause");
    assert_eq!(resp.status().as_u16(), 200);
    let jobs = beats(clients[1].clone()).await;
    // The pause took back the job written ahead for the slot to come: cancelled, it no
    // longer carries the slot.
    assert!(
        jobs.iter()
            .filter(|j| j.slot.is_none())
            .all(|j| j.state == errand_core::JobState::Cancelled),
        "only a job taken back lacks its slot"
    );
    let mut slots: Vec<jiff::Timestamp> = jobs.iter().filter_map(|j| j.slot).collect();
    slots.sort();
    let unique: HashSet<_> = slots.iter().collect();
    assert_eq!(unique.len(), slots.len(), "a slot fired twice");
    for pair in slots.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).get_seconds(),
            1,
            "a gap between {} and {}",
            pair[0],
            pair[1]
        );
    }
    println!(
        "{} consecutive slots, each fired once, across 3 nodes with one killed",
        slots.len()
    );
}

/// A node folds the count rows its writes appended soon after writing them (an idle node
/// folds only every 30 s), so `GET /v1/queues` keeps summing a few rows.
#[tokio::test]
async fn a_node_folds_its_queue_count_rows_soon_after_writing() {
    let Some(schema) = PgSchema::create("queue count folding").await else {
        return;
    };
    let (node, _dir) = pg_node(&schema).await;
    let client = node.client().unwrap();
    let pg = errand_testkit::pg_connect(&schema.url)
        .await
        .expect("connect");
    let rows = || async {
        pg.query_one(
            &format!(
                "SELECT count(*) FROM \"{}\".queue_counts WHERE queue = 'folded'",
                schema.name
            ),
            &[],
        )
        .await
        .expect("count rows")
        .get::<_, i64>(0)
    };
    // One enqueue per request: each appends its own count row.
    for _ in 0..20 {
        client
            .enqueue(&EnqueueRequest {
                queue: Some("folded".into()),
                ..EnqueueRequest::new("work")
            })
            .await
            .expect("enqueue");
    }
    eventually(
        "the node to fold its count rows into one",
        Duration::from_secs(10),
        || async { (rows().await == 1).then_some(()) },
    )
    .await;
    let queue = client.queue("folded").await.expect("queue");
    assert_eq!(queue.counts.available, 20, "{queue:?}");
}
