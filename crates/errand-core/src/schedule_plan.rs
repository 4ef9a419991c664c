//! What one scheduler pass does with one schedule: a pure function of the schedule, its
//! trigger and the store's clock, so days of schedule behaviour (missed slots, catch-up,
//! overlap) are tested in microseconds with any clock the test likes.

use crate::schedule::Trigger;
use crate::schedule_spec::{CatchUpPolicy, OverlapPolicy, Schedule};
use crate::time::{to_millis, to_timestamp};
use crate::{JobId, Millis};

/// A slot at most this late is on time; older ones are missed and follow the catch-up
/// policy. Five seconds absorbs a slow pass or a short stall without calling it an outage.
pub const ON_TIME_GRACE_MS: Millis = 5_000;

/// Most missed slots one pass fires with `catch_up: all`.
pub const MAX_CATCH_UP: usize = 1_000;

/// The decisions of one pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FirePlan {
    /// Slots to enqueue a job for, oldest first.
    pub fire: Vec<Millis>,
    /// The schedule's next slot after this pass.
    pub next_fire_at: Option<Millis>,
    /// The slot `buffer_one` holds back (kept or newly held).
    pub buffered_slot: Option<Millis>,
    /// The running job `replace` cancels first.
    pub cancel: Option<JobId>,
}

