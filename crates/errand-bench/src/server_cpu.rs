//! CPU time the server processes, the benchmark itself and the whole machine used, read
//! from `/proc`, so each scenario can say what an operation costs and not only how fast the
//! client saw it go.

use std::time::Duration;

/// Linux reports `utime`/`stime` in `USER_HZ` ticks, which the kernel ABI fixes at 100 per
/// second for `/proc` on every architecture errand runs on.
const USER_HZ: u64 = 100;

/// User plus system CPU time of process `pid` (all its threads), or `None` where `/proc`
/// cannot tell (another OS, the process is gone).
pub fn of_process(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields after its closing parenthesis are fixed.
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the whole line: the 12th and 13th after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// CPU time of this benchmark's own process.
pub fn of_self() -> Option<Duration> {
    of_process(std::process::id())
}

/// CPU time the whole machine has spent busy since boot, all cores together: user, nice,
/// system, irq and softirq time from `/proc/stat` (idle, I/O wait and time the hypervisor
/// stole are not work done here).
pub fn of_machine() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let total = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = total
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal ...
    let busy = [0, 1, 2, 5, 6]
        .iter()
        .map(|i| ticks.get(*i).copied())
        .sum::<Option<u64>>()?;
    Some(Duration::from_millis(busy * 1000 / USER_HZ))
}

/// CPU time (user + system) of the calling thread, to the microsecond: for a measurement
/// the benchmark makes on one thread of its own.
pub fn of_this_thread() -> Option<Duration> {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD).ok()?;
    let us = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    Some(us(usage.user_time()) + us(usage.system_time()))
}

/// Total CPU time of several processes; `None` when any cannot be read.
pub fn of_processes(pids: &[u32]) -> Option<Duration> {
    pids.iter().map(|p| of_process(*p)).sum()
}

/// CPU time (user + system) of the children `pid` has waited for: the runs a server
/// started and reaped, or the processes this benchmark ran itself.
pub fn of_children(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 16 and 17 of the whole line (cutime, cstime).
    let cutime: u64 = fields.get(13)?.parse().ok()?;
    let cstime: u64 = fields.get(14)?.parse().ok()?;
    Some(Duration::from_millis((cutime + cstime) * 1000 / USER_HZ))
}
