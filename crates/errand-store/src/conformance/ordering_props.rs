//! Property tests of ordering: random sequences of enqueues (with lock, concurrency,
//! session and fairness keys from small pools), claims, completes, fails, lease expiries,
//! delays and cancels, with the invariants checked against the store after every step.
//!
//! proptest generates and shrinks the sequences; each sequence runs on its own queue and
//! its own keys in the case's store, driving the store's clock, so one store serves every
//! sequence. The runner is synchronous: it runs inside `block_in_place`, and each sequence
//! on the case's runtime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use errand_core::job::RunAt;
use errand_core::ordering::{JobOrdering, SessionOnDead};
use errand_core::queue::QueueSettingsPatch;
use errand_core::{Job, JobId, JobState, NewJob};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::support::*;
use super::{Ctx, DriveClock};
use crate::{ClaimedJob, JobListParams, SessionListParams, SharedStore, StoreError};

/// How many running jobs of a property queue the queue's concurrency allows.
const QUEUE_CONCURRENCY: usize = 4;
/// The places of concurrency key `i` of the pool: `i + 1`.
const KEY_LIMITS: [u32; 2] = [1, 2];

/// The one key a generated job waits its turn on.
#[derive(Debug, Clone, Copy)]
enum GateChoice {
    None,
    Lock(u8),
    Key(u8),
    Session { key: u8, go_on: bool },
}

/// One step of a generated sequence.
#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        gate: GateChoice,
        fair: Option<u8>,
        delayed: bool,
    },
    Claim {
        max: u32,
    },
    Complete {
        pick: usize,
    },
    Fail {
        pick: usize,
        backoff: bool,
        dead: bool,
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
        2 => (0u8..2).prop_map(GateChoice::Key),
        2 => ((0u8..2), proptest::bool::weighted(0.3))
            .prop_map(|(key, go_on)| GateChoice::Session { key, go_on }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (gate_choice(), proptest::option::weighted(0.3, 0u8..3), proptest::bool::weighted(0.15))
            .prop_map(|(gate, fair, delayed)| Op::Enqueue { gate, fair, delayed }),
        4 => (1u32..5).prop_map(|max| Op::Claim { max }),
        3 => any::<usize>().prop_map(|pick| Op::Complete { pick }),
        2 => (any::<usize>(), any::<bool>(), proptest::bool::weighted(0.15))
            .prop_map(|(pick, backoff, dead)| Op::Fail { pick, backoff, dead }),
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

/// One sequence's jobs as the driver knows them: enqueue order, each job's session and
/// the claims it holds.
struct Run {
    queue: String,
    prefix: String,
    order: Vec<JobId>,
    session_of: HashMap<JobId, String>,
    held: Vec<ClaimedJob>,
}

impl Run {
    fn job(&self, gate: GateChoice, fair: Option<u8>, delayed: bool) -> NewJob {
        let p = &self.prefix;
        let mut o = JobOrdering::default();
        match gate {
            GateChoice::None => {}
            GateChoice::Lock(i) => o.lock_key = Some(format!("{p}l{i}")),
            GateChoice::Key(i) => {
                o.concurrency_key = Some(format!("{p}k{i}"));
                o.concurrency_limit = Some(KEY_LIMITS[usize::from(i)]);
            }
            GateChoice::Session { key, go_on } => {
                o.session_key = Some(format!("{p}s{key}"));
                o.session_on_dead = go_on.then_some(SessionOnDead::Continue);
            }
        }
        o.fairness_key = fair.map(|f| format!("{p}f{f}"));
        let mut j = ordered(&self.queue, o);
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
        let cap = match gate.strip_prefix(&format!("key {}k", run.prefix)) {
            Some(i) => KEY_LIMITS[i.parse::<usize>().expect("key index")],
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
            .filter(|j| j.attempt > 0 && !finished(j.state))
            .count();
        assert!(
            open <= 1,
            "after {step}: {open} started jobs of session {s} unfinished"
        );
        let mut waiting = false;
        for j in line {
            let skipped = j.attempt == 0 && j.state == JobState::Cancelled;
            if skipped {
                continue;
            }
            if j.attempt == 0 {
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
        } => {
            let j = run.job(*gate, *fair, *delayed);
            run.order.push(j.id);
            if let Some(s) = &j.ordering.session_key {
                run.session_of.insert(j.id, s.clone());
            }
            insert(store, vec![j]).await;
        }
        Op::Claim { max } => {
            let got = claim(store, &run.queue, *max).await;
            run.held.extend(got);
        }
        Op::Complete { pick } => {
            if !run.held.is_empty() {
                let c = run.held.remove(pick % run.held.len());
                settle_held(store, complete(&c)).await;
            }
        }
        Op::Fail {
            pick,
            backoff,
            dead,
        } => {
            if !run.held.is_empty() {
                let c = run.held.remove(pick % run.held.len());
                let retry = if *backoff {
                    Duration::from_secs(60)
                } else {
                    Duration::ZERO
                };
                settle_held(store, fail(&c, Some(retry), *dead)).await;
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
            session_of: HashMap::new(),
            held: Vec::new(),
        };
        handle.block_on(async {
            store
                .queue_update(
                    &queue(&run.queue),
                    QueueSettingsPatch {
                        concurrency: Some(Some(QUEUE_CONCURRENCY as u32)),
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
