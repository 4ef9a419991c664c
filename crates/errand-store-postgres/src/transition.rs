//! Recording job transitions: one event row per change, and what a job's end owes (its
//! reply message and its callback), written in the transaction of the change so none of
//! them is ever lost or recorded for a change that did not happen. A batch of changes
//! writes its events with one statement.

use deadpool_postgres::GenericClient;
use errand_core::time::to_millis;
use errand_core::{delivery::callback_for, reply::reply_for, EventBody, EventType, Job, Millis};
use errand_store::StoreError;

use crate::array_rows::array_rows;
use crate::delivery_record::insert_deliveries;
use crate::fault::{Fault, QResult};
use crate::{flow_end, job_write, pipelined_tx};

/// Events to append, as parallel arrays.
#[derive(Default)]
pub(crate) struct EventRows {
    at: Vec<Millis>,
    ty: Vec<&'static str>,
    data: Vec<String>,
}

impl EventRows {
    /// Adds one event.
    pub(crate) fn push(&mut self, body: &EventBody) -> QResult<()> {
        let data = serde_json::to_string(body)
            .map_err(|e| Fault::Store(StoreError::Internal(e.to_string())))?;
        self.at.push(to_millis(body.at));
        self.ty.push(body.event_type.as_str());
        self.data.push(data);
        Ok(())
    }

    /// Adds the event of a change to `job` (as it is after the change). Every statement that
    /// changes a job sets its `updated_at` to the store's now, which is the event's time.
    pub(crate) fn push_job(&mut self, job: &Job, ty: EventType) -> QResult<()> {
        self.push(&EventBody::job(job, ty, to_millis(job.updated_at)))
    }

    /// Adds `other`'s events after these.
    pub(crate) fn extend(&mut self, other: EventRows) {
        self.at.extend(other.at);
        self.ty.extend(other.ty);
        self.data.extend(other.data);
    }

    /// Appends the events, in the order pushed: inside a pipelined transaction with its
    /// commit ([`pipelined_tx::hold`]), elsewhere now.
    pub(crate) async fn append(self, client: &impl GenericClient) -> QResult<()> {
        match pipelined_tx::hold(self) {
            Some(rows) => rows.append_now(client).await,
            None => Ok(()),
        }
    }

    /// Appends the events, in the order pushed, with one statement now.
    pub(crate) async fn append_now(self, client: &impl GenericClient) -> QResult<()> {
        match self.prepare(client).await? {
            Some(insert) => insert.execute(client).await,
            None => Ok(()),
        }
    }

    /// The statement that appends these events, prepared on `client` (`None` when there
    /// are none), so that sending it is one message: [`pipelined_tx`] sends it right before
    /// the `COMMIT`, which must not overtake it.
    pub(crate) async fn prepare(self, client: &impl GenericClient) -> QResult<Option<EventInsert>> {
        if self.at.is_empty() {
            return Ok(None);
        }
        let rows = array_rows(
            self.at.len(),
            "u",
            &[
                ("$1::bigint", "at"),
                ("$2::text", "type"),
                ("$3::text", "data"),
            ],
        );
        let sql = format!(
            "INSERT INTO events (at, type, data) SELECT u.at, u.type, u.data FROM {rows} \
             ORDER BY u.ord"
        );
        let statement = client.prepare_cached(&sql).await?;
        Ok(Some(EventInsert {
            statement,
            rows: self,
        }))
    }
}

/// Events and their prepared insert ([`EventRows::prepare`]).
pub(crate) struct EventInsert {
    statement: tokio_postgres::Statement,
    rows: EventRows,
}

impl EventInsert {
    /// Sends the insert. Its first poll sends the whole request (the statement is
    /// prepared), so a request polled after it is sent after it.
    pub(crate) async fn execute(&self, client: &impl GenericClient) -> QResult<()> {
        let r = &self.rows;
        client
            .execute(&self.statement, &[&r.at, &r.ty, &r.data])
            .await?;
        Ok(())
    }
}

/// Records that `job` (as it is after the change) went through `ty`: see
/// [`record_changes`].
pub(crate) async fn record_change(
    client: &impl GenericClient,
    job: &Job,
    ty: EventType,
) -> QResult<()> {
    record_changes(client, [(job, ty)]).await
}

/// Records a batch of changes: one event each, and for each change that left its job final
/// (succeeded, dead, cancelled) its reply message in `reply_to` (a normal insert with its
/// own `job.enqueued`, after the job's event), its callback delivery, and what its end does
/// to its flows ([`flow_end`]: its workflow, children and batch). A constant number of
/// statements however large the batch, for jobs without flows.
pub(crate) async fn record_changes<'a>(
    client: &impl GenericClient,
    changes: impl IntoIterator<Item = (&'a Job, EventType)>,
) -> QResult<()> {
    record(client, changes, true).await
}

/// [`record_changes`] for jobs a workflow's plan cancelled: their workflow does not advance
/// again for them (the plan counted them), the rest of their end is as usual.
pub(crate) async fn record_plan_cancels(client: &impl GenericClient, jobs: &[Job]) -> QResult<()> {
    record(
        client,
        jobs.iter().map(|j| (j, EventType::JobCancelled)),
        false,
    )
    .await
}

async fn record<'a>(
    client: &impl GenericClient,
    changes: impl IntoIterator<Item = (&'a Job, EventType)>,
    workflow_hook: bool,
) -> QResult<()> {
    let mut events = EventRows::default();
    let mut replies = Vec::new();
    let mut callbacks = Vec::new();
    let mut now = None;
    let mut ends = Vec::new();
    let mut flows = Vec::new();
    for (job, ty) in changes {
        events.push_job(job, ty)?;
        if job.state.is_final() {
            let at = to_millis(job.updated_at);
            now = Some(at);
            replies.extend(reply_for(job));
            callbacks.extend(callback_for(job, at));
            ends.push((job.id.0, job.state));
            if job.flow.workflow_id.is_some() || job.flow.batch_id.is_some() {
                flows.push(job.clone());
            }
        }
    }
    if !ends.is_empty() {
        for job in flow_end::on_end(client, ends, flows, workflow_hook, &mut events).await? {
            let at = to_millis(job.updated_at);
            now = Some(at);
            replies.extend(reply_for(&job));
            callbacks.extend(callback_for(&job, at));
        }
    }
    if !replies.is_empty() {
        for inserted in job_write::insert_jobs(client, replies, std::time::Duration::ZERO).await? {
            if inserted.inserted {
                events.push_job(&inserted.job, EventType::JobEnqueued)?;
            }
        }
    }
    events.append(client).await?;
    if let (false, Some(now)) = (callbacks.is_empty(), now) {
        insert_deliveries(client, now, &callbacks).await?;
    }
    Ok(())
}
