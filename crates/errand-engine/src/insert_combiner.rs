//! Enqueues that arrive together go to the store as one insert.
//!
//! Each enqueue request is a transaction of its own; on a database server that is several
//! statements, round trips and a commit per request, whatever its size. Here small plain
//! enqueues of one queue ([`combinable`]) that arrive while as many inserts of that queue as
//! the store takes at once ([`Store::combined_calls_at_once`]) are under way wait, and the
//! next insert takes all of them (up to [`CAPS`]): one [`Store::job_insert_many`] call,
//! whose answers are dealt back to each request in order. A lone enqueue goes at once.
//! Enqueues with an idempotency key or a gate (lock, concurrency or session key) go alone,
//! as before: a keyed insert looks its key up job by job, and a gate admits each arrival
//! against its own limit, neither of which a shared insert would do as cheaply or exactly
//! as they are done apart.
//!
//! When long-poll claims are parked on the queue, the insert takes their offers and is a
//! [`Store::job_insert_and_claim`] instead, which leases the new jobs to them in the same
//! transaction ([`crate::handoff`]). Should that call fail with an error that kept nothing
//! and that the claim's part may have caused (a refusal, a constraint, a lock conflict),
//! the jobs are inserted again without it: a claim's refusal never fails an enqueue.
//!
//! Each request stays all-or-nothing: a combined insert is one transaction, and when it
//! fails for a reason one request's jobs may cause ([`crate::lanes::redo_alone`]: an
//! unknown parent, a constraint), nothing of it was kept and each request is inserted again
//! alone, side by side, so the fault is answered to its own request only. Any other error
//! is answered to all of them at once. A request whose caller went away while it waited is
//! dropped: an enqueue that was never answered may or may not have happened.
//!
//! [`Store::combined_calls_at_once`]: errand_store::Store::combined_calls_at_once
//! [`Store::job_insert_many`]: errand_store::Store::job_insert_many
//! [`Store::job_insert_and_claim`]: errand_store::Store::job_insert_and_claim

use std::collections::HashSet;
use std::sync::Arc;

use errand_core::{JobId, JobState, NewJob, QueueName};
use errand_store::{InsertedJob, JobClaimTogetherParams, StoreError};
use tokio::sync::oneshot;

use crate::engine::Engine;
use crate::handoff::{ready_now, Handoff};
use crate::lanes::{drain, redo_alone, unanswered, Batchable, Caps, Lanes, RunnerPlace};
use crate::unheard_claim::UnheardClaim;

/// An enqueue of more jobs than this goes alone: its transaction already serves many.
const MAX_COMBINED_INSERT: usize = 32;

/// What one combined insert carries at most (payloads up to `max_payload_bytes` each: a
/// few hundred jobs keep one statement's parameters far below PostgreSQL's limits).
const CAPS: Caps = Caps {
    jobs: 256,
    entries: usize::MAX,
};

/// What an enqueue's caller hears: its jobs as stored, in its order.
type InsertAnswer = Result<Vec<InsertedJob>, StoreError>;

/// Where one request's answer goes.
type Answerer = oneshot::Sender<InsertAnswer>;

/// One request's jobs, waiting for an insert.
pub(crate) struct Enqueue {
    jobs: Vec<NewJob>,
    answer: Answerer,
}

impl Batchable for Enqueue {
    type Unique = ();

    fn jobs(&self) -> u32 {
        u32::try_from(self.jobs.len()).unwrap_or(u32::MAX)
    }

    fn entries(&self) -> usize {
        0
    }

    fn uniques(&self) -> Vec<()> {
        Vec::new()
    }

    /// Nobody waits for the answer of a request whose caller went: it is not inserted.
    fn prepare(&mut self) {
        if self.answer.is_closed() {
            self.jobs.clear();
        }
    }

    fn refuse(self, error: StoreError) {
        let _ = self.answer.send(Err(error));
    }
}

