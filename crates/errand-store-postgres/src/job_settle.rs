//! Writes that end an attempt or a job: complete, fail, cancel, retry.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use errand_core::ordering::Gate;
use errand_core::queue::Backoff;
use errand_core::{
    AfterFailure, AttemptOutcome, EventType, Job, JobId, JobState, RetryPolicy, RunReport,
};
use errand_store::{Settled, Settlement, StoreError};
use serde_json::Value;

use crate::array_rows::array_rows;
use crate::fault::{Fault, QResult, RowExt};
use crate::gate;
use crate::job_row::{job_columns, job_from_row, jobs_from_rows, JOB_COLUMNS};
use crate::job_write::{fenced, lease_held};
use crate::plan_mode::query_batch;
use crate::transition::{record_change, record_changes};

/// The statement that completes a batch of `len` jobs (ids, tokens, results and reports
/// bound as `$1` to `$4`).
///
/// Each attempt's report is carried out of the jobs' update (`attempt_report`), so closing
/// the attempts joins nothing but `job_attempts` by key: under the generic plan, which
/// takes any batch for 10 rows, closing them by joining the batch again was a nested loop
/// over it per job (250,000 comparisons for 500 jobs, 53 ms of a 74 ms completion).
pub(crate) fn complete_sql(len: usize) -> String {
    let rows = array_rows(
        len,
        "u",
        &[
            ("$1::uuid", "id"),
            ("$2::uuid", "token"),
            ("$3::jsonb", "result"),
            ("$4::jsonb", "report"),
        ],
    );
    format!(
        "WITH u AS (SELECT * FROM {rows}), \
         done AS ( \
             UPDATE jobs j SET state = 'succeeded', result = u.result, error = NULL, \
                 finished_at = errand_now(), lease_token = NULL, lease_expires_at = NULL, updated_at = errand_now() \
             FROM u WHERE j.id = u.id AND {} \
             RETURNING {}, u.report AS attempt_report), \
         closed AS ( \
             UPDATE job_attempts a SET finished_at = errand_now(), outcome = 'succeeded', error = NULL, \
                 report = done.attempt_report \
             FROM done WHERE a.job_id = done.id AND a.attempt = done.attempt) \
         SELECT {JOB_COLUMNS} FROM done",
        lease_held("j.", "u.token"),
        job_columns("j")
    )
}

/// Completes many jobs in one statement; each row is fenced on its own token. Returns the
/// completed jobs by id.
async fn complete_many(
    client: &impl GenericClient,
    ids: &[uuid::Uuid],
    tokens: &[uuid::Uuid],
    results: &[Option<Value>],
    reports: &[Option<Value>],
) -> QResult<HashMap<uuid::Uuid, Job>> {
    let sql = complete_sql(ids.len());
    let stmt = client.prepare_cached(&sql).await?;
    let rows = query_batch(
        client,
        ids.len(),
        &stmt,
        &[&ids, &tokens, &results, &reports],
    )
    .await?;
    let jobs = jobs_from_rows(&rows)?;
    record_changes(client, jobs.iter().map(|j| (j, EventType::JobSucceeded))).await?;
    Ok(jobs.into_iter().map(|j| (j.id.0, j)).collect())
}

