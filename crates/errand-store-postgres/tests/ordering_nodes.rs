//! Three store instances on one schema (three "nodes", each with its own pool) claim and
//! settle one workload at once: lock keys, a concurrency key, sessions, a kind limit and a
//! queue concurrency. Checks what only real concurrency across nodes can break: never two
//! running with one lock key, never more running than a limit, session jobs start in
//! enqueue order one at a time, and nothing is stranded (every job finishes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use errand_core::ordering::JobOrdering;
use errand_core::queue::QueueSettingsPatch;
use errand_core::throttle::{Limit, LimitScope};
use errand_core::{JobId, JobState, NewJob, QueueName, RetryPolicy};
use errand_store::conformance::new_job;
use errand_store::{
    ClaimedJob, JobClaimParams, JobHeartbeatParams, JobInsertManyParams, JobListParams,
    JobSettleManyParams, Settlement, Store,
};
use errand_store_postgres::{PgOptions, PgStore};
use errand_testkit::PgSchema;
use serde_json::json;
use tokio::sync::Notify;

/// What is running now, as the workers see it: a job counts from the moment its claim
/// returned until just before its settle is sent, a window inside the store's own, so a
/// count over a limit here is one in the store too.
#[derive(Default)]
struct Running {
    by_group: HashMap<String, u32>,
    /// Per session, the job ids in the order they started.
    started: HashMap<String, Vec<JobId>>,
    violations: Vec<String>,
}

/// The groups a job counts in, with their limits.
fn groups(job: &errand_core::Job) -> Vec<(String, u32)> {
    let mut out = vec![];
    let o = &job.ordering;
    if let Some(k) = &o.lock_key {
        out.push((format!("lock:{k}"), 1));
    }
    if let Some(k) = &o.concurrency_key {
        out.push((format!("key:{k}"), o.concurrency_limit.unwrap_or(1)));
    }
    if let Some(k) = &o.session_key {
        out.push((format!("session:{k}"), 1));
    }
    if job.kind.as_str() == "slow" {
        out.push(("kind:slow".into(), SLOW_LIMIT));
    }
    if job.queue.as_str() == "capped" {
        out.push(("queue:capped".into(), QUEUE_LIMIT));
    }
    out
}

const SLOW_LIMIT: u32 = 2;
const QUEUE_LIMIT: u32 = 3;
const NODES: usize = 3;
const WORKERS_PER_NODE: usize = 4;

fn with(q: &str, kind: &str, ordering: JobOrdering) -> NewJob {
    NewJob {
        ordering,
        payload: json!({}),
        ..new_job(q, kind)
    }
}

/// The workload, and per session its jobs in enqueue order.
fn workload() -> (Vec<NewJob>, HashMap<String, Vec<JobId>>) {
    let mut jobs = Vec::new();
    let mut sessions: HashMap<String, Vec<JobId>> = HashMap::new();
    for i in 0..40 {
        jobs.push(with(
            "q",
            "k",
            JobOrdering {
                lock_key: Some(format!("L{}", i % 2)),
                ..Default::default()
            },
        ));
        jobs.push(with(
            "q",
            "k",
            JobOrdering {
                concurrency_key: Some("C".into()),
                concurrency_limit: Some(2),
                ..Default::default()
            },
        ));
        let key = format!("S{}", i % 4);
        let s = with(
            "q",
            "k",
            JobOrdering {
                session_key: Some(key.clone()),
                ..Default::default()
            },
        );
        sessions.entry(key).or_default().push(s.id);
        jobs.push(s);
        jobs.push(with("q", "slow", JobOrdering::default()));
        jobs.push(with("capped", "k", JobOrdering::default()));
        jobs.push(with("q", "k", JobOrdering::default()));
    }
    (jobs, sessions)
}

/// Whether this attempt fails (to exercise releases): every third job's first attempt.
/// Half of those are back at once (keeping their place), half after a short backoff (a
/// lock or key job gives its place back and waits in line until promoted).
fn fails(c: &ClaimedJob, n: usize) -> bool {
    c.job.attempt == 1 && n.is_multiple_of(3)
}

