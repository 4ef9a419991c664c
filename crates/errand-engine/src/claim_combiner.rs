//! Workers' cycles that arrive together for one queue go to the store as one call.
//!
//! A worker that keeps many jobs in flight sends a claim for each slot, each carrying the
//! settlement of the job that slot finished. Alone, each is a transaction with its own
//! commit (and, on PostgreSQL, its own statements and round trips), which bounds such a
//! worker by the store's cost per transaction. Here the small cycles waiting for one lane
//! (a queue, a lease length and a kind filter) are taken together: their settlements are
//! settled and their claims made in one [`Store::job_settle_and_claim_together`] call, each
//! claim under its own worker name and lease token, and each caller hears its own part.
//!
//! Nothing waits to be combined: a cycle that finds its lane with a free runner goes to the
//! store at once, alone. Only cycles arriving while as many calls of their lane as the
//! store takes at once ([`Store::combined_calls_at_once`]) are already under way wait, and the
//! next call takes all of them (up to [`CAPS`]), so a batch grows with the load and no
//! further. A claim of more than
//! [`MAX_COMBINED_CLAIM`] jobs already shares its transaction among its jobs and goes alone,
//! as every cycle does on a store that combines nothing (`usize::MAX` calls at once).
//!
//! A combined call that fails with an error one cycle's input may cause (a refusal, a
//! constraint, a lock conflict) kept nothing of it; its cycles are then made again, each
//! alone and side by side, so that one caller's fault is answered to that caller only
//! ([`crate::lanes::redo_alone`]). Any other error (the store unavailable, a corrupt
//! answer) is answered to all of them at once.
//!
//! [`Store::job_settle_and_claim_together`]: errand_store::Store::job_settle_and_claim_together
//! [`Store::combined_calls_at_once`]: errand_store::Store::combined_calls_at_once

use std::sync::Arc;
use std::time::Duration;

use errand_core::{Job, JobId, JobKind, QueueName};
use errand_store::{
    ClaimTaker, ClaimedJob, JobClaimTogetherParams, JobSettleManyParams, Settlement, StoreError,
};
use tokio::sync::oneshot;

use crate::engine::{ClaimRequest, Engine};
use crate::lanes::{drain, redo_alone, unanswered, Batchable, Caps, Lanes, RunnerPlace};
use crate::unheard_claim::UnheardClaim;

/// What one combined call carries at most: 1,000 jobs claimed and 1,000 settlements (a
/// single cycle may carry more settlements and goes alone).
const CAPS: Caps = Caps {
    jobs: 1000,
    entries: 1000,
};

/// A claim of more jobs than this goes alone: its own transaction already serves many
/// jobs, and it would hold its lane's runner from the small cycles that gain from sharing.
const MAX_COMBINED_CLAIM: u32 = 32;

/// What a cycle's caller hears: its settlements' answers, in its order, and its jobs,
/// released again if the caller went away before it took them.
pub(crate) type CycleAnswer = Result<(Vec<Result<Job, StoreError>>, UnheardClaim), StoreError>;

/// The cycles that may share a call: one queue, one lease length, one kind filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Lane {
    queue: QueueName,
    lease: Duration,
    kinds: Vec<JobKind>,
}

impl Lane {
    /// The lane of a claim; kind filters naming the same kinds are one lane.
    pub(crate) fn of(req: &ClaimRequest) -> Self {
        let mut kinds = req.kinds.clone();
        kinds.sort();
        kinds.dedup();
        Lane {
            queue: req.queue.clone(),
            lease: req.lease,
            kinds,
        }
    }
}

/// One caller's cycle, waiting for a call.
pub(crate) struct Cycle {
    /// What it settles (screened for oversized results already).
    pub(crate) settlements: Vec<Settlement>,
    /// Per settlement, the refusal its caller hears instead of the stored outcome.
    pub(crate) too_large: Vec<Option<StoreError>>,
    /// What it claims.
    pub(crate) taker: ClaimTaker,
    /// Where its answer goes.
    pub(crate) answer: oneshot::Sender<CycleAnswer>,
}

impl Batchable for Cycle {
    type Unique = JobId;

    fn jobs(&self) -> u32 {
        self.taker.max
    }

    fn entries(&self) -> usize {
        self.settlements.len()
    }

