//! How a job exported from one store arrives in another. Both stores apply these rules.

use crate::{Attempt, AttemptOutcome, Job, JobState};

/// The state an imported job takes: a `running` job's lease belonged to the store it came
/// from, so it arrives ready to run again.
pub fn restored_state(state: JobState) -> JobState {
    match state {
        JobState::Running => JobState::Available,
        other => other,
    }
}

/// An imported attempt: one still open when exported ended with its lease.
pub fn restored_attempt(attempt: &Attempt, job: &Job) -> Attempt {
    let mut a = attempt.clone();
    if a.outcome == AttemptOutcome::Running {
        a.outcome = AttemptOutcome::LeaseExpired;
        a.finished_at = Some(a.finished_at.unwrap_or(job.updated_at));
        a.error = Some("lease ended by export".into());
    }
    a
}
