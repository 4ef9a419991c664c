//! One scrape: the node's own counters and histograms, plus what is read at scrape time —
//! this node's identity and the queues' figures from the store.
//!
//! The queue figures come from `Store::queue_list`, which reads per-queue counters the
//! stores keep up to date as jobs change state (and the oldest ready job through an index),
//! never a scan of the jobs: a scrape costs the same with ten jobs or a million.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use errand_core::{JobState, QueueInfo};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Metrics;
use crate::Engine;

/// The `Content-Type` of what [`Engine::metrics_text`] answers: the Prometheus text format,
/// version 0.0.4, which every Prometheus-compatible scraper reads.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

const STATES: [JobState; 7] = [
    JobState::Scheduled,
    JobState::Available,
    JobState::Running,
    JobState::Succeeded,
    JobState::Dead,
    JobState::Cancelled,
    JobState::Blocked,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
    version: &'static str,
    store: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueState {
    queue: Arc<str>,
    state: &'static str,
}

/// A queue's figures, or those of every queue past the label cap together.
#[derive(Default)]
struct QueueFigures {
    counts: [u64; STATES.len()],
    oldest_ms: Option<u64>,
    paused: bool,
    waiting_claims: u64,
}

impl QueueFigures {
    fn add(&mut self, q: &QueueInfo) {
        let c = &q.counts;
        let counts = [
            c.scheduled,
            c.available,
            c.running,
            c.succeeded,
            c.dead,
            c.cancelled,
            c.blocked,
        ];
        for (sum, n) in self.counts.iter_mut().zip(counts) {
            *sum += n;
        }
        self.oldest_ms = self.oldest_ms.max(q.oldest_available_age_ms);
        self.paused |= q.paused;
        self.waiting_claims += u64::from(q.waiting_claims);
    }
}

impl Metrics {
    /// The gauges read at scrape time, in a registry of their own made for this scrape.
    fn scrape_registry(&self, engine: &Engine, queues: Option<&[QueueInfo]>) -> Registry {
        let mut r = Registry::default();
        let node: Family<NodeLabels, Gauge> = Family::default();
        let about = engine.about();
        node.get_or_create(&NodeLabels {
            node: engine.node_id().to_string(),
            version: env!("CARGO_PKG_VERSION"),
            store: about.map(|a| a.store.kind.clone()).unwrap_or_default(),
        })
        .set(1);
        r.register(
            "errand_node_info",
            "This node: its id (new at every start), version and store kind; always 1",
            node,
        );
        // One series per role rather than a list in one label: `role="worker"` selects the
        // nodes that run jobs without a regular expression.
        let roles: Family<RoleLabel, Gauge> = Family::default();
        for role in about.map(|a| a.roles.as_slice()).unwrap_or_default() {
            roles
                .get_or_create(&RoleLabel { role: role.clone() })
                .set(1);
        }
        r.register(
            "errand_node_role",
            "The roles of this node (api, scheduler, worker), one series each; always 1",
            roles,
        );
        let ok: Gauge = Gauge::default();
        ok.set(i64::from(queues.is_some()));
        r.register(
            "errand_queue_stats_ok",
            "1 when this scrape read the queue figures from the store; 0 when the read failed and the errand_queue_* gauges are missing",
            ok,
        );
        let Some(queues) = queues else {
            return r;
        };
        // Past the cap, queues are summed under the overflow label: their jobs added up,
        // the oldest age the oldest of them, paused when any is. Which queues keep their
        // name is decided from the store's list, the first QUEUE_LABEL_CAP by name, not by
        // what this node happened to see first: every node reports these same figures, and
        // `max by (queue)` over nodes is only right when they all name the same queues.
        let mut names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
        names.sort_unstable();
        names.truncate(super::QUEUE_LABEL_CAP);
        let overflow: Arc<str> = Arc::from(super::OVERFLOW_LABEL);
        let mut figures: BTreeMap<Arc<str>, QueueFigures> = BTreeMap::new();
        for q in queues {
            let name = q.name.as_str();
            let label = if names.binary_search(&name).is_ok() {
                Arc::from(name)
            } else {
                overflow.clone()
            };
            figures.entry(label).or_default().add(q);
        }
        let jobs: Family<QueueState, Gauge> = Family::default();
        let oldest: Family<QueueLabel, Gauge<f64, AtomicU64>> = Family::default();
        let paused: Family<QueueLabel, Gauge> = Family::default();
        let waiting: Family<QueueLabel, Gauge> = Family::default();
        for (queue, f) in figures {
            for (state, n) in STATES.iter().zip(f.counts) {
                jobs.get_or_create(&QueueState {
                    queue: queue.clone(),
                    state: state.as_str(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            let label = QueueLabel { queue };
            oldest
                .get_or_create(&label)
                .set(f.oldest_ms.unwrap_or(0) as f64 / 1000.0);
            paused.get_or_create(&label).set(i64::from(f.paused));
            waiting
                .get_or_create(&label)
                .set(i64::try_from(f.waiting_claims).unwrap_or(i64::MAX));
        }
        r.register(
            "errand_queue_jobs",
            "Jobs in the store per queue and state (the same on every node: aggregate with max, not sum)",
            jobs,
        );
        r.register(
            "errand_queue_oldest_available_age_seconds",
            "Age of the queue's oldest job ready to run, 0 when none is (the same on every node)",
            oldest,
        );
        r.register(
            "errand_queue_paused",
            "1 when the queue is paused (the same on every node)",
            paused,
        );
        r.register(
            "errand_queue_waiting_claims",
            "Claims parked on this node waiting for the queue's work: idle workers",
            waiting,
        );
        r
    }
}

impl Engine {
    /// This node's metrics in the Prometheus text format ([`CONTENT_TYPE`]): its counters
    /// and histograms, its identity, and the queues' figures read from the store now. When
    /// the store cannot be read, the answer still carries everything else, with
    /// `errand_queue_stats_ok 0`.
    ///
    /// # Errors
    /// Only what writing to a `String` can return, which is nothing in practice.
    pub async fn metrics_text(&self) -> Result<String, fmt::Error> {
        let queues = match self.queue_list().await {
            Ok(q) => Some(q),
            Err(e) => {
                tracing::debug!(error = %e, "metrics: queue figures unavailable");
                None
            }
        };
        let scrape = self.metrics.scrape_registry(self, queues.as_deref());
        let mut out = String::with_capacity(64 * 1024);
        prometheus_text::encode(&mut out, &self.metrics.registry)?;
        prometheus_text::encode(&mut out, &scrape)?;
        Ok(out)
    }
}
