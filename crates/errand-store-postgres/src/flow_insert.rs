//! Inserting jobs that wait for others: each parent must exist (earlier in the same call,
//! or stored); a parent already ended counts at once by [`flow::parent_end`]; the job is
//! `blocked` while a parent is pending, `cancelled` when one already doomed it, and ready
//! (with its context) otherwise. Stored parents are locked `FOR SHARE` until commit, so a
//! parent cannot end between this check and the edge becoming visible to its end hook.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use errand_core::flow::{self, JobFlow, NewJobFlow, ParentEnd};
use errand_core::{JobId, JobState, NewJob};
use errand_store::StoreError;
use serde_json::Value;

use crate::fault::{corrupt, Fault, QResult, RowExt};

/// What a flow job is stored with, besides the producer's fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct AtInsert {
    /// `blocked` or `cancelled`; `None`: as usual (`available` or `scheduled`).
    pub(crate) state: Option<&'static str>,
    /// A doomed job's error.
    pub(crate) error: Option<String>,
    /// Parents still pending.
    pub(crate) waiting_for: u32,
    /// Its context, when ready now.
    pub(crate) context: Option<Value>,
}

/// The flow columns of a call's jobs and the edges to write.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// By job id; jobs without a flow are absent.
    pub(crate) at_insert: HashMap<uuid::Uuid, AtInsert>,
    /// (parent, child) for each parent still pending.
    pub(crate) edges: Vec<(uuid::Uuid, uuid::Uuid)>,
}

/// A parent as a child's insert sees it.
struct Parent {
    state: JobState,
    result: Option<Value>,
    error: Option<String>,
}

/// Plans the flow columns of `jobs` (in input order: a job may wait for an earlier one of
/// the call). No statement when no job waits for another.
///
/// # Errors
/// `NotFound` when a parent is neither stored nor earlier in the call.
pub(crate) async fn plan(
    client: &impl GenericClient,
    jobs: &[NewJob],
    mut contexts: HashMap<uuid::Uuid, Value>,
) -> QResult<Plan> {
    let mut plan = Plan::default();
    if jobs.iter().all(|j| j.flow.after.is_empty()) && contexts.is_empty() {
        return Ok(plan);
    }
    let in_call: HashMap<uuid::Uuid, usize> =
        jobs.iter().enumerate().map(|(i, j)| (j.id.0, i)).collect();
    let mut outside: Vec<uuid::Uuid> = jobs
        .iter()
        .enumerate()
        .flat_map(|(i, j)| {
            let in_call = &in_call;
            j.flow
                .after
                .iter()
                .filter(move |p| in_call.get(&p.0).is_none_or(|&at| at >= i))
                .map(|p| p.0)
        })
        .collect();
    outside.sort();
    outside.dedup();
    let mut stored: HashMap<uuid::Uuid, Parent> = HashMap::new();
    if !outside.is_empty() {
        let stmt = client
            .prepare_cached(
                "SELECT id, state, result, error FROM jobs WHERE id = ANY($1) ORDER BY id FOR SHARE",
            )
            .await?;
        for row in client.query(&stmt, &[&outside]).await? {
            let state: String = row.column(1)?;
            stored.insert(
                row.column(0)?,
                Parent {
                    state: state.parse().map_err(corrupt)?,
                    result: row.column(2)?,
                    error: row.column(3)?,
                },
            );
        }
        if let Some(missing) = outside.iter().find(|id| !stored.contains_key(id)) {
            return Err(Fault::Store(StoreError::job_not_found(JobId(*missing))));
        }
    }
    // States planned for this call's jobs, for the ones after them.
    let mut planned: HashMap<uuid::Uuid, Parent> = HashMap::new();
    for (i, job) in jobs.iter().enumerate() {
        let f = &job.flow;
        let mut at = AtInsert {
            context: contexts.remove(&job.id.0),
            ..AtInsert::default()
        };
        let mut ended = Vec::new();
        for p in &f.after {
            let earlier = in_call.get(&p.0).is_some_and(|&at| at < i);
            let parent = if earlier {
                planned.get(&p.0)
            } else {
                stored.get(&p.0)
            };
            let Some(parent) = parent else {
                return Err(Fault::Store(StoreError::job_not_found(*p)));
            };
            match flow::parent_end(parent.state, f.after_any_end) {
                ParentEnd::Satisfied => ended.push((
                    *p,
                    parent.state,
                    parent.result.clone(),
                    parent.error.clone(),
                )),
                ParentEnd::Doomed if f.step.is_none() && at.state.is_none() => {
                    at.state = Some("cancelled");
                    at.error = Some(flow::doomed_error(*p, parent.state));
                }
                ParentEnd::Doomed => {}
                ParentEnd::NotYet => {
                    at.waiting_for += 1;
                    plan.edges.push((p.0, job.id.0));
                }
            }
        }
        let state = if at.state.is_some() {
            JobState::Cancelled
        } else if at.waiting_for > 0 {
            at.state = Some("blocked");
            JobState::Blocked
        } else {
            JobState::Available
        };
        if state != JobState::Available {
            at.context = None;
        } else if at.context.is_none() && !f.after.is_empty() {
            at.context = Some(flow::continuation_context(&ended));
        }
        if state == JobState::Cancelled {
            // A doomed job waits for nothing.
            plan.edges.retain(|(_, child)| *child != job.id.0);
            at.waiting_for = 0;
        }
        planned.insert(
            job.id.0,
            Parent {
                state,
                result: None,
                error: at.error.clone(),
            },
        );
        if !f.after.is_empty() || at.context.is_some() {
            plan.at_insert.insert(job.id.0, at);
        }
    }
    Ok(plan)
}

/// Writes the edges of the children that were inserted (an idempotent repeat was not).
pub(crate) async fn link<T>(
    client: &impl GenericClient,
    edges: &[(uuid::Uuid, uuid::Uuid)],
    inserted: &HashMap<uuid::Uuid, T>,
) -> QResult<()> {
    let (parents, children): (Vec<uuid::Uuid>, Vec<uuid::Uuid>) = edges
        .iter()
        .filter(|(_, c)| inserted.contains_key(c))
        .copied()
        .unzip();
    if parents.is_empty() {
        return Ok(());
    }
    let stmt = client
        .prepare_cached(
            "INSERT INTO job_deps (parent_id, child_id) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING",
        )
        .await?;
    client.execute(&stmt, &[&parents, &children]).await?;
    Ok(())
}

/// The flow an inserted job shows.
pub(crate) fn shown(new: &NewJobFlow, at: Option<&AtInsert>, deadline_at: Option<i64>) -> JobFlow {
    JobFlow {
        workflow_id: new.step.as_ref().map(|s| s.workflow),
        step: new.step.as_ref().map(|s| s.step.clone()),
        step_role: new.step.as_ref().map(|s| s.role),
        batch_id: new.batch,
        after: new.after.clone(),
        after_any_end: new.after_any_end,
        waiting_for: at.map_or(0, |a| a.waiting_for),
        context: at.and_then(|a| a.context.clone()),
        deadline_at: deadline_at.map(errand_core::time::to_timestamp),
    }
}
