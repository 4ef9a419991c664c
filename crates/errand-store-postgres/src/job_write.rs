//! Writes that start a job's life: insert, claim, heartbeat.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use deadpool_postgres::GenericClient;
use errand_core::job::RunAt;
use errand_core::{EventType, Job, JobId, JobState, NewJob};
use errand_store::{
    ClaimedJob, InsertedJob, JobClaimTogetherParams, JobHeartbeatParams, JobReleaseManyParams,
    StoreError,
};
use serde_json::Value;
use tokio_postgres::types::{ToSql, Type};

use crate::array_rows::array_rows;
use crate::claim_slots::{slot_holder, ClaimSlots};
use crate::fairness::{self, NewRank};
use crate::fault::{corrupt, Fault, QResult, RowExt};
use crate::gate::{self, Arrival};
use crate::job_row::{
    job_columns, job_from_row, jobs_from_rows, millis, JOB_COLUMNS, JOB_COLUMN_COUNT,
};
use crate::plan_mode::{query_as, query_batch, PlanMode};
use crate::transition::{record_change, record_changes};
use crate::{claim_plan, flow_insert, session};

/// The parallel arrays [`insert_sql`] takes, and the names its rows give them (`$12` is the
/// idempotency window).
const INSERT_COLUMNS: &[(&str, &str)] = &[
    ("$1::uuid", "id"),
    ("$2::text", "kind"),
    ("$3::text", "queue"),
    ("$4::jsonb", "payload"),
    ("$5::int", "priority"),
    ("$6::bigint", "run_at"),
    ("$7::bigint", "run_after"),
    ("$8::int", "max_attempts"),
    ("$9::bigint", "timeout_ms"),
    ("$10::jsonb", "tags"),
    ("$11::text", "key"),
    ("$13::text", "schedule_name"),
    ("$14::bigint", "schedule_slot"),
    ("$15::text", "reply_to"),
    ("$16::text", "correlation_id"),
    ("$17::text", "callback_url"),
    ("$18::text", "gate"),
    ("$19::int", "gate_limit"),
    ("$20::text", "on_dead"),
    ("$21::text", "fkey"),
    ("$22::int", "fweight"),
    ("$23::text", "rkey"),
    ("$24::bool", "inh_p"),
    ("$25::bool", "inh_a"),
    ("$26::bool", "inh_t"),
    ("$27::uuid", "wf"),
    ("$28::text", "step"),
    ("$29::text", "role"),
    ("$30::uuid", "batch"),
    ("$31::jsonb", "after_jobs"),
    ("$32::bool", "any_end"),
    ("$33::text", "st"),
    ("$34::text", "err"),
    ("$35::int", "waiting"),
    ("$36::jsonb", "context"),
    ("$37::bigint", "dl_ms"),
    ("$38::text", "on_deadline"),
    ("$39::jsonb", "secrets"),
];

/// Inserts jobs from parallel arrays, and their queues when new: one statement for a whole
/// batch, so a batch without idempotency keys needs no explicit transaction. Fields the
/// caller left unset take the queue's defaults (read in the same statement); the answer
/// says which values were stored and whether the queue is fair.
fn insert_sql(keyed: bool, len: usize) -> String {
    let rows = array_rows(len, "u", INSERT_COLUMNS);
    let new_queues = if len == 1 {
        "SELECT ($3::text[])[1]"
    } else {
        "SELECT DISTINCT unnest($3::text[])"
    };
    let conflict = if keyed {
        "ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
    } else {
        ""
    };
    format!(
        "WITH new_queues AS (INSERT INTO queues (name, created_at) \
             SELECT q, errand_now() FROM ({new_queues}) AS n(q) ON CONFLICT DO NOTHING), \
         ins AS (INSERT INTO jobs (id, kind, queue, state, payload, priority, run_at, max_attempts, \
         timeout_ms, tags, idempotency_key, idempotency_expires_at, created_at, updated_at, schedule_name, schedule_slot, \
         reply_to, correlation_id, callback_url, gate, gate_limit, session_on_dead, fairness_key, \
         fairness_weight, rate_key, workflow_id, step, step_role, batch_id, after_jobs, after_any_end, \
         waiting_for, context, deadline_at, on_deadline, deadline_ms, error, finished_at, secrets) \
         SELECT u.id, u.kind, u.queue, \
                COALESCE(u.st, CASE WHEN COALESCE(u.run_at, errand_now() + COALESCE(u.run_after, 0)) > errand_now() \
                     THEN 'scheduled' ELSE 'available' END), \
                u.payload, \
                CASE WHEN u.inh_p THEN COALESCE((q.defaults->>'priority')::int, u.priority) ELSE u.priority END, \
                COALESCE(u.run_at, errand_now() + COALESCE(u.run_after, 0)), \
                CASE WHEN u.inh_a THEN COALESCE((q.defaults->>'max_attempts')::int, u.max_attempts) \
                     ELSE u.max_attempts END, \
                CASE WHEN u.inh_t AND u.timeout_ms IS NULL THEN (q.defaults->>'timeout')::bigint \
                     ELSE u.timeout_ms END, \
                u.tags, u.key, \
                CASE WHEN u.key IS NULL THEN NULL ELSE errand_now() + $12 END, errand_now(), errand_now(), \
                u.schedule_name, u.schedule_slot, u.reply_to, u.correlation_id, u.callback_url, \
                u.gate, u.gate_limit, u.on_dead, u.fkey, u.fweight, u.rkey, \
                u.wf, u.step, u.role, u.batch, u.after_jobs, COALESCE(u.any_end, false), COALESCE(u.waiting, 0), \
                u.context, CASE WHEN u.st IS NULL AND u.dl_ms IS NOT NULL THEN errand_now() + u.dl_ms END, \
                u.on_deadline, u.dl_ms, u.err, CASE WHEN u.st = 'cancelled' THEN errand_now() END, u.secrets \
         FROM {rows} \
         LEFT JOIN queues q ON q.name = u.queue \
         {conflict} \
         RETURNING id, state, run_at, created_at, priority, max_attempts, timeout_ms, queue, \
             waiting_for, context, deadline_at, error, finished_at) \
         SELECT ins.id, ins.state, ins.run_at, ins.created_at, ins.priority, ins.max_attempts, ins.timeout_ms, \
                COALESCE(q.fair, false), ins.waiting_for, ins.context, ins.deadline_at, ins.error, ins.finished_at \
         FROM ins LEFT JOIN queues q ON q.name = ins.queue"
    )
}

