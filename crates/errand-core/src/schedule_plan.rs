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

/// Most slots one pass fires for one schedule. A schedule with more missed slots in its
/// catch-up window (`catch_up: all` after a long outage) fires the oldest of them now and the
/// rest on the passes right after, so one pass stays one bounded transaction.
pub const MAX_CATCH_UP: usize = 1_000;

/// The decisions of one pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FirePlan {
    /// Slots to enqueue a job for.
    pub fire: Vec<Millis>,
    /// The schedule's next slot after this pass: the slot after `now`, or, when catch-up
    /// stopped at [`MAX_CATCH_UP`], the oldest missed slot still to fire.
    pub next_fire_at: Option<Millis>,
    /// The slot `buffer_one` holds back (kept or newly held).
    pub buffered_slot: Option<Millis>,
    /// The running job `replace` cancels, in the same store transaction that fires.
    pub cancel: Option<JobId>,
}

impl FirePlan {
    /// True when applying this plan would leave `schedule` as stored: nothing to fire or
    /// cancel, the same next slot and buffered slot. Such a pass skips the store, so a
    /// `buffer_one` slot waiting for a long run costs no write per pass.
    pub fn changes_nothing(&self, schedule: &Schedule) -> bool {
        self.fire.is_empty()
            && self.cancel.is_none()
            && self.next_fire_at == schedule.next_fire_at.map(to_millis)
            && self.buffered_slot == schedule.buffered_slot.map(to_millis)
    }
}

/// The slots due in one pass, before the overlap policy.
struct Due {
    candidates: Vec<Millis>,
    /// The oldest missed slot left for a later pass (catch-up stopped at the bound).
    resume_at: Option<Millis>,
}

/// Slots in `[from, to]`, oldest first, at most `max`; the oldest left out, if any.
fn slots_in(
    trigger: &Trigger,
    from: Millis,
    to: Millis,
    max: usize,
) -> (Vec<Millis>, Option<Millis>) {
    if from > to {
        return (Vec::new(), None);
    }
    let before_from = to_timestamp(from) - jiff::SignedDuration::from_nanos(1);
    let (slots, truncated) = trigger.slots_between(before_from, to_timestamp(to), max);
    let slots: Vec<Millis> = slots.into_iter().map(to_millis).collect();
    let left = if truncated {
        let after = slots.last().copied().unwrap_or(from - 1);
        trigger.next_after(to_timestamp(after)).map(to_millis)
    } else {
        None
    };
    (slots, left)
}

/// Which slots of `[first, now]` the catch-up policy wants. Work is bounded by the policy,
/// never by the outage: on-time slots lie within the grace, `once` looks back from `now`,
/// and `all` starts at the later of `first` and the catch-up window.
fn due_slots(schedule: &Schedule, trigger: &Trigger, first: Millis, now: Millis) -> Due {
    let grace_start = now - ON_TIME_GRACE_MS;
    // A pass after a catch-up cut short starts again at the oldest slot left, so the grace
    // may hold slots an earlier pass fired: only slots after the last fired one are new.
    let fired_up_to = schedule
        .last_fire_at
        .map(to_millis)
        .map_or(first, |l| first.max(l + 1));
    let (on_time, _) = slots_in(trigger, fired_up_to.max(grace_start), now, MAX_CATCH_UP);
    let last_missed_at = grace_start - 1;
    let mut due = Due {
        candidates: Vec::new(),
        resume_at: None,
    };
    match schedule.spec.catch_up {
        CatchUpPolicy::Skip => {}
        CatchUpPolicy::Once => {
            due.candidates.extend(
                trigger
                    .last_at_or_before(to_timestamp(last_missed_at))
                    .map(to_millis)
                    .filter(|slot| *slot >= first),
            );
        }
        CatchUpPolicy::All => {
            let window = i64::try_from(schedule.spec.catch_up_window_ms).unwrap_or(i64::MAX);
            let window_start = now.saturating_sub(window);
            let room = MAX_CATCH_UP.saturating_sub(on_time.len());
            let (missed, left) = slots_in(trigger, first.max(window_start), last_missed_at, room);
            due.candidates = missed;
            due.resume_at = left;
        }
    }
    due.candidates.extend(on_time);
    due
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
    let due = due_slots(schedule, trigger, first, now);
    let after_now = trigger.next_after(to_timestamp(now)).map(to_millis);
    let candidates = due.candidates;
    let (Some(&oldest), Some(&newest)) = (candidates.first(), candidates.last()) else {
        plan.next_fire_at = due.resume_at.or(after_now);
        return plan;
    };
    let previous_active = previous_active || !plan.fire.is_empty();
    // Every policy but `allow` means one run at a time, so such a pass starts one run at
    // most, whatever catch-up asked for; slots it cannot run are passed over, not left for
    // later passes (which would only pass them over again).
    plan.next_fire_at = after_now;
    match schedule.spec.overlap {
        OverlapPolicy::Allow => {
            plan.fire.extend(candidates);
            plan.next_fire_at = due.resume_at.or(after_now);
        }
        OverlapPolicy::Skip if previous_active => {}
        OverlapPolicy::Skip => plan.fire.push(newest),
        OverlapPolicy::BufferOne if previous_active => {
            if plan.buffered_slot.is_none() {
                plan.buffered_slot = Some(newest);
            }
        }
        OverlapPolicy::BufferOne => {
            // The oldest runs now and the newest waits for it: a late run, then the on-time.
            plan.fire.push(oldest);
            if newest != oldest {
                plan.buffered_slot = Some(newest);
            }
        }
        OverlapPolicy::Replace => {
            if previous_active {
                plan.cancel = schedule.last_job_id;
            }
            plan.fire.push(newest);
        }
    }
    plan
}

