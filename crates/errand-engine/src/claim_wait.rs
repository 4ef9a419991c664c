//! A worker's cycle that may wait for work: settle, claim, and park on the queue until
//! jobs come (or the wait ends), with the settlements made once, in the first store call.
//!
//! The claim's wake-up is registered before each store claim, so a job that arrives
//! between a claim that found nothing and the park is never missed; the park therefore
//! follows the cycle's own empty claim directly, without a second claim to look again.
//! While parked, a claim that takes any kind offers itself to its queue's next insert
//! ([`crate::handoff`]).

use errand_core::Job;
use errand_store::{ClaimTaker, ClaimedJob, Settlement, StoreError};
use tokio::time::Instant;

use crate::engine::{ClaimRequest, Engine};

/// Each settlement's answer, and the jobs claimed.
type CycleOutcome = (Vec<Result<Job, StoreError>>, Vec<ClaimedJob>);

impl Engine {
    /// Settles `settlements` and claims for `req`, waiting up to `req.wait` for jobs when
    /// none is ready. The settlements go with the first store call only; once they are kept,
    /// their answers reach the caller even when a later claim fails.
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
        let waiting = self.waker().wait_on(&req.queue, filtered);
        let mut settlements = Some(settlements);
        let mut settled: Option<Vec<Result<Job, StoreError>>> = None;
        loop {
            let notified = waiting.notify().notified();
            tokio::pin!(notified);
            // Registered before the claim: a wake-up between claim and wait is not lost.
            notified.as_mut().enable();
            let jobs = match self
                .cycle(settlements.take().unwrap_or_default(), &req)
                .await
            {
                Ok((answers, jobs)) => {
                    settled.get_or_insert(answers);
                    jobs
                }
                Err(e) => match settled {
                    None => return Err(e),
                    Some(settled) => {
                        tracing::warn!(error = %e, "a claim after a cycle's settlements failed; answering the settlements");
                        return Ok((settled, Vec::new()));
                    }
                },
            };
            let now = Instant::now();
            if !jobs.is_empty() || now >= deadline || shutdown.is_cancelled() {
                return Ok((settled.unwrap_or_default(), jobs));
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
            tokio::select! {
                // First: jobs handed over win over the wake-up sent with them, which then
                // passes to the next parked claim.
                biased;
                h = async {
                    match handed.as_mut() {
                        Some(h) => h.await,
                        None => std::future::pending().await,
                    }
                } => outcome = Some(h),
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(recheck) => {}
                _ = shutdown.cancelled() => {}
            }
            if let (None, Some(offer), Some(h)) = (&outcome, offer, handed.as_mut()) {
                if !offer.withdraw() {
                    // An insert took the offer: its answer is on the way.
                    outcome = Some(h.await);
                }
            }
            // A dropped answer: the insert failed, and the queue is looked at again.
            if let Some(Ok(unheard)) = outcome {
                let jobs = unheard.heard();
                self.announce_claimed(&req.queue, &jobs);
                if !jobs.is_empty() {
                    return Ok((settled.unwrap_or_default(), jobs));
                }
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

    use errand_core::{JobState, QueueName};
    use errand_store::Settlement;

    use crate::lanes::testing::{combining_engine, store_calls, until};
    use crate::ClaimRequest;

    fn queue() -> QueueName {
        QueueName::parse("q").expect("queue")
    }

    fn claim(wait: Duration) -> ClaimRequest {
        ClaimRequest {
            queue: queue(),
            worker: "w".into(),
            max: 1,
            lease: Duration::from_secs(60),
            kinds: vec![],
            wait,
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
        engine.enqueue_many(vec![job()]).await.expect("enqueue");
        let first = engine
            .claim(claim(Duration::ZERO))
            .await
            .expect("claim")
            .remove(0);
        let done = Settlement::Complete {
            id: first.job.id,
            lease_token: first.lease_token,
            result: None,
            report: None,
            session_state: Default::default(),
        };
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
}
