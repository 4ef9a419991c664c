//! The storage seam of errand.
//!
//! [`Store`] is one wide trait with one method per database operation, named noun first
//! (`job_insert_many`, `job_claim`, `queue_pause`). Methods are batch-shaped (one job is a
//! batch of one) and take parameter structs, so a new backend is one new implementation and
//! nothing else changes. Every backend passes the [`conformance`] suite; when behaviour
//! changes, the suite changes first.
//!
//! All lease and schedule arithmetic happens on the store's clock, never a node's.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod origin;
mod params;
mod schedule_row;
mod store;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::StoreError;
pub use origin::StoreOrigin;
pub use params::*;
pub use schedule_row::{FireRecord, ScheduleCas, ScheduleChange, ScheduleRow, TakeBack};
pub use store::{SharedStore, Store};