async fn work(
    store: Arc<PgStore>,
    queue: &'static str,
    running: Arc<Mutex<Running>>,
    settled: Arc<Notify>,
    remaining: Arc<std::sync::atomic::AtomicUsize>,
    name: String,
) {
    use std::sync::atomic::Ordering::SeqCst;
    let mut n = 0usize;
    while remaining.load(SeqCst) > 0 {
        let wake = settled.notified();
        let claimed = store
            .job_claim(JobClaimParams {
                queue: QueueName::parse(queue).expect("queue"),
                worker: name.clone(),
                max: 2,
                lease: Duration::from_secs(300),
                kinds: vec![],
            })
            .await
            .expect("claim");
        if claimed.is_empty() {
            // Retries whose backoff ran out come back through promotion.
            if !store
                .job_promote_due(100)
                .await
                .expect("promote")
                .is_empty()
            {
                continue;
            }
            // Another worker's settle may free a place; the timeout only guards a case
            // whose last settle happened before this worker started waiting.
            let _ = tokio::time::timeout(Duration::from_millis(200), wake).await;
            continue;
        }
        {
            let mut r = running.lock().expect("tracker");
            for c in &claimed {
                for (g, limit) in groups(&c.job) {
                    let now = r.by_group.entry(g.clone()).or_default();
                    *now += 1;
                    if *now > limit {
                        let msg = format!("{g}: {now} running, limit {limit}");
                        r.violations.push(msg);
                    }
                }
                if let Some(k) = &c.job.ordering.session_key {
                    let first_start = c.job.attempt == 1;
                    if first_start {
                        r.started.entry(k.clone()).or_default().push(c.job.id);
                    }
                }
            }
        }
        // The work: one round trip per job, so claims on other nodes overlap it.
        for c in &claimed {
            store
                .job_heartbeat(JobHeartbeatParams {
                    id: c.job.id,
                    lease_token: c.lease_token,
                    lease: None,
                    progress: None,
                    checkpoint: None,
                })
                .await
                .expect("heartbeat");
        }
        let mut settlements = Vec::new();
        {
            let mut r = running.lock().expect("tracker");
            for c in &claimed {
                for (g, _) in groups(&c.job) {
                    if let Some(v) = r.by_group.get_mut(&g) {
                        *v -= 1;
                    }
                }
                n += 1;
                settlements.push(if fails(c, n) {
                    Settlement::Fail {
                        id: c.job.id,
                        lease_token: c.lease_token,
                        error: "once".into(),
                        retry_in: Some(if n.is_multiple_of(2) {
                            Duration::ZERO
                        } else {
                            Duration::from_millis(5)
                        }),
                        dead: false,
                        report: None,
                    }
                } else {
                    Settlement::Complete {
                        id: c.job.id,
                        lease_token: c.lease_token,
                        result: None,
                        report: None,
                        session_state: c
                            .job
                            .ordering
                            .session_key
                            .as_ref()
                            .map(|_| json!({"last": c.job.id.to_string()})),
                    }
                });
            }
        }
        let out = store
            .job_settle_many(JobSettleManyParams {
                settlements,
                retry_policy: RetryPolicy::default(),
            })
            .await
            .expect("settle");
        for o in out {
            let job = o.expect("settled").job;
            if job.state == JobState::Succeeded {
                remaining.fetch_sub(1, SeqCst);
            }
        }
        settled.notify_waiters();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_keep_every_ordering_rule() {
    let Some(schema) = PgSchema::create("ordering across nodes").await else {
        return;
    };
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Arc::new(
            PgStore::connect(&PgOptions {
                schema: schema.name.clone(),
                pool_size: 4,
                ..PgOptions::new(&schema.url)
            })
            .await
            .expect("connect"),
        ));
    }
    nodes[0]
        .limit_put(Limit {
            scope: LimitScope::Kind,
            name: "slow".into(),
            concurrency: Some(SLOW_LIMIT),
            rate: None,
        })
        .await
        .expect("kind limit");
    nodes[1]
        .queue_update(
            &QueueName::parse("capped").expect("queue"),
            QueueSettingsPatch {
                concurrency: Some(Some(QUEUE_LIMIT)),
                ..Default::default()
            },
        )
        .await
        .expect("queue concurrency");

    let (jobs, sessions) = workload();
    let total = jobs.len();
    // Each node enqueues a third, in batches, while the others claim.
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(total));
    let running = Arc::new(Mutex::new(Running::default()));
    let settled = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for w in 0..WORKERS_PER_NODE {
            let queue = if w % 2 == 0 { "capped" } else { "q" };
            tasks.push(tokio::spawn(work(
                node.clone(),
                queue,
                running.clone(),
                settled.clone(),
                remaining.clone(),
                format!("node{i}-w{w}"),
            )));
        }
    }
    // Sessions must start in enqueue order: one inserter, in order, in batches of 12
    // spread over the nodes in turn.
    for (b, batch) in jobs.chunks(12).enumerate() {
        nodes[b % NODES]
            .job_insert_many(JobInsertManyParams {
                jobs: batch.to_vec(),
                idempotency_window: Duration::from_secs(60),
            })
            .await
            .expect("insert");
        settled.notify_waiters();
    }
    let all = async {
        for t in tasks {
            t.await.expect("worker");
        }
    };
    if tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .is_err()
    {
        let left = nodes[0]
            .job_list(JobListParams {
                limit: 500,
                ..Default::default()
            })
            .await
            .expect("list");
        let stuck: Vec<_> = left
            .iter()
            .filter(|j| !j.state.is_final())
            .map(|j| (j.id, j.state, j.parked, j.ordering.clone()))
            .collect();
        panic!("stranded: {} jobs never finished: {stuck:?}", stuck.len());
    }
    {
        let r = running.lock().expect("tracker");
        assert!(r.violations.is_empty(), "limits broken: {:?}", r.violations);
        for (key, order) in &sessions {
            assert_eq!(
                r.started.get(key),
                Some(order),
                "session {key} started out of enqueue order"
            );
        }
    }
    for s in sessions.keys() {
        let session = nodes[2].session_get(s).await.expect("session");
        assert_eq!(session.length, 0);
        assert_eq!(
            session.version, 10,
            "each of the 10 completions set the state"
        );
    }
}

