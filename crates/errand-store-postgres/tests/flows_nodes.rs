//! Three store instances on one schema (three "nodes", each with its own pool) end the
//! parents of joins and the jobs of a batch at the same moment. Checks what only real
//! concurrency across nodes can break: each join (a continuation with two parents, a
//! workflow step with two parent steps) is released exactly once, and a batch settled from
//! three nodes completes exactly once (one `on_complete` job).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use errand_core::batch::{BatchState, NewBatch};
use errand_core::flow::{DeadlinePolicy, StepRef, StepRole};
use errand_core::schedule_spec::JobTemplate;
use errand_core::workflow::{NewStep, NewWorkflow, OnStepFailure, WorkflowState};
use errand_core::{
    BatchId, EventType, JobId, JobKind, JobState, NewJob, QueueName, RetryPolicy, WorkflowId,
};
use errand_store::conformance::new_job;
use errand_store::{
    JobClaimParams, JobInsertManyParams, JobListParams, JobSettleManyParams, Settlement, Store,
    WorkflowCreateParams,
};
use errand_store_postgres::{PgOptions, PgStore};
use errand_testkit::PgSchema;
use serde_json::json;

const NODES: usize = 3;
const JOINS: usize = 100;
const BATCH: usize = 2000;
const WINDOW: Duration = Duration::from_secs(3600);

async fn nodes(schema: &PgSchema) -> Vec<Arc<PgStore>> {
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
    nodes
}

fn q(name: &str) -> QueueName {
    QueueName::parse(name).expect("queue name")
}

/// Claims from `queues` in turn on `node` and completes each claim at once, until
/// `settled` reaches `target`.
async fn drain(
    node: Arc<PgStore>,
    queues: Vec<&'static str>,
    settled: Arc<AtomicUsize>,
    target: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut turn = 0;
    while settled.load(Ordering::SeqCst) < target {
        assert!(
            Instant::now() < deadline,
            "not every job was settled in time"
        );
        let queue = queues[turn % queues.len()];
        turn += 1;
        let claimed = node
            .job_claim(JobClaimParams {
                queue: q(queue),
                worker: "w".into(),
                max: 8,
                lease: Duration::from_secs(60),
                kinds: vec![],
            })
            .await
            .expect("claim");
        if claimed.is_empty() {
            tokio::task::yield_now().await;
            continue;
        }
        let settlements = claimed
            .iter()
            .map(|c| Settlement::Complete {
                id: c.job.id,
                lease_token: c.lease_token,
                result: Some(json!({ "id": c.job.id })),
                report: None,
                session_state: None,
            })
            .collect();
        let out = node
            .job_settle_many(JobSettleManyParams {
                settlements,
                retry_policy: RetryPolicy::default(),
            })
            .await
            .expect("settle");
        for r in &out {
            assert!(r.is_ok(), "a settle was refused: {r:?}");
        }
        settled.fetch_add(out.len(), Ordering::SeqCst);
    }
}

/// Settles claimed jobs in one call: every fifth (counting across calls with `n`) dead.
async fn settle(node: &PgStore, jobs: &[errand_store::ClaimedJob], n: &mut usize) {
    let settlements = jobs
        .iter()
        .map(|c| {
            *n += 1;
            if n.is_multiple_of(5) {
                Settlement::Fail {
                    id: c.job.id,
                    lease_token: c.lease_token,
                    error: "no".into(),
                    retry_in: None,
                    dead: true,
                    report: None,
                }
            } else {
                Settlement::Complete {
                    id: c.job.id,
                    lease_token: c.lease_token,
                    result: None,
                    report: None,
                    session_state: None,
                }
            }
        })
        .collect();
    let out = node
        .job_settle_many(JobSettleManyParams {
            settlements,
            retry_policy: RetryPolicy::default(),
        })
        .await
        .expect("settle");
    assert!(out.iter().all(|r| r.is_ok()), "{out:?}");
}

fn step_job(queue: &str, workflow: WorkflowId, step: &str) -> NewJob {
    let mut job = new_job(queue, "k");
    job.flow.step = Some(StepRef {
        workflow,
        step: step.into(),
        role: StepRole::Step,
        deadline_ms: None,
        on_deadline: DeadlinePolicy::Fail,
    });
    job
}