/// The lane an enqueue may share: its queue, when it is small and plain (no idempotency
/// key, no gate) and all its jobs go to one queue; `None` sends it alone.
fn combinable(jobs: &[NewJob]) -> Option<QueueName> {
    let queue = &jobs.first()?.queue;
    let plain = jobs.len() <= MAX_COMBINED_INSERT
        && jobs.iter().all(|j| {
            &j.queue == queue && j.idempotency_key.is_none() && j.ordering.gate().is_none()
        });
    plain.then(|| queue.clone())
}

/// The enqueues waiting to go to the store together, by queue.
pub(crate) type InsertCombiner = Lanes<QueueName, Enqueue>;

impl Engine {
    /// Stores `jobs` atomically, with the other small enqueues that wait meanwhile; the
    /// insert and its announcements complete even when the caller stops waiting.
    pub(crate) async fn insert_combined(
        &self,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<InsertedJob>, StoreError> {
        let engine = self.me()?;
        let runners = self.combined_calls_at_once();
        let (answer, heard) = oneshot::channel();
        let lane = combinable(&jobs).filter(|_| runners != usize::MAX);
        let enqueue = Enqueue { jobs, answer };
        match lane {
            None => {
                // An insert of one request answers its failure itself.
                tokio::spawn(async move {
                    let _ = engine.insert_batch(vec![enqueue]).await;
                });
            }
            Some(queue) => {
                if self.inserts.enter(&queue, enqueue, runners) {
                    let (e, q) = (engine.clone(), queue.clone());
                    let place = RunnerPlace::new(move |panicking| {
                        e.inserts.abandon(&q, panicking, "enqueue")
                    });
                    tokio::spawn(run_inserts(engine, queue, place));
                }
            }
        }
        heard
            .await
            .map_err(|_| unanswered(self.shutdown_token().is_cancelled(), "enqueue's store call"))?
    }

    /// One insert for `batch`; answers each request. A failed insert of several requests
    /// that one request's jobs may have caused answers none and hands them back (their
    /// jobs spent), to be inserted again alone.
    async fn insert_batch(&self, batch: Vec<Enqueue>) -> Result<(), Vec<(usize, Answerer)>> {
        let mut jobs = Vec::new();
        let mut waiting = Vec::with_capacity(batch.len());
        for enqueue in batch {
            waiting.push((enqueue.jobs.len(), enqueue.answer));
            jobs.extend(enqueue.jobs);
        }
        let expected = jobs.len();
        let requests = waiting.len();
        let mut offers = match one_queue(&jobs) {
            Some(queue) => match ready_now(&jobs) {
                0 => Vec::new(),
                ready => self.waker().take_offers(queue, ready),
            },
            None => Vec::new(),
        };
        let out = if offers.is_empty() {
            self.insert_plain(jobs, requests).await
        } else {
            match self.insert_and_hand(jobs.clone(), &offers, requests).await {
                Err(e) if redo_alone(&e) => {
                    // The claim's part may have caused it, and the enqueues do not depend
                    // on it: they are inserted without it, and the claims look again.
                    tracing::debug!(error = %e, "an insert with a hand-off failed; inserted without it");
                    offers.clear();
                    self.insert_plain(jobs, requests).await
                }
                out => out,
            }
        }
        .and_then(|(out, claimed)| {
            if out.len() == expected {
                Ok((out, claimed))
            } else {
                Err(StoreError::Corrupt(format!(
                    "the store answered {} inserted jobs for {expected}",
                    out.len()
                )))
            }
        });
        // Offers not answered (a failed insert) send their claims to look again; jobs
        // claimed for them by an answer that came back wrong are given back.
        let out = match out {
            Ok(out) => out,
            Err(e) if requests > 1 && redo_alone(&e) => {
                tracing::debug!(error = %e, enqueues = requests, "a combined insert failed; each of its enqueues is inserted alone");
                return Err(waiting);
            }
            Err(e) => {
                for (_, answer) in waiting {
                    let _ = answer.send(Err(e.clone()));
                }
                return Ok(());
            }
        };
        let (out, claimed) = out;
        // Wake-ups go to the new jobs no parked claim took (it may have taken older ones).
        let handed = if claimed.is_empty() {
            0
        } else {
            let fresh: HashSet<JobId> = out
                .iter()
                .filter(|r| r.inserted && r.job.state == JobState::Available)
                .map(|r| r.job.id)
                .collect();
            claimed
                .iter()
                .flat_map(UnheardClaim::jobs)
                .filter(|c| fresh.contains(&c.job.id))
                .count()
        };
        for (offer, jobs) in offers.into_iter().zip(claimed) {
            // A claim gone meanwhile gives its jobs back when the answer drops.
            let _ = offer.answer.send(jobs);
        }
        self.announce_inserted_handed(&out, handed);
        let mut out = out.into_iter();
        for (count, answer) in waiting {
            let _ = answer.send(Ok(out.by_ref().take(count).collect()));
        }
        Ok(())
    }
}

/// What an insert kept, and the jobs it claimed for each offer it took.
type InsertOutcome = (Vec<InsertedJob>, Vec<UnheardClaim>);

impl Engine {
    /// One `job_insert_many` call of `requests` enqueues' `jobs`.
    async fn insert_plain(
        &self,
        jobs: Vec<NewJob>,
        requests: usize,
    ) -> Result<InsertOutcome, StoreError> {
        self.metrics.combined("job_insert_many", requests);
        let inserted = self
            .metrics
            .timed(
                "job_insert_many",
                self.store().job_insert_many(self.insert_params(jobs)),
            )
            .await?;
        Ok((inserted, Vec::new()))
    }

