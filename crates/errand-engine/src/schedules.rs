//! Schedule operations: define, preview, trigger, backfill, and the scheduler pass.

use std::time::Duration;

use errand_core::job::{RunAt, ScheduleSlot};
use errand_core::schedule::Trigger;
use errand_core::schedule_plan::{plan, MAX_CATCH_UP};
use errand_core::schedule_spec::{Schedule, ScheduleSpec};
use errand_core::time::to_millis;
use errand_core::{Job, JobId, Millis, NewJob, QueueName};
use errand_store::{ScheduleFireParams, StoreError};
use rand::Rng;

use crate::Engine;

/// Schedules looked at per pass; more wait for the next pass (milliseconds later).
const DUE_BATCH: u32 = 5000;

fn invalid(e: errand_core::ValidationError) -> StoreError {
    StoreError::Invalid(e.to_string())
}

/// The job a schedule enqueues for `slot` (or, without a slot, on demand).
fn job_for(spec: &ScheduleSpec, slot: Option<Millis>) -> NewJob {
    let t = &spec.job;
    let jitter = if spec.jitter_ms > 0 {
        rand::rng().random_range(0..=spec.jitter_ms)
    } else {
        0
    };
    NewJob {
        id: JobId::new(),
        kind: t.kind.clone(),
        queue: t.queue.clone(),
        payload: t.payload.clone(),
        priority: t.priority,
        run_at: if jitter > 0 {
            RunAt::After(Duration::from_millis(jitter))
        } else {
            RunAt::Now
        },
        max_attempts: t.max_attempts,
        timeout: t.timeout_ms.map(Duration::from_millis),
        tags: t.tags.clone(),
        idempotency_key: None,
        slot: slot.map(|at| ScheduleSlot {
            schedule: spec.name.as_str().to_string(),
            at,
        }),
    }
}

impl Engine {
    /// Creates (`create_only`) or replaces a schedule; its first slot is the next one from
    /// now.
    ///
    /// # Errors
    /// `Invalid` for a bad trigger, `AlreadyExists` when creating a name that exists.
    pub async fn schedule_put(
        &self,
        spec: ScheduleSpec,
        create_only: bool,
    ) -> Result<Schedule, StoreError> {
        let trigger = spec.trigger().map_err(invalid)?;
        // The first slot counts from the store's clock, like every later one.
        let (now, _) = self.store().schedule_due(0).await?;
        let next = trigger
            .next_after(errand_core::time::to_timestamp(now))
            .map(to_millis);
        self.store().schedule_put(spec, next, create_only).await
    }

    /// Stores a schedule declaratively: unchanged when the stored definition is the same
    /// (its history and next slot stay), created or replaced otherwise.
    ///
    /// # Errors
    /// `Invalid` for a bad trigger, or the store's error.
    pub async fn schedule_declare(&self, spec: ScheduleSpec) -> Result<Schedule, StoreError> {
        match self.store().schedule_get(&spec.name).await {
            Ok(existing) if existing.spec == spec => Ok(existing),
            Ok(_) | Err(StoreError::NotFound { .. }) => self.schedule_put(spec, false).await,
            Err(e) => Err(e),
        }
    }

    /// The next `count` slots of a schedule.
    ///
    /// # Errors
    /// `NotFound`, or a stored trigger that no longer parses.
    pub async fn schedule_next(
        &self,
        name: &QueueName,
        count: usize,
    ) -> Result<Vec<jiff::Timestamp>, StoreError> {
        let s = self.store().schedule_get(name).await?;
        let trigger = s.spec.trigger().map_err(invalid)?;
        let from = s
            .next_fire_at
            .map(|t| t - jiff::SignedDuration::from_millis(1))
            .unwrap_or_else(jiff::Timestamp::now);
        Ok(trigger.next_n(from, count))
    }