/// What the insert stored for one row.
/// (`Stored` also carries the flow columns the insert computed.)
#[derive(Debug, Clone)]
struct Stored {
    state: JobState,
    run_at: i64,
    created_at: i64,
    priority: i32,
    max_attempts: u32,
    timeout_ms: Option<i64>,
    fair: bool,
    deadline_at: Option<i64>,
    error: Option<String>,
    finished_at: Option<i64>,
}

/// A flow job's state, error, parent count and context at insert ([`flow_insert::plan`]).
pub(crate) use flow_insert::AtInsert;

/// Parallel arrays of a batch, as `JOBS_UNNEST` takes them.
#[derive(Default)]
struct Columns {
    id: Vec<uuid::Uuid>,
    kind: Vec<String>,
    queue: Vec<String>,
    payload: Vec<Value>,
    priority: Vec<i32>,
    run_at: Vec<Option<i64>>,
    run_after: Vec<Option<i64>>,
    max_attempts: Vec<i32>,
    timeout_ms: Vec<Option<i64>>,
    tags: Vec<Value>,
    key: Vec<Option<String>>,
    schedule_name: Vec<Option<String>>,
    schedule_slot: Vec<Option<i64>>,
    reply_to: Vec<Option<String>>,
    correlation_id: Vec<Option<String>>,
    callback_url: Vec<Option<String>>,
    gate: Vec<Option<String>>,
    gate_limit: Vec<Option<i32>>,
    on_dead: Vec<Option<&'static str>>,
    fairness_key: Vec<Option<String>>,
    fairness_weight: Vec<Option<i32>>,
    rate_key: Vec<Option<String>>,
    inherit_priority: Vec<bool>,
    inherit_attempts: Vec<bool>,
    inherit_timeout: Vec<bool>,
    workflow_id: Vec<Option<uuid::Uuid>>,
    step: Vec<Option<String>>,
    step_role: Vec<Option<&'static str>>,
    batch_id: Vec<Option<uuid::Uuid>>,
    after_jobs: Vec<Option<Value>>,
    after_any_end: Vec<bool>,
    state: Vec<Option<&'static str>>,
    error: Vec<Option<String>>,
    waiting_for: Vec<i32>,
    context: Vec<Option<Value>>,
    deadline_ms: Vec<Option<i64>>,
    on_deadline: Vec<Option<&'static str>>,
    secrets: Vec<Option<Value>>,
}

