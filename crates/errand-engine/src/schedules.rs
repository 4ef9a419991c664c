//! Schedule operations: define, preview, trigger, backfill, and the scheduler pass.

use std::collections::BTreeMap;
use std::time::Duration;

use errand_core::job::{RunAt, ScheduleSlot};
use errand_core::schedule::Trigger;
use errand_core::schedule_plan::{plan_ahead, MAX_CATCH_UP};
use errand_core::schedule_spec::{OverlapPolicy, Schedule, ScheduleSpec};
use errand_core::time::{to_millis, to_timestamp};
use errand_core::{Job, JobId, JobState, Millis, NewJob, QueueName, ScheduleName};
use errand_store::{
    ScheduleFireOutcome, ScheduleFireParams, SchedulePut, SchedulePutParams, StoreError,
};
use futures_util::StreamExt;
use rand::Rng;

use crate::Engine;

/// Schedules read per pass. Enough for every schedule of a large deployment to come due in
/// the same second and still be read in one query (a few milliseconds); more wait for the
/// next pass, which follows at once because their slots are already due.
const DUE_BATCH: u32 = 5000;

/// Schedules one store call fires. On PostgreSQL a batch costs a fixed handful of
/// statements whatever its size; 250 keeps each transaction (and the row locks it holds)
/// to tens of milliseconds, so a burst of 5,000 is 20 calls.
const FIRE_BATCH: usize = 250;

/// Fire calls in flight at once. The scheduler shares the connection pool (16 by default)
/// and SQLite's single writer with the API: four calls use at most four connections, and
/// on SQLite four queued transactions still share group commits. Unbounded, a burst of
/// due schedules took every pooled connection and API requests waited behind it.
const FIRE_CONCURRENCY: usize = 4;

/// How long the slot ledger remembers which slots ran (see
/// [`errand_core::limits::SLOT_RETENTION_MS`]). Catch-up and backfill reach back at most
/// [`errand_core::limits::MAX_SLOT_REACH_MS`], so every slot they look at is still in it.
pub const SLOT_RETENTION: Duration = Duration::from_millis(errand_core::limits::SLOT_RETENTION_MS);

/// Times a manual trigger or a backfill re-reads a schedule that a scheduler pass changed
/// under it before giving up with `Contended`.
const CAS_ATTEMPTS: usize = 3;

fn invalid(e: errand_core::ValidationError) -> StoreError {
    StoreError::Invalid(e.to_string())
}

/// The job a schedule enqueues for `slot` (or, without a slot, on demand).
/// The lock key of a singleton schedule's jobs is this prefix and the schedule's name.
pub const SINGLETON_LOCK_PREFIX: &str = "schedule:";

/// A slot still to come (written ahead) starts at the slot; any other job starts now.
/// Either way, plus the schedule's jitter.
fn job_for(spec: &ScheduleSpec, slot: Option<Millis>, now: Millis) -> NewJob {
    let t = &spec.job;
    let jitter = if spec.jitter_ms > 0 {
        rand::rng().random_range(0..=spec.jitter_ms)
    } else {
        0
    };
    let run_at = match slot.filter(|at| *at > now) {
        Some(at) => RunAt::At(at.saturating_add(i64::try_from(jitter).unwrap_or(i64::MAX))),
        None if jitter > 0 => RunAt::After(Duration::from_millis(jitter)),
        None => RunAt::Now,
    };
    NewJob {
        secrets: Default::default(),
        flow: Default::default(),
        notify: Default::default(),
        id: JobId::new(),
        kind: t.kind.clone(),
        queue: t.queue.clone(),
        payload: t.payload.clone(),
        priority: t.priority,
        run_at,
        max_attempts: t.max_attempts,
        timeout: t.timeout_ms.map(Duration::from_millis),
        tags: t.tags.clone(),
        idempotency_key: None,
        slot: slot.map(|at| ScheduleSlot {
            schedule: spec.name.as_str().to_string(),
            at,
        }),
        ordering: errand_core::ordering::JobOrdering {
            lock_key: spec
                .singleton
                .then(|| format!("{SINGLETON_LOCK_PREFIX}{}", spec.name.as_str())),
            ..Default::default()
        },
        inherit: Default::default(),
    }
}

