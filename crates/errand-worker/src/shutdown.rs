//! Stopping a worker within a bound: handlers get the grace period; jobs still running then
//! (and any a claim handed over as shutdown began) are given back all at once; giving back
//! and the last settlements get [`SHUTDOWN_MARGIN`] more. `run` returns by then, whatever
//! the host does.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use errand_core::{JobId, LeaseToken};
use errand_runner::host::{HostError, HostedJob, JobHost};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::attempt::Shared;

/// Time after the grace period for giving jobs back and sending the last settlements: a
/// few round trips to a server that answers, and a bound on waiting for one that does not
/// (what is not done by then runs again when its lease lapses).
pub const SHUTDOWN_MARGIN: Duration = Duration::from_secs(5);

/// How long a claim in flight when shutdown begins may still answer: enough for an answer
/// already on its way, so its jobs are given back now rather than when their leases lapse.
/// A long poll still waiting for work after that is dropped (the server gives back,
/// uncounted, what it claims for a caller that left).
pub(crate) const CLAIM_DRAIN: Duration = Duration::from_millis(250);

/// What a worker did with the jobs it still held when it stopped.
///
/// A job whose lease was already lost when it was given back (it expired and was taken by
/// another worker, or the job was cancelled) is in none of the lists: it is no longer this
/// worker's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Jobs given back to their queue through the host's `release`: those whose handlers had
    /// not finished within the grace period, and those a claim handed over as shutdown
    /// began (never started). A release is uncounted, over HTTP and in-process alike: the
    /// attempt is forgotten and the job is `available` at once, so a job on its last
    /// attempt runs again rather than dying of the shutdown.
    pub given_back: Vec<JobId>,
    /// Jobs that could not be given back (the host was away, refused, or did not answer
    /// within [`SHUTDOWN_MARGIN`] after the grace period): they run again when their leases
    /// lapse.
    pub not_given_back: Vec<JobId>,
}

/// Releases in flight, and which jobs they are for.
#[derive(Default)]
struct GiveBacks {
    calls: JoinSet<(JobId, Result<(), HostError>)>,
    asked: Vec<JobId>,
}

impl GiveBacks {
    fn start(&mut self, host: &Arc<dyn JobHost>, id: JobId, lease_token: LeaseToken) {
        let host = host.clone();
        self.asked.push(id);
        self.calls
            .spawn(async move { (id, host.release(id, lease_token).await) });
    }

    /// The answers that come by `deadline`, in `report`; jobs without one are not given back.
    async fn finish(mut self, deadline: Instant, report: &mut ShutdownReport) {
        let mut answered = HashSet::new();
        let _ = tokio::time::timeout_at(deadline, async {
            while let Some(done) = self.calls.join_next().await {
                let Ok((id, out)) = done else { continue };
                answered.insert(id);
                match out {
                    Ok(()) => report.given_back.push(id),
                    Err(HostError::LeaseLost | HostError::NotFound) => {
                        tracing::debug!(job = %id, "not given back: the lease was already lost");
                    }
                    Err(e) => {
                        tracing::warn!(job = %id, error = %e, "could not give the job back; it runs again when its lease lapses");
                        report.not_given_back.push(id);
                    }
                }
            }
        })
        .await;
        self.calls.abort_all();
        for id in self.asked {
            if !answered.contains(&id) {
                tracing::warn!(job = %id, "the host did not answer the give-back in time; the job runs again when its lease lapses");
                report.not_given_back.push(id);
            }
        }
    }
}

/// Stops what is left once claiming has stopped at `began`: gives back `late` (claimed as
/// shutdown began, never started) at once, waits until `began + grace` for running
/// attempts, then aborts the handlers still running and gives their jobs back, all at
/// once, until `began + grace + SHUTDOWN_MARGIN`.
pub(crate) async fn wind_down(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    late: Vec<HostedJob>,
    grace: Duration,
    began: Instant,
) -> ShutdownReport {
    let handlers_by = began + grace;
    let stop_by = handlers_by + SHUTDOWN_MARGIN;
    let mut give_backs = GiveBacks::default();
    for job in late {
        give_backs.start(&shared.host, job.job.id, job.lease_token);
    }
    let finished = tokio::time::timeout_at(handlers_by, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !finished {
        for (id, run) in shared.take_all() {
            run.handler.abort();
            give_backs.start(&shared.host, id, run.lease_token);
        }
    }
    let mut report = ShutdownReport::default();
    give_backs.finish(stop_by, &mut report).await;
    // The attempts whose jobs were given back end as soon as they see their handlers
    // stopped; the others are handing their settlements off.
    let ended = tokio::time::timeout_at(stop_by, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !ended {
        tracing::warn!("attempts still handing off settlements at the shutdown deadline were stopped; their jobs run again when their leases lapse");
        tasks.abort_all();
    }
    report
}

/// The deadline of a shutdown that began at `began`.
pub(crate) fn deadline(began: Instant, grace: Duration) -> Instant {
    began + grace + SHUTDOWN_MARGIN
}
