//! Whether another node listens for this schema's wake-ups, so that a node alone sends none.
//!
//! A wake-up is a `NOTIFY` in its own short transaction, and every listener, the sender's
//! own included, is woken for it: on one node alone that was a third of the server's CPU
//! per enqueue, all of it spent telling nobody. Nodes greet each other on the wake-up
//! channel instead: each says hello when its `LISTEN` starts and every [`HELLO_EVERY`]
//! after, and answers a hello from a node it had not heard from. A node sends wake-ups
//! while it has heard another node within [`WINDOW`], and whenever its own `LISTEN`
//! connection is down (it cannot hear, so it assumes the others are there). A node that
//! joins is greeted back within a round trip; until then (and whenever a wake-up is
//! missed) waiting claims find their jobs by re-checking the store, at least once a second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a listening node says hello.
pub(crate) const HELLO_EVERY: Duration = Duration::from_secs(5);

/// How long a node counts as present after it was last heard: three hellos, so that one
/// lost or late greeting does not stop wake-ups.
pub(crate) const WINDOW: Duration = Duration::from_secs(15);

/// The other nodes this node has heard on the wake-up channel.
pub(crate) struct Peers {
    /// Whether this node's `LISTEN` connection is up. While it is not, this node cannot
    /// hear anyone, and counts the others as present.
    listening: AtomicBool,
    started: Instant,
    /// When any other node was last heard, in milliseconds after `started` plus one (zero:
    /// never).
    last_heard: AtomicU64,
    /// When each other node was last heard.
    by_sender: Mutex<HashMap<String, Instant>>,
}

impl Default for Peers {
    fn default() -> Self {
        Self {
            listening: AtomicBool::new(false),
            started: Instant::now(),
            last_heard: AtomicU64::new(0),
            by_sender: Mutex::new(HashMap::new()),
        }
    }
}

impl Peers {
    /// Notes a message from another node, `sender`, heard at `now`. True when that node
    /// was not heard within [`WINDOW`] before: it is new here, and should be greeted back.
    pub(crate) fn heard(&self, sender: &str, now: Instant) -> bool {
        let stamp = self.stamp(now);
        self.last_heard.fetch_max(stamp, Ordering::AcqRel);
        let Ok(mut by_sender) = self.by_sender.lock() else {
            return true;
        };
        by_sender.retain(|_, at| now.saturating_duration_since(*at) < WINDOW);
        by_sender.insert(sender.to_string(), now).is_none()
    }

    /// Notes whether this node's `LISTEN` connection is up; whether it was before.
    pub(crate) fn set_listening(&self, up: bool) -> bool {
        self.listening.swap(up, Ordering::AcqRel)
    }

    /// Whether another node may be listening: one was heard within [`WINDOW`] before
    /// `now`, or this node cannot hear right now (its own `LISTEN` connection is down), so
    /// that a node deaf for a while keeps waking the others.
    pub(crate) fn present(&self, now: Instant) -> bool {
        if !self.listening.load(Ordering::Acquire) {
            return true;
        }
        let last = self.last_heard.load(Ordering::Acquire);
        last != 0 && self.stamp(now).saturating_sub(last) < millis(WINDOW)
    }

    fn stamp(&self, at: Instant) -> u64 {
        millis(at.saturating_duration_since(self.started)) + 1
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Peers of a node whose listener is up.
    fn listening() -> Peers {
        let peers = Peers::default();
        peers.set_listening(true);
        peers
    }

    #[test]
    fn a_node_alone_has_no_peers() {
        assert!(!listening().present(Instant::now()));
    }

    #[test]
    fn a_node_that_cannot_hear_counts_the_others_as_present() {
        let peers = Peers::default();
        assert!(peers.present(Instant::now()), "before its listener is up");
        peers.set_listening(true);
        assert!(!peers.present(Instant::now()));
        peers.set_listening(false);
        assert!(peers.present(Instant::now()), "while its listener is down");
    }

    #[test]
    fn a_node_heard_counts_for_the_window_and_no_longer() {
        let peers = listening();
        let t0 = Instant::now();
        assert!(peers.heard("b", t0), "a node heard first is new");
        assert!(peers.present(t0));
        assert!(
            !peers.heard("b", t0 + Duration::from_secs(1)),
            "heard again within the window: not new"
        );
        let late = t0 + Duration::from_secs(1) + WINDOW;
        assert!(!peers.present(late), "silent for a whole window: gone");
        assert!(
            peers.heard("b", late),
            "heard after a silent window: new again"
        );
        assert!(peers.present(late));
    }

    #[test]
    fn each_node_is_new_once() {
        let peers = listening();
        let t0 = Instant::now();
        assert!(peers.heard("b", t0));
        assert!(peers.heard("c", t0), "another node is new too");
        assert!(!peers.heard("c", t0));
    }
}
