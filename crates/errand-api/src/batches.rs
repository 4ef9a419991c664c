//! Batch bodies: many jobs enqueued as one, with one `on_complete` job when all ended.

use errand_core::batch::{Batch, BatchState, NewBatch};
use errand_core::limits::MAX_BATCH;
use errand_core::{BatchId, JobId, NewJob, ValidationError};
use serde::{Deserialize, Serialize};

use crate::{EnqueueLimits, EnqueueRequest, EnqueuedJob, JobTemplateRequest};

/// `POST /v1/batches`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 0 to 10,000 jobs (an open batch may start empty and get jobs later).
    #[serde(default)]
    #[schema(max_items = 10000)]
    pub jobs: Vec<EnqueueRequest>,
    /// Enqueued once when every job of the batch has ended, with the counts and the ids of
    /// the jobs that did not succeed in its context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_complete: Option<JobTemplateRequest>,
    /// An `http` or `https` URL POSTed (signed) with the batch when it completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::webhook_url::WebhookUrl>)]
    pub callback_url: Option<String>,
    /// Keep it open for more jobs (`POST /v1/batches/{id}/jobs`) until closed
    /// (`POST /v1/batches/{id}/close`); it cannot complete while open.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open: bool,
}

/// Checks each job and sets its batch.
fn batch_jobs(
    jobs: Vec<EnqueueRequest>,
    id: BatchId,
    limits: &EnqueueLimits,
) -> Result<Vec<NewJob>, ValidationError> {
    if jobs.len() > MAX_BATCH {
        return Err(ValidationError::new(
            "jobs",
            format!("at most {MAX_BATCH} jobs per call"),
        ));
    }
    jobs.into_iter()
        .enumerate()
        .map(|(i, j)| {
            let mut job = j
                .into_new_job(limits)
                .map_err(|e| e.within(&format!("jobs[{i}]")))?;
            job.flow.batch = Some(id);
            Ok(job)
        })
        .collect()
}

impl BatchRequest {
    /// Checks every field and builds the batch and its first jobs.
    ///
    /// # Errors
    /// The first field that breaks a rule (a job names its index).
    pub fn into_batch(
        self,
        limits: &EnqueueLimits,
    ) -> Result<(NewBatch, Vec<NewJob>), ValidationError> {
        let id = BatchId::new();
        let jobs = batch_jobs(self.jobs, id, limits)?;
        let on_complete = self
            .on_complete
            .map(|t| t.into_template(limits).map(|(t, _)| t))
            .transpose()
            .map_err(|e| e.within("on_complete"))?;
        if let Some(u) = &self.callback_url {
            crate::webhook_url::check("callback_url", u)?;
        }
        Ok((
            NewBatch {
                id,
                on_complete,
                callback_url: self.callback_url,
                open: self.open,
            },
            jobs,
        ))
    }
}

/// `POST /v1/batches/{id}/jobs`: more jobs for an open batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchJobsRequest {
    /// 1 to 10,000 jobs.
    #[schema(min_items = 1, max_items = 10000)]
    pub jobs: Vec<EnqueueRequest>,
}

impl BatchJobsRequest {
    /// Checks each job and sets its batch.
    ///
    /// # Errors
    /// The first job that breaks a rule, as `jobs[i].field`.
    pub fn into_jobs(
        self,
        id: BatchId,
        limits: &EnqueueLimits,
    ) -> Result<Vec<NewJob>, ValidationError> {
        if self.jobs.is_empty() {
            return Err(ValidationError::new("jobs", "give at least one job"));
        }
        batch_jobs(self.jobs, id, limits)
    }
}

/// The answer to creating a batch or adding jobs to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// The batch after the write.
    pub batch: Batch,
    /// The jobs written, in request order.
    pub jobs: Vec<EnqueuedJob>,
}

/// `GET /v1/batches` filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BatchListQuery {
    /// Only this state.
    #[param(value_type = Option<BatchState>)]
    pub state: Option<String>,
    /// `next` of the previous page.
    #[param(value_type = Option<BatchId>)]
    pub before: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A page of batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchList {
    /// Newest first.
    pub batches: Vec<Batch>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<BatchId>,
}

/// The ids of a batch answer's jobs, for callers that want only those.
pub fn job_ids(r: &BatchResponse) -> Vec<JobId> {
    r.jobs.iter().map(|j| j.id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: EnqueueLimits = EnqueueLimits {
        max_payload_bytes: 1024,
    };

    #[test]
    fn every_job_counts_in_the_batch() {
        let (batch, jobs) = BatchRequest {
            jobs: vec![EnqueueRequest::new("a"), EnqueueRequest::new("b")],
            on_complete: Some(JobTemplateRequest {
                kind: "done".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .into_batch(&LIMITS)
        .expect("valid");
        assert!(jobs.iter().all(|j| j.flow.batch == Some(batch.id)));
        assert!(!batch.open);
        assert_eq!(
            batch.on_complete.map(|t| t.kind.as_str().to_string()),
            Some("done".into())
        );
    }

    #[test]
    fn a_bad_job_is_named_by_index() {
        let err = BatchJobsRequest {
            jobs: vec![EnqueueRequest::new("a"), EnqueueRequest::new("")],
        }
        .into_jobs(BatchId::new(), &LIMITS)
        .expect_err("bad kind");
        assert!(err.field.starts_with("jobs[1]"), "{err:?}");
    }
}
