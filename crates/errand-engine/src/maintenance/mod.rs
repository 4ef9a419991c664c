//! Services that keep jobs moving without anyone asking: each runs on an interval until
//! its cancellation token fires, and is tracked so shutdown can wait for it.

mod event_pruner;
mod instance_cleaner;
mod job_cleaner;
mod job_promoter;
mod job_rescuer;
mod node_heartbeat;
mod pass_failures;
mod queue_count_folder;
mod schedule_runner;
mod schedule_slot_cleaner;
mod wakeup_listener;
mod worker_flusher;
mod workflow_starter;
mod workflow_supervisor;

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Engine;

pub use event_pruner::prune_events_once;
pub use instance_cleaner::prune_instances_once;
pub use job_cleaner::prune_once;
pub use job_promoter::promote_once;
pub use job_rescuer::rescue_once;
pub use node_heartbeat::{NODE_DEAD_AFTER, NODE_FORGET_AFTER, NODE_HEARTBEAT_INTERVAL};
pub(crate) use pass_failures::PassFailures;
pub use queue_count_folder::fold_counts_once;
pub(crate) use queue_count_folder::FOLD_DELAY;
pub use schedule_slot_cleaner::prune_slots_once;
pub use worker_flusher::{prune_workers_once, WORKER_FORGET_AFTER};
pub use workflow_supervisor::supervise_once;

/// Starts every maintenance service; they stop when `token` is cancelled.
pub fn spawn_all(engine: Arc<Engine>, token: CancellationToken) -> JoinSet<()> {
    spawn(engine, token, true)
}

/// Starts the maintenance services, firing schedules only when `schedules` is set (a node
/// without the scheduler role leaves that to others; the rest keeps every node's jobs
/// moving and costs little).
pub fn spawn(engine: Arc<Engine>, token: CancellationToken, schedules: bool) -> JoinSet<()> {
    let mut set = JoinSet::new();
    set.spawn(job_rescuer::run(engine.clone(), token.clone()));
    set.spawn(job_promoter::run(engine.clone(), token.clone()));
    set.spawn(node_heartbeat::run(engine.clone(), token.clone()));
    set.spawn(job_cleaner::run(engine.clone(), token.clone()));
    set.spawn(instance_cleaner::run(engine.clone(), token.clone()));
    set.spawn(queue_count_folder::run(engine.clone(), token.clone()));
    set.spawn(crate::event_feed::run_tail(engine.clone(), token.clone()));
    set.spawn(event_pruner::run(engine.clone(), token.clone()));
    if schedules {
        set.spawn(schedule_runner::run(engine.clone(), token.clone()));
        set.spawn(schedule_slot_cleaner::run(engine.clone(), token.clone()));
    }
    set.spawn(worker_flusher::run(engine.clone(), token.clone()));
    set.spawn(workflow_supervisor::run(engine.clone(), token.clone()));
    spawn_wakeup_listener(engine, token, &mut set);
    set
}

/// Starts only the forwarding of other processes' wake-ups (the store's notifications) to
/// the claims waiting here, which [`spawn`] starts with the rest: for an embedder, or a
/// test, that drives the other services itself. It stops when `token` is cancelled.
pub fn spawn_wakeup_listener(engine: Arc<Engine>, token: CancellationToken, set: &mut JoinSet<()>) {
    set.spawn(wakeup_listener::run(engine, token));
}

/// Starts the built-in worker that starts workflow templates for the jobs of queue
/// `errand.workflows` (what schedules that start a workflow enqueue). Nodes that run jobs
/// or fire schedules start it; it stops when `token` is cancelled.
pub fn spawn_workflow_starter(
    engine: Arc<Engine>,
    token: CancellationToken,
    set: &mut JoinSet<()>,
) {
    set.spawn(workflow_starter::run(engine, token));
}

/// Runs `tick` every `every` until `token` fires; errors are logged (without flooding: see
/// [`pass_failures`]), not fatal, because a store that is briefly unavailable must not stop
/// maintenance for good.
async fn every<F, Fut>(
    name: &'static str,
    every: std::time::Duration,
    token: CancellationToken,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, errand_store::StoreError>>,
{
    let mut failures = pass_failures::PassFailures::new(name);
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = interval.tick() => {}
        }
        match tick().await {
            Ok(n) => {
                failures.succeeded();
                if n > 0 {
                    tracing::debug!(service = name, changed = n, "maintenance pass");
                }
            }
            Err(e) => failures.failed(&e),
        }
    }
}
