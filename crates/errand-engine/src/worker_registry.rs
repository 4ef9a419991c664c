//! Consumer liveness, gathered in memory: every claim notes its worker here, and a
//! maintenance service writes what was noted in one batch every few seconds, so a claim
//! costs no extra write.

use std::collections::HashMap;
use std::sync::Mutex;

use errand_core::worker::WorkerSeen;
use errand_core::{JobKind, Millis, NodeId, QueueName};

/// What this node saw of workers since the last flush, by worker name.
#[derive(Debug, Default)]
pub(crate) struct WorkerRegistry {
    seen: Mutex<HashMap<String, WorkerSeen>>,
}

impl WorkerRegistry {
    /// Notes a claim by `worker` on `queue` for `kinds` (empty: any) at `now`. The queues a
    /// worker asked for since the last flush accumulate; its kinds are its latest claim's.
    pub(crate) fn note(
        &self,
        worker: &str,
        node: NodeId,
        queue: &QueueName,
        kinds: &[JobKind],
        now: Millis,
    ) {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let entry = seen
            .entry(worker.to_string())
            .or_insert_with(|| WorkerSeen {
                name: worker.to_string(),
                node,
                queues: Vec::new(),
                kinds: Vec::new(),
                last_claim_at: now,
            });
        entry.node = node;
        entry.last_claim_at = entry.last_claim_at.max(now);
        if !entry.queues.iter().any(|q| q == queue.as_str()) {
            entry.queues.push(queue.as_str().to_string());
        }
        entry.kinds = kinds.iter().map(|k| k.as_str().to_string()).collect();
    }

    /// Takes everything noted since the last call.
    pub(crate) fn take(&self) -> Vec<WorkerSeen> {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::take(&mut *seen).into_values().collect()
    }

    /// Puts back what a failed flush took, keeping anything noted meanwhile (it is newer).
    pub(crate) fn restore(&self, batch: Vec<WorkerSeen>) {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        for w in batch {
            seen.entry(w.name.clone()).or_insert(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_accumulate_queues_and_keep_the_latest_time() {
        let r = WorkerRegistry::default();
        let node = NodeId::new();
        let a = QueueName::parse("a").expect("queue");
        let b = QueueName::parse("b").expect("queue");
        r.note("w", node, &a, &[], 10);
        r.note("w", node, &b, &[], 5);
        r.note("w", node, &a, &[], 20);
        let taken = r.take();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].queues, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(taken[0].last_claim_at, 20);
        assert!(r.take().is_empty());
        r.restore(taken);
        assert_eq!(r.take().len(), 1);
    }
}
