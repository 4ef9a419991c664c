//! Writes that end an attempt or a job: complete, fail, cancel, retry.

use errand_core::{
    AfterFailure, AttemptOutcome, EventType, Job, JobId, JobState, LeaseToken, Millis, RetryPolicy,
    RunReport,
};
use errand_store::{JobSettleManyParams, Settled, Settlement, StoreError};
use rusqlite::{named_params, params, Connection, OptionalExtension};

use crate::fault::{Fault, QResult};
use crate::job_row::{json_text, load_job, query_jobs, JOB_COLUMNS};
use crate::job_write::fenced;
use crate::transition::record_change;
use crate::{gate, session};

/// A step after a settle's first write: a refusal there (which would fail only its own
/// entry) would leave that write standing, so it fails the whole batch instead, which the
/// writer rolls back. Refusals before the first write (a stale token, a missing job) change
/// nothing, so a batch needs no savepoint per entry.
fn after_write<T>(step: QResult<T>) -> QResult<T> {
    step.map_err(|fault| match fault {
        Fault::Store(e) if e.is_refusal() => Fault::Store(StoreError::Internal(format!(
            "a settle refused after it wrote: {e}"
        ))),
        other => other,
    })
}

/// Records how an attempt ended.
pub(crate) fn close_attempt(
    conn: &Connection,
    now: Millis,
    id: JobId,
    attempt: u32,
    outcome: AttemptOutcome,
    error: Option<&str>,
) -> QResult<()> {
    conn.prepare_cached(
        "UPDATE job_attempts SET finished_at = ?1, outcome = ?2, error = ?3 \
         WHERE job_id = ?4 AND attempt = ?5",
    )?
    .execute(params![
        now,
        outcome.as_str(),
        error,
        id.as_bytes().as_slice(),
        attempt
    ])?;
    Ok(())
}

/// Keeps the report of the hosted run that ended an attempt.
fn record_report(
    conn: &Connection,
    id: JobId,
    attempt: u32,
    report: Option<&RunReport>,
) -> QResult<()> {
    let Some(report) = report else {
        return Ok(());
    };
    let text = serde_json::to_string(report).map_err(|e| StoreError::Invalid(e.to_string()))?;
    conn.prepare_cached("UPDATE job_attempts SET report = ?1 WHERE job_id = ?2 AND attempt = ?3")?
        .execute(params![text, id.as_bytes().as_slice(), attempt])?;
    Ok(())
}

/// Moves a running job to where a failed attempt sends it and closes the attempt.
pub(crate) fn fail_running(
    conn: &Connection,
    now: Millis,
    id: JobId,
    attempt: u32,
    retry: AfterFailure,
    outcome: AttemptOutcome,
    error: &str,
) -> QResult<Job> {
    let state = retry.state();
    let finished = (state == JobState::Dead).then_some(now);
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE jobs SET state = ?2, run_at = ?3, error = ?4, finished_at = ?5, lease_token = NULL, \
         lease_expires_at = NULL, updated_at = ?1 WHERE id = ?6 RETURNING {JOB_COLUMNS}"
    ))?;
    let mut job = query_jobs(
        &mut stmt,
        params![
            now,
            state.as_str(),
            retry.run_at(now),
            error,
            finished,
            id.as_bytes().as_slice()
        ],
    )?
    .pop()
    .ok_or_else(|| Fault::Store(StoreError::job_not_found(id)))?;
    after_write(close_attempt(conn, now, id, attempt, outcome, Some(error)))?;
    after_write(gate::released(conn, now, &mut job))?;
    if let Some(ty) = EventType::for_end(job.state) {
        after_write(record_change(conn, now, &job, ty))?;
    }
    Ok(job)
}

