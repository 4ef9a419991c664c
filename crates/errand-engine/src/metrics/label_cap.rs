//! Bounded label values: the first distinct values seen keep their own name, later ones
//! share [`OVERFLOW_LABEL`], so a client that invents a queue or kind per job cannot grow
//! the scrape (and Prometheus's series) without bound.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The label value every name past the cap is counted under.
pub const OVERFLOW_LABEL: &str = "__other__";

/// Remembers up to `cap` distinct values, first come first kept, for the life of the
/// process. A value once kept stays kept, so its series never moves to [`OVERFLOW_LABEL`]
/// halfway through a process's life.
#[derive(Debug)]
pub(crate) struct LabelCap {
    cap: usize,
    kept: Mutex<HashSet<Arc<str>>>,
    overflow: Arc<str>,
}

impl LabelCap {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            kept: Mutex::new(HashSet::new()),
            overflow: Arc::from(OVERFLOW_LABEL),
        }
    }

    /// The label value for `name`: itself while there is room (or once it is kept), else
    /// [`OVERFLOW_LABEL`].
    pub(crate) fn label(&self, name: &str) -> Arc<str> {
        // A poisoned lock only means a panic elsewhere while holding it; the set is intact.
        let mut kept = match self.kept.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(v) = kept.get(name) {
            return v.clone();
        }
        if kept.len() >= self.cap {
            return self.overflow.clone();
        }
        let v: Arc<str> = Arc::from(name);
        kept.insert(v.clone());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_past_the_cap_share_the_overflow_label_and_kept_names_stay_kept() {
        let cap = LabelCap::new(2);
        assert_eq!(&*cap.label("a"), "a");
        assert_eq!(&*cap.label("b"), "b");
        assert_eq!(&*cap.label("c"), OVERFLOW_LABEL);
        assert_eq!(&*cap.label("a"), "a", "a kept name keeps its series");
        assert_eq!(&*cap.label("d"), OVERFLOW_LABEL);
    }
}