/// Plans one pass over `schedule` at store time `now`.
pub fn plan(schedule: &Schedule, trigger: &Trigger, now: Millis) -> FirePlan {
    let previous_active = schedule.last_job_state.is_some_and(|s| !s.is_final());
    let mut plan = FirePlan {
        next_fire_at: schedule.next_fire_at.map(to_millis),
        buffered_slot: schedule.buffered_slot.map(to_millis),
        ..FirePlan::default()
    };
    // A slot held back by buffer_one runs once the previous run has ended.
    if let Some(buffered) = plan.buffered_slot {
        if !previous_active {
            plan.fire.push(buffered);
            plan.buffered_slot = None;
        }
    }
    let Some(first) = schedule.next_fire_at.map(to_millis).filter(|n| *n <= now) else {
        return plan;
    };
    let (mut due, _) = trigger.slots_between(to_timestamp(first), to_timestamp(now), MAX_CATCH_UP);
    due.insert(0, to_timestamp(first));
    let due: Vec<Millis> = due.into_iter().map(to_millis).collect();
    plan.next_fire_at = trigger.next_after(to_timestamp(now)).map(to_millis);
    let (missed, on_time): (Vec<Millis>, Vec<Millis>) = due
        .into_iter()
        .partition(|slot| *slot < now - ON_TIME_GRACE_MS);
    let window_start =
        now.saturating_sub(i64::try_from(schedule.spec.catch_up_window_ms).unwrap_or(i64::MAX));
    let mut candidates: Vec<Millis> = match schedule.spec.catch_up {
        CatchUpPolicy::Skip => Vec::new(),
        CatchUpPolicy::Once => missed.last().copied().into_iter().collect(),
        CatchUpPolicy::All => missed.into_iter().filter(|s| *s >= window_start).collect(),
    };
    candidates.extend(on_time);
    if candidates.is_empty() {
        return plan;
    }
    let previous_active = previous_active || !plan.fire.is_empty();
    match schedule.spec.overlap {
        OverlapPolicy::Allow => plan.fire.extend(candidates),
        OverlapPolicy::Skip if previous_active => {}
        OverlapPolicy::BufferOne if previous_active => {
            if plan.buffered_slot.is_none() {
                plan.buffered_slot = candidates.last().copied();
            }
        }
        OverlapPolicy::Replace if previous_active => {
            plan.cancel = schedule.last_job_id;
            plan.fire.extend(candidates);
        }
        OverlapPolicy::Skip | OverlapPolicy::BufferOne | OverlapPolicy::Replace => {
            plan.fire.extend(candidates)
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::schedule_spec::{JobTemplate, ScheduleSpec};
    use crate::{JobKind, JobState, QueueName};

    const S: Millis = 1_000;
    const T0: Millis = 1_800_000_000_000;

    fn schedule(overlap: OverlapPolicy, catch_up: CatchUpPolicy, next: Millis) -> Schedule {
        Schedule {
            spec: ScheduleSpec {
                name: QueueName::parse("s").unwrap(),
                cron: None,
                every_ms: Some(10 * S as u64),
                timezone: "UTC".into(),
                job: JobTemplate {
                    kind: JobKind::parse("k").unwrap(),
                    queue: QueueName::default_queue(),
                    payload: serde_json::json!({}),
                    priority: 0,
                    max_attempts: 1,
                    timeout_ms: None,
                    tags: vec![],
                },
                overlap,
                catch_up,
                catch_up_window_ms: 60 * S as u64,
                jitter_ms: 0,
            },
            paused: false,
            next_fire_at: Some(to_timestamp(next)),
            last_fire_at: None,
            last_job_id: None,
            last_job_state: None,
            buffered_slot: None,
            created_at: to_timestamp(T0),
            updated_at: to_timestamp(T0),
        }
    }

    fn every10() -> Trigger {
        Trigger::every(Duration::from_secs(10)).unwrap()
    }

    #[test]
    fn nothing_before_the_slot() {
        let s = schedule(OverlapPolicy::Allow, CatchUpPolicy::Once, T0 + 10 * S);
        let p = plan(&s, &every10(), T0 + 5 * S);
        assert!(p.fire.is_empty());
        assert_eq!(p.next_fire_at, Some(T0 + 10 * S));
    }

    #[test]
    fn an_on_time_slot_fires_and_the_next_is_the_following_slot() {
        let s = schedule(OverlapPolicy::Allow, CatchUpPolicy::Skip, T0);
        let p = plan(&s, &every10(), T0 + 20);
        assert_eq!(p.fire, vec![T0]);
        assert_eq!(p.next_fire_at, Some(T0 + 10 * S));
    }

    #[test]
    fn catch_up_skip_once_all_after_an_outage() {
        // Down from T0 to T0+45s: slots T0, +10, +20, +30, +40 were due; +40 is on time.
        let now = T0 + 45 * S;
        let skip = plan(
            &schedule(OverlapPolicy::Allow, CatchUpPolicy::Skip, T0),
            &every10(),
            now,
        );
        assert_eq!(skip.fire, vec![T0 + 40 * S], "only the on-time slot");
        let once = plan(
            &schedule(OverlapPolicy::Allow, CatchUpPolicy::Once, T0),
            &every10(),
            now,
        );
        assert_eq!(
            once.fire,
            vec![T0 + 30 * S, T0 + 40 * S],
            "one late job, then the on-time one"
        );
        let all = plan(
            &schedule(OverlapPolicy::Allow, CatchUpPolicy::All, T0),
            &every10(),
            now,
        );
        assert_eq!(
            all.fire,
            vec![T0, T0 + 10 * S, T0 + 20 * S, T0 + 30 * S, T0 + 40 * S]
        );
        assert_eq!(all.next_fire_at, Some(T0 + 50 * S));
    }

    #[test]
    fn catch_up_all_is_bounded_by_its_window() {
        // Down for two hours with a one-minute window.
        let now = T0 + 7_200 * S;
        let all = plan(
            &schedule(OverlapPolicy::Allow, CatchUpPolicy::All, T0),
            &every10(),
            now,
        );
        assert!(all.fire.iter().all(|s| *s >= now - 60 * S));
        assert_eq!(all.fire.len(), 7);
    }

    #[test]
    fn overlap_policies_with_a_run_still_going() {
        let mut s = schedule(OverlapPolicy::Skip, CatchUpPolicy::Skip, T0);
        s.last_job_id = Some(JobId::new());
        s.last_job_state = Some(JobState::Running);
        let now = T0 + 1;
        assert!(plan(&s, &every10(), now).fire.is_empty(), "skip");
        s.spec.overlap = OverlapPolicy::Allow;
        assert_eq!(plan(&s, &every10(), now).fire, vec![T0], "allow");
        s.spec.overlap = OverlapPolicy::Replace;
        let r = plan(&s, &every10(), now);
        assert_eq!(
            (r.fire.clone(), r.cancel),
            (vec![T0], s.last_job_id),
            "replace"
        );
        s.spec.overlap = OverlapPolicy::BufferOne;
        let b = plan(&s, &every10(), now);
        assert!(b.fire.is_empty());
        assert_eq!(b.buffered_slot, Some(T0), "buffer_one holds the slot");
        // The run ends: the buffered slot fires on the next pass, before anything newer.
        s.buffered_slot = Some(to_timestamp(T0));
        s.next_fire_at = Some(to_timestamp(T0 + 10 * S));
        s.last_job_state = Some(JobState::Succeeded);
        let after = plan(&s, &every10(), T0 + 2 * S);
        assert_eq!(after.fire, vec![T0]);
        assert_eq!(after.buffered_slot, None);
    }
}
