//! Enqueues that arrive together go to the store as one insert.
//!
//! Each enqueue request is a transaction of its own; on a database server that is several
//! statements, round trips and a commit per request, whatever its size. Here small enqueues
//! (at most [`MAX_COMBINED_INSERT`] jobs) that arrive while as many inserts as the store
//! takes at once ([`Store::combined_calls_at_once`]) are under way wait, and the next
//! insert takes all of them (up to [`CAPS`], never two with one idempotency key): one
//! [`Store::job_insert_many`] call, whose answers are dealt back to each request in order. A
//! lone enqueue goes at once.
//!
//! Each request stays all-or-nothing: a combined insert is one transaction, and when it
//! fails for a reason one request's jobs may cause (a constraint, an id taken), nothing of
//! it was kept and each request is inserted again alone, so the fault is answered to its
//! own request only. A store that is unavailable is answered to all of them at once.
//!
//! [`Store::combined_calls_at_once`]: errand_store::Store::combined_calls_at_once
//! [`Store::job_insert_many`]: errand_store::Store::job_insert_many

use std::sync::Arc;

use errand_core::NewJob;
use errand_store::{InsertedJob, StoreError};
use tokio::sync::oneshot;

use crate::engine::Engine;
use crate::lanes::{Batchable, Caps, Lanes, RunnerPlace};

/// An enqueue of more jobs than this goes alone: its transaction already serves many.
const MAX_COMBINED_INSERT: usize = 32;

/// What one combined insert carries at most.
const CAPS: Caps = Caps {
    jobs: 1000,
    entries: usize::MAX,
};

/// What an enqueue's caller hears: its jobs as stored, in its order.
type InsertAnswer = Result<Vec<InsertedJob>, StoreError>;

/// One request's jobs, waiting for an insert.
pub(crate) struct Enqueue {
    jobs: Vec<NewJob>,
    answer: oneshot::Sender<InsertAnswer>,
}

impl Batchable for Enqueue {
    type Unique = String;

    fn jobs(&self) -> u32 {
        u32::try_from(self.jobs.len()).unwrap_or(u32::MAX)
    }

    fn entries(&self) -> usize {
        0
    }

    /// One insert holds each idempotency key once, so that the later request hears the
    /// earlier one's job exactly as when they came one after the other.
    fn uniques(&self) -> Vec<String> {
        self.jobs
            .iter()
            .filter_map(|j| j.idempotency_key.clone())
            .collect()
    }
}

/// The enqueues waiting to go to the store together (one lane: every insert takes the same
/// idempotency window).
pub(crate) type InsertCombiner = Lanes<(), Enqueue>;

/// Answers the enqueues left waiting when the last runner ended abnormally (see
/// [`crate::claim_combiner`]'s twin).
fn answer_abandoned(combiner: &InsertCombiner, panicking: bool) {
    let error = if panicking {
        tracing::error!(
            "an insert runner panicked; the enqueues waiting on it are answered with an error"
        );
        StoreError::Internal("the enqueue's store call panicked (see the log)".into())
    } else {
        StoreError::Unavailable("the enqueue's store call was cancelled: shutting down".into())
    };
    for enqueue in combiner.abandon(&()) {
        let _ = enqueue.answer.send(Err(error.clone()));
    }
}

impl Engine {
    /// Stores `jobs` atomically, with the other small enqueues that wait meanwhile; the
    /// insert and its announcements complete even when the caller stops waiting.
    pub(crate) async fn insert_combined(
        &self,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<InsertedJob>, StoreError> {
        let engine = self.me()?;
        let runners = self
            .config()
            .combined_calls_at_once
            .unwrap_or_else(|| self.store().combined_calls_at_once())
            .max(1);
        let (answer, heard) = oneshot::channel();
        let enqueue = Enqueue { jobs, answer };
        if runners == usize::MAX || enqueue.jobs.len() > MAX_COMBINED_INSERT {
            // An insert of one request answers its failure itself.
            tokio::spawn(async move {
                let _ = engine.insert_batch(vec![enqueue]).await;
            });
        } else if self.inserts.enter(&(), enqueue, runners) {
            let e = engine.clone();
            let place = RunnerPlace::new(move |panicking| answer_abandoned(&e.inserts, panicking));
            tokio::spawn(run_inserts(engine, place));
        }
        heard.await.map_err(|_| {
            StoreError::Internal(
                "the enqueue's store call ended without an answer (its task panicked: see the log)"
                    .into(),
            )
        })?
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
        let out = self
            .metrics
            .timed(
                "job_insert_many",
                self.store().job_insert_many(self.insert_params(jobs)),
            )
            .await
            .and_then(|out| {
                if out.len() == expected {
                    Ok(out)
                } else {
                    Err(StoreError::Corrupt(format!(
                        "the store answered {} inserted jobs for {expected}",
                        out.len()
                    )))
                }
            });
        let out = match out {
            Ok(out) => out,
            Err(e) if waiting.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
                tracing::debug!(error = %e, enqueues = waiting.len(), "a combined insert failed; each of its enqueues is inserted alone");
                return Err(waiting);
            }
            Err(e) => {
                for (_, answer) in waiting {
                    let _ = answer.send(Err(e.clone()));
                }
                return Ok(());
            }
        };
        self.announce_inserted(&out);
        let mut out = out.into_iter();
        for (count, answer) in waiting {
            let _ = answer.send(Ok(out.by_ref().take(count).collect()));
        }
        Ok(())
    }
}