    /// Each call settles a job once.
    fn uniques(&self) -> Vec<JobId> {
        self.settlements.iter().map(Settlement::id).collect()
    }

    /// A cycle whose caller has gone still settles, but claims nothing.
    fn prepare(&mut self) {
        if self.answer.is_closed() {
            self.taker.max = 0;
        }
    }

    fn refuse(self, error: StoreError) {
        let _ = self.answer.send(Err(error));
    }
}

/// The lanes of claims waiting to go to the store together.
pub(crate) type ClaimCombiner = Lanes<Lane, Cycle>;

impl Engine {
    /// One worker cycle: settles `settlements`, then claims for `req` (once: no waiting),
    /// with the other cycles of its lane that wait meanwhile. The store call runs in a task
    /// of its own, so it completes, and announces what it kept, even when the caller stops
    /// waiting.
    pub(crate) async fn cycle(
        &self,
        settlements: Vec<Settlement>,
        req: &ClaimRequest,
    ) -> Result<(Vec<Result<Job, StoreError>>, Vec<ClaimedJob>), StoreError> {
        let engine = self.me()?;
        let (settlements, too_large) = self.screen_results(settlements);
        let (answer, heard) = oneshot::channel();
        let lane = Lane::of(req);
        let cycle = Cycle {
            settlements,
            too_large,
            taker: ClaimTaker {
                worker: req.worker.clone(),
                max: req.max,
            },
            answer,
        };
        let runners = self.combined_calls_at_once();
        if runners == usize::MAX || req.max > MAX_COMBINED_CLAIM {
            // A call of one cycle answers its failure itself.
            tokio::spawn(async move {
                let _ = engine.run_batch(&lane, vec![cycle]).await;
            });
        } else if self.combiner.enter(&lane, cycle, runners) {
            let (e, l) = (engine.clone(), lane.clone());
            let place =
                RunnerPlace::new(move |panicking| e.combiner.abandon(&l, panicking, "claim"));
            tokio::spawn(run_lane(engine, lane, place));
        }
        let (settled, claimed) = heard.await.map_err(|_| {
            unanswered(self.shutdown_token().is_cancelled(), "claim's store call")
        })??;
        let claimed = claimed.heard();
        self.announce_claimed(&req.queue, &claimed);
        Ok((settled, claimed))
    }

    /// One store call for `batch`; answers each cycle. A failed call of several cycles
    /// that one cycle's input may have caused answers none and hands them back (their
    /// settlements spent), to be made again alone.
    async fn run_batch(&self, lane: &Lane, batch: Vec<Cycle>) -> Result<(), Vec<CycleRest>> {
        let mut settlements = Vec::new();
        let mut takers = Vec::with_capacity(batch.len());
        let mut rest = Vec::with_capacity(batch.len());
        for cycle in batch {
            let count = cycle.settlements.len();
            settlements.extend(cycle.settlements);
            takers.push(cycle.taker.clone());
            rest.push(CycleRest {
                count,
                too_large: cycle.too_large,
                taker: cycle.taker,
                answer: cycle.answer,
            });
        }
        let expected = settlements.len();
        let op = if settlements.is_empty() {
            "job_claim"
        } else {
            "job_settle_and_claim"
        };
        let settle = JobSettleManyParams {
            settlements,
            retry_policy: self.config().retry_policy,
        };
        self.metrics.combined(op, rest.len());
        let claims = JobClaimTogetherParams {
            queue: lane.queue.clone(),
            lease: lane.lease,
            kinds: lane.kinds.clone(),
            takers,
        };
        let out = self
            .metrics
            .timed(
                op,
                self.store().job_settle_and_claim_together(settle, claims),
            )
            .await
            .and_then(|out| {
                // Each list is guarded at once: jobs nobody hears of go back to the queue.
                let claimed: Vec<UnheardClaim> = out
                    .claimed
                    .into_iter()
                    .map(|jobs| self.unheard(jobs))
                    .collect();
                if claimed.len() != rest.len() || out.settled.len() != expected {
                    return Err(StoreError::Corrupt(format!(
                        "the store answered {} claims and {} settlements for {} and {}",
                        claimed.len(),
                        out.settled.len(),
                        rest.len(),
                        expected
                    )));
                }
                Ok((out.settled, claimed))
            });
        let (settled, claimed) = match out {
            Ok(out) => out,
            Err(e) if rest.len() > 1 && redo_alone(&e) => {
                tracing::debug!(error = %e, cycles = rest.len(), "a combined claim failed; each of its cycles is made alone");
                return Err(rest);
            }
            Err(e) => {
                for cycle in rest {
                    let _ = cycle.answer.send(Err(e.clone()));
                }
                return Ok(());
            }
        };
        let mut settled = settled.into_iter();
        for (cycle, claimed) in rest.into_iter().zip(claimed) {
            let own: Vec<_> = settled.by_ref().take(cycle.count).collect();
            let answered = self.settled(own, cycle.too_large);
            // A caller that went away drops the claim it did not hear, which releases it.
            let _ = cycle.answer.send(Ok((answered, claimed)));
        }
        Ok(())
    }
}