/// Moves a running job to where a failed attempt sends it and closes the attempt.
pub(crate) async fn fail_running(
    client: &impl GenericClient,
    id: JobId,
    attempt: u32,
    retry: AfterFailure,
    outcome: AttemptOutcome,
    error: &str,
    report: Option<&Value>,
) -> QResult<Job> {
    let sql = format!(
        "WITH failed AS ( \
             UPDATE jobs SET state = $2, run_at = errand_now() + $3, error = $4, \
                 finished_at = CASE WHEN $2 = 'dead' THEN errand_now() ELSE NULL END, \
                 lease_token = NULL, lease_expires_at = NULL, updated_at = errand_now() \
             WHERE id = $1 RETURNING *), \
         closed AS ( \
             UPDATE job_attempts SET finished_at = errand_now(), outcome = $5, error = $4, report = $7 \
             WHERE job_id = $1 AND attempt = $6) \
         SELECT {JOB_COLUMNS} FROM failed"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let wait = retry.run_at(0);
    let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
    let row = client
        .query_opt(
            &stmt,
            &[
                &id.0,
                &retry.state().as_str(),
                &wait,
                &error,
                &outcome.as_str(),
                &attempt,
                &report,
            ],
        )
        .await?
        .ok_or_else(|| Fault::Store(StoreError::job_not_found(id)))?;
    let job = job_from_row(&row)?;
    if let Some(ty) = EventType::for_end(job.state) {
        record_change(client, &job, ty).await?;
    }
    Ok(job)
}

/// Answers a settle that its token no longer passes. When the attempt that ran under that
/// token already ended the way this settle asks, the settle is a repeat (its first answer was
/// lost) and gets the job as it is now; otherwise `LeaseLost` (or `NotFound`).
async fn repeat_or_fenced(
    client: &impl GenericClient,
    id: JobId,
    token: uuid::Uuid,
    outcome: AttemptOutcome,
) -> QResult<Job> {
    let stmt = client
        .prepare_cached("SELECT outcome FROM job_attempts WHERE job_id = $1 AND lease_token = $2")
        .await?;
    let ended: Option<String> = match client.query_opt(&stmt, &[&id.0, &token]).await? {
        Some(row) => Some(row.column(0)?),
        None => None,
    };
    if ended.as_deref() != Some(outcome.as_str()) {
        return Err(fenced(client, id).await);
    }
    crate::job_read::get(client, id).await
}

/// The retry policy of a failure that named no `retry_in` (a settled failure, a rescue):
/// the queue's backoff (`defaults->'backoff'`) when it sets one, with the server's jitter;
/// else the server's policy.
pub(crate) fn queue_policy(backoff: Option<Value>, policy: &RetryPolicy) -> RetryPolicy {
    backoff
        .and_then(|b| serde_json::from_value::<Backoff>(b).ok())
        .map_or(*policy, |b| RetryPolicy {
            base: std::time::Duration::from_millis(b.base_ms),
            max: std::time::Duration::from_millis(b.max_ms),
            jitter: policy.jitter,
        })
}

/// One failure to apply, as a settlement asks it.
struct Failure<'a> {
    id: JobId,
    token: uuid::Uuid,
    error: &'a str,
    retry_in: Option<std::time::Duration>,
    dead: bool,
    report: Option<Value>,
}

/// A run report as the `report` column keeps it.
fn report_value(report: Option<&RunReport>) -> QResult<Option<Value>> {
    report
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))
}

async fn fail_one(
    client: &impl GenericClient,
    f: Failure<'_>,
    policy: &RetryPolicy,
) -> QResult<(Job, bool)> {
    let Failure {
        id,
        token,
        error,
        retry_in,
        dead,
        report,
    } = f;
    let sql = format!(
        "SELECT attempt, max_attempts, \
             (SELECT defaults->'backoff' FROM queues WHERE name = jobs.queue) \
         FROM jobs WHERE id = $1 AND {} FOR UPDATE",
        lease_held("", "$2")
    );
    let stmt = client.prepare_cached(&sql).await?;
    let Some(row) = client.query_opt(&stmt, &[&id.0, &token]).await? else {
        // A repeat changed nothing: not `changed`.
        return repeat_or_fenced(client, id, token, AttemptOutcome::Failed)
            .await
            .map(|j| (j, false));
    };
    let attempt = u32::try_from(row.column::<i32>(0)?).unwrap_or(0);
    let max_attempts = u32::try_from(row.column::<i32>(1)?).unwrap_or(0);
    let policy = queue_policy(row.column(2)?, policy);
    let retry = AfterFailure::decide(attempt, max_attempts, retry_in, dead, &policy);
    fail_running(
        client,
        id,
        attempt,
        retry,
        AttemptOutcome::Failed,
        error,
        report.as_ref(),
    )
    .await
    .map(|j| (j, true))
}