/// A rate is one bucket for every node: three nodes claiming at once start exactly the
/// burst, and the rest wait as `available` (never leased early and failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_one_rate() {
    let Some(schema) = PgSchema::create("rate across nodes").await else {
        return;
    };
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Arc::new(
            PgStore::connect(&PgOptions {
                schema: schema.name.clone(),
                pool_size: 4,
                ..PgOptions::new(&schema.url)
            })
            .await
            .expect("connect"),
        ));
    }
    const BURST: u32 = 30;
    nodes[0]
        .limit_put(Limit {
            scope: LimitScope::Key,
            name: "partner".into(),
            concurrency: None,
            rate: Some(errand_core::throttle::RateLimit {
                limit: 1,
                period_ms: 3_600_000,
                burst: Some(BURST),
            }),
        })
        .await
        .expect("rate key limit");
    let jobs: Vec<NewJob> = (0..120)
        .map(|_| {
            with(
                "rated",
                "k",
                JobOrdering {
                    rate_key: Some("partner".into()),
                    ..Default::default()
                },
            )
        })
        .collect();
    nodes[1]
        .job_insert_many(JobInsertManyParams {
            jobs,
            idempotency_window: Duration::from_secs(60),
        })
        .await
        .expect("insert");
    let mut tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for w in 0..WORKERS_PER_NODE {
            let node = node.clone();
            tasks.push(tokio::spawn(async move {
                let mut started = 0;
                // Claim until the bucket is empty for this worker twice in a row.
                let mut empty = 0;
                while empty < 2 {
                    let c = node
                        .job_claim(JobClaimParams {
                            queue: QueueName::parse("rated").expect("queue"),
                            worker: format!("node{i}-w{w}"),
                            max: 1,
                            lease: Duration::from_secs(300),
                            kinds: vec![],
                        })
                        .await
                        .expect("claim");
                    if c.is_empty() {
                        empty += 1;
                    }
                    started += c.len();
                }
                started
            }));
        }
    }
    let mut started = 0;
    for t in tasks {
        started += t.await.expect("worker");
    }
    assert_eq!(started, BURST as usize, "the burst, across every node");
    let left = nodes[2]
        .job_list(JobListParams {
            limit: 500,
            ..Default::default()
        })
        .await
        .expect("list");
    let available = left
        .iter()
        .filter(|j| j.state == JobState::Available)
        .count();
    assert_eq!(available, 120 - BURST as usize, "the rest wait, untouched");
    assert!(left.iter().all(|j| j.attempt <= 1));
}