impl Columns {
    fn push(&mut self, j: &NewJob, at_insert: Option<&AtInsert>) {
        let f = &j.flow;
        self.workflow_id.push(f.step.as_ref().map(|s| s.workflow.0));
        self.step.push(f.step.as_ref().map(|s| s.step.clone()));
        self.step_role
            .push(f.step.as_ref().map(|s| s.role.as_str()));
        self.batch_id.push(f.batch.map(|b| b.0));
        self.after_jobs.push(
            (!f.after.is_empty())
                .then(|| Value::from(f.after.iter().map(|a| a.to_string()).collect::<Vec<_>>())),
        );
        self.after_any_end.push(f.after_any_end);
        self.deadline_ms.push(
            f.step
                .as_ref()
                .and_then(|s| s.deadline_ms)
                .map(|d| i64::try_from(d).unwrap_or(i64::MAX)),
        );
        self.on_deadline.push(
            f.step
                .as_ref()
                .filter(|s| s.deadline_ms.is_some())
                .map(|s| s.on_deadline.as_str()),
        );
        match at_insert {
            Some(a) => {
                self.state.push(a.state);
                self.error.push(a.error.clone());
                self.waiting_for
                    .push(i32::try_from(a.waiting_for).unwrap_or(i32::MAX));
                self.context.push(a.context.clone());
            }
            None => {
                self.state.push(None);
                self.error.push(None);
                self.waiting_for.push(0);
                self.context.push(None);
            }
        }
        let (at, after) = match j.run_at {
            RunAt::Now => (None, None),
            RunAt::At(ms) => (Some(ms), None),
            RunAt::After(d) => (None, Some(millis(d))),
        };
        self.id.push(j.id.0);
        self.kind.push(j.kind.as_str().to_string());
        self.queue.push(j.queue.as_str().to_string());
        self.payload.push(j.payload.clone());
        self.priority.push(j.priority);
        self.run_at.push(at);
        self.run_after.push(after);
        self.max_attempts
            .push(i32::try_from(j.max_attempts).unwrap_or(i32::MAX));
        self.timeout_ms.push(j.timeout.map(millis));
        self.tags.push(Value::from(j.tags.clone()));
        self.key.push(j.idempotency_key.clone());
        self.schedule_name
            .push(j.slot.as_ref().map(|s| s.schedule.clone()));
        self.schedule_slot.push(j.slot.as_ref().map(|s| s.at));
        self.reply_to
            .push(j.notify.reply_to.as_ref().map(|q| q.as_str().to_string()));
        self.correlation_id.push(j.notify.correlation_id.clone());
        self.callback_url.push(j.notify.callback_url.clone());
        let o = &j.ordering;
        self.gate.push(o.gate().map(|g| g.stored_name()));
        self.gate_limit.push(o.concurrency_key.as_ref().map(|_| {
            o.concurrency_limit
                .map_or(1, |l| i32::try_from(l).unwrap_or(i32::MAX))
        }));
        self.on_dead.push(
            o.session_key
                .as_ref()
                .map(|_| o.session_on_dead.unwrap_or_default().as_str()),
        );
        self.fairness_key.push(o.fairness_key.clone());
        self.fairness_weight.push(
            o.fairness_weight
                .map(|w| i32::try_from(w).unwrap_or(i32::MAX)),
        );
        self.rate_key.push(o.rate_key.clone());
        self.inherit_priority.push(j.inherit.priority);
        self.inherit_attempts.push(j.inherit.max_attempts);
        self.inherit_timeout.push(j.inherit.timeout);
        self.secrets.push(j.secrets.to_stored());
    }
}

/// Runs [`insert_sql`] for `jobs`; returns what it stored, by id. Keyed rows that hit a
/// live key are skipped (`ON CONFLICT DO NOTHING`).
async fn insert_rows(
    client: &impl GenericClient,
    jobs: &[&NewJob],
    window: Duration,
    flows: &HashMap<uuid::Uuid, AtInsert>,
) -> QResult<HashMap<uuid::Uuid, Stored>> {
    let mut c = Columns::default();
    for j in jobs {
        c.push(j, flows.get(&j.id.0));
    }
    let keyed = jobs.iter().any(|j| j.idempotency_key.is_some());
    let stmt = client
        .prepare_cached(&insert_sql(keyed, jobs.len()))
        .await?;
    let window_ms = millis(window);
    let rows = query_batch(
        client,
        jobs.len(),
        &stmt,
        &[
            &c.id,
            &c.kind,
            &c.queue,
            &c.payload,
            &c.priority,
            &c.run_at,
            &c.run_after,
            &c.max_attempts,
            &c.timeout_ms,
            &c.tags,
            &c.key,
            &window_ms,
            &c.schedule_name,
            &c.schedule_slot,
            &c.reply_to,
            &c.correlation_id,
            &c.callback_url,
            &c.gate,
            &c.gate_limit,
            &c.on_dead,
            &c.fairness_key,
            &c.fairness_weight,
            &c.rate_key,
            &c.inherit_priority,
            &c.inherit_attempts,
            &c.inherit_timeout,
            &c.workflow_id,
            &c.step,
            &c.step_role,
            &c.batch_id,
            &c.after_jobs,
            &c.after_any_end,
            &c.state,
            &c.error,
            &c.waiting_for,
            &c.context,
            &c.deadline_ms,
            &c.on_deadline,
            &c.secrets,
        ],
    )
    .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let state: String = row.column(1)?;
        out.insert(
            row.column(0)?,
            Stored {
                state: state.parse::<JobState>().map_err(corrupt)?,
                run_at: row.column(2)?,
                created_at: row.column(3)?,
                priority: row.column(4)?,
                max_attempts: u32::try_from(row.column::<i32>(5)?).map_err(corrupt)?,
                timeout_ms: row.column(6)?,
                fair: row.column(7)?,
                deadline_at: row.column(10)?,
                error: row.column(11)?,
                finished_at: row.column(12)?,
            },
        );
    }
    Ok(out)
}

