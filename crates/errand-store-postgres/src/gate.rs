//! Gate bookkeeping (lock keys, concurrency keys, sessions): arrivals, releases and
//! admitting the next parked jobs.
//!
//! Every change of a gate's `admitted`/`waiting` happens while this transaction holds the
//! gate row's lock, and a transaction that touches several gates takes them in name order,
//! so batches cannot deadlock. Parked jobs are changed only under their gate's lock (gate
//! first, then the job), which is why [`admit_next`] may wait on job rows safely.
//!
//! No arrival strands a job: a release takes the gate lock with one statement and looks for
//! parked jobs with the next one, whose snapshot (READ COMMITTED) sees every arrival that
//! committed before the lock was granted; an arrival that waited for the lock sees the
//! released place in the row it locked.

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;
use errand_core::ordering::{Gate, GateRow, SessionOnDead};
use errand_core::{Job, JobState};
use serde_json::Value;

use crate::fault::{corrupt, QResult, RowExt};

/// A gated job entering its gate's line (insert, retry of a finished job, restore).
#[derive(Debug, Clone)]
pub(crate) struct Arrival {
    /// The job.
    pub id: uuid::Uuid,
    /// Its gate.
    pub gate: Gate,
    /// Whether its `run_at` has come.
    pub due: bool,
}