    /// Inserts `jobs` and claims in the same transaction for the parked claims that made
    /// `offers` ([`crate::handoff`]); each offer's jobs in offer order, given back unless
    /// their claim takes them.
    async fn insert_and_hand(
        &self,
        jobs: Vec<NewJob>,
        offers: &[Handoff],
        requests: usize,
    ) -> Result<InsertOutcome, StoreError> {
        let claims = JobClaimTogetherParams {
            queue: jobs[0].queue.clone(),
            lease: offers[0].lease,
            kinds: Vec::new(),
            takers: offers.iter().map(|o| o.taker.clone()).collect(),
        };
        self.metrics.combined("job_insert_and_claim", requests);
        let out = self
            .metrics
            .timed(
                "job_insert_and_claim",
                self.store()
                    .job_insert_and_claim(self.insert_params(jobs), claims),
            )
            .await?;
        let claimed: Vec<UnheardClaim> = out.claimed.into_iter().map(|c| self.unheard(c)).collect();
        if claimed.len() != offers.len() {
            return Err(StoreError::Corrupt(format!(
                "the store answered {} takers' claims for {}",
                claimed.len(),
                offers.len()
            )));
        }
        Ok((out.inserted, claimed))
    }
}

/// The queue of `jobs` when they all go to one.
fn one_queue(jobs: &[NewJob]) -> Option<&QueueName> {
    let queue = &jobs.first()?.queue;
    jobs.iter().all(|j| &j.queue == queue).then_some(queue)
}

/// A runner: makes `queue`'s inserts until no enqueue waits ([`drain`]).
async fn run_inserts(engine: Arc<Engine>, queue: QueueName, place: RunnerPlace<impl FnOnce(bool)>) {
    drain(
        &engine.inserts,
        &queue,
        CAPS,
        |enqueue| enqueue.jobs.clone(),
        |batch| engine.insert_batch(batch),
        |(_, answer): (usize, Answerer), jobs| Enqueue { jobs, answer },
    )
    .await;
    place.ended();
}

#[cfg(test)]
mod tests {
    use errand_core::JobState;

    use super::*;
    use crate::lanes::testing::{combined_calls, combining_engine, store_calls, until};

    fn job() -> NewJob {
        errand_store::conformance::new_job("q", "k")
    }

    fn queue() -> QueueName {
        QueueName::parse("q").expect("queue")
    }