/// Inserts a batch and records `job.enqueued` for each job inserted (not for an idempotent
/// repeat), inside the caller's transaction.
pub(crate) async fn insert_many(
    client: &impl GenericClient,
    jobs: Vec<NewJob>,
    window: Duration,
) -> QResult<Vec<InsertedJob>> {
    let out = insert_jobs(client, jobs, window).await?;
    // A doomed continuation is inserted cancelled: its end counts like any other.
    record_changes(
        client,
        out.iter().filter(|r| r.inserted).map(|r| {
            let ty = if r.job.state == JobState::Cancelled {
                EventType::JobCancelled
            } else {
                EventType::JobEnqueued
            };
            (&r.job, ty)
        }),
    )
    .await?;
    Ok(out)
}

/// Inserts a batch without recording events (the caller records them with its own). The
/// caller's transaction keeps a keyed batch all-or-nothing.
pub(crate) async fn insert_jobs(
    client: &impl GenericClient,
    jobs: Vec<NewJob>,
    window: Duration,
) -> QResult<Vec<InsertedJob>> {
    insert_jobs_with(client, jobs, window, HashMap::new()).await
}

/// [`insert_jobs`] with contexts chosen by the caller (a workflow's first steps, a
/// compensation, a batch's `on_complete`), by job id. Jobs that wait for others are linked
/// to their parents ([`flow_insert`]): `blocked` while a parent is pending, `cancelled` when
/// one already ended in a way that dooms them.
pub(crate) async fn insert_jobs_with(
    client: &impl GenericClient,
    jobs: Vec<NewJob>,
    window: Duration,
    contexts: HashMap<uuid::Uuid, Value>,
) -> QResult<Vec<InsertedJob>> {
    let plan = flow_insert::plan(client, &jobs, contexts).await?;
    let unkeyed: Vec<&NewJob> = jobs
        .iter()
        .filter(|j| j.idempotency_key.is_none())
        .collect();
    let mut inserted = if unkeyed.is_empty() {
        HashMap::new()
    } else {
        insert_rows(client, &unkeyed, window, &plan.at_insert).await?
    };
    // Keyed jobs go one at a time, in order, so a key repeated within the batch finds the
    // first job and a key whose window closed is released first.
    for job in jobs.iter().filter(|j| j.idempotency_key.is_some()) {
        let key = job.idempotency_key.as_deref().unwrap_or_default();
        release_expired_key(client, key).await?;
        inserted.extend(insert_rows(client, &[job], window, &plan.at_insert).await?);
    }
    flow_insert::link(client, &plan.edges, &inserted).await?;
    let parked = order_inserted(client, &jobs, &inserted).await?;
    let mut out = Vec::with_capacity(jobs.len());
    for mut job in jobs {
        match inserted.remove(&job.id.0) {
            Some(s) => {
                job.priority = s.priority;
                job.max_attempts = s.max_attempts;
                job.timeout = s.timeout_ms.map(|t| Duration::from_millis(t.max(0) as u64));
                let new_flow = job.flow.clone();
                let at = plan.at_insert.get(&job.id.0);
                let mut job = Job::inserted(job, s.state, s.run_at, s.created_at);
                job.parked = parked.contains(&job.id.0);
                job.error = s.error;
                job.finished_at = s.finished_at.map(errand_core::time::to_timestamp);
                job.flow = flow_insert::shown(&new_flow, at, s.deadline_at);
                out.push(InsertedJob {
                    job,
                    inserted: true,
                })
            }
            None => {
                let key = job.idempotency_key.clone().unwrap_or_default();
                let stmt = client
                    .prepare_cached(&format!(
                        "SELECT {JOB_COLUMNS} FROM jobs WHERE idempotency_key = $1"
                    ))
                    .await?;
                let row = client.query_opt(&stmt, &[&key]).await?.ok_or_else(|| {
                    Fault::Store(StoreError::Unavailable(format!(
                        "job {} was neither inserted nor found by its key",
                        job.id
                    )))
                })?;
                out.push(InsertedJob {
                    job: job_from_row(&row)?,
                    inserted: false,
                });
            }
        }
    }
    Ok(out)
}