/// A runner: makes its lane's batches until none waits ([`drain`]).
async fn run_lane(engine: Arc<Engine>, lane: Lane, place: RunnerPlace<impl FnOnce(bool)>) {
    drain(
        &engine.combiner,
        &lane,
        CAPS,
        |cycle| cycle.settlements.clone(),
        |batch| engine.run_batch(&lane, batch),
        |rest: CycleRest, settlements| Cycle {
            settlements,
            too_large: rest.too_large,
            taker: rest.taker,
            answer: rest.answer,
        },
    )
    .await;
    place.ended();
}

/// A cycle whose settlements went into a call: what is needed to answer it.
pub(crate) struct CycleRest {
    count: usize,
    too_large: Vec<Option<StoreError>>,
    taker: ClaimTaker,
    answer: oneshot::Sender<CycleAnswer>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use errand_core::{JobState, LeaseToken};

    use super::*;
    use crate::lanes::testing::{combined_calls, combining_engine, store_calls, until};

    fn lane() -> Lane {
        Lane {
            queue: QueueName::parse("q").expect("queue"),
            lease: Duration::from_secs(60),
            kinds: vec![],
        }
    }

    fn complete(id: JobId, lease_token: LeaseToken) -> Settlement {
        Settlement::Complete {
            id,
            lease_token,
            result: None,
            report: None,
            session_state: Default::default(),
        }
    }

    /// A cycle whose caller listens for the whole test (a closed answer claims nothing).
    fn cycle(max: u32, settles: &[JobId]) -> Cycle {
        let (answer, heard) = oneshot::channel();
        std::mem::forget(heard);
        Cycle {
            settlements: settles
                .iter()
                .map(|id| complete(*id, LeaseToken::new()))
                .collect(),
            too_large: settles.iter().map(|_| None).collect(),
            taker: ClaimTaker {
                worker: "w".into(),
                max,
            },
            answer,
        }
    }

    fn sizes(batch: &[Cycle]) -> Vec<u32> {
        batch.iter().map(|c| c.taker.max).collect()
    }

    #[test]
    fn cycles_wait_only_while_the_runners_are_busy() {
        let c = ClaimCombiner::default();
        assert!(
            c.enter(&lane(), cycle(1, &[]), 1),
            "a free lane starts a runner"
        );
        assert!(!c.enter(&lane(), cycle(2, &[]), 1), "the runner is busy");
        assert!(!c.enter(&lane(), cycle(3, &[]), 1));
        assert_eq!(
            sizes(&c.next_batch(&lane(), CAPS).expect("batch")),
            vec![1, 2, 3]
        );
        assert!(c.next_batch(&lane(), CAPS).is_none(), "the runner ends");
        assert_eq!(c.counts(&lane()), (0, 0));
        assert!(
            c.enter(&lane(), cycle(1, &[]), 1),
            "and the next cycle starts one"
        );
        assert!(c.enter(&lane(), cycle(1, &[]), 2), "two may run");
    }

