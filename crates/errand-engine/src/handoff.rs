//! Claims parked on a queue offer themselves to the next enqueue of that queue.
//!
//! Without this, a job enqueued while a worker's long-poll waits costs two transactions,
//! one after the other: the insert commits, wakes the claim, and the claim then makes a
//! transaction of its own to lease the job. Here a claim that found nothing and parks (and
//! takes any kind) leaves an [`Offer`] on its queue; an insert of plain jobs of that queue
//! that are ready at once takes as many offers as it has jobs and makes their claim in its
//! own transaction ([`Store::job_insert_and_claim`]): one commit, and the worker hears of
//! its job without a wake-up and a second round trip. The claim made there is the ordinary
//! one (order, limits, gates and pauses apply), so a hand-off changes when a claim runs,
//! never what it may take.
//!
//! An offer is taken at most once. A claim that leaves its park for another reason (a
//! wake-up, its re-check, its deadline, shutdown) withdraws its offer; when an insert took
//! it first, the claim waits for that insert's answer instead of claiming again. Jobs handed
//! to a claim whose caller went away are given back to the queue ([`UnheardClaim`]); an
//! insert that fails hands nothing, and its offers' claims look at the queue again.
//!
//! [`Store::job_insert_and_claim`]: errand_store::Store::job_insert_and_claim

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use errand_core::job::RunAt;
use errand_core::NewJob;
use errand_store::ClaimTaker;
use tokio::sync::oneshot;

use crate::unheard_claim::UnheardClaim;

/// What a parked claim hears when an insert took its offer: the jobs leased to it (none
/// when the insert's claim found nothing it may take). A dropped sender (the insert failed)
/// says to look at the queue again.
pub(crate) type Handed = oneshot::Receiver<UnheardClaim>;

/// A parked claim's offer, as an insert takes it.
pub(crate) struct Handoff {
    /// Who claims and how many.
    pub(crate) taker: ClaimTaker,
    /// Its lease length: one insert serves offers of one length.
    pub(crate) lease: Duration,
    /// Where its jobs go.
    pub(crate) answer: oneshot::Sender<UnheardClaim>,
}

/// The offers parked on one queue, oldest first (by the order they were made).
#[derive(Default)]
pub(crate) struct Offers {
    next_id: AtomicU64,
    parked: Mutex<BTreeMap<u64, Handoff>>,
}

impl Offers {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Handoff>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks an offer of `taker`; the returned guard withdraws it when it drops.
    pub(crate) fn offer(self: &Arc<Self>, taker: ClaimTaker, lease: Duration) -> (Offer, Handed) {
        let (answer, handed) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(
            id,
            Handoff {
                taker,
                lease,
                answer,
            },
        );
        (
            Offer {
                offers: self.clone(),
                id,
                withdrawn: false,
            },
            handed,
        )
    }

    /// Takes the oldest offers whose claims still wait, of the oldest one's lease length,
    /// until the jobs they ask for add up to at least `jobs`.
    pub(crate) fn take(&self, jobs: usize) -> Vec<Handoff> {
        let mut parked = self.lock();
        let mut chosen = Vec::new();
        let mut gone = Vec::new();
        let mut lease = None;
        let mut asked = 0usize;
        for (id, h) in parked.iter() {
            if asked >= jobs {
                break;
            }
            if h.answer.is_closed() {
                gone.push(*id);
                continue;
            }
            if *lease.get_or_insert(h.lease) != h.lease {
                continue;
            }
            asked = asked.saturating_add(usize::try_from(h.taker.max).unwrap_or(usize::MAX));
            chosen.push(*id);
        }
        for id in gone {
            parked.remove(&id);
        }
        chosen
            .into_iter()
            .filter_map(|id| parked.remove(&id))
            .collect()
    }

    /// Removes offer `id`; false when an insert took it already (its answer is coming).
    fn withdraw(&self, id: u64) -> bool {
        self.lock().remove(&id).is_some()
    }