/// Lets gated inserted jobs into their gates (in input order), then ranks the inserted
/// jobs of fair queues (a ready one is a base for the ones after it). Returns the ids that
/// were parked. No statement for plain jobs of plain queues.
async fn order_inserted(
    client: &impl GenericClient,
    jobs: &[NewJob],
    inserted: &HashMap<uuid::Uuid, Stored>,
) -> QResult<HashSet<uuid::Uuid>> {
    // A job inserted cancelled (a doomed continuation) takes no place in a gate or queue.
    let new: Vec<&NewJob> = jobs
        .iter()
        .filter(|j| {
            inserted
                .get(&j.id.0)
                .is_some_and(|s| s.state != JobState::Cancelled)
        })
        .collect();
    // A blocked job arrives at its gate when it is released (flow_end): waiting for its
    // parents it holds no lock or session.
    let arrivals: Vec<Arrival> = new
        .iter()
        .filter(|j| {
            inserted
                .get(&j.id.0)
                .is_some_and(|s| s.state != JobState::Blocked)
        })
        .filter_map(|j| {
            j.ordering.gate().map(|gate| Arrival {
                id: j.id.0,
                gate,
                due: inserted
                    .get(&j.id.0)
                    .is_some_and(|s| s.state == JobState::Available),
            })
        })
        .collect();
    let parked: HashSet<uuid::Uuid> = if arrivals.is_empty() {
        HashSet::new()
    } else {
        // Only a new enqueue sets a key's limit.
        gate::arrive(client, &arrivals, true)
            .await?
            .into_iter()
            .collect()
    };
    let fair_queues: BTreeSet<String> = new
        .iter()
        .filter(|j| inserted.get(&j.id.0).is_some_and(|s| s.fair))
        .map(|j| j.queue.as_str().to_string())
        .collect();
    if !fair_queues.is_empty() || new.iter().any(|j| j.ordering.fairness_key.is_some()) {
        let ranked: Vec<NewRank<'_>> = new
            .iter()
            .map(|j| NewRank {
                id: j.id.0,
                queue: j.queue.as_str(),
                ordering: &j.ordering,
                ready: !parked.contains(&j.id.0),
            })
            .collect();
        fairness::rank(client, &ranked, &fair_queues).await?;
    }
    Ok(parked)
}

async fn release_expired_key(client: &impl GenericClient, key: &str) -> QResult<()> {
    let stmt = client
        .prepare_cached(
            "UPDATE jobs SET idempotency_key = NULL, idempotency_expires_at = NULL \
             WHERE idempotency_key = $1 AND idempotency_expires_at <= errand_now()",
        )
        .await?;
    client.execute(&stmt, &[&key]).await?;
    Ok(())
}

/// Leases up to `max` ready jobs for each taker, under its own worker name and token (see
/// [`ClaimSlots`]). A queue without concurrency or rate, while no kind or key limit exists,
/// takes the fast path (which also moves a fair queue's virtual time), in the rounds
/// [`claim_rounds`] gives; otherwise the claim is planned under the limits' row locks
/// ([`claim_plan`]). Session jobs get their session's state, read in this transaction.
///
/// Each round reads the queue as it is when the round runs (read committed): a job of
/// higher priority committed between two rounds goes to the second round's takers, and
/// limits that appeared between them leave the claim with its first round's jobs.
pub(crate) async fn claim(
    client: &impl GenericClient,
    p: &JobClaimTogetherParams,
) -> QResult<Vec<Vec<ClaimedJob>>> {
    let slots = ClaimSlots::new(p);
    let kinds: Option<Vec<String>> =
        (!p.kinds.is_empty()).then(|| p.kinds.iter().map(|k| k.as_str().to_string()).collect());
    let mut leased = Vec::new();
    let mut skip = 0;
    while let Some(limit) = claim_rounds(slots.count() - skip, skip, kinds.is_some()) {
        match lease_fast(client, p, &slots, &kinds, skip, limit).await? {
            FastLease::Planned if skip == 0 => {
                leased = claim_plan::claim(client, p, &slots, kinds.as_deref()).await?;
                break;
            }
            // Limits that appeared between two rounds leave the claim with its first jobs.
            FastLease::Planned => break,
            FastLease::Leased(round) => {
                let filled = round.len() as i64 == limit.count();
                leased.extend(round);
                if !filled {
                    break;
                }
                skip += limit.count();
            }
        }
    }
    let (jobs, tokens): (Vec<Job>, Vec<uuid::Uuid>) = leased.into_iter().unzip();
    record_changes(client, jobs.iter().map(|j| (j, EventType::JobStarted))).await?;
    let sessions = session::states_for(client, &jobs).await?;
    slots.deal(
        jobs.into_iter()
            .zip(tokens)
            .map(|(job, token)| {
                let session = job
                    .ordering
                    .session_key
                    .as_ref()
                    .and_then(|k| sessions.get(k).cloned());
                (job, token, session)
            })
            .collect(),
    )
}