    #[test]
    fn a_batch_settles_each_job_once_and_keeps_to_its_caps() {
        let c = ClaimCombiner::default();
        let (a, b) = (JobId::new(), JobId::new());
        c.enter(&lane(), cycle(1, &[a]), 1);
        c.enter(&lane(), cycle(2, &[a, b]), 1);
        c.enter(&lane(), cycle(3, &[b]), 1);
        c.enter(&lane(), cycle(4, &[]), 1);
        // The second settles `a` again: it waits for the next batch, and the third (which
        // does not collide with the first) goes now.
        assert_eq!(
            sizes(&c.next_batch(&lane(), CAPS).expect("first")),
            vec![1, 3, 4]
        );
        assert_eq!(
            sizes(&c.next_batch(&lane(), CAPS).expect("second")),
            vec![2]
        );
        assert!(c.next_batch(&lane(), CAPS).is_none());

        c.enter(&lane(), cycle(CAPS.jobs + 5, &[]), 1);
        c.enter(&lane(), cycle(600, &[]), 1);
        c.enter(&lane(), cycle(400, &[]), 1);
        c.enter(&lane(), cycle(1, &[]), 1);
        assert_eq!(
            sizes(&c.next_batch(&lane(), CAPS).expect("alone")),
            vec![CAPS.jobs + 5],
            "a cycle above the cap goes alone"
        );
        assert_eq!(
            sizes(&c.next_batch(&lane(), CAPS).expect("to the cap")),
            vec![600, 400]
        );
        assert_eq!(sizes(&c.next_batch(&lane(), CAPS).expect("rest")), vec![1]);
    }

    #[test]
    fn a_runner_that_ends_abnormally_gives_its_place_back_and_its_waiting_cycles_an_error() {
        let c = ClaimCombiner::default();
        let (answer, mut heard) = oneshot::channel();
        assert!(c.enter(&lane(), cycle(1, &[]), 1));
        assert_eq!(
            c.next_batch(&lane(), CAPS).map(|b| b.len()),
            Some(1),
            "under way"
        );
        assert!(!c.enter(
            &lane(),
            Cycle {
                answer,
                ..cycle(1, &[])
            },
            1
        ));
        let l = lane();
        drop(RunnerPlace::new(|panicking| {
            c.abandon(&l, panicking, "claim")
        }));
        assert_eq!(c.counts(&lane()), (0, 0), "the lane is free again");
        assert!(
            matches!(heard.try_recv(), Ok(Err(StoreError::Unavailable(_)))),
            "the waiting caller hears that the call was cancelled"
        );
        assert!(
            c.enter(&lane(), cycle(1, &[]), 1),
            "the next cycle starts a runner"
        );
        let ended = RunnerPlace::new(|_| panic!("a runner that ended normally gives nothing back"));
        ended.ended();
    }

    #[test]
    fn a_caller_gone_while_waiting_settles_but_claims_nothing() {
        let c = ClaimCombiner::default();
        let (answer, heard) = oneshot::channel();
        c.enter(&lane(), cycle(1, &[]), 1);
        c.enter(
            &lane(),
            Cycle {
                answer,
                ..cycle(5, &[JobId::new()])
            },
            1,
        );
        drop(heard);
        let batch = c.next_batch(&lane(), CAPS).expect("batch");
        assert_eq!(sizes(&batch), vec![1, 0]);
        assert_eq!(
            batch[1].settlements.len(),
            1,
            "its settlement is still kept"
        );
    }

    fn claim_one(worker: &str) -> ClaimRequest {
        ClaimRequest {
            queue: lane().queue,
            worker: worker.into(),
            max: 1,
            lease: lane().lease,
            kinds: vec![],
            wait: Duration::ZERO,
        }
    }

