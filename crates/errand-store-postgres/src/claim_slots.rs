//! The slots of a claim made for several takers at once. The n-th job a claim leases goes
//! into slot n, and each slot names the worker and the lease token of the taker that holds
//! it (a taker asking for `max` jobs holds `max` slots in a row). The claim statements bind
//! both as arrays (`$2::text[]`, `$3::uuid[]`) and subscript them with each job's slot
//! number, so one statement leases for every taker; the jobs are then dealt back to their
//! takers by the token each was leased under.

use std::collections::HashMap;

use errand_core::session::SessionState;
use errand_core::{Job, LeaseToken};
use errand_store::{ClaimedJob, JobClaimTogetherParams};

use crate::fault::{corrupt, QResult};

/// Per slot, the worker name and lease token a job leased into it gets.
pub(crate) struct ClaimSlots {
    /// The worker of each slot, bound as `$2::text[]`.
    pub(crate) workers: Vec<String>,
    /// The lease token of each slot, bound as `$3::uuid[]`.
    pub(crate) tokens: Vec<uuid::Uuid>,
    /// Each taker's token, in taker order.
    takers: Vec<LeaseToken>,
}

impl ClaimSlots {
    /// A new lease token per taker, and its slots.
    pub(crate) fn new(p: &JobClaimTogetherParams) -> Self {
        let total = p.total() as usize;
        let mut workers = Vec::with_capacity(total);
        let mut tokens = Vec::with_capacity(total);
        let mut takers = Vec::with_capacity(p.takers.len());
        for taker in &p.takers {
            let token = LeaseToken::new();
            takers.push(token);
            for _ in 0..taker.max {
                workers.push(taker.worker.clone());
                tokens.push(token.0);
            }
        }
        ClaimSlots {
            workers,
            tokens,
            takers,
        }
    }

    /// How many jobs all takers may get together: the claim's `LIMIT`.
    pub(crate) fn count(&self) -> i64 {
        i64::try_from(self.tokens.len()).unwrap_or(i64::MAX)
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