    /// Runs a schedule's job now, outside its slots.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn schedule_trigger(&self, name: &QueueName) -> Result<Job, StoreError> {
        let s = self.store().schedule_get(name).await?;
        let mut out = self.enqueue_many(vec![job_for(&s.spec, None)]).await?;
        out.pop()
            .map(|r| r.job)
            .ok_or_else(|| StoreError::Corrupt("the store answered no job".into()))
    }

    /// Fires every slot in `(from, to]` that has no job yet (at most 1,000).
    ///
    /// # Errors
    /// `NotFound`, `Invalid` for a range with too many slots, `WrongState` when a scheduler
    /// moved the schedule meanwhile (retry).
    pub async fn schedule_backfill(
        &self,
        name: &QueueName,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<Vec<Job>, StoreError> {
        let s = self.store().schedule_get(name).await?;
        let trigger = s.spec.trigger().map_err(invalid)?;
        let (slots, truncated) = trigger.slots_between(from, to, MAX_CATCH_UP);
        if truncated {
            return Err(StoreError::Invalid(format!(
                "the range holds more than {MAX_CATCH_UP} slots; backfill a shorter one"
            )));
        }
        let current = s.next_fire_at.map(to_millis);
        let jobs = slots
            .iter()
            .map(|t| job_for(&s.spec, Some(to_millis(*t))))
            .collect();
        let fired = self
            .store()
            .schedule_fire(ScheduleFireParams {
                name: name.clone(),
                expected_next_fire_at: current,
                jobs,
                next_fire_at: current,
                buffered_slot: s.buffered_slot.map(to_millis),
                idempotency_window: self.config().idempotency_window,
            })
            .await?;
        for job in &fired {
            self.publish(job);
        }
        Ok(fired)
    }

    /// One scheduler pass: fires what is due on every schedule. Returns how many jobs it
    /// enqueued. Several nodes may run passes at once; the store keeps one job per slot.
    ///
    /// # Errors
    /// The store's error reading due schedules; errors of single schedules are logged.
    pub async fn schedule_pass(&self) -> Result<usize, StoreError> {
        let (now, due) = self.store().schedule_due(DUE_BATCH).await?;
        self.next_slot_hint
            .store(i64::MAX, std::sync::atomic::Ordering::Relaxed);
        // All at once: the store commits concurrent fires together (one fsync for many
        // schedules on SQLite, parallel connections on PostgreSQL); one by one, a thousand
        // schedules due in the same second would fire hundreds of milliseconds late.
        let outcomes =
            futures_util::future::join_all(due.iter().map(|s| self.fire_one(s, now))).await;
        let mut fired = 0;
        for (s, outcome) in due.iter().zip(outcomes) {
            match outcome {
                Ok(n) => fired += n,
                // Another node fired it first: nothing to do.
                Err(StoreError::WrongState(_)) => {}
                Err(e) => {
                    tracing::warn!(schedule = %s.spec.name, error = %e, "schedule pass failed")
                }
            }
        }
        Ok(fired)
    }

    async fn fire_one(&self, s: &Schedule, now: Millis) -> Result<usize, StoreError> {
        let trigger: Trigger = s.spec.trigger().map_err(invalid)?;
        let p = plan(s, &trigger, now);
        if let Some(next) = p.next_fire_at {
            self.next_slot_hint
                .fetch_min(next, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(running) = p.cancel {
            match self.cancel(running).await {
                Ok(_) | Err(StoreError::WrongState(_)) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let jobs = p
            .fire
            .iter()
            .map(|slot| job_for(&s.spec, Some(*slot)))
            .collect();
        let fired = self
            .store()
            .schedule_fire(ScheduleFireParams {
                name: s.spec.name.clone(),
                expected_next_fire_at: s.next_fire_at.map(to_millis),
                jobs,
                next_fire_at: p.next_fire_at,
                buffered_slot: p.buffered_slot,
                idempotency_window: self.config().idempotency_window,
            })
            .await?;
        for job in &fired {
            tracing::debug!(schedule = %s.spec.name, slot = ?job.slot.map(|t| t.to_string()), "fired");
            self.publish(job);
        }
        Ok(fired.len())
    }
}
