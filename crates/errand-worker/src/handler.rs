//! Handlers: any `async fn(JobContext, J) -> Result<R, JobError>` (or closure) for a typed
//! job `J`, and the type-erased form the worker keeps per kind.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use errand_client::JobType;
use serde::Serialize;
use serde_json::Value;

use crate::{JobContext, JobError};

/// A handler of jobs of type `J`. Implemented for every
/// `Fn(JobContext, J) -> impl Future<Output = Result<R, JobError>>` where `R` serialises
/// (the job's result; `()` gives `null`), so `worker.register::<SendEmail, _>(send_email)`
/// takes a plain `async fn`.
pub trait Handler<J>: Send + Sync + 'static {
    /// The job's result.
    type Output: Serialize + Send;
    /// The run.
    type Future: Future<Output = Result<Self::Output, JobError>> + Send + 'static;
    /// Runs one attempt.
    fn call(&self, ctx: JobContext, job: J) -> Self::Future;
}

impl<J, F, Fut, R> Handler<J> for F
where
    F: Fn(JobContext, J) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, JobError>> + Send + 'static,
    R: Serialize + Send,
{
    type Output = R;
    type Future = Fut;

    fn call(&self, ctx: JobContext, job: J) -> Fut {
        self(ctx, job)
    }
}

/// What a handler's run ends with, before it is told to the host.
pub(crate) type Outcome = Result<Value, JobError>;

/// A boxed run.
pub(crate) type BoxRun = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// A handler with its payload type erased: reads the payload, runs, writes the result.
pub(crate) trait ErasedHandler: Send + Sync {
    /// The run of one attempt, or at once the dead failure of a payload that does not
    /// read as the handler's type.
    fn start(&self, ctx: JobContext, payload: Value) -> Result<BoxRun, JobError>;
}

/// The erased form of a `Handler<J>`.
pub(crate) struct Typed<J, H> {
    pub handler: H,
    pub _job: std::marker::PhantomData<fn() -> J>,
}

impl<J: JobType, H: Handler<J>> ErasedHandler for Typed<J, H> {
    fn start(&self, ctx: JobContext, payload: Value) -> Result<BoxRun, JobError> {
        let job: J = serde_json::from_value(payload).map_err(|e| {
            JobError::dead(format!(
                "the payload does not read as {} (kind {}): {e}",
                std::any::type_name::<J>(),
                J::KIND
            ))
        })?;
        let run = self.handler.call(ctx, job);
        Ok(Box::pin(async move {
            let out = run.await?;
            serde_json::to_value(out).map_err(|e| {
                JobError::dead(format!("the handler's result does not serialise: {e}"))
            })
        }))
    }
}

/// The handlers of a worker, by kind.
pub(crate) type Handlers = std::collections::HashMap<String, Arc<dyn ErasedHandler>>;