/// Where one request's answer goes once its jobs went into an insert.
type Answerer = oneshot::Sender<InsertAnswer>;

/// A runner: makes the inserts until no enqueue waits.
async fn run_inserts(engine: Arc<Engine>, place: RunnerPlace<impl FnOnce(bool)>) {
    while let Some(batch) = engine.inserts.next_batch(&(), CAPS) {
        // Kept for the enqueues to be inserted again alone if a combined insert fails.
        let again: Vec<Vec<NewJob>> = if batch.len() > 1 {
            batch.iter().map(|e| e.jobs.clone()).collect()
        } else {
            Vec::new()
        };
        if let Err(failed) = engine.insert_batch(batch).await {
            for ((_, answer), jobs) in failed.into_iter().zip(again) {
                // A single request's failure is answered to it, never handed back.
                let _ = engine.insert_batch(vec![Enqueue { jobs, answer }]).await;
            }
        }
    }
    place.ended();
}

#[cfg(test)]
mod tests {

    use errand_core::JobState;

    use super::*;
    use crate::lanes::testing::{combining_engine, store_calls, until};

    fn job(key: Option<&str>) -> NewJob {
        let mut j = errand_store::conformance::new_job("q", "k");
        j.idempotency_key = key.map(str::to_string);
        j
    }

    fn enqueue(jobs: Vec<NewJob>) -> Enqueue {
        let (answer, heard) = oneshot::channel();
        std::mem::forget(heard);
        Enqueue { jobs, answer }
    }

    #[test]
    fn one_insert_holds_each_idempotency_key_once() {
        let c = InsertCombiner::default();
        c.enter(&(), enqueue(vec![job(Some("a")), job(None)]), 1);
        c.enter(&(), enqueue(vec![job(Some("a"))]), 1);
        c.enter(&(), enqueue(vec![job(Some("b")), job(None)]), 1);
        let sizes = |b: Vec<Enqueue>| b.iter().map(|e| e.jobs.len()).collect::<Vec<_>>();
        assert_eq!(sizes(c.next_batch(&(), CAPS).expect("first")), vec![2, 2]);
        assert_eq!(sizes(c.next_batch(&(), CAPS).expect("second")), vec![1]);
        assert!(c.next_batch(&(), CAPS).is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn enqueues_that_wait_together_are_one_insert_and_each_stays_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (engine, raw) = combining_engine(dir.path());
        // The first enqueue takes the one runner and waits on the write lock.
        raw.execute_batch("BEGIN IMMEDIATE").expect("write lock");
        let e = engine.clone();
        let first = tokio::spawn(async move { e.enqueue_many(vec![job(None)]).await });
        until("the runner took the first enqueue", || {
            engine.inserts.counts(&()) == (1, 0)
        })
        .await;
        // Waiting: two good requests, one whose second job reuses an id already taken
        // (a fault of that request alone), and a repeat of the first good one's key.
        let mut bad = vec![job(None), job(None)];
        bad[1].id = bad[0].id;
        let requests = vec![
            vec![job(Some("k1")), job(None)],
            bad,
            vec![job(None)],
            vec![job(Some("k1"))],
        ];
        let mut waiting = Vec::new();
        for (i, jobs) in requests.into_iter().enumerate() {
            let e = engine.clone();
            waiting.push(tokio::spawn(async move { e.enqueue_many(jobs).await }));
            // One after the other: the repeat of a key must come after its first use.
            until("the enqueue waits", || {
                engine.inserts.counts(&()) == (1, i + 1)
            })
            .await;
        }
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
            matches!(&answers[1], Err(e) if !e.is_refusal()),
            "the bad request hears its fault: {:?}",
            answers[1]
        );
        assert_eq!(answers[2].as_ref().expect("stored").len(), 1);
        let repeat = &answers[3].as_ref().expect("the repeat is answered")[0];
        assert!(!repeat.inserted, "the key's job exists already");
        assert_eq!(
            repeat.job.id, good[0].job.id,
            "and is the earlier request's"
        );
        // The first alone; the three that fit (the repeat of k1 waits for the next) in one
        // insert that failed; each of those alone; then the repeat.
        assert_eq!(store_calls(&engine, "job_insert_many").await, 6.0);
    }
}
