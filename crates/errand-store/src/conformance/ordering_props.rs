//! Property tests of ordering: random sequences of enqueues (with lock, concurrency,
//! session and fairness keys from small pools, changing key limits, priorities), claims,
//! completes, fails (with and without `retry_in`), releases, lease expiries, delays,
//! cancels, manual retries, dead requeues and session unblocks, with the invariants (and
//! every gate's bookkeeping) checked against the store after every step.
//!
//! proptest generates and shrinks the sequences; each sequence runs on its own queue and
//! its own keys in the case's store, driving the store's clock, so one store serves every
//! sequence. The runner is synchronous: it runs inside `block_in_place`, and each sequence
//! on the case's runtime.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use errand_core::job::RunAt;
use errand_core::ordering::{JobOrdering, SessionOnDead};
use errand_core::queue::{Backoff, QueueSettingsPatch};
use errand_core::time::to_millis;
use errand_core::{Job, JobId, JobState, NewJob};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::support::*;
use super::{Ctx, DriveClock};
use crate::{
    ClaimedJob, DeadSelection, JobListParams, JobReleaseManyParams, SessionListParams, SharedStore,
    StoreError,
};

/// How many running jobs of a property queue the queue's concurrency allows.
const QUEUE_CONCURRENCY: usize = 4;
/// The queue's backoff, which a failure without `retry_in` waits: less than an
/// [`Op::Advance`].
const QUEUE_BACKOFF_MS: u64 = 30_000;

/// The one key a generated job waits its turn on.
#[derive(Debug, Clone, Copy)]
enum GateChoice {
    None,
    Lock(u8),
    /// Key `i` of the pool with this job's limit (the latest enqueue's limit is the key's).
    Key(u8, u32),
    Session {
        key: u8,
        go_on: bool,
    },
}

/// One step of a generated sequence.
#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        gate: GateChoice,
        fair: Option<u8>,
        delayed: bool,
        priority: i32,
    },
    Claim {
        max: u32,
    },
    Complete {
        pick: usize,
    },
    /// `retry`: 0 at once, 1 after a minute, 2 none named (the queue's backoff).
    Fail {
        pick: usize,
        retry: u8,
        dead: bool,
    },
    /// Undoes a claim nobody heard (`release_many`).
    Release {
        pick: usize,
    },
    /// A manual retry of any job of the sequence (refused unless it is dead, cancelled or
    /// waiting for a retry).
    Retry {
        pick: usize,
    },
    /// Every dead job of the queue run again.
    Requeue,
    /// Session `key` moves past its dead head (refused when it is not blocked).
    Unblock {
        key: u8,
    },
    /// Past every lease, then a rescue pass.
    Expire,
    /// A minute on (past backoffs and delays), then a promotion pass.
    Advance,
    Cancel {
        pick: usize,
    },
}

fn gate_choice() -> impl Strategy<Value = GateChoice> {
    prop_oneof![
        2 => Just(GateChoice::None),
        2 => (0u8..2).prop_map(GateChoice::Lock),
        2 => ((0u8..2), (1u32..4)).prop_map(|(i, limit)| GateChoice::Key(i, limit)),
        2 => ((0u8..2), proptest::bool::weighted(0.3))
            .prop_map(|(key, go_on)| GateChoice::Session { key, go_on }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (gate_choice(), proptest::option::weighted(0.3, 0u8..3), proptest::bool::weighted(0.15), 0i32..3)
            .prop_map(|(gate, fair, delayed, priority)| Op::Enqueue { gate, fair, delayed, priority }),
        4 => (1u32..5).prop_map(|max| Op::Claim { max }),
        3 => any::<usize>().prop_map(|pick| Op::Complete { pick }),
        2 => (any::<usize>(), 0u8..3, proptest::bool::weighted(0.15))
            .prop_map(|(pick, retry, dead)| Op::Fail { pick, retry, dead }),
        1 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        3 => any::<usize>().prop_map(|pick| Op::Retry { pick }),
        1 => Just(Op::Requeue),
        1 => (0u8..2).prop_map(|key| Op::Unblock { key }),
        1 => Just(Op::Expire),
        1 => Just(Op::Advance),
        2 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
    ]
}

/// A runner with a fixed seed (the suite must not pass or fail by chance) and no failure
/// files, bounded so the suite stays quick.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 200,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    )
}

