//! Gates (lock keys, concurrency keys, sessions): a job arriving takes a place or parks in
//! the gate's line; a job leaving frees its place and lets the line in. Claims never look
//! at gates: a parked job is out of the claim index, so a long line costs a claim nothing.
//! The rules are `errand_core::ordering::GateRow`'s; this module keeps the rows.

use errand_core::ordering::{Gate, GateRow};
use errand_core::time::to_millis;
use errand_core::{Job, JobId, JobState, Millis};
use errand_store::StoreError;
use rusqlite::{params, Connection, OptionalExtension};

use crate::fault::{Fault, QResult};

/// A gate row as stored.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) name: String,
    pub(crate) capacity: u32,
    pub(crate) admitted: u32,
    pub(crate) waiting: u64,
    pub(crate) next_seq: i64,
    pub(crate) blocked_by: Option<JobId>,
}

impl Stored {
    fn rules(&self) -> GateRow {
        GateRow {
            capacity: self.capacity,
            admitted: self.admitted,
            waiting: self.waiting,
            blocked: self.blocked_by.is_some(),
        }
    }

    fn is_session(&self) -> bool {
        Gate::session_key_of(&self.name).is_some()
    }
}

fn corrupt(what: &str) -> Fault {
    Fault::Store(StoreError::Corrupt(what.to_string()))
}

/// Reads a job id column.
pub(crate) fn id_of(bytes: Option<Vec<u8>>) -> QResult<Option<JobId>> {
    bytes
        .map(|b| JobId::from_slice(&b).ok_or_else(|| corrupt("a job id is not 16 bytes")))
        .transpose()
}

/// Reads a gate row.
pub(crate) fn load(conn: &Connection, name: &str) -> QResult<Option<Stored>> {
    let row = conn
        .prepare_cached(
            "SELECT capacity, admitted, waiting, next_seq, blocked_by FROM gates WHERE name = ?1",
        )?
        .query_row([name], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
            ))
        })
        .optional()?;
    row.map(|(capacity, admitted, waiting, next_seq, blocked)| {
        Ok(Stored {
            name: name.to_string(),
            capacity,
            admitted: admitted.max(0) as u32,
            waiting: waiting.max(0) as u64,
            next_seq,
            blocked_by: id_of(blocked)?,
        })
    })
    .transpose()
}

fn save(conn: &Connection, now: Millis, g: &Stored) -> QResult<()> {
    conn.prepare_cached(
        "UPDATE gates SET capacity = ?2, admitted = ?3, waiting = ?4, next_seq = ?5, \
         blocked_by = ?6, updated_at = ?7 WHERE name = ?1",
    )?
    .execute(params![
        g.name,
        g.capacity,
        g.admitted,
        g.waiting as i64,
        g.next_seq,
        g.blocked_by.map(|id| id.as_bytes().to_vec()),
        now
    ])?;
    Ok(())
}

/// The gate's row, created with the gate's capacity when missing.
fn load_or_create(conn: &Connection, now: Millis, gate: &Gate) -> QResult<Stored> {
    let name = gate.stored_name();
    if let Some(g) = load(conn, &name)? {
        return Ok(g);
    }
    conn.prepare_cached("INSERT INTO gates (name, capacity, updated_at) VALUES (?1, ?2, ?3)")?
        .execute(params![name, gate.capacity(), now])?;
    Ok(Stored {
        name,
        capacity: gate.capacity(),
        admitted: 0,
        waiting: 0,
        next_seq: 0,
        blocked_by: None,
    })
}

/// Deletes a lock or concurrency-key gate nobody holds or waits on, so distinct keys do
/// not pile up. Session rows stay: they keep the session's state.
fn forget_if_idle(conn: &Connection, g: &Stored) -> QResult<()> {
    if !g.is_session() && g.admitted == 0 && g.waiting == 0 {
        conn.prepare_cached("DELETE FROM gates WHERE name = ?1")?
            .execute([&g.name])?;
    }
    Ok(())
}

/// Admits a session's next jobs, due or not, over `?1` now, `?2` gate, `?3` places. The
/// states are written as the partial index `jobs_gate` names them (parked jobs never run).
pub(crate) const ADMIT_SESSION: &str = "UPDATE jobs SET parked = 0, updated_at = ?1, \
         state = CASE WHEN state = 'scheduled' AND run_at <= ?1 THEN 'available' ELSE state END \
     WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_gate \
         WHERE gate = ?2 AND parked = 1 AND state IN ('available', 'scheduled', 'running') \
         ORDER BY gate_seq LIMIT +?3) RETURNING queue";

