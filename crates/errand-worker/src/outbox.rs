//! Settlements that ride on the next claim: a worker's cycle in one round trip.
//!
//! A handler that ends frees its slot, and the claim loop, waiting for a free slot, claims
//! for it at once. So the settlement of a job that ends while the loop gathers slots for
//! its next claim goes with that claim (the host settles first, then claims, in one call).
//! A job that ends while the loop is elsewhere (a claim in flight or a long poll, a pause
//! after the host was away, shutdown) hands its settlement to the settler, which sends it
//! on its own within the settle window: no settlement waits for a claim that may not come.

use std::sync::{Mutex, PoisonError};

use crate::settler::Pending;

/// Settlements held for the claim the loop is gathering slots for.
#[derive(Default)]
pub(crate) struct Outbox {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The claim loop is gathering slots: a claim follows at once.
    gathering: bool,
    held: Vec<Pending>,
}

impl Outbox {
    /// Holds `p` for the next claim when the claim loop is gathering slots for one;
    /// otherwise gives it back, for the settler.
    pub(crate) fn offer(&self, p: Pending) -> Option<Pending> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.gathering {
            state.held.push(p);
            None
        } else {
            Some(p)
        }
    }

    /// The claim loop starts gathering slots: settlements offered from now on wait for
    /// its claim.
    pub(crate) fn open(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .gathering = true;
    }

    /// The claim loop stops gathering (to claim, or to stop): what was held, for it to
    /// send. Settlements offered from now on go to the settler.
    pub(crate) fn close(&self) -> Vec<Pending> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.gathering = false;
        std::mem::take(&mut state.held)
    }
}