/// Runs `runner` over `strategy` on this thread, each case on the runtime via
/// `block_on`; panics with the smallest failing input.
fn run_blocking<S: Strategy>(mut runner: TestRunner, strategy: S, case: impl Fn(S::Value) + Sync)
where
    S::Value: std::fmt::Debug,
{
    tokio::task::block_in_place(|| {
        let result = runner.run(&strategy, |value| {
            case(value);
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    });
}

/// One sequence's jobs as the driver knows them: line order, each job's session, the jobs
/// started in their place in line, and the claims it holds.
struct Run {
    queue: String,
    prefix: String,
    /// Enqueue order, where a finished job run again moves to the back (a session's
    /// blocking head excepted: it keeps its place).
    order: Vec<JobId>,
    /// Jobs claimed since they took their place in `order`.
    started: HashSet<JobId>,
    session_of: HashMap<JobId, String>,
    held: Vec<ClaimedJob>,
    /// The highest limit any enqueue gave each concurrency key: jobs admitted under a
    /// higher limit may still run after a lower one.
    key_cap: HashMap<String, u32>,
}

impl Run {
    /// A finished job of a session runs again: unless it is the head its session is blocked
    /// on, it goes to the back of the line, not started there yet.
    fn revive(&mut self, id: JobId, blocked_head: bool) {
        if blocked_head || !self.session_of.contains_key(&id) {
            return;
        }
        self.order.retain(|o| *o != id);
        self.order.push(id);
        self.started.remove(&id);
    }

    /// The head each session of the sequence is blocked on.
    async fn blocked_heads(&self, store: &SharedStore) -> HashSet<JobId> {
        let mut heads = HashSet::new();
        for key in 0..2 {
            if let Ok(s) = store.session_get(&format!("{}s{key}", self.prefix)).await {
                heads.extend(s.blocked_by);
            }
        }
        heads
    }

    fn job(&mut self, gate: GateChoice, fair: Option<u8>, delayed: bool, priority: i32) -> NewJob {
        let p = &self.prefix;
        let mut o = JobOrdering::default();
        match gate {
            GateChoice::None => {}
            GateChoice::Lock(i) => o.lock_key = Some(format!("{p}l{i}")),
            GateChoice::Key(i, limit) => {
                let key = format!("{p}k{i}");
                let cap = self.key_cap.entry(key.clone()).or_default();
                *cap = (*cap).max(limit);
                o.concurrency_key = Some(key);
                o.concurrency_limit = Some(limit);
            }
            GateChoice::Session { key, go_on } => {
                o.session_key = Some(format!("{p}s{key}"));
                o.session_on_dead = go_on.then_some(SessionOnDead::Continue);
            }
        }
        o.fairness_key = fair.map(|f| format!("{p}f{f}"));
        let mut j = ordered(&self.queue, o);
        j.priority = priority;
        if delayed {
            j.run_at = RunAt::After(Duration::from_secs(30));
        }
        j
    }
}

/// Every job of `q`.
async fn jobs_of(store: &SharedStore, q: &str) -> Vec<Job> {
    store
        .job_list(JobListParams {
            queue: Some(queue(q)),
            state: None,
            kind: None,
            tag: None,
            before: None,
            limit: 1000,
        })
        .await
        .expect("list")
}

fn finished(state: JobState) -> bool {
    matches!(
        state,
        JobState::Succeeded | JobState::Dead | JobState::Cancelled
    )
}

/// The invariants that hold after every step.
async fn check(store: &SharedStore, run: &Run, step: &str) {
    let jobs = jobs_of(store, &run.queue).await;
    let by_id: HashMap<JobId, &Job> = jobs.iter().map(|j| (j.id, j)).collect();
    let running: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.state == JobState::Running)
        .collect();
    assert!(
        running.len() <= QUEUE_CONCURRENCY,
        "after {step}: {} running, queue concurrency {QUEUE_CONCURRENCY}",
        running.len()
    );
    let mut per_gate: HashMap<String, u32> = HashMap::new();
    for j in &running {
        assert!(!j.parked, "after {step}: parked job {} runs", j.id);
        let o = &j.ordering;
        if let Some(k) = &o.lock_key {
            *per_gate.entry(format!("lock {k}")).or_default() += 1;
        }
        if let Some(k) = &o.concurrency_key {
            *per_gate.entry(format!("key {k}")).or_default() += 1;
        }
    }
    for (gate, n) in &per_gate {
        let cap = match gate.strip_prefix("key ") {
            Some(k) => run.key_cap.get(k).copied().unwrap_or(1),
            None => 1,
        };
        assert!(
            *n <= cap,
            "after {step}: {n} running under {gate}, cap {cap}"
        );
    }
    // Sessions: at most one started job unfinished, and the started jobs are a prefix of
    // the enqueue order (leaving out jobs cancelled before they started).
    let mut sessions: HashMap<&str, Vec<&Job>> = HashMap::new();
    for id in &run.order {
        if let (Some(s), Some(j)) = (run.session_of.get(id), by_id.get(id)) {
            sessions.entry(s.as_str()).or_default().push(j);
        }
    }
    for (s, line) in sessions {
        let open = line
            .iter()
            .filter(|j| run.started.contains(&j.id) && !finished(j.state))
            .count();
        assert!(
            open <= 1,
            "after {step}: {open} started jobs of session {s} unfinished"
        );
        let mut waiting = false;
        for j in line {
            let started = run.started.contains(&j.id);
            let skipped = !started && finished(j.state);
            if skipped {
                continue;
            }
            if !started {
                waiting = true;
            } else {
                assert!(
                    !waiting,
                    "after {step}: session {s}: {} started before an earlier job",
                    j.id
                );
            }
        }
    }
    check_gates(store, &jobs, step).await;
}

/// Every gate's bookkeeping agrees with its jobs: its holders are its unfinished unparked
/// jobs (none while a session is blocked); a lock or session never has two; and no job
/// waits parked while its gate has a free place and it could take it (a due lock or key
/// job; a session's next job while the session is not blocked).
async fn check_gates(store: &SharedStore, jobs: &[Job], step: &str) {
    let now = store.clock_now().await.expect("now");
    let mut gates: HashMap<String, Vec<&Job>> = HashMap::new();
    for j in jobs.iter().filter(|j| !finished(j.state)) {
        if let Some(g) = j.ordering.gate() {
            gates.entry(g.stored_name()).or_default().push(j);
        }
    }
    for (name, line) in gates {
        let facts = store
            .job_explain_facts(line[0].id)
            .await
            .expect("explain facts");
        let gate = facts.gate.expect("a gated job's gate");
        let admitted = line.iter().filter(|j| !j.parked).count() as u64;
        let parked: Vec<&&Job> = line.iter().filter(|j| j.parked).collect();
        assert_eq!(
            gate.holders.count, admitted,
            "after {step}: {name}: holders against unparked jobs"
        );
        let session = name.starts_with("session:");
        let blocked = gate
            .session
            .as_ref()
            .is_some_and(|s| s.blocked_by.is_some());
        if blocked {
            assert_eq!(admitted, 0, "after {step}: blocked {name} admits a job");
        }
        if session || name.starts_with("lock:") {
            assert!(admitted <= 1, "after {step}: {name} admits {admitted}");
        }
        let free = u64::from(gate.capacity) > admitted;
        let could_enter = |j: &Job| {
            if session {
                !blocked
            } else {
                j.state == JobState::Available && to_millis(j.run_at) <= now
            }
        };
        if free {
            if let Some(j) = parked.iter().find(|j| could_enter(j)) {
                panic!(
                    "after {step}: {name} has a free place ({admitted} of {}) yet {} waits parked",
                    gate.capacity, j.id
                );
            }
        }
    }
}

/// Settles and accepts the refusals a driver may meet (the lease was lost to a rescue or
/// a cancel).
async fn settle_held(store: &SharedStore, s: crate::Settlement) {
    match settle(store, s).await {
        Ok(_) | Err(StoreError::LeaseLost { .. }) => {}
        Err(e) => panic!("settle: {e}"),
    }
}

async fn step(store: &SharedStore, clock: &dyn DriveClock, run: &mut Run, op: &Op) {
    match op {
        Op::Enqueue {
            gate,
            fair,
            delayed,
            priority,
        } => {
            let j = run.job(*gate, *fair, *delayed, *priority);
            run.order.push(j.id);
            if let Some(s) = &j.ordering.session_key {
                run.session_of.insert(j.id, s.clone());
            }
            insert(store, vec![j]).await;
        }
        Op::Claim { max } => {
            let got = claim(store, &run.queue, *max).await;
            run.started.extend(got.iter().map(|c| c.job.id));
            run.held.extend(got);
        }
        Op::Complete { pick } => {
            if !run.held.is_empty() {
                let c = run.held.remove(pick % run.held.len());
                settle_held(store, complete(&c)).await;
            }
        }
        Op::Fail { pick, retry, dead } => {
            if !run.held.is_empty() {
                let c = run.held.remove(pick % run.held.len());
                let retry = match retry {
                    0 => Some(Duration::ZERO),
                    1 => Some(Duration::from_secs(60)),
                    _ => None,
                };
                settle_held(store, fail(&c, retry, *dead)).await;
            }
        }
        Op::Release { pick } => {
            if !run.held.is_empty() {
                let c = run.held.remove(pick % run.held.len());
                store
                    .job_release_many(JobReleaseManyParams {
                        leases: vec![(c.job.id, c.lease_token)],
                    })
                    .await
                    .expect("release");
            }
        }
        Op::Retry { pick } => {
            // A job a retry takes (dead, cancelled or waiting for a retry), else any.
            let can: Vec<JobId> = jobs_of(store, &run.queue)
                .await
                .into_iter()
                .filter(|j| j.state.can_retry())
                .map(|j| j.id)
                .collect();
            let pool = if can.is_empty() { &run.order } else { &can };
            if !pool.is_empty() {
                let id = pool[pick % pool.len()];
                let was = store.job_get(id).await.expect("get").state;
                let heads = run.blocked_heads(store).await;
                match store.job_retry(id).await {
                    Ok(_) if finished(was) => run.revive(id, heads.contains(&id)),
                    Ok(_) | Err(StoreError::WrongState(_)) => {}
                    Err(e) => panic!("retry: {e}"),
                }
            }
        }
        Op::Requeue => {
            let dead: HashSet<JobId> = jobs_of(store, &run.queue)
                .await
                .into_iter()
                .filter(|j| j.state == JobState::Dead)
                .map(|j| j.id)
                .collect();
            let heads = run.blocked_heads(store).await;
            let line: Vec<JobId> = run.order.clone();
            for id in line.into_iter().filter(|id| dead.contains(id)) {
                run.revive(id, heads.contains(&id));
            }
            store
                .dead_requeue_many(DeadSelection::Queue(queue(&run.queue)))
                .await
                .expect("requeue");
        }
        Op::Unblock { key } => {
            match store
                .session_unblock(&format!("{}s{key}", run.prefix))
                .await
            {
                Ok(_) | Err(StoreError::WrongState(_) | StoreError::NotFound { .. }) => {}
                Err(e) => panic!("unblock: {e}"),
            }
        }
        Op::Expire => {
            clock.advance(LEASE + PAST).await;
            rescue(store).await;
            promote(store).await;
        }
        Op::Advance => {
            clock.advance(Duration::from_secs(61)).await;
            promote(store).await;
        }
        Op::Cancel { pick } => {
            if !run.order.is_empty() {
                let id = run.order[pick % run.order.len()];
                match store.job_cancel(id).await {
                    Ok(_) | Err(StoreError::WrongState(_)) => {}
                    Err(e) => panic!("cancel: {e}"),
                }
            }
        }
    }
}

/// Claims and completes until every job has finished, moving the clock past delays and
/// leases and unblocking the sessions dead jobs block; fails when jobs are left that
/// nothing can start (stranded).
async fn drain(store: &SharedStore, clock: &dyn DriveClock, run: &mut Run) {
    run.held.clear();
    let mut quiet = 0;
    for round in 0..500 {
        let got = claim(store, &run.queue, 10).await;
        run.started.extend(got.iter().map(|c| c.job.id));
        check(store, run, &format!("drain round {round}")).await;
        if got.is_empty() {
            let left: Vec<Job> = jobs_of(store, &run.queue)
                .await
                .into_iter()
                .filter(|j| !finished(j.state))
                .collect();
            if left.is_empty() {
                return;
            }
            quiet += 1;
            assert!(quiet < 4, "stranded: {left:#?}");
            clock.advance(Duration::from_secs(7200)).await;
            rescue(store).await;
            promote(store).await;
            let blocked = store
                .session_list(SessionListParams {
                    after: None,
                    blocked: Some(true),
                    limit: 1000,
                })
                .await
                .expect("sessions");
            for s in blocked.iter().filter(|s| s.key.starts_with(&run.prefix)) {
                store.session_unblock(&s.key).await.expect("unblock");
            }
            continue;
        }
        quiet = 0;
        for c in &got {
            settle_held(store, complete(c)).await;
        }
    }
    panic!("not drained in 500 rounds");
}

/// Random operations never break a lock, a key's limit, the queue's concurrency or a
/// session's order, and every job finishes when a driver keeps claiming.
pub(crate) async fn random_operations_keep_every_ordering_rule(Ctx { store, clock }: Ctx) {
    let runs = AtomicUsize::new(0);
    let handle = tokio::runtime::Handle::current();
    let strategy = proptest::collection::vec(op(), 1..40);
    run_blocking(runner(40), strategy, |ops: Vec<Op>| {
        let n = runs.fetch_add(1, Ordering::SeqCst);
        let mut run = Run {
            queue: format!("prop{n}"),
            prefix: format!("r{n}-"),
            order: Vec::new(),
            started: HashSet::new(),
            session_of: HashMap::new(),
            held: Vec::new(),
            key_cap: HashMap::new(),
        };
        handle.block_on(async {
            store
                .queue_update(
                    &queue(&run.queue),
                    QueueSettingsPatch {
                        concurrency: Some(Some(QUEUE_CONCURRENCY as u32)),
                        backoff: Some(Some(Backoff {
                            base_ms: QUEUE_BACKOFF_MS,
                            max_ms: QUEUE_BACKOFF_MS,
                        })),
                        ..Default::default()
                    },
                )
                .await
                .expect("queue");
            for (i, op) in ops.iter().enumerate() {
                step(&store, clock.as_ref(), &mut run, op).await;
                check(&store, &run, &format!("step {i} {op:?}")).await;
            }
            drain(&store, clock.as_ref(), &mut run).await;
        });
    });
}

/// One step of a fairness sequence.
#[derive(Debug, Clone)]
enum FairOp {
    /// `n` jobs of tenant `key`.
    Enqueue { key: u8, n: u8 },
    /// Claim one job and complete it.
    Serve,
}

/// Tenants in the fairness pool.
const TENANTS: u8 = 4;

/// With nothing else in the way, no backlog starves another tenant: a tenant with ready
/// jobs is passed over at most twice by each other tenant before it is served. (A tenant
/// that arrives is ranked one step after the queue's virtual time, the rank last claimed;
/// each other tenant may still have a job at that rank and one a step later ahead of it,
/// so the bound is 2 × (tenants − 1) claims, not tenants − 1.)
pub(crate) async fn fair_claiming_starves_no_tenant(Ctx { store, .. }: Ctx) {
    let runs = AtomicUsize::new(0);
    let handle = tokio::runtime::Handle::current();
    let op = prop_oneof![
        1 => (0..TENANTS, 1u8..6).prop_map(|(key, n)| FairOp::Enqueue { key, n }),
        2 => Just(FairOp::Serve),
    ];
    let strategy = proptest::collection::vec(op, 1..60);
    run_blocking(runner(16), strategy, |ops: Vec<FairOp>| {
        let n = runs.fetch_add(1, Ordering::SeqCst);
        let q = format!("fair{n}");
        handle.block_on(async {
            let mut ready: HashMap<String, u32> = HashMap::new();
            let mut passed_over: HashMap<String, u32> = HashMap::new();
            for op in &ops {
                match op {
                    FairOp::Enqueue { key, n } => {
                        let key = format!("t{key}");
                        let jobs = (0..*n).map(|_| tenant(&q, &key, None)).collect();
                        insert(&store, jobs).await;
                        *ready.entry(key).or_default() += u32::from(*n);
                    }
                    FairOp::Serve => {
                        let got = claim(&store, &q, 1).await;
                        let waiting = ready.values().sum::<u32>();
                        assert_eq!(got.len(), usize::from(waiting > 0));
                        let Some(c) = got.first() else { continue };
                        let key = c.job.ordering.fairness_key.clone().expect("key");
                        settled(&store, complete(c)).await;
                        *ready.get_mut(&key).expect("ready") -= 1;
                        passed_over.remove(&key);
                        for (k, left) in &ready {
                            if *left > 0 && *k != key {
                                let p = passed_over.entry(k.clone()).or_default();
                                *p += 1;
                                assert!(
                                    *p <= 2 * u32::from(TENANTS - 1),
                                    "{k} passed over {p} times in a row"
                                );
                            }
                        }
                    }
                }
            }
        });
    });
}

/// One step of a ranked fairness sequence.
#[derive(Debug, Clone)]
enum RankOp {
    /// `n` jobs of tenant `key` (weight `weight`) at `priority`, `delayed` by half a minute.
    Enqueue {
        key: u8,
        n: u8,
        weight: u32,
        priority: i32,
        delayed: bool,
    },
    /// Claim one job and complete it.
    Serve,
    /// Past every delay, then a promotion pass.
    Advance,
}

/// A job as the ranking model knows it.
struct Ranked {
    id: JobId,
    key: String,
    priority: i32,
    rank: i64,
    /// When it falls due, in model time (advances), and its enqueue position: the claim's
    /// tie-break after the rank (`run_at`, then the id, which grows with enqueues).
    due: (u32, u64),
    ready: bool,
}

/// Claims follow the start-time fair queuing rule exactly, with priorities, weights and
/// delays: a new job ranks one step (of its weight) after the later of its tenant's last
/// rank and the lowest rank still ready or waiting (else the queue's virtual time, the
/// highest rank claimed); the claim takes the highest priority, then the lowest rank,
/// then the earliest `run_at`.
pub(crate) async fn fair_claims_follow_the_rank_rule(Ctx { store, clock }: Ctx) {
    let runs = AtomicUsize::new(0);
    let handle = tokio::runtime::Handle::current();
    let op = prop_oneof![
        2 => (0..TENANTS, 1u8..4, 1u32..3, 0i32..2, proptest::bool::weighted(0.3))
            .prop_map(|(key, n, weight, priority, delayed)| RankOp::Enqueue { key, n, weight, priority, delayed }),
        3 => Just(RankOp::Serve),
        1 => Just(RankOp::Advance),
    ];
    let strategy = proptest::collection::vec(op, 1..50);
    run_blocking(runner(24), strategy, |ops: Vec<RankOp>| {
        let n = runs.fetch_add(1, Ordering::SeqCst);
        let q = format!("rank{n}");
        handle.block_on(async {
            let mut jobs: Vec<Ranked> = Vec::new();
            let mut last: HashMap<String, i64> = HashMap::new();
            let mut vtime = 0i64;
            let mut epoch = 0u32;
            let mut seq = 0u64;
            for (i, op) in ops.iter().enumerate() {
                match op {
                    RankOp::Enqueue {
                        key,
                        n,
                        weight,
                        priority,
                        delayed,
                    } => {
                        let key = format!("t{key}");
                        let mut batch = Vec::new();
                        for _ in 0..*n {
                            let mut j = tenant(&q, &key, Some(*weight));
                            j.priority = *priority;
                            if *delayed {
                                j.run_at = RunAt::After(Duration::from_secs(30));
                            }
                            let base = jobs.iter().map(|r| r.rank).min().unwrap_or(vtime);
                            let rank = errand_core::ordering::fair_rank(
                                last.get(&key).copied(),
                                base,
                                j.ordering.fair_step(),
                            );
                            last.insert(key.clone(), rank);
                            seq += 1;
                            jobs.push(Ranked {
                                id: j.id,
                                key: key.clone(),
                                priority: *priority,
                                rank,
                                due: (epoch * 2 + u32::from(*delayed), seq),
                                ready: !*delayed,
                            });
                            batch.push(j);
                        }
                        insert(&store, batch).await;
                    }
                    RankOp::Advance => {
                        clock.advance(Duration::from_secs(31)).await;
                        promote(&store).await;
                        epoch += 1;
                        for j in &mut jobs {
                            j.ready = true;
                        }
                    }
                    RankOp::Serve => {
                        let expected = jobs
                            .iter()
                            .enumerate()
                            .filter(|(_, j)| j.ready)
                            .min_by_key(|(_, j)| (-j.priority, j.rank, j.due))
                            .map(|(at, _)| at);
                        let got = claim(&store, &q, 1).await;
                        match expected {
                            None => assert!(got.is_empty(), "step {i}: nothing is ready"),
                            Some(at) => {
                                let want = jobs.remove(at);
                                let c = got.first().expect("a ready job is claimed");
                                assert_eq!(
                                    (c.job.id, c.job.ordering.fairness_key.as_deref()),
                                    (want.id, Some(want.key.as_str())),
                                    "step {i}: the claim takes priority {}, rank {}",
                                    want.priority,
                                    want.rank
                                );
                                vtime = vtime.max(want.rank);
                                settled(&store, complete(c)).await;
                            }
                        }
                    }
                }
            }
        });
    });
}
