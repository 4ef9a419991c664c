//! Schedule reads and administration that need no planning: list, get, delete, pause.

use errand_core::schedule_spec::Schedule;
use errand_core::{Job, ScheduleName};
use errand_store::StoreError;

use crate::Engine;

impl Engine {
    /// Every schedule by name.
    ///
    /// # Errors
    /// The store's error.
    pub async fn schedule_list(&self) -> Result<Vec<Schedule>, StoreError> {
        self.store().schedule_list().await
    }

    /// One schedule with its last job's state.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn schedule_get(&self, name: &ScheduleName) -> Result<Schedule, StoreError> {
        self.store().schedule_get(name).await
    }

    /// Deletes a schedule; the jobs it fired stay, but those written ahead for slots still
    /// to come are cancelled.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn schedule_delete(&self, name: &ScheduleName) -> Result<(), StoreError> {
        let taken_back = self.store().schedule_delete(name).await?;
        self.taken_back(&taken_back);
        Ok(())
    }

    /// Stops a schedule firing; jobs written ahead for slots still to come are cancelled.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn schedule_pause(&self, name: &ScheduleName) -> Result<Schedule, StoreError> {
        let paused = self.store().schedule_pause(name).await?;
        self.taken_back(&paused.taken_back);
        Ok(paused.schedule)
    }

    /// Lets a paused schedule fire again; slots missed while paused follow its catch-up
    /// policy.
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn schedule_resume(&self, name: &ScheduleName) -> Result<Schedule, StoreError> {
        let resumed = self.store().schedule_resume(name).await?;
        self.fire_due.poke();
        Ok(resumed)
    }

    /// Publishes the jobs a schedule's change took back (cancelled jobs written ahead) as
    /// any cancel is: counted, their waiters woken, their gates' next in line let in.
    pub(crate) fn taken_back(&self, jobs: &[Job]) {
        for job in jobs {
            self.metrics.cancelled(job);
            self.publish(job);
        }
    }
}