fn join_workflow() -> NewWorkflow {
    let id = WorkflowId::new();
    let step = |name: &str, queue: &str, deps: &[&str]| NewStep {
        name: name.into(),
        job: step_job(queue, id, name),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        compensate: None,
    };
    NewWorkflow {
        id,
        name: None,
        template: None,
        input: json!({"w": 1}),
        idempotency_key: None,
        on_failure: OnStepFailure::Finish,
        steps: vec![
            step("a", "left", &[]),
            step("b", "right", &[]),
            step("c", "joins", &["a", "b"]),
        ],
    }
}

/// Every event of the log, by job id: how many `job.enqueued` each job has.
async fn enqueued_per_job(store: &PgStore) -> HashMap<JobId, usize> {
    let mut out = HashMap::new();
    let mut all: HashMap<JobId, Vec<String>> = HashMap::new();
    let mut after = None;
    loop {
        let page = store.event_read(after, 1000).await.expect("events");
        if page.events.is_empty() {
            for (id, n) in &out {
                if *n > 2 {
                    eprintln!("{id}: {:#?}", all.get(id));
                }
            }
            return out;
        }
        for e in &page.events {
            if let Some(id) = e.body.job_id() {
                all.entry(id)
                    .or_default()
                    .push(format!("{:?} {:?}", e.id, e.body));
            }
            if e.body.event_type == EventType::JobEnqueued {
                if let Some(id) = e.body.job_id() {
                    *out.entry(id).or_default() += 1;
                }
            }
        }
        after = page.events.last().map(|e| e.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joins_whose_parents_end_on_different_nodes_are_released_once() {
    let Some(schema) = PgSchema::create("joins across nodes").await else {
        return;
    };
    let nodes = nodes(&schema).await;
    let mut jobs = Vec::new();
    let mut children = Vec::new();
    // The two parents of each join.
    let mut pairs = Vec::new();
    for _ in 0..JOINS {
        let left = new_job("left", "k");
        let right = new_job("right", "k");
        let mut child = new_job("joins", "k");
        child.flow.after = vec![left.id, right.id];
        children.push(child.id);
        pairs.push((left.id, right.id));
        jobs.extend([left, right, child]);
    }
    nodes[0]
        .job_insert_many(JobInsertManyParams {
            jobs,
            idempotency_window: WINDOW,
        })
        .await
        .expect("insert joins");
    let mut workflows = Vec::new();
    for _ in 0..JOINS {
        let w = join_workflow();
        let c = w.steps[2].job.id;
        pairs.push((w.steps[0].job.id, w.steps[1].job.id));
        let (made, created) = nodes[1]
            .workflow_create(WorkflowCreateParams {
                workflow: w,
                idempotency_window: WINDOW,
            })
            .await
            .expect("create workflow");
        assert!(created);
        workflows.push(made.id);
        children.push(c);
    }
    for id in &children {
        let job = nodes[2].job_get(*id).await.expect("child");
        assert_eq!(job.state, JobState::Blocked);
        assert_eq!(job.flow.waiting_for, 2);
    }

    // Every parent is claimed; then the two parents of each join are settled at the same
    // instant from two different nodes (a barrier per pair, a few pairs at a time).
    let mut tokens = HashMap::new();
    for queue in ["left", "right"] {
        while tokens.len()
            < if queue == "left" {
                2 * JOINS
            } else {
                4 * JOINS
            }
        {
            let claimed = nodes[0]
                .job_claim(JobClaimParams {
                    queue: q(queue),
                    worker: "w".into(),
                    max: 100,
                    lease: Duration::from_secs(300),
                    kinds: vec![],
                })
                .await
                .expect("claim");
            assert!(!claimed.is_empty(), "a parent is not ready");
            for c in claimed {
                tokens.insert(c.job.id, c.lease_token);
            }
        }
    }
    let tokens = Arc::new(tokens);
    for wave in pairs.chunks(6) {
        let mut tasks = Vec::new();
        for (i, (left, right)) in wave.iter().enumerate() {
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            for (k, id) in [*left, *right].into_iter().enumerate() {
                let node = nodes[(i + k) % NODES].clone();
                let barrier = barrier.clone();
                let tokens = tokens.clone();
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    let out = node
                        .job_settle_many(JobSettleManyParams {
                            settlements: vec![Settlement::Complete {
                                id,
                                lease_token: tokens[&id],
                                result: Some(json!({ "id": id })),
                                report: None,
                                session_state: None,
                            }],
                            retry_policy: RetryPolicy::default(),
                        })
                        .await
                        .expect("settle");
                    assert!(out[0].is_ok(), "{out:?}");
                }));
            }
        }
        for t in tasks {
            t.await.expect("settle task");
        }
    }

    // The log shows a transaction's events once no older transaction runs (anywhere on the
    // server): read it until every release is there, then check there is one each.
    let deadline = Instant::now() + Duration::from_secs(20);
    let enqueued = loop {
        let seen = enqueued_per_job(&nodes[0]).await;
        if children
            .iter()
            .all(|c| seen.get(c).copied().unwrap_or(0) >= 2)
            || Instant::now() > deadline
        {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for id in &children {
        let job = nodes[0].job_get(*id).await.expect("child");
        assert_eq!(job.state, JobState::Available, "join {id} was not released");
        assert_eq!(job.flow.waiting_for, 0);
        let parents = job.flow.context.as_ref().expect("context");
        let n = parents
            .get("parents")
            .and_then(|p| p.as_object())
            .map_or(0, |p| p.len());
        assert_eq!(n, 2, "join {id} context: {parents}");
        // Once at insert (blocked), once at release.
        assert_eq!(
            enqueued.get(id),
            Some(&2),
            "join {id} was released more than once"
        );
    }

    // The joins run; every workflow succeeds.
    let settled = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = nodes
        .iter()
        .map(|n| tokio::spawn(drain(n.clone(), vec!["joins"], settled.clone(), 2 * JOINS)))
        .collect();
    for t in tasks {
        t.await.expect("drain joins");
    }
    for id in workflows {
        let w = nodes[2].workflow_get(id).await.expect("workflow");
        assert_eq!(w.state, WorkflowState::Succeeded, "workflow {id}: {w:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_settled_from_three_nodes_completes_once() {
    let Some(schema) = PgSchema::create("a batch across nodes").await else {
        return;
    };
    let nodes = nodes(&schema).await;
    let id = BatchId::new();
    let jobs: Vec<NewJob> = (0..BATCH)
        .map(|_| {
            let mut j = new_job("bulk", "k");
            j.flow.batch = Some(id);
            j
        })
        .collect();
    let made = nodes[0]
        .batch_create(
            NewBatch {
                id,
                on_complete: Some(JobTemplate {
                    kind: JobKind::parse("summary").expect("kind"),
                    queue: q("done"),
                    payload: json!({}),
                    priority: 0,
                    max_attempts: 1,
                    timeout_ms: None,
                    tags: vec![],
                }),
                callback_url: None,
                open: false,
            },
            JobInsertManyParams {
                jobs,
                idempotency_window: WINDOW,
            },
        )
        .await
        .expect("create batch");
    assert_eq!(made.batch.state, BatchState::Closed);
    assert_eq!(made.batch.counts.pending, BATCH as u64);

    // Each node claims a third, settles it 20 at a time (every fifth dead), all three at
    // once, and the last job of each third at the same instant: the batch's last three
    // ends race on three nodes.
    let mut claims: Vec<Vec<errand_store::ClaimedJob>> = vec![Vec::new(); NODES];
    for (i, node) in nodes.iter().enumerate() {
        let share = BATCH / NODES + usize::from(i < BATCH % NODES);
        while claims[i].len() < share {
            let want = u32::try_from((share - claims[i].len()).min(100)).unwrap_or(100);
            let got = node
                .job_claim(JobClaimParams {
                    queue: q("bulk"),
                    worker: "w".into(),
                    max: want,
                    lease: Duration::from_secs(300),
                    kinds: vec![],
                })
                .await
                .expect("claim");
            assert!(!got.is_empty(), "a batch job is not ready");
            claims[i].extend(got);
        }
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(NODES));
    let tasks: Vec<_> = nodes
        .iter()
        .zip(claims)
        .map(|(node, mut mine)| {
            let node = node.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let last = mine.pop().expect("a share");
                let mut n = 0;
                for chunk in mine.chunks(20) {
                    settle(&node, chunk, &mut n).await;
                }
                barrier.wait().await;
                settle(&node, &[last], &mut n).await;
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("settle batch");
    }

    let batch = nodes[1].batch_get(id).await.expect("batch");
    assert_eq!(batch.state, BatchState::Completed);
    assert_eq!(batch.counts.total, BATCH as u64);
    assert_eq!(batch.counts.pending, 0);
    assert_eq!(batch.counts.succeeded + batch.counts.dead, BATCH as u64);
    assert!(batch.counts.dead > 0);
    let summaries = nodes[2]
        .job_list(JobListParams {
            queue: Some(q("done")),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(summaries.len(), 1, "on_complete enqueued more than once");
    assert_eq!(Some(summaries[0].id), batch.on_complete_job_id);
    let context = summaries[0].flow.context.as_ref().expect("context");
    assert_eq!(context["batch"]["dead"], json!(batch.counts.dead));
}

/// A child released by a parent's end on one node wakes the claimers of its queue on the
/// others (the notifier's NOTIFY after commit, turned into wake-ups by their listeners).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_released_child_wakes_its_queue_on_other_nodes() {
    let Some(schema) = PgSchema::create("flow wake-ups across nodes").await else {
        return;
    };
    let nodes = nodes(&schema).await;
    let parent = new_job("left", "k");
    let mut child = new_job("woken", "k");
    child.flow.after = vec![parent.id];
    nodes[0]
        .job_insert_many(JobInsertManyParams {
            jobs: vec![parent, child],
            idempotency_window: WINDOW,
        })
        .await
        .expect("insert");
    let mut wakeups = nodes[1].wakeups().expect("PostgreSQL wakes other nodes");
    // Node 1's listener may still be connecting: end the parent only once it hears node
    // 0's wake-ups (a plain insert's).
    let deadline = Instant::now() + Duration::from_secs(10);
    'warm: loop {
        assert!(Instant::now() < deadline, "node 1 never heard node 0");
        nodes[0]
            .job_insert_many(JobInsertManyParams {
                jobs: vec![new_job("ping", "k")],
                idempotency_window: WINDOW,
            })
            .await
            .expect("ping");
        let until = Instant::now() + Duration::from_millis(200);
        while let Ok(Ok(q)) = tokio::time::timeout(
            until.saturating_duration_since(Instant::now()),
            wakeups.recv(),
        )
        .await
        {
            if q.as_str() == "ping" {
                break 'warm;
            }
        }
    }
    let settled = Arc::new(AtomicUsize::new(0));
    drain(nodes[0].clone(), vec!["left"], settled, 1).await;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, wakeups.recv()).await {
            Ok(Ok(q)) if q.as_str() == "woken" => break,
            Ok(_) => continue,
            Err(_) => panic!("node 1 was not woken for the released child's queue"),
        }
    }
}

/// A blocked continuation with a session key does not hold its session while it waits
/// for its parent: a later job of the session runs first; the continuation enters the
/// session's line once released and runs after the other job ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_continuation_enters_its_gate_when_released() {
    let Some(schema) = PgSchema::create("gated continuation").await else {
        return;
    };
    let nodes = nodes(&schema).await;
    let store = &nodes[0];
    let parent = new_job("p", "k");
    let mut child = new_job("g", "k");
    child.flow.after = vec![parent.id];
    child.ordering.session_key = Some("S".into());
    let mut other = new_job("g", "k");
    other.ordering.session_key = Some("S".into());
    let (child_id, other_id) = (child.id, other.id);
    store
        .job_insert_many(JobInsertManyParams {
            jobs: vec![parent, child, other],
            idempotency_window: WINDOW,
        })
        .await
        .expect("insert");
    let claim = |queue: &'static str| async move {
        store
            .job_claim(JobClaimParams {
                queue: q(queue),
                worker: "w".into(),
                max: 10,
                lease: Duration::from_secs(60),
                kinds: vec![],
            })
            .await
            .expect("claim")
    };
    let got = claim("g").await;
    assert_eq!(
        got.iter().map(|c| c.job.id).collect::<Vec<_>>(),
        vec![other_id],
        "the blocked continuation held the session"
    );
    let p = claim("p").await;
    complete_all(store, &p).await;
    assert!(
        claim("g").await.is_empty(),
        "two jobs of one session ran at once"
    );
    complete_all(store, &got).await;
    let next = claim("g").await;
    assert_eq!(
        next.iter().map(|c| c.job.id).collect::<Vec<_>>(),
        vec![child_id]
    );
}

async fn complete_all(store: &PgStore, claimed: &[errand_store::ClaimedJob]) {
    let out = store
        .job_settle_many(JobSettleManyParams {
            settlements: claimed
                .iter()
                .map(|c| Settlement::Complete {
                    id: c.job.id,
                    lease_token: c.lease_token,
                    result: None,
                    report: None,
                    session_state: None,
                })
                .collect(),
            retry_policy: RetryPolicy::default(),
        })
        .await
        .expect("settle");
    assert!(out.iter().all(|r| r.is_ok()), "{out:?}");
}

/// One step of a workflow dies on one node while its sibling succeeds on another at the
/// same instant, under both running-step policies: no settle is refused or fails (no
/// deadlock between the workflow row and the job rows), and every workflow ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_death_and_a_success_racing_in_one_workflow_end_it() {
    let Some(schema) = PgSchema::create("racing ends in a workflow").await else {
        return;
    };
    let nodes = nodes(&schema).await;
    let mut workflows = Vec::new();
    let mut pairs = Vec::new();
    for i in 0..40 {
        let mut w = join_workflow();
        w.on_failure = if i % 2 == 0 {
            OnStepFailure::Cancel
        } else {
            OnStepFailure::Finish
        };
        w.steps[1].compensate = Some(JobTemplate {
            kind: JobKind::parse("undo").expect("kind"),
            queue: q("undo"),
            payload: json!({}),
            priority: 0,
            max_attempts: 1,
            timeout_ms: None,
            tags: vec![],
        });
        pairs.push((w.steps[0].job.id, w.steps[1].job.id));
        let (made, _) = nodes[0]
            .workflow_create(WorkflowCreateParams {
                workflow: w,
                idempotency_window: WINDOW,
            })
            .await
            .expect("create");
        workflows.push(made.id);
    }
    let mut tokens = HashMap::new();
    for queue in ["left", "right"] {
        loop {
            let got = nodes[1]
                .job_claim(JobClaimParams {
                    queue: q(queue),
                    worker: "w".into(),
                    max: 100,
                    lease: Duration::from_secs(300),
                    kinds: vec![],
                })
                .await
                .expect("claim");
            if got.is_empty() {
                break;
            }
            for c in got {
                tokens.insert(c.job.id, c.lease_token);
            }
        }
    }
    assert_eq!(tokens.len(), 80);
    let tokens = Arc::new(tokens);
    for (i, (dies, succeeds)) in pairs.into_iter().enumerate() {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut tasks = Vec::new();
        for (k, (id, ok)) in [(dies, false), (succeeds, true)].into_iter().enumerate() {
            let node = nodes[(i + k) % NODES].clone();
            let (barrier, tokens) = (barrier.clone(), tokens.clone());
            tasks.push(tokio::spawn(async move {
                let lease_token = tokens[&id];
                let settlement = if ok {
                    Settlement::Complete {
                        id,
                        lease_token,
                        result: Some(json!(1)),
                        report: None,
                        session_state: None,
                    }
                } else {
                    Settlement::Fail {
                        id,
                        lease_token,
                        error: "boom".into(),
                        retry_in: None,
                        dead: true,
                        report: None,
                    }
                };
                barrier.wait().await;
                node.job_settle_many(JobSettleManyParams {
                    settlements: vec![settlement],
                    retry_policy: RetryPolicy::default(),
                })
                .await
                .expect("settle (a deadlock fails it)")
            }));
        }
        for t in tasks {
            let out = t.await.expect("task");
            // The success may be refused only because the death cancelled its step first.
            if let Err(e) = &out[0] {
                assert!(
                    matches!(e, errand_store::StoreError::LeaseLost { .. }),
                    "{e:?}"
                );
            }
        }
    }
    // Compensations run; then every workflow has ended.
    let settled = Arc::new(AtomicUsize::new(0));
    let undo = nodes[2]
        .job_list(JobListParams {
            queue: Some(q("undo")),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .len();
    drain(nodes[2].clone(), vec!["undo"], settled, undo).await;
    for id in workflows {
        let w = nodes[0].workflow_get(id).await.expect("workflow");
        assert!(w.state.is_final(), "workflow {id} is stuck {:?}", w.state);
        assert_eq!(w.failed_step.as_deref(), Some("a"));
    }
}
