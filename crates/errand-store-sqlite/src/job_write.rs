//! Writes that start a job's life: insert, claim, heartbeat. They run on the write
//! connection, in a group commit of the writer.

use std::collections::{BTreeSet, HashMap};

use errand_core::flow::NewJobFlow;
use errand_core::job::RunAt;
use errand_core::{EventType, Job, JobState, Millis, NewJob};
use errand_store::{InsertedJob, JobHeartbeatParams, JobReleaseManyParams, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use errand_core::ordering::Gate;

use crate::fault::{Fault, QResult};
use crate::job_row::{json_text, load_job, query_jobs, JOB_COLUMNS};
use crate::queue_row::{self, QueueRow};
use crate::transition::record_change;
use crate::{fairness, flow, gate};

fn duration_ms(d: std::time::Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn resolve_run_at(run_at: RunAt, now: Millis) -> Millis {
    match run_at {
        RunAt::Now => now,
        RunAt::At(ms) => ms,
        RunAt::After(d) => now.saturating_add(duration_ms(d)),
    }
}

/// A job with its JSON columns already rendered, so the writer thread spends its time on
/// SQLite and not on serialisation.
pub(crate) struct PreparedJob {
    job: NewJob,
    payload: String,
    tags: String,
    secrets: Option<String>,
}

impl PreparedJob {
    /// The id the job is inserted under.
    pub(crate) fn id(&self) -> errand_core::JobId {
        self.job.id
    }

    /// Puts the job in a batch.
    pub(crate) fn set_batch(&mut self, batch: errand_core::BatchId) {
        self.job.flow.batch = Some(batch);
    }
}

/// Renders the JSON columns of a batch; runs on the caller's thread.
pub(crate) fn prepare(jobs: Vec<NewJob>) -> Result<Vec<PreparedJob>, StoreError> {
    jobs.into_iter()
        .map(|job| {
            let tags =
                serde_json::to_string(&job.tags).map_err(|e| StoreError::Invalid(e.to_string()))?;
            let secrets = job.secrets.to_stored().map(|v| v.to_string());
            Ok(PreparedJob {
                payload: job.payload.to_string(),
                tags,
                secrets,
                job,
            })
        })
        .collect()
}

/// Inserts a batch; the caller's savepoint makes it all-or-nothing. Each job first takes
/// its queue's defaults; a job of a fair queue gets its rank, a gated job its place or
/// its spot in the line. A plain job in a queue without tenants costs no statement more.
pub(crate) fn insert_many(
    conn: &Connection,
    now: Millis,
    jobs: Vec<PreparedJob>,
    idempotency_window: std::time::Duration,
) -> QResult<Vec<InsertedJob>> {
    let names: BTreeSet<&str> = jobs.iter().map(|j| j.job.queue.as_str()).collect();
    let mut queues: HashMap<String, QueueRow> = HashMap::with_capacity(names.len());
    {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO queues (name, paused, created_at) VALUES (?1, 0, ?2) ON CONFLICT DO NOTHING",
        )?;
        for q in names {
            stmt.execute(params![q, now])?;
            queues.insert(q.to_string(), queue_row::read(conn, q)?.unwrap_or_default());
        }
    }
    let window = duration_ms(idempotency_window);
    let mut out = Vec::with_capacity(jobs.len());
    let mut insert = conn.prepare_cached(
        "INSERT INTO jobs (id, kind, queue, state, payload, priority, run_at, max_attempts, \
         timeout_ms, tags, idempotency_key, idempotency_expires_at, created_at, updated_at, \
         schedule_name, schedule_slot, reply_to, correlation_id, callback_url, gate, gate_limit, \
         gate_seq, session_on_dead, parked, fairness_key, fairness_weight, fair_rank, rate_key, \
         workflow_id, step, step_role, batch_id, after_jobs, after_any_end, waiting_for, \
         on_deadline, deadline_ms, error, finished_at, secrets) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14, ?15, ?16, ?17, ?18, \
         ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, \
         ?37, ?38, ?39)",
    )?;
    for PreparedJob {
        mut job,
        payload,
        tags,
        secrets,
    } in jobs
    {
        let q = queues.entry(job.queue.as_str().to_string()).or_default();
        q.settings.defaults.apply(&mut job);
        if let Some(key) = &job.idempotency_key {
            if let Some(existing) = live_duplicate(conn, key, now)? {
                out.push(InsertedJob {
                    job: existing,
                    inserted: false,
                });
                continue;
            }
        }
        let wait = flow::count_parents(conn, &job)?;
        let has_flow = job.flow != NewJobFlow::default();
        let run_at = resolve_run_at(job.run_at, now);
        let state = if wait.doomed.is_some() {
            JobState::Cancelled
        } else if wait.waiting_for > 0 {
            JobState::Blocked
        } else if run_at > now {
            JobState::Scheduled
        } else {
            JobState::Available
        };
        let in_line = matches!(state, JobState::Available | JobState::Scheduled);
        let plain = job.ordering.is_plain();
        let rank = if plain && !q.fair {
            None
        } else {
            fairness::rank_new(conn, job.queue.as_str(), q, &job.ordering)?
        };
        let gate = job.ordering.gate();
        let (seq, parked) = match &gate {
            // A waiting or doomed job joins its gate's line when (if) it becomes ready.
            Some(g) if in_line => {
                let (seq, parked) = gate::arrive(conn, now, g, run_at <= now, true)?;
                (Some(seq), parked)
            }
            _ => (None, false),
        };
        let timeout_ms = job.timeout.map(duration_ms);
        let o = &job.ordering;
        let f = &job.flow;
        let after = if f.after.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&f.after).map_err(|e| StoreError::Invalid(e.to_string()))?)
        };
        insert.execute(params![
            job.id.as_bytes().as_slice(),
            job.kind.as_str(),
            job.queue.as_str(),
            state.as_str(),
            payload,
            job.priority,
            run_at,
            job.max_attempts,
            timeout_ms,
            tags,
            job.idempotency_key,
            job.idempotency_key
                .as_ref()
                .map(|_| now.saturating_add(window)),
            now,
            job.slot.as_ref().map(|s| s.schedule.as_str()),
            job.slot.as_ref().map(|s| s.at),
            job.notify.reply_to.as_ref().map(|q| q.as_str()),
            job.notify.correlation_id,
            job.notify.callback_url,
            gate.as_ref().map(Gate::stored_name),
            o.concurrency_limit,
            seq,
            o.session_on_dead.map(|d| d.as_str()),
            parked,
            o.fairness_key,
            o.fairness_weight,
            rank,
            o.rate_key,
            f.step.as_ref().map(|s| s.workflow.as_bytes().to_vec()),
            f.step.as_ref().map(|s| s.step.as_str()),
            f.step.as_ref().map(|s| s.role.as_str()),
            f.batch.map(|b| b.as_bytes().to_vec()),
            after,
            f.after_any_end,
            wait.waiting_for,
            f.step.as_ref().map(|s| s.on_deadline.as_str()),
            f.step
                .as_ref()
                .and_then(|s| s.deadline_ms)
                .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)),
            wait.doomed,
            wait.doomed.as_ref().map(|_| now),
            secrets,
        ])?;
        if !has_flow {
            let mut job = Job::inserted(job, state, run_at, now);
            job.parked = parked;
            record_change(conn, now, &job, EventType::JobEnqueued)?;
            out.push(InsertedJob {
                job,
                inserted: true,
            });
            continue;
        }
        let id = job.id;
        flow::link(conn, id, &f.after)?;
        if let Some(b) = f.batch {
            crate::batch::job_added(conn, b)?;
        }
        if in_line {
            flow::ready_at_insert(conn, now, id)?;
        }
        let job = load_job(conn, id)?;
        let ty = if state == JobState::Cancelled {
            EventType::JobCancelled
        } else {
            EventType::JobEnqueued
        };
        record_change(conn, now, &job, ty)?;
        out.push(InsertedJob {
            job,
            inserted: true,
        });
    }
    Ok(out)
}

