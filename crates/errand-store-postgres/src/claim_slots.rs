//! The slots of a claim made for several takers at once. The n-th job a claim leases (in
//! claim order: priority, fair rank, run time, id) goes into slot n; taker i holds the
//! `max` slots from its start on, so the first takers get the first jobs. The claim
//! statements bind each taker's worker name, lease token and first slot as arrays and
//! find a job's taker with `width_bucket(n, starts)` (the last taker whose first slot is
//! at most n), so one statement leases for every taker with parameters the size of the
//! takers, not of the jobs. The jobs are then dealt back to their takers by the token each
//! was leased under.

use std::collections::HashMap;

use errand_core::session::SessionState;
use errand_core::{Job, LeaseToken};
use errand_store::{ClaimedJob, JobClaimTogetherParams};

use crate::fault::{corrupt, QResult};

/// Per taker that asks for at least one job: its worker name, lease token and first slot.
pub(crate) struct ClaimSlots {
    /// The worker of each taker, bound as `text[]`.
    pub(crate) workers: Vec<String>,
    /// The lease token of each taker, bound as `uuid[]`.
    pub(crate) tokens: Vec<uuid::Uuid>,
    /// The first slot of each taker (from 1, rising), bound as `int8[]`.
    pub(crate) starts: Vec<i64>,
    /// How many slots in all: the claim's `LIMIT`.
    count: i64,
    /// Each taker's token, in taker order (a taker asking for none has one too).
    takers: Vec<LeaseToken>,
}

/// The worker and token of a job's slot, for the lease's `SET`: `slot.n` is the job's slot,
/// `$workers`, `$tokens` and `$starts` the parameters bound from [`ClaimSlots`].
pub(crate) fn slot_holder(workers: &str, tokens: &str, starts: &str) -> String {
    let taker = format!("width_bucket(slot.n, {starts}::int8[])");
    format!("worker = ({workers}::text[])[{taker}], lease_token = ({tokens}::uuid[])[{taker}]")
}

impl ClaimSlots {
    /// A new lease token per taker, and its slots.
    pub(crate) fn new(p: &JobClaimTogetherParams) -> Self {
        let mut slots = ClaimSlots {
            workers: Vec::with_capacity(p.takers.len()),
            tokens: Vec::with_capacity(p.takers.len()),
            starts: Vec::with_capacity(p.takers.len()),
            count: 0,
            takers: Vec::with_capacity(p.takers.len()),
        };
        for taker in &p.takers {
            let token = LeaseToken::new();
            slots.takers.push(token);
            if taker.max == 0 {
                continue;
            }
            slots.workers.push(taker.worker.clone());
            slots.tokens.push(token.0);
            slots.starts.push(slots.count + 1);
            slots.count += i64::from(taker.max);
        }
        slots
    }

    /// How many jobs all takers may get together: the claim's `LIMIT`.
    pub(crate) fn count(&self) -> i64 {
        self.count
    }

    /// Hands each leased job (with the token it was leased under and its session's state)
    /// to its taker, keeping the claim's order within each taker's list.
    pub(crate) fn deal(
        &self,
        leased: Vec<(Job, uuid::Uuid, Option<SessionState>)>,
    ) -> QResult<Vec<Vec<ClaimedJob>>> {
        let index: HashMap<uuid::Uuid, usize> = self
            .takers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.0, i))
            .collect();
        let mut out: Vec<Vec<ClaimedJob>> = self.takers.iter().map(|_| Vec::new()).collect();
        for (job, token, session) in leased {
            let taker = *index.get(&token).ok_or_else(|| {
                corrupt(format!(
                    "job {} was leased under a token no taker of the claim holds",
                    job.id
                ))
            })?;
            out[taker].push(ClaimedJob {
                job,
                lease_token: self.takers[taker],
                session,
            });
        }
        Ok(out)
    }
}