/// Settles many jobs inside the caller's transaction: completions in one statement,
/// failures one by one (each needs its own retry decision). Answers in input order; an
/// error that is not a refusal fails the whole call.
pub(crate) async fn settle_many(
    client: &impl GenericClient,
    settlements: &[Settlement],
    policy: &RetryPolicy,
) -> QResult<Vec<Result<Settled, StoreError>>> {
    let refused = session_state_refusals(client, settlements).await?;
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    let mut results = Vec::new();
    let mut reports = Vec::new();
    for s in settlements {
        if let Settlement::Complete {
            id,
            lease_token,
            result,
            report,
            session_state: _,
        } = s
        {
            if refused.contains_key(&id.0) {
                continue;
            }
            ids.push(id.0);
            tokens.push(lease_token.0);
            results.push(result.clone());
            reports.push(report_value(report.as_ref())?);
        }
    }
    let completed = if ids.is_empty() {
        HashMap::new()
    } else {
        complete_many(client, &ids, &tokens, &results, &reports).await?
    };
    // Session states to set, by gate, for the completions that went through.
    let mut states = Vec::new();
    for s in settlements {
        if let Settlement::Complete {
            id,
            session_state: Some(state),
            ..
        } = s
        {
            if let Some(key) = completed
                .get(&id.0)
                .and_then(|j| j.ordering.session_key.as_deref())
            {
                states.push((Gate::session_name(key), state.clone()));
            }
        }
    }
    let mut out = Vec::with_capacity(settlements.len());
    let mut refused = refused;
    let mut changed_ids = std::collections::HashSet::new();
    for s in settlements {
        let outcome = match s {
            Settlement::Complete { id, .. } if refused.contains_key(&id.0) => {
                Err(Fault::Store(refused.remove(&id.0).unwrap_or_else(|| {
                    StoreError::Invalid(format!("job {id} has no session_key"))
                })))
            }
            Settlement::Complete {
                id, lease_token, ..
            } => match completed.get(&id.0).cloned() {
                Some(job) => {
                    changed_ids.insert(job.id.0);
                    Ok(Settled { job, repeat: false })
                }
                None => repeat_or_fenced(client, *id, lease_token.0, AttemptOutcome::Succeeded)
                    .await
                    .map(|job| Settled { job, repeat: true }),
            },
            Settlement::Fail {
                id,
                lease_token,
                error,
                retry_in,
                dead,
                report,
            } => match report_value(report.as_ref()) {
                Ok(report) => {
                    let failure = Failure {
                        id: *id,
                        token: lease_token.0,
                        error,
                        retry_in: *retry_in,
                        dead: *dead,
                        report,
                    };
                    fail_one(client, failure, policy)
                        .await
                        .map(|(job, changed)| {
                            if changed {
                                changed_ids.insert(job.id.0);
                            }
                            Settled {
                                job,
                                repeat: !changed,
                            }
                        })
                }
                Err(e) => Err(e),
            },
        };
        // A refusal (a stale token, a missing job) fails only its own entry; any other
        // error fails the whole call, and the caller's transaction is rolled back: after a
        // database error PostgreSQL runs nothing more in it, and SQLite answers alike.
        out.push(match outcome {
            Ok(settled) => Ok(settled),
            Err(Fault::Store(e)) if e.is_refusal() => Err(e),
            Err(other) => return Err(other),
        });
    }
    // Gates last, all in name order: a batch's gates are locked in one order.
    let changed: Vec<&Job> = out
        .iter()
        .flatten()
        .map(|s| &s.job)
        .filter(|j| !j.parked && changed_ids.contains(&j.id.0))
        .collect();
    gate::release(client, &changed, &states).await?;
    // Parking a lock or key job waiting for its retry changed its row: answer with it.
    let parked: std::collections::HashSet<uuid::Uuid> = changed
        .iter()
        .filter(|j| {
            j.state == JobState::Scheduled && j.ordering.gate().is_some_and(|g| !g.ordered())
        })
        .map(|j| j.id.0)
        .collect();
    if !parked.is_empty() {
        for s in out.iter_mut().flatten() {
            if parked.contains(&s.job.id.0) {
                s.job.parked = true;
            }
        }
    }
    Ok(out)
}