/// Plans one pass as [`plan`] does, and for a schedule that [fires
/// ahead](crate::schedule_spec::ScheduleSpec::fires_ahead) also the slots of `(now, now +
/// ahead]`: their jobs are written now, to start at their slot, so that a burst of slots
/// costs its writes before the slots come rather than after. Only the on-time path is
/// taken early: a slot is written ahead exactly when a pass at the slot would have fired it
/// on time and nothing else, and writing it moves `next_fire_at` past it as that pass would.
/// Changing, pausing or deleting the schedule takes back the jobs of slots still to come.
pub fn plan_ahead(schedule: &Schedule, trigger: &Trigger, now: Millis, ahead: Millis) -> FirePlan {
    let mut p = plan(schedule, trigger, now);
    if ahead <= 0 || schedule.paused || !schedule.spec.fires_ahead() {
        return p;
    }
    let horizon = now.saturating_add(ahead);
    while let Some(slot) = p.next_fire_at.filter(|n| *n > now && *n <= horizon) {
        if p.fire.len() >= MAX_CATCH_UP {
            break;
        }
        p.fire.push(slot);
        p.next_fire_at = trigger.next_after(to_timestamp(slot)).map(to_millis);
    }
    p
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::schedule_spec::{JobTemplate, ScheduleSpec};
    use crate::{JobKind, JobState, QueueName, ScheduleName};

    const S: Millis = 1_000;
    const T0: Millis = 1_800_000_000_000;

    fn schedule(overlap: OverlapPolicy, catch_up: CatchUpPolicy, next: Millis) -> Schedule {
        Schedule {
            spec: ScheduleSpec {
                name: ScheduleName::parse("s").unwrap(),
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
                singleton: false,
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

    fn every_second(catch_up: CatchUpPolicy, first: Millis) -> Schedule {
        let mut s = schedule(OverlapPolicy::Allow, catch_up, first);
        s.spec.every_ms = Some(S as u64);
        s.spec.catch_up_window_ms = 3_600 * S as u64;
        s
    }

    fn every1() -> Trigger {
        Trigger::every(Duration::from_secs(1)).unwrap()
    }

    /// An every-second schedule down for two hours (7,200 slots missed), back at `now`.
    const OUTAGE_END: Millis = T0 + 7_200 * S + 300;

    #[test]
    fn two_hour_outage_catch_up_skip_fires_only_the_on_time_slots() {
        let p = plan(
            &every_second(CatchUpPolicy::Skip, T0),
            &every1(),
            OUTAGE_END,
        );
        let on_time: Vec<Millis> = (7_196..=7_200).map(|i| T0 + i * S).collect();
        assert_eq!(
            p.fire, on_time,
            "the slots within the grace, the newest included"
        );
        assert_eq!(p.next_fire_at, Some(T0 + 7_201 * S));
    }

    #[test]
    fn two_hour_outage_catch_up_once_fires_the_latest_missed_slot_and_the_on_time_ones() {
        let p = plan(
            &every_second(CatchUpPolicy::Once, T0),
            &every1(),
            OUTAGE_END,
        );
        let mut want = vec![T0 + 7_195 * S];
        want.extend((7_196..=7_200).map(|i| T0 + i * S));
        assert_eq!(
            p.fire, want,
            "the newest missed slot, not one from when the outage began"
        );
        assert_eq!(p.next_fire_at, Some(T0 + 7_201 * S));
    }

    #[test]
    fn two_hour_outage_catch_up_all_fires_the_window_at_most_a_thousand_per_pass() {
        // The window is the last hour: slots T0+3600.3s.. are in it, 3,601 up to T0+7,200s
        // (3,595 missed, 5 on time).
        let mut s = every_second(CatchUpPolicy::All, T0);
        let first_in_window = T0 + 3_601 * S;
        let mut fired = Vec::new();
        let mut passes = 0;
        let mut now = OUTAGE_END;
        while passes < 10 {
            let p = plan(&s, &every1(), now);
            assert!(
                p.fire.len() <= MAX_CATCH_UP,
                "pass {passes}: {} slots",
                p.fire.len()
            );
            if passes == 0 {
                assert!(
                    p.fire.contains(&(T0 + 7_200 * S)),
                    "the on-time slot fires at once"
                );
                assert_eq!(
                    p.fire[0], first_in_window,
                    "oldest slot of the window first"
                );
            }
            for slot in &p.fire {
                assert!(
                    !fired.contains(slot),
                    "pass {passes} fires slot {slot} again"
                );
            }
            fired.extend(p.fire.iter().copied());
            // As the store records a fire: the newest slot fired, never going back.
            s.last_fire_at = p
                .fire
                .iter()
                .copied()
                .chain(s.last_fire_at.map(to_millis))
                .max()
                .map(to_timestamp);
            s.next_fire_at = p.next_fire_at.map(to_timestamp);
            passes += 1;
            now += 20;
            if p.next_fire_at > Some(OUTAGE_END) {
                break;
            }
        }
        fired.sort_unstable();
        fired.dedup();
        let want: Vec<Millis> = (3_601..=7_200).map(|i| T0 + i * S).collect();
        assert_eq!(
            fired.len(),
            want.len(),
            "every slot of the window, in {passes} passes"
        );
        assert_eq!(fired, want);
        assert_eq!(passes, 4, "3,600 slots at 1,000 per pass");
        assert_eq!(s.next_fire_at.map(to_millis), Some(T0 + 7_201 * S));
    }

    /// Every policy but `allow` is one run at a time: a pass after an outage starts one run
    /// however many slots catch-up wants, whether or not a run is going.
    #[test]
    fn one_run_at_a_time_policies_start_one_run_per_pass_after_an_outage() {
        for catch_up in [CatchUpPolicy::Once, CatchUpPolicy::All] {
            let mut s = every_second(catch_up, T0);
            s.spec.overlap = OverlapPolicy::Skip;
            let p = plan(&s, &every1(), OUTAGE_END);
            assert_eq!(
                p.fire,
                vec![T0 + 7_200 * S],
                "skip {catch_up:?}: the newest"
            );
            assert_eq!(
                p.next_fire_at,
                Some(T0 + 7_201 * S),
                "nothing left for later"
            );

            s.spec.overlap = OverlapPolicy::Replace;
            let p = plan(&s, &every1(), OUTAGE_END);
            assert_eq!(
                p.fire,
                vec![T0 + 7_200 * S],
                "replace {catch_up:?}: the newest"
            );
            assert_eq!(p.cancel, None, "nothing runs to cancel");

            s.spec.overlap = OverlapPolicy::BufferOne;
            let p = plan(&s, &every1(), OUTAGE_END);
            assert_eq!(p.fire.len(), 1, "buffer_one {catch_up:?}: {:?}", p.fire);
            assert_eq!(
                p.buffered_slot,
                Some(T0 + 7_200 * S),
                "the on-time slot waits for the late run"
            );
            assert!(p.fire[0] < T0 + 7_196 * S, "the late run goes first");

            // A run still going: replace cancels it and starts only the newest.
            s.spec.overlap = OverlapPolicy::Replace;
            s.last_job_id = Some(JobId::new());
            s.last_job_state = Some(JobState::Running);
            let p = plan(&s, &every1(), OUTAGE_END);
            assert_eq!((p.fire, p.cancel), (vec![T0 + 7_200 * S], s.last_job_id));
            s.last_job_id = None;
            s.last_job_state = None;
        }
    }

    /// `buffer_one` with `catch_up: all` after two hours: the late run, then the held slot
    /// once it ends, and never a slot twice.
    #[test]
    fn buffer_one_after_a_long_outage_runs_the_held_slot_once_the_run_ends() {
        let mut s = every_second(CatchUpPolicy::All, T0);
        s.spec.overlap = OverlapPolicy::BufferOne;
        let first = plan(&s, &every1(), OUTAGE_END);
        assert_eq!(first.fire.len(), 1);
        let held = first.buffered_slot.expect("a held slot");
        assert!(
            held > first.fire[0],
            "the held slot is not the one that ran"
        );
        s.next_fire_at = first.next_fire_at.map(to_timestamp);
        s.buffered_slot = Some(to_timestamp(held));
        s.last_fire_at = Some(to_timestamp(first.fire[0]));
        s.last_job_id = Some(JobId::new());
        s.last_job_state = Some(JobState::Running);
        let waiting = plan(&s, &every1(), OUTAGE_END + 20);
        assert!(
            waiting.fire.is_empty() && waiting.changes_nothing(&s),
            "{waiting:?}"
        );
        s.last_job_state = Some(JobState::Succeeded);
        let after = plan(&s, &every1(), OUTAGE_END + 40);
        assert_eq!(after.fire, vec![held], "the held slot runs, once");
        assert_eq!(after.buffered_slot, None);
    }

    #[test]
    fn a_pass_with_nothing_to_do_changes_nothing() {
        let mut s = schedule(OverlapPolicy::BufferOne, CatchUpPolicy::Skip, T0 + 10 * S);
        s.last_job_id = Some(JobId::new());
        s.last_job_state = Some(JobState::Running);
        s.buffered_slot = Some(to_timestamp(T0));
        let p = plan(&s, &every10(), T0 + 5 * S);
        assert!(p.changes_nothing(&s), "{p:?}");
        s.last_job_state = Some(JobState::Succeeded);
        let p = plan(&s, &every10(), T0 + 5 * S);
        assert!(!p.changes_nothing(&s), "the buffered slot fires now");
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

    #[test]
    fn allow_writes_the_slots_within_the_lead_and_moves_past_them() {
        let s = schedule(OverlapPolicy::Allow, CatchUpPolicy::Skip, T0 + 10 * S);
        let p = plan_ahead(&s, &every10(), T0 + 9 * S, 2 * S);
        assert_eq!(p.fire, vec![T0 + 10 * S], "the slot a second away");
        assert_eq!(p.next_fire_at, Some(T0 + 20 * S));
        let far = plan_ahead(&s, &every10(), T0 + 5 * S, 2 * S);
        assert!(
            far.changes_nothing(&s),
            "a slot beyond the lead waits: {far:?}"
        );
        // A due slot fires as `plan` has it, and the next one within the lead with it.
        let due = schedule(OverlapPolicy::Allow, CatchUpPolicy::Skip, T0);
        let p = plan_ahead(&due, &every10(), T0 + S, 10 * S);
        assert_eq!(p.fire, vec![T0, T0 + 10 * S]);
        assert_eq!(p.next_fire_at, Some(T0 + 20 * S));
    }

    #[test]
    fn only_allow_fires_ahead_and_never_while_paused() {
        for overlap in [
            OverlapPolicy::Skip,
            OverlapPolicy::BufferOne,
            OverlapPolicy::Replace,
        ] {
            let s = schedule(overlap, CatchUpPolicy::Skip, T0 + 10 * S);
            let p = plan_ahead(&s, &every10(), T0 + 9 * S, 2 * S);
            assert!(
                p.changes_nothing(&s),
                "{overlap:?} waits for its slot: {p:?}"
            );
        }
        let mut paused = schedule(OverlapPolicy::Allow, CatchUpPolicy::Skip, T0 + 10 * S);
        paused.paused = true;
        assert!(plan_ahead(&paused, &every10(), T0 + 9 * S, 2 * S).changes_nothing(&paused));
        let s = schedule(OverlapPolicy::Allow, CatchUpPolicy::Skip, T0 + 10 * S);
        assert!(
            plan_ahead(&s, &every10(), T0 + 9 * S, 0).changes_nothing(&s),
            "no lead"
        );
    }
}
