//! A worker's cycle that may wait for work: settle, claim, and park on the queue until
//! jobs come (or the wait ends), with the settlements made once, in the first store call.
//!
//! The claim's wake-up is registered before each store claim, so a job whose wake-up comes
//! between a claim that found nothing and the park still wakes it; the park therefore
//! follows the cycle's own empty claim directly, without a second claim to look again. A
//! cycle with a kind filter is the exception: registered, it would turn its queue's single
//! wake-ups into wake-alls for as long as its call runs, so it makes its first call before
//! it registers and looks again once registered.
//! While parked, a claim that takes any kind offers itself to its queue's next insert
//! ([`crate::handoff`]).

use errand_core::Job;
use errand_store::{ClaimTaker, ClaimedJob, Settlement, StoreError};
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::{ClaimRequest, Engine};

/// Each settlement's answer, and the jobs claimed.
type CycleOutcome = (Vec<Result<Job, StoreError>>, Vec<ClaimedJob>);

/// How long past its deadline a claim whose offer an insert took waits for that insert's
/// answer; later, the jobs it would have been handed are given back.
const HANDED_GRACE: Duration = Duration::from_secs(5);

impl Engine {
    /// Settles `settlements` and claims for `req`, waiting up to `req.wait` for jobs when
    /// none is ready. The settlements go with the first store call only; once that call
    /// kept them, their answers reach the caller even when a later claim fails. A claim
    /// that carried no settlements hears every store error.
    pub(crate) async fn cycle_waiting(
        &self,
        settlements: Vec<Settlement>,
        req: ClaimRequest,
    ) -> Result<CycleOutcome, StoreError> {
        if req.wait.is_zero() {
            return self.cycle(settlements, &req).await;
        }
        let deadline = Instant::now() + req.wait;
        let shutdown = self.shutdown_token();
        let filtered = !req.kinds.is_empty();
        let carries = !settlements.is_empty();
        let mut settlements = Some(settlements);
        let mut settled: Option<Vec<Result<Job, StoreError>>> = None;
        if filtered && carries {
            // A claim with a kind filter turns its queue's single wake-ups into wake-alls
            // while it is registered: a busy cycle with one makes its first call before it
            // registers, and looks again once registered only when that call found nothing.
            let (answers, jobs) = self
                .cycle(settlements.take().unwrap_or_default(), &req)
                .await?;
            if !jobs.is_empty() || Instant::now() >= deadline || shutdown.is_cancelled() {
                return Ok((answers, jobs));
            }
            settled = Some(answers);
        }
        let waiting = self.waker().wait_on(&req.queue, filtered);
        // False after an insert's claim made for this one found nothing: it parks again
        // without a claim of its own.
        let mut look = true;
        loop {
            let notified = waiting.notify().notified();
            tokio::pin!(notified);
            // Registered before the claim: a wake-up between claim and wait is not lost.
            notified.as_mut().enable();
            if look {
                let jobs = match self
                    .cycle(settlements.take().unwrap_or_default(), &req)
                    .await
                {
                    Ok((answers, jobs)) => {
                        settled.get_or_insert(answers);
                        jobs
                    }
                    Err(e) => match settled {
                        Some(settled) if carries => {
                            tracing::warn!(error = %e, "a claim after a cycle's settlements failed; answering the settlements");
                            return Ok((settled, Vec::new()));
                        }
                        _ => return Err(e),
                    },
                };
                if !jobs.is_empty() {
                    return Ok((settled.unwrap_or_default(), jobs));
                }
            }
            look = true;
            let now = Instant::now();
            if now >= deadline || shutdown.is_cancelled() {
                return Ok((settled.unwrap_or_default(), Vec::new()));
            }
            let recheck = (now + self.config().claim_recheck).min(deadline);
            // A claim that takes any kind offers itself to the queue's next insert (before
            // it counts as parked: a caller that sees it parked may enqueue for it).
            let (offer, mut handed) = if filtered {
                (None, None)
            } else {
                let taker = ClaimTaker {
                    worker: req.worker.clone(),
                    max: req.max,
                };
                let (offer, handed) = waiting.offers().offer(taker, req.lease);
                (Some(offer), Some(handed))
            };
            let _parked = waiting.parked();
            let mut outcome = None;
            let mut woken = false;
            tokio::select! {
                // First: jobs handed over win over a wake-up sent with them, which then
                // passes to the next parked claim when this one's `notified` drops.
                biased;
                h = async {
                    match handed.as_mut() {
                        Some(h) => h.await,
                        None => std::future::pending().await,
                    }
                } => outcome = Some(h),
                _ = &mut notified => woken = true,
                _ = tokio::time::sleep_until(recheck) => {}
                _ = shutdown.cancelled() => {}
            }
            if let (None, Some(offer), Some(h)) = (&outcome, offer, handed.as_mut()) {
                if !offer.withdraw() {
                    // An insert took the offer: its answer is on the way. Past the grace,
                    // dropping the receiver gives back what it brings.
                    let until = deadline.max(Instant::now()) + HANDED_GRACE;
                    outcome = tokio::time::timeout_at(until, h).await.ok();
                }
            }
            // No answer: the insert failed, or its answer came too late; the claim looks
            // at the queue again.
            if let Some(Ok(unheard)) = outcome {
                let jobs = unheard.heard();
                self.announce_claimed(&req.queue, &jobs);
                if !jobs.is_empty() {
                    if woken {
                        // The wake-up this claim took was for other work.
                        waiting.notify().notify_one();
                    }
                    return Ok((settled.unwrap_or_default(), jobs));
                }
                // The insert's claim, made for this one, found nothing it may take.
                look = woken;
            }
            if shutdown.is_cancelled() {
                return Ok((settled.unwrap_or_default(), Vec::new()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use errand_core::job::RunAt;
    use errand_core::{JobState, QueueName};
    use errand_store::{DueWork, Settlement, StoreError};

    use crate::lanes::testing::{claim_one, combining_engine, store_calls, until};
    use crate::ClaimRequest;

    fn queue() -> QueueName {
        QueueName::parse("q").expect("queue")
    }

    fn claim(wait: Duration) -> ClaimRequest {
        claim_one("q", "w", wait)
    }

    /// Enqueues a job, claims it with `req` and answers its completion, to be carried.
    async fn one_done(engine: &crate::Engine, req: ClaimRequest) -> Settlement {
        let job = errand_store::conformance::new_job("q", "k");
        engine.enqueue_many(vec![job]).await.expect("enqueue");
        let first = engine.claim(req).await.expect("claim").remove(0);
        Settlement::Complete {
            id: first.job.id,
            lease_token: first.lease_token,
            result: None,
            report: None,
            session_state: Default::default(),
        }
    }

    /// A cycle whose claim finds nothing parks at once (its wake-up was registered before
    /// that claim) and claims no second time before work comes; its settlement is answered
    /// with the job it later gets.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cycle_that_finds_nothing_parks_without_claiming_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (engine, _raw) = combining_engine(dir.path());
        let job = || errand_store::conformance::new_job("q", "k");
        let done = one_done(&engine, claim(Duration::ZERO)).await;
        let e = engine.clone();
        let cycle = tokio::spawn(async move {
            e.settle_and_claim(vec![done], claim(Duration::from_secs(30)))
                .await
        });
        until("the cycle parks", || engine.waiting_claims(&queue()) == 1).await;
        assert_eq!(store_calls(&engine, "job_settle_and_claim").await, 1.0);
        assert_eq!(
            store_calls(&engine, "job_claim").await,
            1.0,
            "only the first claim: the cycle's empty claim was not made again"
        );
        engine.enqueue_many(vec![job()]).await.expect("enqueue");
        let (settled, claimed) = cycle.await.expect("task").expect("cycle");
        assert_eq!(settled.len(), 1);
        assert_eq!(
            settled[0].as_ref().expect("settled").state,
            JobState::Succeeded
        );
        assert_eq!(claimed.len(), 1, "the job enqueued while it was parked");
        assert_eq!(store_calls(&engine, "job_claim").await, 1.0);
    }

    /// A long-poll that carried no settlements hears a store error of a later claim, not
    /// an empty answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_claim_hears_the_store_fail() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (engine, raw) = combining_engine(dir.path());
        drop(raw);
        let e = engine.clone();
        let waiting = tokio::spawn(async move { e.claim(claim(Duration::from_secs(30))).await });
        until("the claim parks", || engine.waiting_claims(&queue()) == 1).await;
        // The store's files go: its next write (the claim, once woken) is refused.
        for entry in std::fs::read_dir(dir.path()).expect("dir") {
            std::fs::remove_file(entry.expect("entry").path()).expect("remove");
        }
        engine.wake(&queue());
        let outcome = waiting.await.expect("task");
        assert!(
            matches!(outcome, Err(StoreError::Unavailable(_))),
            "{outcome:?}"
        );
    }

    /// A parked claim whose offer an enqueue took may be leased an older job that was due
    /// (a delay that ended, not yet promoted); the enqueue's own job then still wakes
    /// another parked claim.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_job_handed_past_still_wakes_another_claim() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (engine, _raw) = combining_engine(dir.path());
        let job = || errand_store::conformance::new_job("q", "k");
        let mut claims = Vec::new();
        for _ in 0..2 {
            let e = engine.clone();
            claims.push(tokio::spawn(async move {
                e.claim(claim(Duration::from_secs(30))).await
            }));
        }
        until("both claims park", || engine.waiting_claims(&queue()) == 2).await;
        // Delayed by a millisecond; nothing promotes it in this engine.
        let mut due = job();
        due.run_at = RunAt::After(Duration::from_millis(1));
        let due_id = due.id;
        engine.enqueue_many(vec![due]).await.expect("enqueue");
        let store = engine.store().clone();
        errand_testkit::eventually("the delay ends", Duration::from_secs(10), || {
            let store = store.clone();
            async move {
                let soon = store.due_in(DueWork::Promote).await.ok()??;
                soon.is_zero().then_some(())
            }
        })
        .await;
        let fresh = job();
        let fresh_id = fresh.id;
        engine.enqueue_many(vec![fresh]).await.expect("enqueue");
        let mut got = Vec::new();
        for c in claims {
            let jobs = tokio::time::timeout(Duration::from_secs(10), c)
                .await
                .expect("both claims answer (no re-check comes within the test)")
                .expect("task")
                .expect("claim");
            got.extend(jobs.into_iter().map(|c| c.job.id));
        }
        got.sort();
        let mut want = vec![due_id, fresh_id];
        want.sort();
        assert_eq!(got, want);
        assert_eq!(store_calls(&engine, "job_insert_and_claim").await, 1.0);
    }

    /// A busy cycle with a kind filter is not registered as a waiter (which would turn its
    /// queue's single wake-ups into wake-alls) while its first store call runs; once that
    /// call found nothing it registers, parks, and is woken for its kind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_filtered_cycle_registers_only_after_its_first_call_found_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (engine, raw) = combining_engine(dir.path());
        let job = || errand_store::conformance::new_job("q", "k");
        let filtered = |wait| ClaimRequest {
            kinds: vec![errand_core::JobKind::parse("k").expect("kind")],
            ..claim(wait)
        };
        let done = one_done(&engine, filtered(Duration::ZERO)).await;
        raw.execute_batch("BEGIN IMMEDIATE").expect("write lock");
        let req = filtered(Duration::from_secs(30));
        let lane = crate::claim_combiner::Lane::of(&req);
        let e = engine.clone();
        let cycle = tokio::spawn(async move { e.settle_and_claim(vec![done], req).await });
        until("the cycle's first call runs", || {
            engine.combiner.counts(&lane) == (1, 0)
        })
        .await;
        assert_eq!(
            engine.waker().claiming(&queue()),
            0,
            "not a waiter during its first call"
        );
        raw.execute_batch("COMMIT").expect("let go");
        until("the cycle parks", || engine.waiting_claims(&queue()) == 1).await;
        engine.enqueue_many(vec![job()]).await.expect("enqueue");
        let (settled, claimed) = cycle.await.expect("task").expect("cycle");
        assert!(settled[0].is_ok());
        assert_eq!(claimed.len(), 1);
    }
}
