//! The end hook: what a job's end (succeeded, dead, cancelled) does to its flow, in the
//! transaction of the end. Its workflow advances ([`crate::workflow::job_ended`]); the jobs
//! waiting for it are released or, doomed, cancelled; its batch counts the end
//! ([`crate::batch::job_ended`]). Ends the hook makes itself (cancelled steps, doomed
//! continuations and their own continuations) go through a work list, not recursion: a
//! chain of continuations can be a thousand long.

use std::collections::VecDeque;

use errand_core::flow::{doomed_error, parent_end, ParentEnd};
use errand_core::{Job, JobId, Millis};
use rusqlite::{Connection, OptionalExtension};

use crate::fault::QResult;
use crate::flow::{cancel_for_flow, job_id, make_ready};

/// A job the hook ended, still to carry on.
pub(crate) struct Ended {
    /// The job as it is now.
    pub(crate) job: Job,
    /// Whether its workflow still has to hear of it (`false` for steps a workflow plan
    /// cancelled: the plan already counts them).
    pub(crate) workflow: bool,
}

/// Carries the end of `job` (as it is now, final) on to its flow.
pub(crate) fn ended(conn: &Connection, now: Millis, job: &Job) -> QResult<()> {
    let mut work = VecDeque::new();
    one(conn, now, job, true, &mut work)?;
    drain(conn, now, work)
}

/// Carries on every end in `work`, and those they cause.
pub(crate) fn drain(conn: &Connection, now: Millis, mut work: VecDeque<Ended>) -> QResult<()> {
    while let Some(e) = work.pop_front() {
        one(conn, now, &e.job, e.workflow, &mut work)?;
    }
    Ok(())
}

fn one(
    conn: &Connection,
    now: Millis,
    job: &Job,
    workflow: bool,
    work: &mut VecDeque<Ended>,
) -> QResult<()> {
    if workflow {
        if let Some(wf) = job.flow.workflow_id {
            crate::workflow::job_ended(conn, now, wf, job, work)?;
        }
    }
    children(conn, now, job, work)?;
    if let Some(batch) = job.flow.batch_id {
        crate::batch::job_ended(conn, now, batch, job.state)?;
    }
    Ok(())
}

/// The jobs waiting for `job`: one fewer parent to wait for (ready at none), or doomed.
fn children(conn: &Connection, now: Millis, job: &Job, work: &mut VecDeque<Ended>) -> QResult<()> {
    let kids: Vec<(Vec<u8>, bool, bool, String)> = conn
        .prepare_cached(
            "SELECT j.id, j.after_any_end, j.step_role IS NOT NULL, j.state FROM job_deps d \
             JOIN jobs j ON j.id = d.child_id WHERE d.parent_id = ?1 AND d.counted = 0",
        )?
        .query_map([job.id.as_bytes().as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    if kids.is_empty() {
        return Ok(());
    }
    // This end counts once: a revived parent that ends again finds its edges counted.
    conn.prepare_cached("UPDATE job_deps SET counted = 1 WHERE parent_id = ?1 AND counted = 0")?
        .execute([job.id.as_bytes().as_slice()])?;
    for (id, any_end, is_step, state) in kids {
        if state != "blocked" {
            continue;
        }
        let id: JobId = job_id(&id)?;
        match parent_end(job.state, any_end) {
            ParentEnd::Satisfied => {
                let left: Option<u32> = conn
                    .prepare_cached(
                        "UPDATE jobs SET waiting_for = waiting_for - 1 \
                         WHERE id = ?1 AND state = 'blocked' AND waiting_for > 0 \
                         RETURNING waiting_for",
                    )?
                    .query_row([id.as_bytes().as_slice()], |r| r.get(0))
                    .optional()?;
                if left == Some(0) {
                    make_ready(conn, now, id)?;
                }
            }
            // A step is left to its workflow's rules (the workflow hook handled it).
            ParentEnd::Doomed if is_step => {}
            ParentEnd::Doomed => {
                let why = doomed_error(job.id, job.state);
                if let Some(cancelled) = cancel_for_flow(conn, now, id, &why)? {
                    work.push_back(Ended {
                        job: cancelled,
                        workflow: true,
                    });
                }
            }
            ParentEnd::NotYet => {}
        }
    }
    Ok(())
}