/// The largest claim round whose `LIMIT` is written into the statement.
///
/// PostgreSQL cannot estimate a bound `LIMIT` in a generic plan and costs it at a tenth of
/// the queue, so once a table has statistics every plan made for the value (a small
/// `LIMIT`) looks far cheaper, and a claim was planned again on every call: measured on
/// the 16-in-flight claim-1 worker, its bind took 425–691 µs a call against 66 µs with the
/// generic plan. With the number written in, the generic plan is an index walk of the
/// ready jobs that stops after that many, right for any queue; each such round is bound
/// under `plan_cache_mode = force_generic_plan`, since PostgreSQL's own choice still went
/// to plans made for the values whenever the claimed queue looked small beside the others
/// (found by a review: 0 generic plans in 12 for sizes 5 to 16). A round with its limit
/// bound keeps a generic plan made with index walks and lookups by key only
/// ([`PlanMode::GenericByIndex`]): costed for a tenth of the table, a plain generic plan
/// could sort or hash its way through a queue's whole backlog. A round filtered by kinds is
/// planned for its values on every call ([`PlanMode::Custom`], which also keeps its join to
/// lookups by key): a generic plan cannot use the kinds. Each written size is a prepared
/// statement of its own on each connection that used it (about 0.5 MB of the backend's
/// memory each, measured by a review), so sizes stop here.
const CONSTANT_CLAIM_LIMIT: i64 = 16;

/// The `LIMIT` of one round of a claim's fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoundLimit {
    /// Written into the statement: 1 to [`CONSTANT_CLAIM_LIMIT`].
    Written(i64),
    /// Bound as `$5`: under a kept generic plan of index walks
    /// ([`PlanMode::GenericByIndex`]), or, for a claim by kinds, planned for its values on
    /// every call ([`PlanMode::Custom`]).
    Bound(i64),
}

impl RoundLimit {
    /// How many jobs the round may lease.
    fn count(self) -> i64 {
        match self {
            RoundLimit::Written(n) | RoundLimit::Bound(n) => n,
        }
    }
}

/// The next round of a claim that still has `left` slots after `skip` were offered, or
/// `None` when none are left. A claim filtered by kind is one round with the limit bound:
/// a generic plan cannot use the kinds and would walk the queue's whole backlog looking for
/// them (measured by a review: 122–173 ms a call against 0.32 ms planned for the kinds, with
/// 200,000 ready jobs of other kinds). Otherwise a claim of up to [`CONSTANT_CLAIM_LIMIT`]
/// is one round with its size written in; a larger one takes that many first, and what is
/// left in a second round (written in when it fits, else bound, but only when the first
/// round found that many jobs ready). So a claim that finds a few jobs
/// (a worker's long-poll asking for 50) is one round of a kept plan. (Rounds of powers of
/// two, fewer statements to keep, made the 16-in-flight cycle 10–20 % slower: a claim of
/// 13 on a busy queue took three statements.)
fn claim_rounds(left: i64, skip: i64, kinds: bool) -> Option<RoundLimit> {
    if left <= 0 || (kinds && skip > 0) {
        return None;
    }
    if kinds || (skip > 0 && left > CONSTANT_CLAIM_LIMIT) {
        return Some(RoundLimit::Bound(left));
    }
    Some(RoundLimit::Written(left.min(CONSTANT_CLAIM_LIMIT)))
}

/// What one statement of the fast path did.
enum FastLease {
    /// The jobs it leased, each with the token it was leased under, in claim order.
    Leased(Vec<(Job, uuid::Uuid)>),
    /// Nothing: the queue has a concurrency or rate, or some limit exists, so the claim
    /// must be planned.
    Planned,
}

/// The claim statement's parameter types, given so that a statement with its `LIMIT`
/// written in may leave `$5` unused.
const CLAIM_TYPES: [Type; 7] = [
    Type::TEXT,
    Type::TEXT_ARRAY,
    Type::UUID_ARRAY,
    Type::INT8,
    Type::INT8,
    Type::TEXT_ARRAY,
    Type::INT8_ARRAY,
];

