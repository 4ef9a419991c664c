//! Queue settings, kind and rate-key limits, sessions, workers and "why isn't it
//! running?": store calls with the wake-ups they imply (a raised limit or an unblocked
//! session may make jobs claimable now).

use errand_core::explain::{explain, Explanation};
use errand_core::queue::QueueSettingsPatch;
use errand_core::session::Session;
use errand_core::throttle::{Limit, LimitInfo, LimitScope};
use errand_core::worker::WorkerInfo;
use errand_core::{JobId, QueueInfo, QueueName};
use errand_store::{SessionListParams, SessionStatePutParams, StoreError};

use crate::Engine;

impl Engine {
    /// Changes a queue's settings and pause, creating the queue when missing, and wakes
    /// its claims (a raised limit or a resume lets more jobs start).
    ///
    /// # Errors
    /// `Invalid` for values the patch refuses (nothing changed), or the store's error.
    pub async fn queue_update(
        &self,
        name: &QueueName,
        patch: QueueSettingsPatch,
    ) -> Result<QueueInfo, StoreError> {
        patch
            .validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let info = self.store().queue_update(name, patch).await?;
        self.wake(name);
        Ok(self.queue_with_waiting(info))
    }

    /// Creates or replaces a kind or rate-key limit; every claim wakes, since a raised or
    /// reshaped limit may let jobs of any queue start.
    ///
    /// # Errors
    /// `Invalid`, or the store's error.
    pub async fn limit_put(&self, limit: Limit) -> Result<LimitInfo, StoreError> {
        limit
            .validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let info = self.store().limit_put(limit).await?;
        self.wake_all();
        Ok(info)
    }

    /// One limit with its use.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn limit_get(&self, scope: LimitScope, name: &str) -> Result<LimitInfo, StoreError> {
        self.store().limit_get(scope, name).await
    }

    /// Every limit with its use.
    ///
    /// # Errors
    /// The store's error.
    pub async fn limit_list(&self) -> Result<Vec<LimitInfo>, StoreError> {
        self.store().limit_list().await
    }

    /// Removes a limit; the jobs it held back may start, so every claim wakes.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn limit_delete(&self, scope: LimitScope, name: &str) -> Result<(), StoreError> {
        self.store().limit_delete(scope, name).await?;
        self.wake_all();
        Ok(())
    }

    /// One session.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn session_get(&self, key: &str) -> Result<Session, StoreError> {
        self.store().session_get(key).await
    }

    /// A page of sessions by key.
    ///
    /// # Errors
    /// The store's error.
    pub async fn session_list(
        &self,
        params: SessionListParams,
    ) -> Result<Vec<Session>, StoreError> {
        self.store().session_list(params).await
    }

    /// Sets a session's state by compare-and-set on its version.
    ///
    /// # Errors
    /// `VersionConflict`, `Invalid`, or the store's error.
    pub async fn session_state_put(
        &self,
        params: SessionStatePutParams,
    ) -> Result<Session, StoreError> {
        let session = self.store().session_state_put(params).await?;
        self.feed.poke();
        Ok(session)
    }

    /// Moves a session past the dead job blocking it; its next job may start at once.
    ///
    /// # Errors
    /// `NotFound`, `WrongState`, or the store's error.
    pub async fn session_unblock(&self, key: &str) -> Result<Session, StoreError> {
        let session = self.store().session_unblock(key).await?;
        self.jobs_changed();
        self.wake_all();
        Ok(session)
    }

    /// Why a job has not started, now: the store's facts read through the core rules.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn explain(&self, id: JobId) -> Result<Explanation, StoreError> {
        // Workers this node saw since the last flush count too.
        // Best effort: a store that takes no writes (a read-only standby) can still answer.
        if let Err(e) = self.flush_workers().await {
            tracing::warn!(error = %e, "writing the workers seen failed; answering without them");
        }
        let facts = self.store().job_explain_facts(id).await?;
        Ok(explain(&facts))
    }

    /// Workers seen claiming, latest first, with the jobs each holds now.
    ///
    /// # Errors
    /// The store's error.
    pub async fn worker_list(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        // Best effort: a store that takes no writes (a read-only standby) can still answer.
        if let Err(e) = self.flush_workers().await {
            tracing::warn!(error = %e, "writing the workers seen failed; answering without them");
        }
        self.store().worker_list().await
    }

    /// Writes the workers this node saw since the last flush; returns how many. What a
    /// failed write took is kept for the next flush.
    ///
    /// # Errors
    /// The store's error.
    pub async fn flush_workers(&self) -> Result<usize, StoreError> {
        let batch = self.workers_seen.take();
        if batch.is_empty() {
            return Ok(0);
        }
        let n = batch.len();
        if let Err(e) = self.store().worker_seen_many(batch.clone()).await {
            self.workers_seen.restore(batch);
            return Err(e);
        }
        Ok(n)
    }
}