/// The job a key still deduplicates to, if its window is open. A key whose window closed is
/// released so the new job can take it.
fn live_duplicate(conn: &Connection, key: &str, now: Millis) -> QResult<Option<Job>> {
    let found: Option<(Vec<u8>, Millis)> = conn
        .prepare_cached("SELECT id, idempotency_expires_at FROM jobs WHERE idempotency_key = ?1")?
        .query_row([key], |r| {
            Ok((r.get(0)?, r.get::<_, Option<Millis>>(1)?.unwrap_or(0)))
        })
        .optional()?;
    let Some((id, expires_at)) = found else {
        return Ok(None);
    };
    if expires_at > now {
        let id = errand_core::JobId::from_slice(&id)
            .ok_or_else(|| Fault::Store(StoreError::Corrupt("job id is not 16 bytes".into())))?;
        return load_job(conn, id).map(Some);
    }
    conn.prepare_cached(
        "UPDATE jobs SET idempotency_key = NULL, idempotency_expires_at = NULL WHERE id = ?1",
    )?
    .execute([id])?;
    Ok(None)
}

/// Undoes claims whose caller went away: each job its token still holds goes back to
/// `available` with the attempt uncounted, its previous attempt's start, and no attempt row.
pub(crate) fn release_many(
    conn: &Connection,
    now: Millis,
    p: &JobReleaseManyParams,
) -> QResult<Vec<Job>> {
    let mut undo = conn.prepare_cached(&format!(
        "UPDATE jobs SET state = 'available', attempt = attempt - 1, worker = NULL, \
             lease_token = NULL, lease_ms = NULL, lease_expires_at = NULL, updated_at = ?1, \
             started_at = (SELECT a.started_at FROM job_attempts a \
                 WHERE a.job_id = jobs.id AND a.attempt = jobs.attempt - 1) \
         WHERE id = ?2 AND state = 'running' AND lease_token = ?3 RETURNING {JOB_COLUMNS}"
    ))?;
    let mut forget =
        conn.prepare_cached("DELETE FROM job_attempts WHERE job_id = ?1 AND attempt = ?2")?;
    let mut released = Vec::with_capacity(p.leases.len());
    for (id, token) in &p.leases {
        let id_bytes = id.as_bytes();
        let Some(job) = query_jobs(
            &mut undo,
            params![now, id_bytes.as_slice(), token.as_bytes().as_slice()],
        )?
        .pop() else {
            continue;
        };
        forget.execute(params![id_bytes.as_slice(), job.attempt + 1])?;
        released.push(job);
    }
    Ok(released)
}

