//! What enqueues a definition's jobs besides an HTTP enqueue, its schedule and an
//! on-demand run.

pub mod hook_signature;
pub mod watch;
