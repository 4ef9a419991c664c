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
    /// CPU time spent during the scenario, where known.
    pub cpu: CpuSpent,
}

/// CPU time spent during one scenario, by whom: the servers alone, the benchmark's own
/// process (the load it generates shares the machine's cores), and the whole machine
/// (which also holds PostgreSQL when the servers use it). Each is `None` where `/proc`
/// cannot tell or the scenario did not measure it.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuSpent {
    /// The errand servers' processes.
    pub server: Option<Duration>,
    /// This benchmark's process, or for a measurement made on one thread of it (the
    /// floor's disk commits), that thread.
    pub bench: Option<Duration>,
    /// Every process on the machine, kernel work for them included: anything else running
    /// there (another job on a shared host, inside a container the whole host) counts too.
    pub machine: Option<Duration>,
}

/// A histogram from 1 µs to 60 s with 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

impl Figures {
    /// Prints one line: throughput and, when measured, p50/p99/max and CPU, per job.
    pub fn print(&self, name: &str) {
        self.print_per(name, "job");
    }

    /// Prints one line as [`print`](Self::print) does, counting `unit`s (a request, a
    /// commit, a statement) instead of jobs.
    pub fn print_per(&self, name: &str, unit: &str) {
        let rate = self.jobs as f64 / self.elapsed.as_secs_f64().max(1e-9);
        let mut line = format!(
            "{name:<40} {:>10.0} {unit}s/s  ({} {unit}s in {:.2}s)",
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
        let per_job = |cpu: Duration| cpu.as_secs_f64() * 1e6 / (self.jobs.max(1) as f64);
        if let Some(cpu) = self.cpu.server {
            line.push_str(&format!("  server CPU {:.0} µs/{unit}", per_job(cpu)));
        }
        if let Some(cpu) = self.cpu.bench {
            line.push_str(&format!("  bench CPU {:.0} µs/{unit}", per_job(cpu)));
        }
        if let Some(cpu) = self.cpu.machine {
            line.push_str(&format!("  machine CPU {:.0} µs/{unit}", per_job(cpu)));
        }
        println!("{line}");
    }
}
