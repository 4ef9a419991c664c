//! An attempt's lease as the worker knows it, and the heartbeats that keep it.
//!
//! The worker cannot ask a host that is away whether a lease still holds, so it keeps its
//! own clock: the lease is held until the last renewal that got through plus the lease's
//! length. Past that, another worker may have the job: the attempt is told its lease is
//! lost, exactly as when a heartbeat answers `LeaseLost`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use errand_core::{JobId, LeaseToken};
use errand_runner::host::{HostError, JobHost};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The shortest interval between heartbeats, whatever the lease.
const MIN_BEAT_EVERY: Duration = Duration::from_millis(20);

/// One attempt's lease: how long it lasts, when it was last renewed, and the token that
/// fires when it is lost.
#[derive(Debug)]
pub(crate) struct Lease {
    length: Duration,
    /// When the last renewal that got through was sent (or the claim answered): the
    /// renewal took effect at the server after this, so the lease lasts at least until
    /// this plus `length`.
    renewed: Mutex<Instant>,
    lost: CancellationToken,
}

impl Lease {
    /// A lease of `length` granted at `granted`.
    pub(crate) fn new(length: Duration, granted: Instant) -> Arc<Self> {
        Arc::new(Self {
            length,
            renewed: Mutex::new(granted),
            lost: CancellationToken::new(),
        })
    }

    /// How long the lease lasts from a renewal.
    pub(crate) fn length(&self) -> Duration {
        self.length
    }

    /// Heartbeats go every third of the lease: two may fail before it lapses.
    pub(crate) fn beat_every(&self) -> Duration {
        (self.length / 3).max(MIN_BEAT_EVERY)
    }

    /// A renewal sent at `sent` got through.
    pub(crate) fn renewed(&self, sent: Instant) {
        let mut renewed = self.renewed.lock().unwrap_or_else(PoisonError::into_inner);
        *renewed = (*renewed).max(sent);
    }

    /// When the lease lapses unless renewed.
    pub(crate) fn expires_at(&self) -> Instant {
        *self.renewed.lock().unwrap_or_else(PoisonError::into_inner) + self.length
    }

    /// Fires when the lease is lost.
    pub(crate) fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// The lease is no longer this attempt's.
    pub(crate) fn lose(&self) {
        self.lost.cancel();
    }

    /// Lost, or lapsed by the worker's clock.
    pub(crate) fn is_gone(&self) -> bool {
        self.lost.is_cancelled() || Instant::now() >= self.expires_at()
    }
}

/// An attempt's heartbeats, in a task of their own: they run from the claim until the
/// attempt's settlement is done with (or the job given back), and stop when this is
/// dropped.
pub(crate) struct Beats(tokio::task::AbortHandle);

impl Beats {
    /// Starts renewing `lease` (see [`keep`]).
    pub(crate) fn start(
        host: Arc<dyn JobHost>,
        id: JobId,
        token: LeaseToken,
        lease: Arc<Lease>,
    ) -> Self {
        Self(tokio::spawn(keep(host, id, token, lease)).abort_handle())
    }
}

impl Drop for Beats {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews `lease` every third of its length until dropped. Each heartbeat may take at most
/// that third. The lease is lost (its token fires, and beats stop) when a heartbeat answers
/// `LeaseLost` or `NotFound`, when the host reports the job cancelled, or when no renewal
/// got through for a whole lease (the host was away or silent).
pub(crate) async fn keep(host: Arc<dyn JobHost>, id: JobId, token: LeaseToken, lease: Arc<Lease>) {
    let every = lease.beat_every();
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cancelled = host.cancelled(id);
    tokio::pin!(cancelled);
    loop {
        let next = tick.tick();
        tokio::pin!(next);
        loop {
            tokio::select! {
                _ = &mut next => break,
                () = &mut cancelled => return lease.lose(),
                () = tokio::time::sleep_until(lease.expires_at()) => {
                    if lapsed(id, &lease) {
                        return;
                    }
                }
            }
        }
        let sent = Instant::now();
        let beat = tokio::time::timeout(every, host.heartbeat(id, token, None, None));
        tokio::pin!(beat);
        let out = loop {
            tokio::select! {
                out = &mut beat => break out,
                () = &mut cancelled => return lease.lose(),
                () = tokio::time::sleep_until(lease.expires_at()) => {
                    if lapsed(id, &lease) {
                        return;
                    }
                }
            }
        };
        match out {
            Ok(Ok(())) => lease.renewed(sent),
            Ok(Err(HostError::LeaseLost | HostError::NotFound)) => return lease.lose(),
            // Away or refusing now: the next beat tries again, within the lease.
            Ok(Err(e)) => tracing::debug!(job = %id, error = %e, "heartbeat failed"),
            Err(_) => tracing::debug!(job = %id, "heartbeat unanswered within {every:?}"),
        }
    }
}

/// Loses the lease if it lapsed by now (a renewal by `JobContext::progress` may have moved
/// its end since the caller looked); says whether it did.
fn lapsed(id: JobId, lease: &Lease) -> bool {
    if Instant::now() < lease.expires_at() {
        return false;
    }
    tracing::warn!(
        job = %id,
        lease = ?lease.length(),
        "lease lapsed: no heartbeat got through for a whole lease; the job may run elsewhere"
    );
    lease.lose();
    true
}
