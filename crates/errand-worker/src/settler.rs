//! Settlements in batches: the first settlement of a batch waits at most a window (a few
//! milliseconds) for company, then all go in one `settle` call.
//!
//! An attempt's heartbeats go on until its settlement is confirmed, so a settlement that
//! waits for a host that is away keeps its lease while it can. What the host cannot take
//! now (the call, or one entry, answered `Unavailable`) is sent again with backoff, as long
//! as its lease holds and for at most [`RETRY_FOR`]: after that the job runs again anyway.
//! A call refused whole (one entry the server will not store fails them all) is sent again
//! one settlement at a time, so that only the bad one is lost.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use errand_runner::host::{HostError, JobHost, RunSettlement};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::lease::{Beats, Lease};

/// Settlements per call at most: one call's transaction stays small, and a batch refused
/// whole costs at most this many single calls.
pub(crate) const MAX_BATCH: usize = 500;

/// How long a settlement is sent again while the host cannot take it, even when its lease
/// holds that long.
const RETRY_FOR: Duration = Duration::from_secs(120);

/// An attempt's outcome on its way to the host.
pub(crate) struct Pending {
    /// What to send.
    pub settlement: RunSettlement,
    /// The attempt's lease: past it, the settlement is pointless.
    pub lease: Arc<Lease>,
    /// The attempt's heartbeats, which stop when the settlement is done with.
    #[expect(dead_code, reason = "held for its Drop: the heartbeats stop with it")]
    pub beats: Beats,
}

/// Runs until every sender is gone and the last batch is settled.
pub(crate) async fn run(host: Arc<dyn JobHost>, mut rx: mpsc::Receiver<Pending>, window: Duration) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let until = Instant::now() + window;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                Ok(None) | Err(_) => break,
            }
        }
        settle(host.as_ref(), batch).await;
    }
}

/// The message of a settle that found the host away: INFO once per batch (as a claim that
/// finds the host away is), DEBUG for the batch's further tries, so an outage shows in the
/// log without a line per retry.
pub(crate) const HOST_AWAY: &str = "settle: host unavailable, retrying";

/// Says, once per batch at INFO, that the host could not take the batch's settlements now.
#[derive(Default)]
struct AwayNotice {
    said: bool,
}

impl AwayNotice {
    fn away(&mut self, why: &str, jobs: usize) {
        if self.said {
            tracing::debug!(error = %why, jobs, "{HOST_AWAY}");
        } else {
            self.said = true;
            tracing::info!(error = %why, jobs, "{HOST_AWAY}");
        }
    }
}

/// Settles `batch`, splitting what the host refuses whole.
async fn settle(host: &dyn JobHost, batch: Vec<Pending>) {
    let give_up = Instant::now() + RETRY_FOR;
    let mut notice = AwayNotice::default();
    let mut groups = VecDeque::from([batch]);
    while let Some(group) = groups.pop_front() {
        if let Some(split) = settle_group(host, group, give_up, &mut notice).await {
            groups.extend(split.into_iter().map(|p| vec![p]));
        }
    }
}

/// Sends `group` until each of its settlements took effect, was refused, or can no longer
/// be settled. Returns the group when the host refused it whole and it holds more than one
/// settlement: to be sent again one by one.
async fn settle_group(
    host: &dyn JobHost,
    mut group: Vec<Pending>,
    give_up: Instant,
    notice: &mut AwayNotice,
) -> Option<Vec<Pending>> {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        group.retain(|p| still_worth_sending(p, give_up));
        if group.is_empty() {
            return None;
        }
        let settlements = group.iter().map(|p| p.settlement.clone()).collect();
        match host.settle(settlements).await {
            Ok(results) => {
                let again = to_send_again(group, results);
                if again.is_empty() {
                    return None;
                }
                notice.away(
                    "some settlements of the batch could not be taken now",
                    again.len(),
                );
                group = again;
            }
            Err(HostError::Unavailable(why)) => notice.away(&why, group.len()),
            Err(e) if group.len() > 1 => {
                tracing::warn!(error = %e, jobs = group.len(), "the host refused a whole settle call; sending its settlements one by one so that only the bad one is lost");
                return Some(group);
            }
            Err(e) => {
                for p in &group {
                    tracing::warn!(job = %p.settlement.id, error = %e, "not settled: refused; the job runs again when its lease lapses");
                }
                return None;
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// The settlements of `sent` to send again after the host answered `results` (one per
/// settlement, in order): those it cannot take now, and those it did not answer (a
/// settlement is idempotent for its token). The others are done with; a refusal is logged.
pub(crate) fn to_send_again(
    sent: Vec<Pending>,
    results: Vec<Result<(), HostError>>,
) -> Vec<Pending> {
    if results.len() != sent.len() {
        tracing::warn!(
            answered = results.len(),
            sent = sent.len(),
            "the host answered another number of settlements than were sent; sending the unanswered again"
        );
    }
    let mut results = results.into_iter();
    sent.into_iter()
        .filter_map(|p| match results.next() {
            Some(r) => answered(p, r),
            None => Some(p),
        })
        .collect()
}

/// What the host answered for one settlement: done with (taken, or refused for good, which
/// is logged), or `p` back when the host cannot take it now, to be sent again.
fn answered(p: Pending, r: Result<(), HostError>) -> Option<Pending> {
    let id = p.settlement.id;
    match r {
        Ok(()) => None,
        Err(HostError::Unavailable(why)) => {
            tracing::debug!(job = %id, error = %why, "settle: the host cannot take this one now, sending it again");
            Some(p)
        }
        Err(HostError::LeaseLost) => {
            tracing::warn!(job = %id, "not settled: the lease was lost (the job runs again elsewhere or was cancelled)");
            None
        }
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "not settled: refused; the job runs again when its lease lapses");
            None
        }
    }
}

/// Whether sending `p` (again) can still do good: its lease holds, and the host has not
/// been away for too long.
fn still_worth_sending(p: &Pending, give_up: Instant) -> bool {
    let id = p.settlement.id;
    if p.lease.lost().is_cancelled() {
        tracing::info!(job = %id, "not settled: the lease was lost (the job runs again elsewhere or was cancelled)");
        false
    } else if p.lease.is_gone() {
        tracing::warn!(job = %id, "not settled before its lease lapsed: the job runs again");
        false
    } else if Instant::now() >= give_up {
        tracing::warn!(job = %id, "not settled: the host could not take it for {RETRY_FOR:?}; the job runs again when its lease lapses");
        false
    } else {
        true
    }
}
