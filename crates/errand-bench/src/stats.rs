//! Figures of one scenario.

use std::time::Duration;

use hdrhistogram::Histogram;

/// What a scenario measured.
pub struct Figures {
    /// Jobs handled.
    pub jobs: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Per-operation latency in microseconds, when measured.
    pub latency: Option<Histogram<u64>>,
    /// CPU time the server processes spent during the scenario, when known.
    pub server_cpu: Option<Duration>,
}

/// A histogram from 1 µs to 60 s with 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

impl Figures {
    /// Prints one line: throughput and, when measured, p50/p99/max.
    pub fn print(&self, name: &str) {
        let rate = self.jobs as f64 / self.elapsed.as_secs_f64().max(1e-9);
        let mut line = format!(
            "{name:<40} {:>10.0} jobs/s  ({} jobs in {:.2}s)",
            rate,
            self.jobs,
            self.elapsed.as_secs_f64()
        );
        if let Some(h) = &self.latency {
            line.push_str(&format!(
                "  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                h.value_at_quantile(0.50) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
                h.max() as f64 / 1000.0
            ));
        }
        if let Some(cpu) = self.server_cpu {
            line.push_str(&format!(
                "  server CPU {:.0} µs/job",
                cpu.as_secs_f64() * 1e6 / (self.jobs.max(1) as f64)
            ));
        }
        println!("{line}");
    }
}