    /// Occupies the lane's one runner: a claim whose store call waits on the write lock
    /// `raw` takes. The runner holds it until the lock is let go.
    async fn occupy_runner(
        engine: &Arc<Engine>,
        raw: &rusqlite::Connection,
    ) -> tokio::task::JoinHandle<Vec<ClaimedJob>> {
        raw.execute_batch("BEGIN IMMEDIATE").expect("write lock");
        let e = engine.clone();
        let first = tokio::spawn(async move { e.claim(claim_one("first")).await.expect("claim") });
        until("the runner took the first cycle", || {
            engine.combiner.counts(&lane()) == (1, 0)
        })
        .await;
        first
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cycles_that_wait_together_go_in_one_call_and_each_hears_its_own() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (engine, raw) = combining_engine(dir.path());
        let jobs: Vec<_> = (0..9)
            .map(|_| errand_store::conformance::new_job("q", "k"))
            .collect();
        engine.enqueue_many(jobs).await.expect("enqueue");
        let first = occupy_runner(&engine, &raw).await;
        let mut waiting = Vec::new();
        for i in 0..8 {
            let e = engine.clone();
            let worker = format!("w{i}");
            waiting.push(tokio::spawn(async move {
                (e.claim(claim_one(&worker)).await.expect("claim"), worker)
            }));
        }
        until("eight cycles wait", || {
            engine.combiner.counts(&lane()) == (1, 8)
        })
        .await;
        raw.execute_batch("COMMIT").expect("let go");

        assert_eq!(first.await.expect("first").len(), 1);
        let mut ids = std::collections::HashSet::new();
        let mut tokens = std::collections::HashSet::new();
        for task in waiting {
            let (claimed, worker) = task.await.expect("cycle");
            assert_eq!(claimed.len(), 1, "{worker} got its job");
            let job = engine
                .job(claimed[0].job.id, Duration::ZERO)
                .await
                .expect("job");
            assert_eq!(job.worker.as_deref(), Some(worker.as_str()));
            assert_eq!(job.state, JobState::Running);
            ids.insert(job.id);
            tokens.insert(claimed[0].lease_token);
        }
        assert_eq!(ids.len(), 8, "no job went to two callers");
        assert_eq!(tokens.len(), 8, "each caller has its own token");
        assert_eq!(
            store_calls(&engine, "job_claim").await,
            2.0,
            "the first alone, then the eight together"
        );
        assert_eq!(
            combined_calls(&engine, "job_claim", "1").await,
            1.0,
            "one call alone"
        );
        assert_eq!(
            combined_calls(&engine, "job_claim", "8").await,
            2.0,
            "and one of eight: two calls of at most eight"
        );
        assert_eq!(engine.combiner.counts(&lane()), (0, 0), "the runner ended");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cycle_that_fails_a_combined_call_is_answered_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (engine, raw) = combining_engine(dir.path());
        let new = || errand_store::conformance::new_job("q", "k");
        engine
            .enqueue_many(vec![new(), new(), new()])
            .await
            .expect("enqueue");
        let mut held = Vec::new();
        for worker in ["a", "b", "c"] {
            held.push(
                engine
                    .claim(claim_one(worker))
                    .await
                    .expect("claim")
                    .remove(0),
            );
        }
        engine
            .enqueue_many(vec![new(), new(), new(), new()])
            .await
            .expect("enqueue");
        // The database refuses to write b's job: a fault of b's settlement alone.
        raw.execute_batch(&format!(
            "CREATE TRIGGER boom BEFORE UPDATE ON jobs WHEN NEW.id = X'{}' \
             BEGIN SELECT RAISE(ABORT, 'injected'); END",
            held[1].job.id.to_string().replace('-', "")
        ))
        .expect("trigger");
        let first = occupy_runner(&engine, &raw).await;
        let mut cycles = Vec::new();
        for c in &held {
            let e = engine.clone();
            let settle = complete(c.job.id, c.lease_token);
            let req = claim_one(c.job.worker.as_deref().expect("worker"));
            cycles.push(tokio::spawn(async move {
                e.settle_and_claim(vec![settle], req).await
            }));
        }
        until("three cycles wait", || {
            engine.combiner.counts(&lane()) == (1, 3)
        })
        .await;
        raw.execute_batch("COMMIT").expect("let go");
        assert_eq!(first.await.expect("first").len(), 1);

        let mut answers = Vec::new();
        for task in cycles {
            answers.push(task.await.expect("cycle"));
        }
        for i in [0, 2] {
            let (settled, claimed) = answers[i].as_ref().expect("a and c are answered");
            assert_eq!(
                settled[0].as_ref().expect("settled").state,
                JobState::Succeeded
            );
            assert_eq!(claimed.len(), 1, "and claim their next job");
        }
        assert!(
            matches!(&answers[1], Err(StoreError::ConstraintViolated(_))),
            "b hears its fault: {:?}",
            answers[1]
        );
        let b = engine
            .job(held[1].job.id, Duration::ZERO)
            .await
            .expect("job");
        assert_eq!(b.state, JobState::Running, "nothing of b's cycle was kept");
        let mut rest = claim_one("after");
        rest.max = 10;
        assert_eq!(
            engine.claim(rest).await.expect("claim").len(),
            1,
            "of four new jobs the first, a and c took one each, b none"
        );
        assert_eq!(
            store_calls(&engine, "job_settle_and_claim").await,
            4.0,
            "the combined call, then each cycle alone"
        );
    }
}
