//! Bounded label values: the first distinct values seen keep their own name, later ones
//! share [`OVERFLOW_LABEL`], so a client that invents a queue or kind per job cannot grow
//! the scrape (and Prometheus's series) without bound.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The label value every name past the cap is counted under.
pub const OVERFLOW_LABEL: &str = "__other__";

/// Up to `cap` distinct values, first come first kept, for the life of the process. Every
/// job asks twice or more, and after the first few every answer is a hit: a read lock
/// serves those in parallel; only a value seen for the first time takes the write lock.
#[derive(Debug)]
struct Capped<T> {
    cap: usize,
    kept: RwLock<HashSet<T>>,
}

impl<T: Hash + Eq> Capped<T> {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            kept: RwLock::new(HashSet::new()),
        }
    }

    // A poisoned lock only means a panic elsewhere while holding it; the set is intact.
    fn read(&self) -> RwLockReadGuard<'_, HashSet<T>> {
        self.kept.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashSet<T>> {
        self.kept.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Remembers up to `cap` distinct names. A name once kept stays kept, so its series never
/// moves to [`OVERFLOW_LABEL`] halfway through a process's life.
#[derive(Debug)]
pub(crate) struct LabelCap {
    names: Capped<Arc<str>>,
    overflow: Arc<str>,
}

impl LabelCap {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            names: Capped::new(cap),
            overflow: Arc::from(OVERFLOW_LABEL),
        }
    }

    /// The label value for `name`: itself while there is room (or once it is kept), else
    /// [`OVERFLOW_LABEL`].
    pub(crate) fn label(&self, name: &str) -> Arc<str> {
        {
            let kept = self.names.read();
            if let Some(v) = kept.get(name) {
                return v.clone();
            }
            if kept.len() >= self.names.cap {
                return self.overflow.clone();
            }
        }
        // First sight: another thread may have kept it (or filled the set) meanwhile.
        let mut kept = self.names.write();
        if let Some(v) = kept.get(name) {
            return v.clone();
        }
        if kept.len() >= self.names.cap {
            return self.overflow.clone();
        }
        let v: Arc<str> = Arc::from(name);
        kept.insert(v.clone());
        v
    }

    /// The overflow label, shared.
    pub(crate) fn overflow(&self) -> Arc<str> {
        self.overflow.clone()
    }
}

/// Remembers up to `cap` distinct (queue, kind) pairs: 200 queues × 200 kinds would
/// otherwise allow 40,000 series per job counter. A pair past the cap keeps its queue and
/// is counted under kind [`OVERFLOW_LABEL`], so per-queue totals stay exact.
#[derive(Debug)]
pub(crate) struct PairCap {
    pairs: Capped<(Arc<str>, Arc<str>)>,
}

impl PairCap {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            pairs: Capped::new(cap),
        }
    }

    /// Whether the pair keeps its own series: it is kept, or there is room to keep it.
    pub(crate) fn admit(&self, queue: &Arc<str>, kind: &Arc<str>) -> bool {
        let pair = (queue.clone(), kind.clone());
        {
            let kept = self.pairs.read();
            if kept.contains(&pair) {
                return true;
            }
            if kept.len() >= self.pairs.cap {
                return false;
            }
        }
        let mut kept = self.pairs.write();
        if kept.contains(&pair) {
            return true;
        }
        if kept.len() >= self.pairs.cap {
            return false;
        }
        kept.insert(pair);
        true
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

    #[test]
    fn pairs_past_the_cap_are_refused_and_kept_pairs_stay_kept() {
        let cap = PairCap::new(2);
        let (q, a, b, c) = (
            Arc::from("q"),
            Arc::from("a"),
            Arc::from("b"),
            Arc::from("c"),
        );
        assert!(cap.admit(&q, &a));
        assert!(cap.admit(&q, &b));
        assert!(!cap.admit(&q, &c), "a third pair is past the cap");
        assert!(cap.admit(&q, &a), "a kept pair keeps its series");
    }

    #[test]
    fn threads_racing_for_the_last_places_never_keep_more_than_the_cap() {
        let cap = Arc::new(LabelCap::new(50));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let cap = cap.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|i| &*cap.label(&format!("{t}-{i}")) != OVERFLOW_LABEL)
                        .count()
                })
            })
            .collect();
        let kept: usize = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        assert_eq!(kept, 50);
    }
}