/// Completions that set a session state they may not: too large, or the job has no
/// session key. Refused before anything is written (by job id).
async fn session_state_refusals(
    client: &impl GenericClient,
    settlements: &[Settlement],
) -> QResult<HashMap<uuid::Uuid, StoreError>> {
    let mut out = HashMap::new();
    let mut ask = Vec::new();
    for s in settlements {
        if let Settlement::Complete {
            id,
            session_state: Some(state),
            ..
        } = s
        {
            match crate::session::check_size(state) {
                Err(Fault::Store(e)) => {
                    out.insert(id.0, e);
                }
                Err(other) => return Err(other),
                Ok(()) => ask.push(id.0),
            }
        }
    }
    if ask.is_empty() {
        return Ok(out);
    }
    let stmt = client
        .prepare_cached("SELECT id, gate FROM jobs WHERE id = ANY($1)")
        .await?;
    for row in client.query(&stmt, &[&ask]).await? {
        let id: uuid::Uuid = row.column(0)?;
        let gate: Option<String> = row.column(1)?;
        if gate.as_deref().and_then(Gate::session_key_of).is_none() {
            out.insert(
                id,
                StoreError::Invalid(format!("job {} has no session_key", JobId(id))),
            );
        }
    }
    Ok(out)
}

/// A job locked for a cancel: the job as it is under its row lock, and whether its gate
/// was locked before it.
pub(crate) struct LockedForCancel {
    job: Job,
    gate_first: bool,
}

impl LockedForCancel {
    /// The job's state under the lock.
    pub(crate) fn state(&self) -> JobState {
        self.job.state
    }
}

/// Locks a job for [`cancel_locked`], in the order every other writer takes: a parked job's
/// gate first (gate, then job: the order of [`gate::admit_next`]), an admitted job's row
/// first (job, then gate: the order of settles). `None` when the job is gone.
pub(crate) async fn lock_for_cancel(
    client: &impl GenericClient,
    id: JobId,
) -> QResult<Option<LockedForCancel>> {
    let before = match crate::job_read::get(client, id).await {
        Ok(job) => job,
        Err(Fault::Store(StoreError::NotFound { .. })) => return Ok(None),
        Err(e) => return Err(e),
    };
    let gate_first = match (before.parked, before.ordering.gate()) {
        (true, Some(g)) if !before.state.is_final() => {
            gate::lock(client, &g.stored_name()).await?;
            true
        }
        _ => false,
    };
    let job = lock_job(client, id).await?;
    Ok(Some(LockedForCancel { job, gate_first }))
}

/// Cancels a job that has not finished: a parked job leaves its gate's line, an admitted
/// one gives its place to the next.
pub(crate) async fn cancel(client: &impl GenericClient, id: JobId) -> QResult<Job> {
    let locked = lock_for_cancel(client, id)
        .await?
        .ok_or_else(|| Fault::Store(StoreError::job_not_found(id)))?;
    cancel_locked(client, locked).await
}