/// One statement of the fast path: leases up to `limit` jobs into the claim's slots after
/// the first `skip` (a taker's first slot is bound less `skip`, so `width_bucket` finds
/// the taker of slot `skip + n` for the statement's n-th job).
async fn lease_fast(
    client: &impl GenericClient,
    p: &JobClaimTogetherParams,
    slots: &ClaimSlots,
    kinds: &Option<Vec<String>>,
    skip: i64,
    limit: RoundLimit,
) -> QResult<FastLease> {
    let (mode, written) = match limit {
        RoundLimit::Written(n) => (PlanMode::Generic, n.to_string()),
        RoundLimit::Bound(_) if kinds.is_some() => (PlanMode::Custom, "$5".to_string()),
        RoundLimit::Bound(_) => (PlanMode::GenericByIndex, "$5".to_string()),
    };
    let sql = format!(
        "WITH f AS (SELECT (q.concurrency IS NULL AND q.rate_limit IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM limits)) AS fast \
             FROM queues q WHERE q.name = $1 AND NOT q.paused), \
         picked AS ( \
             SELECT id, priority, fair_rank, run_at FROM jobs \
             WHERE queue = $1 AND state IN ('available', 'scheduled') AND NOT parked AND run_at <= errand_now() \
               AND ($6::text[] IS NULL OR kind = ANY($6)) AND (SELECT fast FROM f) \
             ORDER BY priority DESC, fair_rank NULLS FIRST, run_at, id LIMIT {written} FOR UPDATE SKIP LOCKED), \
         slot AS (SELECT id, row_number() OVER ( \
             ORDER BY priority DESC, fair_rank NULLS FIRST, run_at, id) AS n FROM picked), \
         claimed AS ({} FROM slot WHERE j.id = slot.id RETURNING j.*), \
         opened AS ({OPEN_ATTEMPTS}), \
         vt AS (UPDATE queues SET vtime = GREATEST(vtime, (SELECT MAX(fair_rank) FROM claimed)) \
             WHERE name = $1 AND fair AND EXISTS (SELECT 1 FROM claimed WHERE fair_rank IS NOT NULL)) \
         SELECT {}, c.lease_token, f.fast FROM f LEFT JOIN claimed c ON true \
         ORDER BY c.priority DESC, c.fair_rank NULLS FIRST, c.run_at, c.id",
        lease_sql("$7"),
        job_columns("c")
    );
    let stmt = client.prepare_typed_cached(&sql, &CLAIM_TYPES).await?;
    let starts: Vec<i64> = slots.starts.iter().map(|s| s - skip).collect();
    let (queue, lease, count) = (p.queue.as_str(), millis(p.lease), limit.count());
    let params: [&(dyn ToSql + Sync); 7] = [
        &queue,
        &slots.workers,
        &slots.tokens,
        &lease,
        &count,
        kinds,
        &starts,
    ];
    let rows = query_as(client, mode, &stmt, &params).await?;
    let mut leased = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.column::<Option<uuid::Uuid>>(0)?.is_some() {
            leased.push((job_from_row(row)?, row.column(JOB_COLUMN_COUNT)?));
        } else if !row
            .column::<Option<bool>>(JOB_COLUMN_COUNT + 1)?
            .unwrap_or(true)
        {
            return Ok(FastLease::Planned);
        }
    }
    Ok(FastLease::Leased(leased))
}

/// The condition that a job row (columns prefixed with `prefix`, such as `"j."`) is
/// running, for statements that name their jobs by id.
///
/// It is written `(state = 'running') IS TRUE`, which the planner does not take as implying
/// `state = 'running'`, so no partial index over running jobs (`jobs_leases`,
/// `jobs_running_kind`) can serve such a statement. With a plain `state = 'running'` and
/// statistics that see few running jobs (the usual case: they are a sliver of the table),
/// such an index costs about what the primary key does and the planner took it: for a settle of one, a range scan of `jobs_leases` by
/// expiry; for a batch, a scan of a whole partial index. Both indexes keep an entry for
/// every job that ran recently until vacuum removes it, so each settle read hundreds (460
/// on average in the 16-in-flight cycle, 2026-12-04). `state` is never NULL, so the test
/// means exactly what `state = 'running'` does.
pub(crate) fn running_by_id(prefix: &str) -> String {
    format!("({prefix}state = 'running') IS TRUE")
}

/// The condition that `token` still holds the lease on a job row (columns prefixed with
/// `prefix`): running ([`running_by_id`]), under that token, not expired.
pub(crate) fn lease_held(prefix: &str, token: &str) -> String {
    format!(
        "{} AND {prefix}lease_token = {token} AND {prefix}lease_expires_at > errand_now()",
        running_by_id(prefix)
    )
}

/// The UPDATE that leases jobs for `$4` ms, each under the worker and token of its slot's
/// taker ([`ClaimSlots`]: workers `$2`, tokens `$3`, the takers' first slots `starts`); the
/// caller joins it with a CTE `slot` of the chosen jobs' ids and slot numbers (`id`, `n`,
/// from 1).
pub(crate) fn lease_sql(starts: &str) -> String {
    format!(
        "UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, {}, lease_ms = $4, \
         lease_expires_at = errand_now() + $4, started_at = errand_now(), updated_at = errand_now()",
        slot_holder("$2", "$3", starts)
    )
}

/// Opens the attempt rows of the jobs in `claimed`.
pub(crate) const OPEN_ATTEMPTS: &str =
    "INSERT INTO job_attempts (job_id, attempt, worker, started_at, outcome, lease_token) \
     SELECT id, attempt, worker, errand_now(), 'running', lease_token FROM claimed \
     ON CONFLICT (job_id, attempt) DO UPDATE SET worker = EXCLUDED.worker, \
         started_at = EXCLUDED.started_at, finished_at = NULL, outcome = 'running', error = NULL, \
         lease_token = EXCLUDED.lease_token";