impl Engine {
    /// Creates or replaces a schedule (`mode`); its first slot is the next one from the
    /// store's clock.
    ///
    /// # Errors
    /// `Invalid` for a bad trigger, `AlreadyExists` when creating a name that exists.
    pub async fn schedule_put(
        &self,
        spec: ScheduleSpec,
        mode: SchedulePut,
    ) -> Result<Schedule, StoreError> {
        let trigger = spec.trigger().map_err(invalid)?;
        let now = self.store().clock_now().await?;
        let next_fire_at = trigger.next_after(to_timestamp(now)).map(to_millis);
        let put = self
            .store()
            .schedule_put(SchedulePutParams {
                spec,
                next_fire_at,
                mode,
            })
            .await?;
        // A replaced definition took back the jobs written ahead under the old one.
        self.taken_back(&put.taken_back);
        self.fire_due.poke();
        Ok(put.schedule)
    }

    /// Stores a schedule declaratively: unchanged when the stored definition is the same
    /// (its history and next slot stay), created or replaced otherwise.
    ///
    /// # Errors
    /// `Invalid` for a bad trigger, or the store's error.
    pub async fn schedule_declare(&self, spec: ScheduleSpec) -> Result<Schedule, StoreError> {
        match self.store().schedule_get(&spec.name).await {
            Ok(existing) if existing.spec == spec => Ok(existing),
            Ok(_) | Err(StoreError::NotFound { .. }) => {
                self.schedule_put(spec, SchedulePut::Replace).await
            }
            Err(e) => Err(e),
        }
    }

    /// The next `count` slots of a schedule.
    ///
    /// # Errors
    /// `NotFound`, or a stored trigger that no longer parses.
    pub async fn schedule_next(
        &self,
        name: &ScheduleName,
        count: usize,
    ) -> Result<Vec<jiff::Timestamp>, StoreError> {
        let s = self.store().schedule_get(name).await?;
        let trigger = s.spec.trigger().map_err(invalid)?;
        let now = to_timestamp(self.store().clock_now().await?);
        let from = match s.next_slot(now) {
            // A paused schedule's `next_fire_at` stays where the pause found it; the slots
            // that pass meanwhile never fire as such (on resume, `catch_up` decides), so
            // what is still to come starts now.
            Some(t) if s.paused && t <= now => now,
            Some(t) => t - jiff::SignedDuration::from_millis(1),
            None => now,
        };
        Ok(trigger.next_n(from, count))
    }

