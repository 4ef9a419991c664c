//! Log lines of hosted runs: the runner stores them in batches, the API reads them.

use errand_core::LogEntry;
use errand_store::{JobLogAppendParams, JobLogListParams, StoreError};

use crate::job_events::LogAppended;
use crate::Engine;

impl Engine {
    /// Stores a batch of lines a run printed (fenced when it carries a lease token) and tells
    /// this process's followers; returns the number of the last line.
    ///
    /// # Errors
    /// `NotFound`, `LeaseLost` (fenced batches, which then stored nothing), or the store's
    /// error.
    pub async fn log_append(&self, params: JobLogAppendParams) -> Result<u64, StoreError> {
        let (owner, attempt, any) = (params.owner, params.attempt, !params.lines.is_empty());
        let last_seq = self.store().job_log_append(params).await?;
        if any {
            self.publish_log(LogAppended {
                owner,
                attempt,
                last_seq,
            });
        }
        Ok(last_seq)
    }

    /// A page of a job's or instance's stored lines, by attempt then number.
    ///
    /// # Errors
    /// The store's error.
    pub async fn logs(&self, params: JobLogListParams) -> Result<Vec<LogEntry>, StoreError> {
        self.store().job_log_list(params).await
    }
}
