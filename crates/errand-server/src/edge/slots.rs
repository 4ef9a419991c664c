//! Connection slots: `max_connections` ordinary ones, and a few reserve ones used only
//! when those are all taken, so that health checks are still answered at the cap.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection's place; the place is free again when this drops.
#[derive(Debug)]
pub(crate) enum Slot {
    /// An ordinary connection.
    Main(#[expect(dead_code, reason = "held for its drop")] OwnedSemaphorePermit),
    /// A connection past the cap: short timeouts, health endpoints only.
    Reserve(#[expect(dead_code, reason = "held for its drop")] OwnedSemaphorePermit),
}

impl Slot {
    pub(crate) fn is_reserve(&self) -> bool {
        matches!(self, Slot::Reserve(_))
    }
}

/// The slots of one listener.
pub(crate) struct Slots {
    main: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
}

impl Slots {
    pub(crate) fn new(main: usize, reserve: usize) -> Self {
        Self {
            main: Arc::new(Semaphore::new(main)),
            reserve: Arc::new(Semaphore::new(reserve)),
        }
    }

    /// `slot`, moved to an ordinary place when one has freed since it was taken: the loop
    /// takes a slot before it accepts, so a reserve slot taken while the cap was reached
    /// must not serve a client that arrives after an ordinary connection has closed.
    pub(crate) fn settle(&self, slot: Slot) -> Slot {
        if slot.is_reserve() {
            if let Ok(p) = self.main.clone().try_acquire_owned() {
                return Slot::Main(p);
            }
        }
        slot
    }

    /// The next free slot, ordinary ones first; waits while every slot is taken (the
    /// listen backlog holds new connections meanwhile).
    pub(crate) async fn next(&self) -> Option<Slot> {
        if let Ok(p) = self.main.clone().try_acquire_owned() {
            return Some(Slot::Main(p));
        }
        if let Ok(p) = self.reserve.clone().try_acquire_owned() {
            return Some(Slot::Reserve(p));
        }
        tokio::select! {
            biased;
            p = self.main.clone().acquire_owned() => p.ok().map(Slot::Main),
            p = self.reserve.clone().acquire_owned() => p.ok().map(Slot::Reserve),
        }
    }
}