    /// How many offers are parked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A parked claim's offer; withdrawn when dropped.
pub(crate) struct Offer {
    offers: Arc<Offers>,
    id: u64,
    withdrawn: bool,
}

impl Offer {
    /// Withdraws the offer; false when an insert took it first, and the claim must wait for
    /// what that insert hands it.
    pub(crate) fn withdraw(mut self) -> bool {
        self.withdrawn = true;
        self.offers.withdraw(self.id)
    }
}

impl Drop for Offer {
    fn drop(&mut self) {
        if !self.withdrawn {
            self.offers.withdraw(self.id);
        }
    }
}

/// How many of an insert's jobs a parked claim could take at once: plain jobs (no
/// idempotency key, no gate, no parents) due now. Jobs delayed or waiting for others are
/// not claimable in the insert's transaction, so they take no offers.
pub(crate) fn ready_now(jobs: &[NewJob]) -> usize {
    jobs.iter()
        .filter(|j| {
            matches!(j.run_at, RunAt::Now)
                && j.flow.after.is_empty()
                && j.idempotency_key.is_none()
                && j.ordering.gate().is_none()
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taker(max: u32) -> ClaimTaker {
        ClaimTaker {
            worker: "w".into(),
            max,
        }
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn an_insert_takes_the_oldest_offers_it_can_fill_and_each_once() {
        let offers = Arc::new(Offers::default());
        let (_a, _ha) = offers.offer(taker(1), MINUTE);
        let (b, _hb) = offers.offer(taker(2), MINUTE);
        let (_c, _hc) = offers.offer(taker(1), MINUTE);
        let taken = offers.take(3);
        let maxes: Vec<u32> = taken.iter().map(|h| h.taker.max).collect();
        assert_eq!(maxes, vec![1, 2], "oldest first, until they ask for three");
        assert!(!b.withdraw(), "a taken offer cannot be withdrawn");
        assert_eq!(offers.take(5).len(), 1, "only the third is left");
        assert!(offers.take(5).is_empty());
    }

    #[test]
    fn offers_of_another_lease_or_whose_claim_went_are_not_taken() {
        let offers = Arc::new(Offers::default());
        let (_gone, handed) = offers.offer(taker(1), MINUTE);
        drop(handed);
        let (_a, _ha) = offers.offer(taker(1), MINUTE);
        let (_b, _hb) = offers.offer(taker(1), MINUTE * 2);
        let taken = offers.take(5);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].lease, MINUTE);
        let rest = offers.take(5);
        assert_eq!(
            rest.len(),
            1,
            "the other lease is served by the next insert"
        );
        assert_eq!(rest[0].lease, MINUTE * 2);
    }

    #[test]
    fn a_dropped_or_withdrawn_offer_is_not_taken() {
        let offers = Arc::new(Offers::default());
        let (a, _ha) = offers.offer(taker(1), MINUTE);
        drop(a);
        let (b, _hb) = offers.offer(taker(1), MINUTE);
        assert!(b.withdraw(), "still parked");
        assert!(offers.take(5).is_empty());
        assert_eq!(
            Arc::strong_count(&offers),
            1,
            "no offer keeps its queue's offers"
        );
    }

    #[test]
    fn only_plain_jobs_due_now_count() {
        let job = || errand_store::conformance::new_job("q", "k");
        let mut later = job();
        later.run_at = RunAt::After(MINUTE);
        let mut keyed = job();
        keyed.idempotency_key = Some("k".into());
        let mut child = job();
        child.flow.after = vec![errand_core::JobId::new()];
        let mut locked = job();
        locked.ordering.lock_key = Some("l".into());
        assert_eq!(ready_now(&[job(), later, keyed, child, locked, job()]), 2);
    }
}

#[cfg(test)]
mod engine_tests {
    use std::time::Duration;

    use errand_core::{JobState, QueueName};

    use crate::lanes::testing::{claim_one, combining_engine, store_calls, until};
    use crate::ClaimRequest;

    fn queue() -> QueueName {
        QueueName::parse("q").expect("queue")
    }

    fn waiting_claim(worker: &str) -> ClaimRequest {
        claim_one("q", worker, Duration::from_secs(30))
    }

    fn job() -> errand_core::NewJob {
        errand_store::conformance::new_job("q", "k")
    }

    /// Two claims parked on a queue get the two jobs of one enqueue from that enqueue's own
    /// store call: no claim of their own follows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parked_claims_get_an_enqueues_jobs_from_its_own_store_call() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (engine, _raw) = combining_engine(dir.path());
        let mut claims = Vec::new();
        for worker in ["w1", "w2"] {
            let e = engine.clone();
            claims.push(tokio::spawn(
                async move { e.claim(waiting_claim(worker)).await },
            ));
        }
        until("both claims park", || engine.waiting_claims(&queue()) == 2).await;
        // One call or two: the two claims may have gone to the store together.
        let claims_before = store_calls(&engine, "job_claim").await;
        let jobs = vec![job(), job()];
        let mut sent: Vec<_> = jobs.iter().map(|j| j.id).collect();
        engine.enqueue_many(jobs).await.expect("enqueue");
        let mut got = Vec::new();
        for (claim, worker) in claims.into_iter().zip(["w1", "w2"]) {
            let claimed = claim.await.expect("claim task").expect("claim");
            assert_eq!(claimed.len(), 1, "{worker} gets one job");
            assert_eq!(claimed[0].job.worker.as_deref(), Some(worker));
            assert_eq!(claimed[0].job.state, JobState::Running);
            got.push(claimed[0].job.id);
        }
        got.sort();
        sent.sort();
        assert_eq!(got, sent);
        assert_eq!(store_calls(&engine, "job_insert_and_claim").await, 1.0);
        assert_eq!(store_calls(&engine, "job_insert_many").await, 0.0);
        assert_eq!(
            store_calls(&engine, "job_claim").await,
            claims_before,
            "no claim after the enqueue"
        );
    }

    /// A claim whose caller goes away while an enqueue holds its offer does not keep the
    /// job it was handed: it is given back to the queue, its attempt uncounted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_handed_to_a_claim_whose_caller_went_is_given_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (engine, raw) = combining_engine(dir.path());
        let e = engine.clone();
        let claim = tokio::spawn(async move { e.claim(waiting_claim("w1")).await });
        until("the claim parks", || engine.waiting_claims(&queue()) == 1).await;
        assert_eq!(engine.waker().offered(&queue()), 1);
        // The enqueue takes the offer, then waits on the write lock.
        raw.execute_batch("BEGIN IMMEDIATE").expect("write lock");
        let e = engine.clone();
        let j = job();
        let id = j.id;
        let enqueue = tokio::spawn(async move { e.enqueue_many(vec![j]).await });
        until("the enqueue took the offer", || {
            engine.waker().offered(&queue()) == 0
        })
        .await;
        claim.abort();
        let _ = claim.await;
        raw.execute_batch("COMMIT").expect("let go");
        enqueue.await.expect("enqueue task").expect("enqueue");
        let store = engine.store().clone();
        errand_testkit::eventually(
            "the job is back in its queue",
            Duration::from_secs(10),
            || {
                let store = store.clone();
                async move {
                    let job = store.job_get(id).await.ok()?;
                    (job.state == JobState::Available).then_some(job)
                }
            },
        )
        .await;
        assert_eq!(store_calls(&engine, "job_insert_and_claim").await, 1.0);
        let job = store.job_get(id).await.expect("get");
        assert_eq!(job.attempt, 0, "the attempt is not counted");
        assert!(job.worker.is_none());
    }
}