/// Answers a settle that its token no longer passes. When the attempt that ran under that
/// token already ended the way this settle asks, the settle is a repeat (its first answer was
/// lost) and gets the job as it is now, marked a repeat; otherwise `LeaseLost` (or
/// `NotFound`).
fn repeat_or_fenced(
    conn: &Connection,
    id: JobId,
    token: LeaseToken,
    outcome: AttemptOutcome,
) -> QResult<Settled> {
    let ended: Option<String> = conn
        .prepare_cached("SELECT outcome FROM job_attempts WHERE job_id = ?1 AND lease_token = ?2")?
        .query_row(
            params![id.as_bytes().as_slice(), token.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .optional()?;
    if ended.as_deref() == Some(outcome.as_str()) {
        return load_job(conn, id).map(|job| Settled { job, repeat: true });
    }
    Err(fenced(conn, id))
}

/// Settles a batch in input order; refusals are answered per entry.
pub(crate) fn settle_many(
    conn: &Connection,
    now: Millis,
    params: &JobSettleManyParams,
) -> QResult<Vec<Result<Settled, StoreError>>> {
    let mut out = Vec::with_capacity(params.settlements.len());
    for s in &params.settlements {
        // A refusal (a stale token, a missing job) fails only its own entry; it comes
        // before the entry writes anything (`settle_one` turns a later one into a failure
        // of the batch), so no savepoint is needed: one per entry cost more than the settle
        // itself, the statement journal growing with the batch. Any other error fails the
        // whole call and the writer rolls all of it back, as on PostgreSQL, where a
        // transaction cannot go on after an error.
        match settle_one(conn, now, s, &params.retry_policy) {
            Ok(settled) => out.push(Ok(settled)),
            Err(Fault::Store(e)) if e.is_refusal() => out.push(Err(e)),
            Err(other) => return Err(other),
        }
    }
    Ok(out)
}

/// Settles one job, fenced on its lease token; a repeat of the settle that ended the
/// token's attempt is answered with the job, marked a repeat.
pub(crate) fn settle_one(
    conn: &Connection,
    now: Millis,
    settlement: &Settlement,
    policy: &RetryPolicy,
) -> QResult<Settled> {
    match settlement {
        Settlement::Complete {
            id,
            lease_token,
            result,
            report,
            session_state,
        } => {
            let state_text = session_state
                .as_ref()
                .map(|v| session::check_state(*id, v, conn, now, *lease_token))
                .transpose()?;
            let mut stmt = conn.prepare_cached(&format!(
                "UPDATE jobs SET state = 'succeeded', result = ?2, error = NULL, finished_at = ?1, \
                 lease_token = NULL, lease_expires_at = NULL, updated_at = ?1 \
                 WHERE id = ?3 AND state = 'running' AND lease_token = ?4 AND lease_expires_at > ?1 \
                 RETURNING {JOB_COLUMNS}"
            ))?;
            let job = query_jobs(
                &mut stmt,
                params![
                    now,
                    json_text(result),
                    id.as_bytes().as_slice(),
                    lease_token.as_bytes().as_slice()
                ],
            )?
            .pop();
            let Some(mut job) = job else {
                return repeat_or_fenced(conn, *id, *lease_token, AttemptOutcome::Succeeded);
            };
            after_write(
                close_attempt(conn, now, *id, job.attempt, AttemptOutcome::Succeeded, None)
                    .and_then(|()| record_report(conn, *id, job.attempt, report.as_ref())),
            )?;
            if let (Some(text), Some(key)) = (&state_text, &job.ordering.session_key) {
                after_write(session::write_state(conn, now, key, text))?;
            }
            after_write(
                gate::released(conn, now, &mut job)
                    .and_then(|_| record_change(conn, now, &job, EventType::JobSucceeded)),
            )?;
            Ok(Settled { job, repeat: false })
        }
        Settlement::Fail {
            id,
            lease_token,
            error,
            retry_in,
            dead,
            report,
        } => {
            let held: Option<(u32, u32, Option<String>)> = conn
                .prepare_cached(
                    "SELECT attempt, max_attempts, (SELECT defaults FROM queues WHERE name = jobs.queue) \
                     FROM jobs \
                     WHERE id = ?2 AND state = 'running' AND lease_token = ?3 AND lease_expires_at > ?1",
                )?
                .query_row(
                    params![now, id.as_bytes().as_slice(), lease_token.as_bytes().as_slice()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((attempt, max_attempts, defaults)) = held else {
                return repeat_or_fenced(conn, *id, *lease_token, AttemptOutcome::Failed);
            };
            let policy = queue_policy(defaults.as_deref(), policy)?;
            let retry = AfterFailure::decide(attempt, max_attempts, *retry_in, *dead, &policy);
            let job = fail_running(
                conn,
                now,
                *id,
                attempt,
                retry,
                AttemptOutcome::Failed,
                error,
            )?;
            after_write(record_report(conn, *id, attempt, report.as_ref()))?;
            Ok(Settled { job, repeat: false })
        }
    }
}

/// Cancels a job that has not finished.
pub(crate) fn cancel(conn: &Connection, now: Millis, id: JobId) -> QResult<Job> {
    let job = load_job(conn, id)?;
    if job.state.is_final() {
        return Err(Fault::Store(StoreError::already_finished(id, job.state)));
    }
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE jobs SET state = 'cancelled', finished_at = ?1, lease_token = NULL, \
         lease_expires_at = NULL, parked = 0, updated_at = ?1 WHERE id = ?2 RETURNING {JOB_COLUMNS}"
    ))?;
    let mut cancelled = query_jobs(&mut stmt, params![now, id.as_bytes().as_slice()])?
        .pop()
        .ok_or_else(|| Fault::Store(StoreError::job_not_found(id)))?;
    if job.state == JobState::Running {
        close_attempt(
            conn,
            now,
            id,
            job.attempt,
            AttemptOutcome::Cancelled,
            Some("cancelled"),
        )?;
    }
    if job.state == JobState::Blocked {
        // A waiting job has not joined its gate's line yet.
    } else if job.parked {
        gate::left_line(conn, now, &cancelled)?;
    } else {
        gate::released(conn, now, &mut cancelled)?;
    }
    record_change(conn, now, &cancelled, EventType::JobCancelled)?;
    Ok(cancelled)
}

/// The SET clause that makes a stopped job ready again with at least one attempt left, at
/// the named parameter `:now`. Single retries and bulk requeues both use it as written.
pub(crate) const REVIVE: &str = "state = 'available', run_at = :now, finished_at = NULL, \
     max_attempts = MAX(max_attempts, attempt + 1), updated_at = :now";

/// Runs a dead, cancelled or retry-waiting job again now.
pub(crate) fn retry(conn: &Connection, now: Millis, id: JobId) -> QResult<Job> {
    let before = load_job(conn, id)?;
    if !before.state.can_retry() {
        return Err(Fault::Store(StoreError::not_retryable(id, before.state)));
    }
    if let Some(why) = errand_core::flow::revive_refusal(&before.flow) {
        return Err(Fault::Store(StoreError::WrongState(format!(
            "job {id} cannot be retried on its own: {why}"
        ))));
    }
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE jobs SET {REVIVE} WHERE id = :id RETURNING {JOB_COLUMNS}"
    ))?;
    let mut job = query_jobs(
        &mut stmt,
        named_params! {":now": now, ":id": id.as_bytes().as_slice()},
    )?
    .pop()
    .ok_or_else(|| Fault::Store(StoreError::job_not_found(id)))?;
    if before.state.is_final() {
        gate::revived(conn, now, &mut job)?;
        if let Some(b) = job.flow.batch_id {
            crate::batch::job_revived(conn, b, before.state)?;
        }
    } else {
        gate::made_due(conn, now, &mut job)?;
    }
    record_change(conn, now, &job, EventType::JobEnqueued)?;
    Ok(job)
}

/// The retry policy of a failure that named no `retry_in`: the queue's backoff when its
/// defaults set one (with the server's jitter), else the server's.
pub(crate) fn queue_policy(defaults: Option<&str>, policy: &RetryPolicy) -> QResult<RetryPolicy> {
    let Some(text) = defaults else {
        return Ok(*policy);
    };
    let defaults: errand_core::queue::JobDefaults = serde_json::from_str(text)
        .map_err(|e| Fault::Store(StoreError::Corrupt(format!("queue defaults: {e}"))))?;
    Ok(match defaults.backoff {
        Some(b) => RetryPolicy {
            base: std::time::Duration::from_millis(b.base_ms),
            max: std::time::Duration::from_millis(b.max_ms),
            jitter: policy.jitter,
        },
        None => *policy,
    })
}
