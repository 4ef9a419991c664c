//! Fair claiming across tenants: every new job of a fair queue gets a rank (start-time
//! fair queuing, `errand_core::ordering::fair_rank`) based on the lowest rank still ready
//! in the queue; claims advance the queue's virtual time, the base of an empty queue.

use errand_core::ordering::{fair_rank, JobOrdering};
use rusqlite::{params, Connection, OptionalExtension};

use crate::fault::QResult;
use crate::queue_row::QueueRow;

/// The rank of a new job of `queue`, or `None` in a queue without tenants. The first job
/// naming a fairness key makes the queue fair; from then on every new job gets a rank (a
/// job without a key counts as the key `""`).
pub(crate) fn rank_new(
    conn: &Connection,
    queue: &str,
    q: &mut QueueRow,
    ordering: &JobOrdering,
) -> QResult<Option<i64>> {
    if !q.fair {
        if ordering.fairness_key.is_none() {
            return Ok(None);
        }
        conn.prepare_cached("UPDATE queues SET fair = 1 WHERE name = ?1")?
            .execute([queue])?;
        q.fair = true;
    }
    let key = ordering.fairness_key.as_deref().unwrap_or("");
    let last: Option<i64> = conn
        .prepare_cached("SELECT last_rank FROM fair_keys WHERE queue = ?1 AND key = ?2")?
        .query_row(params![queue, key], |r| r.get(0))
        .optional()?;
    // The start tag of the job in service: the lowest rank still ready (or waiting for
    // its time), else the queue's virtual time when none is.
    let base: Option<i64> = conn
        .prepare_cached(
            "SELECT MIN(fair_rank) FROM jobs INDEXED BY jobs_fair WHERE queue = ?1 \
             AND fair_rank IS NOT NULL AND state IN ('available', 'scheduled') AND parked = 0",
        )?
        .query_row([queue], |r| r.get(0))?;
    let rank = fair_rank(last, base.unwrap_or(q.vtime), ordering.fair_step());
    conn.prepare_cached(
        "INSERT INTO fair_keys (queue, key, last_rank) VALUES (?1, ?2, ?3) \
         ON CONFLICT (queue, key) DO UPDATE SET last_rank = excluded.last_rank",
    )?
    .execute(params![queue, key, rank])?;
    Ok(Some(rank))
}

/// Moves a fair queue's virtual time up to the highest rank a claim took: the base of the
/// next rank when no ranked job is left ready.
pub(crate) fn advance(conn: &Connection, queue: &str, rank: i64) -> QResult<()> {
    conn.prepare_cached("UPDATE queues SET vtime = MAX(vtime, ?2) WHERE name = ?1")?
        .execute(params![queue, rank])?;
    Ok(())
}