    /// Runs a schedule's job now, outside its slots, under its overlap policy: with a run
    /// still going, `allow` starts another, `replace` cancels it in the same transaction,
    /// and `skip` and `buffer_one` refuse (a manual run is not a slot to buffer). The job
    /// becomes the schedule's last job, so slots that follow respect it too.
    ///
    /// # Errors
    /// `NotFound`; `WrongState` when the policy forbids a second run; `Contended` when
    /// schedulers kept changing the schedule meanwhile (retry).
    pub async fn schedule_trigger(&self, name: &ScheduleName) -> Result<Job, StoreError> {
        let jobs = self
            .fire_on_request(name, |s| {
                let running = s
                    .last_job_id
                    .filter(|_| s.last_job_state.is_some_and(|st| !st.is_final()));
                let cancel = match (s.spec.overlap, running) {
                    (_, None) | (OverlapPolicy::Allow, Some(_)) => None,
                    (OverlapPolicy::Replace, Some(id)) => Some(id),
                    (OverlapPolicy::Skip | OverlapPolicy::BufferOne, Some(id)) => {
                        return Err(StoreError::WrongState(format!(
                            "schedule {name} has a run in progress (job {id}) and its overlap \
                             policy does not allow a second one; wait for it, cancel it, or use \
                             overlap allow or replace"
                        )))
                    }
                };
                Ok(ScheduleFireParams {
                    jobs: vec![job_for(&s.spec, None, 0)],
                    cancel,
                    ..self.unchanged(s)
                })
            })
            .await?;
        jobs.into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("the store answered no job".into()))
    }

    /// Fires what `decide` makes of the schedule as read, reading it again when a scheduler
    /// pass moved it meanwhile: a request (trigger, backfill) never loses to the passes for
    /// long, and never fires on a stale read.
    async fn fire_on_request(
        &self,
        name: &ScheduleName,
        decide: impl Fn(&Schedule) -> Result<ScheduleFireParams, StoreError>,
    ) -> Result<Vec<Job>, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let s = self.store().schedule_get(name).await?;
            match self.fire_batch(vec![decide(&s)?]).await?.pop() {
                Some(ScheduleFireOutcome::Fired { jobs, .. }) => return Ok(jobs),
                Some(ScheduleFireOutcome::Moved) => continue,
                None => return Err(StoreError::Corrupt("the store answered nothing".into())),
            }
        }
        Err(StoreError::Contended(format!(
            "schedule {name} kept changing while this request ran (scheduler passes); retry"
        )))
    }

    /// Fires every slot in `(from, to]` that has no job yet (at most 1,000). `from` may
    /// reach back [`errand_core::limits::MAX_SLOT_REACH_MS`] from the store's clock, within
    /// the ledger's [`SLOT_RETENTION`]: older slots are no longer in it, so whether they ran
    /// is unknown.
    ///
    /// # Errors
    /// `NotFound`, `Invalid` for a range reaching into the future (on the store's clock) or
    /// too far back, or holding too many slots,
    /// `Contended` when schedulers kept changing the schedule meanwhile (retry).
    pub async fn schedule_backfill(
        &self,
        name: &ScheduleName,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<Vec<Job>, StoreError> {
        let now = self.store().clock_now().await?;
        if to_millis(to) > now {
            return Err(StoreError::Invalid(
                "to: a backfill covers the past; future slots fire on their own".into(),
            ));
        }
        let reach = errand_core::limits::MAX_SLOT_REACH_MS;
        let horizon = now.saturating_sub(i64::try_from(reach).unwrap_or(i64::MAX));
        if to_millis(from) < horizon {
            return Err(StoreError::Invalid(format!(
                "from: a backfill reaches back at most {} hours (to {}), within the week \
                 errand remembers which slots ran",
                reach / 3_600_000,
                to_timestamp(horizon)
            )));
        }
        self.fire_on_request(name, |s| {
            let trigger = s.spec.trigger().map_err(invalid)?;
            let (slots, truncated) = trigger.slots_between(from, to, MAX_CATCH_UP);
            if truncated {
                return Err(StoreError::Invalid(format!(
                    "the range holds more than {MAX_CATCH_UP} slots; backfill a shorter one"
                )));
            }
            Ok(ScheduleFireParams {
                jobs: slots
                    .iter()
                    .map(|t| job_for(&s.spec, Some(to_millis(*t)), now))
                    .collect(),
                ..self.unchanged(s)
            })
        })
        .await
    }

    /// One scheduler pass: fires what is due on every schedule. Several nodes may run
    /// passes at once; the store keeps one job per slot.
    ///
    /// # Errors
    /// The store's error reading due schedules; failed fire batches are logged.
    pub async fn schedule_pass(&self) -> Result<SchedulePassReport, StoreError> {
        let (now, due) = self
            .metrics
            .timed(
                "schedule_due",
                self.store()
                    .schedule_due(DUE_BATCH, self.config().schedule_lead),
            )
            .await?;
        let overdue = due
            .iter()
            .filter_map(|s| s.next_fire_at)
            .map(|at| (now - at.as_millisecond()).max(0))
            .max()
            .unwrap_or(0);
        let mut report = SchedulePassReport {
            due: due.len(),
            ..SchedulePassReport::default()
        };
        let mut decisions = Vec::with_capacity(due.len());
        for s in &due {
            match self.decide(s, now) {
                Ok(Some(d)) => decisions.push(d),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(schedule = %s.spec.name, error = %e, "schedule cannot be planned")
                }
            }
        }
        report.written = decisions.len();
        let mut decisions = decisions.into_iter().peekable();
        let mut batches: Vec<Vec<ScheduleFireParams>> = Vec::new();
        while decisions.peek().is_some() {
            batches.push(decisions.by_ref().take(FIRE_BATCH).collect());
        }
        // Jobs written ahead, by queue and start: their claims wake at the slot.
        let mut ahead: BTreeMap<(QueueName, Millis), usize> = BTreeMap::new();
        let mut results = futures_util::stream::iter(batches)
            .map(|batch| async move {
                let n = batch.len();
                (n, self.fire_batch(batch).await)
            })
            .buffer_unordered(FIRE_CONCURRENCY);
        while let Some((n, result)) = results.next().await {
            match result {
                Ok(outcomes) => {
                    for outcome in outcomes {
                        match outcome {
                            ScheduleFireOutcome::Fired { jobs, .. } => {
                                for job in &jobs {
                                    self.metrics.schedule_fired(job);
                                    if written_ahead(job) {
                                        let at = to_millis(job.run_at);
                                        *ahead.entry((job.queue.clone(), at)).or_default() += 1;
                                    }
                                }
                                report.fired += jobs.len();
                            }
                            // Another node fired it first: its decision stands.
                            ScheduleFireOutcome::Moved => report.moved += 1,
                        }
                    }
                }
                Err(e) => tracing::warn!(schedules = n, error = %e, "schedule fire batch failed"),
            }
        }
        if report.fired > 0 {
            self.counts_changed();
        }
        if !ahead.is_empty() {
            // The store's clock against this machine's, to wait for the slots by: read
            // between two instants, taken as read at their midpoint.
            let before = tokio::time::Instant::now();
            match self.store().clock_now().await {
                Ok(store_now) => {
                    let read_at = before + before.elapsed() / 2;
                    for ((queue, at), n) in ahead {
                        self.wake_ready_at(queue, at, n, (store_now, read_at));
                    }
                }
                // The promoter still makes them ready, a promote interval after their slot.
                Err(e) => tracing::warn!(error = %e, "no wake-up at the slots written ahead"),
            }
        }
        self.metrics
            .scheduler_pass(to_timestamp(now), overdue as f64 / 1000.0);
        Ok(report)
    }

    /// What a pass does with one schedule; `None` when it would change nothing.
    fn decide(&self, s: &Schedule, now: Millis) -> Result<Option<ScheduleFireParams>, StoreError> {
        let trigger: Trigger = s.spec.trigger().map_err(invalid)?;
        let ahead = errand_store::lead_millis(self.config().schedule_lead);
        let p = plan_ahead(s, &trigger, now, ahead);
        if p.changes_nothing(s) {
            return Ok(None);
        }
        Ok(Some(ScheduleFireParams {
            jobs: p
                .fire
                .iter()
                .map(|slot| job_for(&s.spec, Some(*slot), now))
                .collect(),
            next_fire_at: p.next_fire_at,
            buffered_slot: p.buffered_slot,
            cancel: p.cancel,
            ..self.unchanged(s)
        }))
    }

    /// A decision that leaves `s` as read: the compare-and-set on what was read, nothing
    /// to enqueue or cancel.
    fn unchanged(&self, s: &Schedule) -> ScheduleFireParams {
        ScheduleFireParams {
            name: s.spec.name.clone(),
            expected_next_fire_at: s.next_fire_at.map(to_millis),
            expected_last_job_id: s.last_job_id,
            expected_updated_at: Some(to_millis(s.updated_at)),
            jobs: Vec::new(),
            next_fire_at: s.next_fire_at.map(to_millis),
            buffered_slot: s.buffered_slot.map(to_millis),
            cancel: None,
            idempotency_window: self.config().idempotency_window,
        }
    }

    /// Applies decisions with one store call and announces what changed.
    async fn fire_batch(
        &self,
        decisions: Vec<ScheduleFireParams>,
    ) -> Result<Vec<ScheduleFireOutcome>, StoreError> {
        let outcomes = self
            .metrics
            .timed(
                "schedule_fire_many",
                self.store().schedule_fire_many(decisions),
            )
            .await?;
        for outcome in &outcomes {
            if let ScheduleFireOutcome::Fired { jobs, cancelled } = outcome {
                for job in jobs {
                    self.metrics.enqueued(&job.queue, &job.kind);
                }
                if let Some(job) = cancelled {
                    self.metrics.cancelled(job);
                }
                for job in cancelled.as_deref().into_iter().chain(jobs) {
                    tracing::debug!(job = %job.id, schedule = ?job.schedule, slot = ?job.slot.map(|t| t.to_string()), "schedule fired");
                    self.publish(job);
                }
            }
        }
        Ok(outcomes)
    }
}