/// Admits a lock's or key's next due jobs, as [`ADMIT_SESSION`].
pub(crate) const ADMIT_DUE: &str =
    "UPDATE jobs SET parked = 0, updated_at = ?1, state = 'available' \
     WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_gate \
         WHERE gate = ?2 AND parked = 1 AND state IN ('available', 'scheduled', 'running') \
         AND run_at <= ?1 ORDER BY gate_seq LIMIT +?3) RETURNING queue";

/// Lets parked jobs take the gate's free places, lowest seq first: any of a session's
/// (enqueue order, due or not), only due ones of a lock or key. Returns the queues that
/// gained ready jobs.
pub(crate) fn admit_next(conn: &Connection, now: Millis, name: &str) -> QResult<Vec<String>> {
    let Some(mut g) = load(conn, name)? else {
        return Ok(Vec::new());
    };
    let queues = admit_into(conn, now, &mut g)?;
    if !queues.is_empty() {
        save(conn, now, &g)?;
    }
    Ok(queues)
}

/// [`admit_next`] on a row already read; the caller saves it.
fn admit_into(conn: &Connection, now: Millis, g: &mut Stored) -> QResult<Vec<String>> {
    let free = g.rules().free_places();
    if free == 0 || g.waiting == 0 {
        return Ok(Vec::new());
    }
    let sql = if g.is_session() {
        ADMIT_SESSION
    } else {
        ADMIT_DUE
    };
    let queues: Vec<String> = conn
        .prepare_cached(sql)?
        .query_map(params![now, g.name, free], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let n = queues.len() as u32;
    g.admitted += n;
    g.waiting = g.waiting.saturating_sub(u64::from(n));
    Ok(queues)
}

/// A job joins a gate at the back of its line: a new job (insert, restore) or a finished
/// one run again (retry, dead requeue). Only a new enqueue (`takes_limit`) sets a key
/// gate's capacity (the latest enqueue's limit is the key's limit), and a raised limit
/// lets the line in before the job arrives; any other arrival keeps the gate's capacity
/// (a missing row is created with the job's). Returns the seq given and whether the job
/// parks.
pub(crate) fn arrive(
    conn: &Connection,
    now: Millis,
    gate: &Gate,
    due: bool,
    takes_limit: bool,
) -> QResult<(i64, bool)> {
    let mut g = load_or_create(conn, now, gate)?;
    if let (Gate::Concurrency { limit, .. }, true) = (gate, takes_limit) {
        let rose = *limit > g.capacity;
        g.capacity = *limit;
        if rose {
            admit_into(conn, now, &mut g)?;
        }
    }
    let seq = g.next_seq;
    g.next_seq += 1;
    let admitted = g.rules().admits_arrival(gate.ordered(), due);
    if admitted {
        g.admitted += 1;
    } else {
        g.waiting += 1;
    }
    save(conn, now, &g)?;
    Ok((seq, !admitted))
}

/// A finished gated job run again (retry, dead requeue): a dead head its session is
/// blocked behind takes its place back and keeps its seq; any other comes back as a new
/// arrival at the back of the line. Updates the job row and `job.parked`.
pub(crate) fn revived(conn: &Connection, now: Millis, job: &mut Job) -> QResult<()> {
    let Some(gate) = job.ordering.gate() else {
        return Ok(());
    };
    let name = gate.stored_name();
    if let Some(mut g) = load(conn, &name)? {
        if g.blocked_by == Some(job.id) {
            g.blocked_by = None;
            g.admitted += 1;
            save(conn, now, &g)?;
            return set_parked(conn, job, false, None);
        }
    }
    let due = to_millis(job.run_at) <= now;
    let (seq, parked) = arrive(conn, now, &gate, due, false)?;
    set_parked(conn, job, parked, Some(seq))
}

/// A retry-waiting (`scheduled`) job made due by a manual retry: a parked lock or key job
/// is now parked and due, so its gate lets its line in (it takes a free place if none
/// ahead of it is due); an admitted job and a parked session job keep where they are. It
/// is never counted as an arrival: it is already in the line.
pub(crate) fn made_due(conn: &Connection, now: Millis, job: &mut Job) -> QResult<()> {
    let Some(gate) = job.ordering.gate() else {
        return Ok(());
    };
    if !job.parked || gate.ordered() {
        return Ok(());
    }
    admit_next(conn, now, &gate.stored_name())?;
    job.parked = conn
        .prepare_cached("SELECT parked FROM jobs WHERE id = ?1")?
        .query_row([job.id.as_bytes().as_slice()], |r| r.get(0))?;
    Ok(())
}

/// A session's dead head was deleted (dead purge, prune): the session moves on as if
/// unblocked. Returns the queues that gained ready jobs.
pub(crate) fn head_deleted(
    conn: &Connection,
    now: Millis,
    name: &str,
    id: JobId,
) -> QResult<Vec<String>> {
    let Some(mut g) = load(conn, name)? else {
        return Ok(Vec::new());
    };
    if g.blocked_by != Some(id) {
        return Ok(Vec::new());
    }
    g.blocked_by = None;
    let queues = admit_into(conn, now, &mut g)?;
    save(conn, now, &g)?;
    Ok(queues)
}

/// Deleted jobs (`(id, gate)` of each) a session may be blocked on: the sessions move on.
pub(crate) fn jobs_deleted(
    conn: &Connection,
    now: Millis,
    jobs: &[(Vec<u8>, String)],
) -> QResult<()> {
    for (id, name) in jobs {
        if let Some(id) = id_of(Some(id.clone()))? {
            head_deleted(conn, now, name, id)?;
        }
    }
    Ok(())
}

fn set_parked(conn: &Connection, job: &mut Job, parked: bool, seq: Option<i64>) -> QResult<()> {
    conn.prepare_cached(
        "UPDATE jobs SET parked = ?2, gate_seq = COALESCE(?3, gate_seq) WHERE id = ?1",
    )?
    .execute(params![job.id.as_bytes().as_slice(), parked, seq])?;
    job.parked = parked;
    Ok(())
}

/// An admitted job changed (settled, rescued, cancelled; `job` as it is now): a final
/// state frees its place (a session whose head died blocks unless the job says
/// `continue`); a wait for a retry gives a lock or key place up (the job parks, first in
/// line when due) while a session keeps its head; ready again now keeps the place.
/// Returns the queues that gained ready jobs.
pub(crate) fn released(conn: &Connection, now: Millis, job: &mut Job) -> QResult<Vec<String>> {
    let Some(gate) = job.ordering.gate() else {
        return Ok(Vec::new());
    };
    let name = gate.stored_name();
    let Some(mut g) = load(conn, &name)? else {
        return Ok(Vec::new());
    };
    if job.state.is_final() {
        g.admitted = g.admitted.saturating_sub(1);
        if let Gate::Session { on_dead, .. } = &gate {
            if job.state == JobState::Dead
                && *on_dead == errand_core::ordering::SessionOnDead::Block
            {
                g.blocked_by = Some(job.id);
            }
        }
    } else if job.state == JobState::Scheduled && to_millis(job.run_at) > now && !gate.ordered() {
        g.admitted = g.admitted.saturating_sub(1);
        g.waiting += 1;
        set_parked(conn, job, true, None)?;
    } else {
        return Ok(Vec::new());
    }
    let queues = admit_into(conn, now, &mut g)?;
    save(conn, now, &g)?;
    forget_if_idle(conn, &g)?;
    Ok(queues)
}

/// A parked job left the line without running (cancelled).
pub(crate) fn left_line(conn: &Connection, now: Millis, job: &Job) -> QResult<()> {
    let Some(gate) = job.ordering.gate() else {
        return Ok(());
    };
    let Some(mut g) = load(conn, &gate.stored_name())? else {
        return Ok(());
    };
    g.waiting = g.waiting.saturating_sub(1);
    save(conn, now, &g)?;
    forget_if_idle(conn, &g)
}

/// Lets parked jobs whose `run_at` came into their gates (after promotion made them
/// available). Returns the queues that gained ready jobs.
pub(crate) fn admit_due(conn: &Connection, now: Millis, gates: &[String]) -> QResult<Vec<String>> {
    let mut queues = Vec::new();
    for name in gates {
        queues.extend(admit_next(conn, now, name)?);
    }
    Ok(queues)
}