/// The error for a write fenced off by its lease token: `NotFound` when the job is gone,
/// `LeaseLost` otherwise.
pub(crate) fn fenced(conn: &Connection, id: errand_core::JobId) -> Fault {
    match load_job(conn, id) {
        Ok(_) => Fault::Store(StoreError::LeaseLost {
            job: id.to_string(),
        }),
        Err(e) => e,
    }
}

/// Extends a lease, saving progress and checkpoint.
pub(crate) fn heartbeat(conn: &Connection, now: Millis, p: &JobHeartbeatParams) -> QResult<Job> {
    let progress = p
        .progress
        .as_ref()
        .map(|pr| serde_json::to_string(pr).map_err(|e| StoreError::Invalid(e.to_string())))
        .transpose()?;
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE jobs SET lease_ms = COALESCE(?3, lease_ms), lease_expires_at = ?1 + COALESCE(?3, lease_ms), \
         progress = COALESCE(?4, progress), checkpoint = COALESCE(?5, checkpoint), updated_at = ?1 \
         WHERE id = ?2 AND state = 'running' AND lease_token = ?6 AND lease_expires_at > ?1 \
         RETURNING {JOB_COLUMNS}"
    ))?;
    let mut jobs = query_jobs(
        &mut stmt,
        params![
            now,
            p.id.as_bytes().as_slice(),
            p.lease.map(duration_ms),
            progress,
            json_text(&p.checkpoint),
            p.lease_token.as_bytes().as_slice(),
        ],
    )?;
    let job = jobs.pop().ok_or_else(|| fenced(conn, p.id))?;
    if p.progress.is_some() {
        record_change(conn, now, &job, EventType::JobProgress)?;
    }
    Ok(job)
}