/// Whether `job` is a schedule's job written ahead of its slot (and not yet started): it
/// waits for exactly its slot (no jitter), which came after it was written. Claims waiting
/// on its queue on this node are woken at the slot.
pub(crate) fn written_ahead(job: &Job) -> bool {
    job.state == JobState::Scheduled
        && job.slot.is_some_and(|slot| slot == job.run_at)
        && written_before_its_slot(job)
}

/// Whether `job` was written before its schedule slot came: only a schedule whose firing
/// does not depend on its previous run (`overlap: allow`) writes its jobs ahead, so such a
/// job's end frees no slot (a buffered slot waits on a `buffer_one` schedule's run, written
/// at or after its slot). One case is left to the scheduler's once-a-second look: a
/// schedule changed from `allow` to `buffer_one` while a job it wrote ahead was running
/// buffers its next slot behind that job, whose end then fires the slot within about a
/// second rather than at once.
pub(crate) fn written_before_its_slot(job: &Job) -> bool {
    job.slot.is_some_and(|slot| slot > job.created_at)
}

/// What one scheduler pass did, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulePassReport {
    /// Schedules the store said have work.
    pub due: usize,
    /// Schedules whose decision was written (the rest would not have changed).
    pub written: usize,
    /// Jobs enqueued.
    pub fired: usize,
    /// Decisions another node's had overtaken.
    pub moved: usize,
}