/// Gates the changes of one transaction touch, by stored name (so in lock order).
fn by_gate<T>(items: impl IntoIterator<Item = (String, T)>) -> BTreeMap<String, Vec<T>> {
    let mut out: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for (name, item) in items {
        out.entry(name).or_default().push(item);
    }
    out
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Lets `arrivals` (already inserted, `parked` false) into their gates, in the order given
/// within each gate: each gets the next sequence number (the back of the line), then a
/// place or a spot in line. Only a new enqueue (`sets_limit`) sets a key gate's capacity
/// (the latest enqueue's limit is the key's limit); retries, requeues and restores keep
/// the gate's capacity, and create a missing row with the job's limit. Returns the ids
/// that were parked.
pub(crate) async fn arrive(
    client: &impl GenericClient,
    arrivals: &[Arrival],
    sets_limit: bool,
) -> QResult<Vec<uuid::Uuid>> {
    let groups = by_gate(arrivals.iter().map(|a| (a.gate.stored_name(), a)));
    let upsert = client
        .prepare_cached(
            "INSERT INTO gates (name, capacity, next_seq, updated_at) VALUES ($1, $2, $3, errand_now()) \
             ON CONFLICT (name) DO UPDATE SET \
                 capacity = CASE WHEN $4 THEN EXCLUDED.capacity ELSE gates.capacity END, \
                 next_seq = gates.next_seq + EXCLUDED.next_seq \
             RETURNING capacity, admitted, waiting, next_seq - $3, blocked_by IS NOT NULL",
        )
        .await?;
    let write = client
        .prepare_cached(
            "WITH g AS (UPDATE gates SET admitted = $2, waiting = $3, updated_at = errand_now() \
                 WHERE name = $1) \
             UPDATE jobs j SET gate_seq = u.seq, parked = u.parked \
             FROM UNNEST($4::uuid[], $5::bigint[], $6::bool[]) AS u(id, seq, parked) WHERE j.id = u.id",
        )
        .await?;
    let mut parked_ids = Vec::new();
    for (name, group) in groups {
        // The latest enqueue's limit is the key's capacity; other arrivals that create
        // the row give it the first one's limit (as one by one).
        let pick = if sets_limit {
            group.last()
        } else {
            group.first()
        };
        let Some(gate) = pick.map(|a| &a.gate) else {
            continue;
        };
        let n = group.len() as i64;
        let row = client
            .query_one(&upsert, &[&name, &to_i32(gate.capacity()), &n, &sets_limit])
            .await?;
        let mut g = GateRow {
            capacity: u32::try_from(row.column::<i32>(0)?).map_err(corrupt)?,
            admitted: u32::try_from(row.column::<i32>(1)?.max(0)).map_err(corrupt)?,
            waiting: u64::try_from(row.column::<i64>(2)?.max(0)).map_err(corrupt)?,
            blocked: row.column(4)?,
        };
        let first_seq: i64 = row.column(3)?;
        let (mut ids, mut seqs, mut parked) = (Vec::new(), Vec::new(), Vec::new());
        for (i, a) in group.iter().enumerate() {
            // Behind a line, a lock or key arrival waits too: the line is admitted by
            // seq below (after a capacity rise, the oldest waiting go first).
            let admit =
                g.admits_arrival(gate.ordered(), a.due) && (gate.ordered() || g.waiting == 0);
            if admit {
                g.admitted += 1;
            } else {
                g.waiting += 1;
                parked_ids.push(a.id);
            }
            ids.push(a.id);
            seqs.push(first_seq + i as i64);
            parked.push(!admit);
        }
        client
            .execute(
                &write,
                &[
                    &name,
                    &to_i32(g.admitted),
                    &i64::try_from(g.waiting).unwrap_or(i64::MAX),
                    &ids,
                    &seqs,
                    &parked,
                ],
            )
            .await?;
        // A key gate whose capacity just rose may have room for jobs parked before.
        if g.free_places() > 0 && g.waiting > 0 {
            admit_next(client, &name, gate.ordered()).await?;
        }
    }
    Ok(parked_ids)
}

/// Admits parked jobs of `name` into its free places, lowest sequence first, and deletes a
/// lock or key gate left with no jobs. The caller holds the gate row's lock (taken by an
/// earlier statement, so this one's snapshot sees every arrival committed before it).
/// The ids go through an array so the update finds them by key (a join with the
/// LIMIT's unknown size was planned as a scan of every job).
/// A session admits its next job due or not; a lock or key gate only due jobs, which
/// become `available`.
pub(crate) async fn admit_next(
    client: &impl GenericClient,
    name: &str,
    ordered: bool,
) -> QResult<u64> {
    let stmt = client
        .prepare_cached(
            "WITH g AS (SELECT CASE WHEN blocked_by IS NOT NULL THEN 0 \
                         ELSE GREATEST(capacity - admitted, 0) END AS free, admitted, waiting \
                     FROM gates WHERE name = $1), \
             up AS (UPDATE jobs j SET parked = false, \
                     state = CASE WHEN $2 THEN j.state ELSE 'available' END, updated_at = errand_now() \
                 WHERE j.id = ANY(ARRAY(SELECT id FROM jobs WHERE gate = $1 AND parked \
                     AND state IN ('available', 'scheduled') AND ($2 OR run_at <= errand_now()) \
                     ORDER BY gate_seq LIMIT (SELECT free FROM g))) RETURNING j.id), \
             n AS (SELECT COUNT(*) AS n FROM up), \
             counted AS (UPDATE gates SET admitted = admitted + (SELECT n FROM n), \
                     waiting = GREATEST(waiting - (SELECT n FROM n), 0), updated_at = errand_now() \
                 WHERE name = $1 AND (SELECT n FROM n) > 0), \
             gone AS (DELETE FROM gates WHERE name = $1 AND NOT $2 AND (SELECT n FROM n) = 0 \
                 AND admitted <= 0 AND waiting <= 0) \
             SELECT n FROM n",
        )
        .await?;
    let n: i64 = client
        .query_one(&stmt, &[&name, &ordered])
        .await?
        .column(0)?;
    Ok(n.max(0) as u64)
}

/// How an admitted job left (or kept) its place.
#[derive(Debug, Default)]
struct Leaving {
    /// Places given back.
    freed: i32,
    /// Lock or key jobs waiting for a retry: back in line (parked), keeping their seq.
    parked: Vec<uuid::Uuid>,
    /// A dead session head that blocks its session.
    blocks: Option<uuid::Uuid>,
    /// New session state, set by a completion.
    state: Option<Value>,
}

/// What a change of an admitted job means for its gate, or `None` when it keeps its place.
fn leaving(job: &Job, gate: &Gate) -> Option<Leaving> {
    let mut l = Leaving::default();
    match (job.state, gate) {
        (JobState::Dead, Gate::Session { on_dead, .. }) if *on_dead == SessionOnDead::Block => {
            l.freed = 1;
            l.blocks = Some(job.id.0);
        }
        (s, _) if s.is_final() => l.freed = 1,
        (JobState::Scheduled, Gate::Session { .. }) => return None,
        (JobState::Scheduled, _) => {
            l.freed = 1;
            l.parked.push(job.id.0);
        }
        _ => return None,
    }
    Some(l)
}

/// Applies to the gates what happened to admitted jobs (`jobs` as they are after the
/// change): final jobs give their place back (a dead session head with `block` blocks its
/// session), lock and key jobs waiting for a retry go back in line, and freed places are
/// given to the next parked jobs. `states` are session states to set (by gate name).
pub(crate) async fn release(
    client: &impl GenericClient,
    jobs: &[&Job],
    states: &[(String, Value)],
) -> QResult<()> {
    let mut groups: BTreeMap<String, (bool, Leaving)> = BTreeMap::new();
    for job in jobs {
        if job.parked {
            continue;
        }
        let Some(gate) = job.ordering.gate() else {
            continue;
        };
        if let Some(l) = leaving(job, &gate) {
            let e = groups
                .entry(gate.stored_name())
                .or_insert_with(|| (gate.ordered(), Leaving::default()));
            e.1.freed += l.freed;
            e.1.parked.extend(l.parked);
            e.1.blocks = e.1.blocks.or(l.blocks);
        }
    }
    for (name, state) in states {
        groups
            .entry(name.clone())
            .or_insert_with(|| (true, Leaving::default()))
            .1
            .state = Some(state.clone());
    }
    if groups.is_empty() {
        return Ok(());
    }
    let update = client
        .prepare_cached(
            "UPDATE gates SET admitted = GREATEST(admitted - $2, 0), waiting = waiting + $3, \
                 blocked_by = COALESCE($4, blocked_by), \
                 state = CASE WHEN $5 THEN $6 ELSE state END, \
                 version = version + CASE WHEN $5 THEN 1 ELSE 0 END, updated_at = errand_now() \
             WHERE name = $1 RETURNING name",
        )
        .await?;
    let park = client
        .prepare_cached("UPDATE jobs SET parked = true WHERE id = ANY($1)")
        .await?;
    for (name, (ordered, l)) in groups {
        let has_state = l.state.is_some();
        let found = client
            .query_opt(
                &update,
                &[
                    &name,
                    &l.freed,
                    &(l.parked.len() as i64),
                    &l.blocks,
                    &has_state,
                    &l.state,
                ],
            )
            .await?;
        if found.is_none() {
            if let Some(state) = l.state {
                // A completion may set the state of a session row that is not there (an
                // import that carried no session rows): create it.
                crate::session::create_with_state(client, &name, &state).await?;
            }
            continue;
        }
        if !l.parked.is_empty() {
            client.execute(&park, &[&l.parked]).await?;
        }
        if l.freed > 0 {
            admit_next(client, &name, ordered).await?;
        }
    }
    Ok(())
}

/// Takes the lock of `name` (gate first, then its jobs). Returns whether the row exists.
pub(crate) async fn lock(client: &impl GenericClient, name: &str) -> QResult<bool> {
    let stmt = client
        .prepare_cached("SELECT 1 FROM gates WHERE name = $1 FOR UPDATE")
        .await?;
    Ok(client.query_opt(&stmt, &[&name]).await?.is_some())
}

/// A parked job left its gate's line (cancelled): one fewer waiting. The caller holds the
/// gate lock.
pub(crate) async fn leave_line(client: &impl GenericClient, name: &str) -> QResult<()> {
    let stmt = client
        .prepare_cached(
            "UPDATE gates SET waiting = GREATEST(waiting - 1, 0), updated_at = errand_now() \
             WHERE name = $1",
        )
        .await?;
    client.execute(&stmt, &[&name]).await?;
    Ok(())
}

/// A dead job that blocks its session is retried: the block lifts and the job is the head
/// again, keeping its place in line (unparked, its seq unchanged). Returns false when the
/// session is not blocked by this job. The caller holds the gate lock.
pub(crate) async fn resume_blocked_head(
    client: &impl GenericClient,
    name: &str,
    id: uuid::Uuid,
) -> QResult<bool> {
    let stmt = client
        .prepare_cached(
            "WITH g AS (UPDATE gates SET blocked_by = NULL, admitted = admitted + 1, updated_at = errand_now() \
                 WHERE name = $1 AND blocked_by = $2 RETURNING name) \
             UPDATE jobs SET parked = false WHERE id = $2 AND EXISTS (SELECT 1 FROM g) RETURNING id",
        )
        .await?;
    Ok(client.query_opt(&stmt, &[&name, &id]).await?.is_some())
}

/// Finished gated jobs made ready again (manual retry, dead requeue; `jobs` as revived,
/// their rows locked): a dead job that blocks its session is its head again, keeping its
/// seq; any other enters its gate's line anew. Gates are taken in name order. Updates
/// each job's `parked`.
pub(crate) async fn revived(client: &impl GenericClient, jobs: &mut [Job]) -> QResult<()> {
    let mut order: Vec<(String, usize)> = jobs
        .iter()
        .enumerate()
        .filter_map(|(i, j)| j.ordering.gate().map(|g| (g.stored_name(), i)))
        .collect();
    order.sort();
    for (name, group) in by_gate(order) {
        let mut arrivals = Vec::new();
        for i in group {
            let job = &jobs[i];
            let Some(gate) = job.ordering.gate() else {
                continue;
            };
            if gate.ordered() && resume_blocked_head(client, &name, job.id.0).await? {
                jobs[i].parked = false;
                continue;
            }
            arrivals.push(Arrival {
                id: job.id.0,
                gate,
                due: true,
            });
        }
        if arrivals.is_empty() {
            continue;
        }
        let parked = arrive(client, &arrivals, false).await?;
        for j in jobs.iter_mut() {
            if arrivals.iter().any(|a| a.id == j.id.0) {
                j.parked = parked.contains(&j.id.0);
            }
        }
    }
    Ok(())
}

/// Deleted gated jobs (`(id, gate)` of each; dead purge, prune): a session blocked on a
/// deleted dead head moves on, as after `session_unblock`. The caller deleted the jobs
/// (their rows locked: job, then gate); the gates are taken in name order, each with the
/// one statement that clears its block, so [`admit_next`] sees every arrival before it.
/// Returns the queues of the jobs let in (their claimers may be woken).
pub(crate) async fn jobs_deleted(
    client: &impl GenericClient,
    deleted: &[(uuid::Uuid, String)],
) -> QResult<Vec<String>> {
    let mut heads: Vec<&(uuid::Uuid, String)> = deleted
        .iter()
        .filter(|(_, name)| name.starts_with("session:"))
        .collect();
    if heads.is_empty() {
        return Ok(Vec::new());
    }
    heads.sort_by(|a, b| (&a.1, a.0).cmp(&(&b.1, b.0)));
    let unblock = client
        .prepare_cached(
            "UPDATE gates SET blocked_by = NULL, updated_at = errand_now() \
             WHERE name = $1 AND blocked_by = $2 RETURNING name",
        )
        .await?;
    let admitted = client
        .prepare_cached(
            "SELECT DISTINCT queue FROM jobs WHERE gate = $1 AND NOT parked \
             AND state IN ('available', 'scheduled')",
        )
        .await?;
    let mut queues = Vec::new();
    for (id, name) in heads {
        if client.query_opt(&unblock, &[name, id]).await?.is_some()
            && admit_next(client, name, true).await? > 0
        {
            for row in client.query(&admitted, &[name]).await? {
                queues.push(row.column::<String>(0)?);
            }
        }
    }
    Ok(queues)
}