    #[test]
    fn only_small_plain_enqueues_of_one_queue_share_an_insert() {
        assert_eq!(combinable(&[job(), job()]), Some(queue()));
        assert_eq!(combinable(&[]), None);
        assert_eq!(combinable(&vec![job(); MAX_COMBINED_INSERT + 1]), None);
        let mut keyed = job();
        keyed.idempotency_key = Some("k1".into());
        assert_eq!(
            combinable(&[job(), keyed]),
            None,
            "a keyed enqueue goes alone"
        );
        let mut locked = job();
        locked.ordering.lock_key = Some("account-7".into());
        assert_eq!(combinable(&[locked]), None, "a gated enqueue goes alone");
        let other = errand_store::conformance::new_job("elsewhere", "k");
        assert_eq!(combinable(&[job(), other]), None, "one queue per lane");
    }

    #[test]
    fn a_caller_gone_while_waiting_is_not_inserted() {
        let c = InsertCombiner::default();
        let (answer, heard) = oneshot::channel();
        let (kept, _listening) = oneshot::channel();
        c.enter(
            &queue(),
            Enqueue {
                jobs: vec![job(), job()],
                answer,
            },
            1,
        );
        c.enter(
            &queue(),
            Enqueue {
                jobs: vec![job()],
                answer: kept,
            },
            1,
        );
        drop(heard);
        let batch = c.next_batch(&queue(), CAPS).expect("batch");
        let sizes: Vec<usize> = batch.iter().map(|e| e.jobs.len()).collect();
        assert_eq!(sizes, vec![0, 1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn enqueues_that_wait_together_are_one_insert_and_each_stays_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (engine, raw) = combining_engine(dir.path());
        // The first enqueue takes the one runner and waits on the write lock.
        raw.execute_batch("BEGIN IMMEDIATE").expect("write lock");
        let e = engine.clone();
        let first = tokio::spawn(async move { e.enqueue_many(vec![job()]).await });
        until("the runner took the first enqueue", || {
            engine.inserts.counts(&queue()) == (1, 0)
        })
        .await;
        // Waiting: two good requests around one whose second job reuses its first job's id
        // (a fault of that request alone).
        let mut bad = vec![job(), job()];
        bad[1].id = bad[0].id;
        let requests = vec![vec![job(), job()], bad, vec![job()]];
        let mut waiting = Vec::new();
        for jobs in requests {
            let e = engine.clone();
            waiting.push(tokio::spawn(async move { e.enqueue_many(jobs).await }));
        }
        until("three enqueues wait", || {
            engine.inserts.counts(&queue()) == (1, 3)
        })
        .await;
        raw.execute_batch("COMMIT").expect("let go");
        assert_eq!(first.await.expect("first").expect("stored").len(), 1);
        let mut answers = Vec::new();
        for task in waiting {
            answers.push(task.await.expect("enqueue"));
        }
        let good = answers[0].as_ref().expect("the first request is stored");
        assert_eq!(good.len(), 2);
        assert!(good
            .iter()
            .all(|r| r.inserted && r.job.state == JobState::Available));
        assert!(
            matches!(&answers[1], Err(StoreError::ConstraintViolated(_))),
            "the bad request hears its fault: {:?}",
            answers[1]
        );
        assert_eq!(answers[2].as_ref().expect("stored").len(), 1);
        // The first alone; the three together, which failed; then each alone.
        assert_eq!(store_calls(&engine, "job_insert_many").await, 5.0);
        assert_eq!(
            combined_calls(&engine, "job_insert_many", "1").await,
            4.0,
            "four calls alone"
        );
        assert_eq!(
            combined_calls(&engine, "job_insert_many", "4").await,
            5.0,
            "and one of three"
        );
        let all = crate::ClaimRequest {
            queue: queue(),
            worker: "w".into(),
            max: 100,
            lease: std::time::Duration::from_secs(60),
            kinds: vec![],
            wait: std::time::Duration::ZERO,
        };
        assert_eq!(
            engine.claim(all).await.expect("claim").len(),
            4,
            "the first's, the good ones' three, none of the bad one's"
        );
    }
}
