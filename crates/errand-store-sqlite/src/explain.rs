//! The facts `GET /v1/jobs/{id}/explain` reads its reasons from, gathered in one read.

use errand_core::explain::{ExplainFacts, GateFacts, Holders};
use errand_core::throttle::LimitScope;
use errand_core::{JobId, Millis};
use rusqlite::{params, Connection};

use crate::fault::QResult;
use crate::gate::id_of;
use crate::job_row::load_job;
use crate::{gate, limit, queue_row, session, worker};

/// Most holders an explanation names.
const SAMPLE: i64 = 10;

fn holders(conn: &Connection, count_sql: &str, sample_sql: &str, arg: &str) -> QResult<Holders> {
    let count: i64 = conn
        .prepare_cached(count_sql)?
        .query_row([arg], |r| r.get(0))?;
    let ids: Vec<Option<Vec<u8>>> = conn
        .prepare_cached(sample_sql)?
        .query_map(params![arg, SAMPLE], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let sample = ids
        .into_iter()
        .map(id_of)
        .collect::<QResult<Vec<Option<JobId>>>>()?
        .into_iter()
        .flatten()
        .collect();
    Ok(Holders {
        count: count.max(0) as u64,
        sample,
    })
}

/// Everything that bears on why job `id` waits.
pub(crate) fn facts(conn: &Connection, now: Millis, id: JobId) -> QResult<ExplainFacts> {
    let job = load_job(conn, id)?;
    let queue = job.queue.as_str();
    let q = queue_row::read(conn, queue)?.unwrap_or_default();
    let queue_running = holders(
        conn,
        crate::claim::QUEUE_RUNNING_COUNT,
        "SELECT id FROM jobs WHERE queue = ?1 AND state = 'running' ORDER BY started_at, id LIMIT +?2",
        queue,
    )?;
    let kind_limit = match limit::read(conn, LimitScope::Kind, job.kind.as_str())? {
        Some((l, bucket)) => {
            let h = holders(
                conn,
                "SELECT count(*) FROM jobs INDEXED BY jobs_running_kind WHERE kind = ?1 AND state = 'running'",
                "SELECT id FROM jobs INDEXED BY jobs_running_kind WHERE kind = ?1 AND state = 'running' \
                 ORDER BY started_at, id LIMIT +?2",
                job.kind.as_str(),
            )?;
            Some((l, h, bucket))
        }
        None => None,
    };
    let key_limit = match &job.ordering.rate_key {
        Some(k) => limit::read(conn, LimitScope::Key, k)?,
        None => None,
    };
    let gate = match job.ordering.gate() {
        Some(g) => {
            let name = g.stored_name();
            let stored = gate::load(conn, &name)?;
            let h = holders(
                conn,
                "SELECT count(*) FROM jobs INDEXED BY jobs_gate WHERE gate = ?1 AND parked = 0 \
                 AND state IN ('available', 'scheduled', 'running')",
                "SELECT id FROM jobs INDEXED BY jobs_gate WHERE gate = ?1 AND parked = 0 \
                 AND state IN ('available', 'scheduled', 'running') ORDER BY gate_seq LIMIT +?2",
                &name,
            )?;
            let session = match &job.ordering.session_key {
                Some(k) => session::find(conn, k)?,
                None => None,
            };
            Some(GateFacts {
                name,
                capacity: stored.map_or(g.capacity(), |s| s.capacity),
                holders: h,
                session,
            })
        }
        None => None,
    };
    let workers = worker::list(conn)?
        .into_iter()
        .filter(|w| w.queues.iter().any(|wq| wq == queue))
        .collect();
    Ok(ExplainFacts {
        queue_paused: q.paused,
        queue_settings: q.settings,
        queue_running,
        queue_bucket: q.bucket,
        kind_limit,
        key_limit,
        gate,
        workers,
        job,
        now,
    })
}