/// Undoes claims whose caller went away, in one statement: each job its token still holds
/// goes back to `available` with the attempt uncounted, its previous attempt's start, and no
/// attempt row.
pub(crate) async fn release_many(
    client: &impl GenericClient,
    p: &JobReleaseManyParams,
) -> QResult<Vec<Job>> {
    let sql = format!(
        "WITH u AS (SELECT * FROM UNNEST($1::uuid[], $2::uuid[]) AS u(id, token)), \
         released AS ( \
             UPDATE jobs j SET state = 'available', attempt = j.attempt - 1, worker = NULL, \
                 lease_token = NULL, lease_ms = NULL, lease_expires_at = NULL, updated_at = errand_now(), \
                 started_at = (SELECT a.started_at FROM job_attempts a \
                     WHERE a.job_id = j.id AND a.attempt = j.attempt - 1) \
             FROM u WHERE j.id = u.id AND {} AND j.lease_token = u.token \
             RETURNING {}), \
         forgotten AS ( \
             DELETE FROM job_attempts a USING released r \
             WHERE a.job_id = r.id AND a.attempt = r.attempt + 1) \
         SELECT {JOB_COLUMNS} FROM released",
        running_by_id("j."),
        job_columns("j")
    );
    let stmt = client.prepare_cached(&sql).await?;
    let (ids, tokens): (Vec<uuid::Uuid>, Vec<uuid::Uuid>) =
        p.leases.iter().map(|(id, token)| (id.0, token.0)).unzip();
    jobs_from_rows(&client.query(&stmt, &[&ids, &tokens]).await?)
}

/// The error for a write its lease token fenced off: `NotFound` when the job is gone,
/// `LeaseLost` otherwise.
pub(crate) async fn fenced(client: &impl GenericClient, id: JobId) -> Fault {
    let stmt = match client
        .prepare_cached("SELECT 1 FROM jobs WHERE id = $1")
        .await
    {
        Ok(s) => s,
        Err(e) => return e.into(),
    };
    match client.query_opt(&stmt, &[&id.0]).await {
        Ok(Some(_)) => Fault::Store(StoreError::LeaseLost {
            job: id.to_string(),
        }),
        Ok(None) => Fault::Store(StoreError::job_not_found(id)),
        Err(e) => e.into(),
    }
}

/// Extends a lease, saving progress and checkpoint.
pub(crate) async fn heartbeat(client: &impl GenericClient, p: &JobHeartbeatParams) -> QResult<Job> {
    let sql = format!(
        "UPDATE jobs SET lease_ms = COALESCE($3, lease_ms), \
             lease_expires_at = errand_now() + COALESCE($3, lease_ms), \
             progress = COALESCE($4, progress), checkpoint = COALESCE($5, checkpoint), updated_at = errand_now() \
         WHERE id = $1 AND {} \
         RETURNING {JOB_COLUMNS}",
        lease_held("", "$2")
    );
    let stmt = client.prepare_cached(&sql).await?;
    let progress = p
        .progress
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))?;
    let lease = p.lease.map(millis);
    let row = client
        .query_opt(
            &stmt,
            &[&p.id.0, &p.lease_token.0, &lease, &progress, &p.checkpoint],
        )
        .await?;
    let job = match row {
        Some(row) => job_from_row(&row)?,
        None => return Err(fenced(client, p.id).await),
    };
    if p.progress.is_some() {
        record_change(client, &job, EventType::JobProgress).await?;
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::{claim_rounds, RoundLimit};

    /// The rounds a claim of `count` makes when every round fills.
    fn rounds(count: i64, kinds: bool) -> Vec<RoundLimit> {
        let mut out = Vec::new();
        let mut skip = 0;
        while let Some(limit) = claim_rounds(count - skip, skip, kinds) {
            out.push(limit);
            skip += limit.count();
        }
        out
    }

    #[test]
    fn claims_of_up_to_16_are_one_written_round_larger_ones_two() {
        use RoundLimit::{Bound, Written};
        assert_eq!(rounds(0, false), vec![]);
        assert_eq!(rounds(1, false), vec![Written(1)]);
        assert_eq!(rounds(13, false), vec![Written(13)]);
        assert_eq!(rounds(16, false), vec![Written(16)]);
        assert_eq!(rounds(17, false), vec![Written(16), Written(1)]);
        assert_eq!(rounds(32, false), vec![Written(16), Written(16)]);
        assert_eq!(rounds(33, false), vec![Written(16), Bound(17)]);
        assert_eq!(rounds(500, false), vec![Written(16), Bound(484)]);
        // A kind filter: one round, planned for its kinds.
        assert_eq!(rounds(1, true), vec![Bound(1)]);
        assert_eq!(rounds(50, true), vec![Bound(50)]);
    }
}