#[cfg(test)]
mod tests {
    use errand_core::schedule_spec::{CatchUpPolicy, JobTemplate};
    use errand_core::JobKind;
    use errand_store::ClaimedJob;

    use super::*;
    use crate::lanes::testing::claim_one;

    fn spec(singleton: bool) -> ScheduleSpec {
        ScheduleSpec {
            name: ScheduleName::parse("nightly").expect("name"),
            cron: None,
            every_ms: Some(60_000),
            timezone: "UTC".into(),
            job: JobTemplate {
                kind: JobKind::parse("report").expect("kind"),
                queue: QueueName::default_queue(),
                payload: serde_json::json!({}),
                priority: 0,
                max_attempts: 1,
                timeout_ms: None,
                tags: vec![],
            },
            overlap: OverlapPolicy::Allow,
            catch_up: CatchUpPolicy::Skip,
            catch_up_window_ms: 60_000,
            jitter_ms: 0,
            singleton,
        }
    }

    #[test]
    fn a_singleton_schedule_fires_jobs_under_its_own_lock_key() {
        let job = job_for(&spec(true), Some(0), 0);
        assert_eq!(job.ordering.lock_key.as_deref(), Some("schedule:nightly"));
        assert!(job_for(&spec(false), Some(0), 0).ordering.is_plain());
    }

    /// A schedule firing every second into its own queue, named as it is.
    fn every_second(name: &str, overlap: OverlapPolicy) -> ScheduleSpec {
        let mut s = ScheduleSpec {
            name: ScheduleName::parse(name).expect("name"),
            every_ms: Some(1_000),
            overlap,
            ..spec(false)
        };
        s.job.queue = QueueName::parse(name).expect("queue");
        s
    }

    /// Whether completing `claimed` asks the scheduler for a pass.
    async fn completing_wakes_the_scheduler(engine: &crate::Engine, claimed: &ClaimedJob) -> bool {
        engine.fire_due.forget();
        engine
            .settle(errand_store::conformance::complete(claimed))
            .await
            .expect("complete");
        engine.fire_due.next().is_some()
    }

    /// The end of a run a `buffer_one` schedule may be waiting on wakes the scheduler, so
    /// a buffered slot fires at once; the end of a job written ahead (`overlap: allow`)
    /// cannot free a slot and wakes nothing: at a slot of 1,000 such jobs, every batch of
    /// completions ran a pass that read all schedules while the slot's claims ran.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_an_end_that_may_free_a_slot_wakes_the_scheduler() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = errand_store_sqlite::SqliteStore::open(
            &errand_store_sqlite::SqliteOptions::in_dir(dir.path()),
        )
        .expect("open");
        let engine = crate::Engine::new(
            std::sync::Arc::new(store),
            crate::EngineConfig {
                // The next slot is then always within the lead: the pass writes it ahead.
                schedule_lead: Duration::from_secs(3),
                ..crate::EngineConfig::default()
            },
        );
        for (name, overlap) in [
            ("buffered", OverlapPolicy::BufferOne),
            ("ahead", OverlapPolicy::Allow),
        ] {
            engine
                .schedule_put(every_second(name, overlap), SchedulePut::Create)
                .await
                .expect("create");
        }
        let report = engine.schedule_pass().await.expect("pass");
        assert!(
            report.fired >= 1,
            "the allow schedule wrote ahead: {report:?}"
        );
        // The buffer_one schedule fires at its slot, at most a second away, by a pass then.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let run = loop {
            assert!(tokio::time::Instant::now() < deadline, "no slot fired");
            engine.schedule_pass().await.expect("pass");
            let claim = claim_one("buffered", "w", Duration::from_millis(100));
            if let Some(run) = engine.claim(claim).await.expect("claim").pop() {
                break run;
            }
        };
        assert!(!super::written_before_its_slot(&run.job), "{:?}", run.job);
        assert!(completing_wakes_the_scheduler(&engine, &run).await);
        // Woken at its slot, at most a second away.
        let ahead = engine
            .claim(claim_one("ahead", "w", Duration::from_secs(20)))
            .await
            .expect("claim")
            .remove(0);
        assert!(
            super::written_before_its_slot(&ahead.job),
            "a job written ahead: {:?}",
            ahead.job
        );
        assert!(!completing_wakes_the_scheduler(&engine, &ahead).await);
    }
}