/// Cancels a job [`lock_for_cancel`] locked, unless it has finished.
pub(crate) async fn cancel_locked(
    client: &impl GenericClient,
    locked: LockedForCancel,
) -> QResult<Job> {
    let LockedForCancel { job, gate_first } = locked;
    let id = job.id;
    if job.state.is_final() {
        return Err(Fault::Store(StoreError::already_finished(id, job.state)));
    }
    let sql = format!(
        "WITH cancelled AS ( \
             UPDATE jobs SET state = 'cancelled', finished_at = errand_now(), lease_token = NULL, \
                 lease_expires_at = NULL, updated_at = errand_now() WHERE id = $1 RETURNING *), \
         closed AS ( \
             UPDATE job_attempts SET finished_at = errand_now(), outcome = 'cancelled', error = 'cancelled' \
             WHERE job_id = $1 AND attempt = $2 AND $3) \
         SELECT {JOB_COLUMNS} FROM cancelled"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let attempt = i32::try_from(job.attempt).unwrap_or(i32::MAX);
    let was_running = job.state == JobState::Running;
    let row = client
        .query_one(&stmt, &[&id.0, &attempt, &was_running])
        .await?;
    let cancelled = job_from_row(&row)?;
    // A blocked job (waiting for its parents) has not entered its gate yet.
    if let Some(g) = job
        .ordering
        .gate()
        .filter(|_| job.state != JobState::Blocked)
    {
        let name = g.stored_name();
        if job.parked {
            if !gate_first {
                gate::lock(client, &name).await?;
            }
            gate::leave_line(client, &name).await?;
            gate::admit_next(client, &name, g.ordered()).await?;
        } else {
            gate::release(client, &[&cancelled], &[]).await?;
        }
    }
    record_change(client, &cancelled, EventType::JobCancelled).await?;
    Ok(cancelled)
}

/// The SET clause that makes a stopped job ready again with at least one attempt left.
pub(crate) const REVIVE: &str = "state = 'available', run_at = errand_now(), finished_at = NULL, \
     max_attempts = GREATEST(max_attempts, attempt + 1), updated_at = errand_now()";

/// Runs a dead, cancelled or retry-waiting job again now. A finished gated job enters its
/// gate again ([`gate::revived`]). A parked retry-waiting lock or key job is made due, which
/// is no arrival (it is already in the line): its gate lets the line in by seq, and it takes
/// a place if none ahead of it is due; a parked session job keeps its spot.
pub(crate) async fn retry(client: &impl GenericClient, id: JobId) -> QResult<Job> {
    let before = crate::job_read::get(client, id).await?;
    // A parked job is only changed under its gate's lock: gate first.
    let parked_gate = match (
        before.parked && !before.state.is_final(),
        before.ordering.gate(),
    ) {
        (true, Some(g)) => {
            gate::lock(client, &g.stored_name()).await?;
            Some(g)
        }
        _ => None,
    };
    let job = lock_job(client, id).await?;
    if !job.state.can_retry() {
        return Err(Fault::Store(StoreError::not_retryable(id, job.state)));
    }
    if let Some(why) = errand_core::flow::revive_refusal(&job.flow) {
        return Err(Fault::Store(StoreError::WrongState(format!(
            "job {id} cannot be retried on its own: {why}"
        ))));
    }
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE jobs SET {REVIVE} WHERE id = $1 RETURNING {JOB_COLUMNS}"
        ))
        .await?;
    let mut revived = job_from_row(&client.query_one(&stmt, &[&id.0]).await?)?;
    if let Some(batch) = job.flow.batch_id.filter(|_| job.state.is_final()) {
        // Its end is uncounted: the batch waits for it again (unless it completed).
        crate::batch_store::uncount_ends(client, [(batch, job.state)]).await?;
    }
    if job.state.is_final() {
        let mut one = [revived];
        gate::revived(client, &mut one).await?;
        [revived] = one;
    } else if let Some(g) = parked_gate.filter(|g| job.parked && !g.ordered()) {
        gate::admit_next(client, &g.stored_name(), g.ordered()).await?;
        revived = crate::job_read::get(client, id).await?;
    }
    record_change(client, &revived, EventType::JobEnqueued).await?;
    Ok(revived)
}

/// Reads a job and locks its row until the transaction ends.
async fn lock_job(client: &impl GenericClient, id: JobId) -> QResult<Job> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE"
        ))
        .await?;
    let row = client
        .query_opt(&stmt, &[&id.0])
        .await?
        .ok_or_else(|| Fault::Store(StoreError::job_not_found(id)))?;
    job_from_row(&row)
}
