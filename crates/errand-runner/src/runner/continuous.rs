//! Continuous definitions: one instance per node (or one in the cluster for a singleton,
//! held by a lease another node takes over when its holder dies), restarted with backoff
//! when it exits, marked failed after too many restarts within the window, and visible to
//! every node through the instance records.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use errand_core::instance::{InstanceRecord, InstanceState};
use errand_core::{NewLogLine, NodeId, RetryPolicy, RunReport};
use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::definition::Definition;
use crate::host::{HostError, JobHost};
use crate::process::{self, RunEvent, RunSpec, StopReason};

use super::config::RunnerConfig;

/// What continuous instances need from the store besides the job host: their records, their
/// log lines (owned by the instance, not by a job) and the stop/start switches.
#[async_trait::async_trait]
pub trait InstanceHost: Send + Sync + 'static {
    /// Records (or refreshes) an instance.
    async fn instance_put(&self, record: InstanceRecord) -> Result<(), HostError>;
    /// Forgets an instance (stopped for good: removed definition, node shutting down).
    async fn instance_delete(&self, node: NodeId, instance: uuid::Uuid) -> Result<(), HostError>;
    /// Stores lines an instance printed; `restart` counts from 1.
    async fn instance_logs(
        &self,
        instance: uuid::Uuid,
        restart: u32,
        lines: Vec<NewLogLine>,
    ) -> Result<(), HostError>;
    /// Whether the definition is switched off (`POST /v1/definitions/{name}/stop`).
    async fn stopped(&self, definition: &str) -> Result<bool, HostError>;
}

/// What one node's supervisors share.
pub(crate) struct Supervision {
    pub(crate) host: Arc<dyn JobHost>,
    pub(crate) instances: Arc<dyn InstanceHost>,
    pub(crate) config: Arc<RunnerConfig>,
    pub(crate) node: NodeId,
    /// Names of definitions someone asked to start: a failed instance starts over.
    pub(crate) started: broadcast::Sender<String>,
    pub(crate) shutdown: CancellationToken,
}

/// How often the switch is read and the record refreshed.
const SWITCH_POLL: Duration = Duration::from_secs(1);
const RECORD_REFRESH: Duration = Duration::from_secs(15);
/// An instance that ran this long before exiting restarts without backoff build-up.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// The lease a singleton continuous definition holds while its instance runs.
pub(crate) fn lease_name(def: &Definition) -> String {
    format!("continuous:{}", def.name)
}

/// Supervises one continuous definition on this node until `stop` (the definition changed
/// or went) or shutdown.
pub(crate) async fn supervise(
    sup: Arc<Supervision>,
    def: Arc<Definition>,
    stop: CancellationToken,
) {
    let instance = uuid::Uuid::now_v7();
    let mut started = sup.started.subscribe();
    let mut rec = InstanceRecord {
        definition: def.name.clone(),
        node: sup.node,
        instance,
        pid: None,
        state: InstanceState::Starting,
        since: Timestamp::now(),
        restarts: 0,
        last_exit: None,
        last_exit_at: None,
        updated_at: Timestamp::now(),
    };
    let mut recent: VecDeque<Instant> = VecDeque::new();
    let mut failures_in_row: u32 = 0;
    let lease = lease_name(&def);
    // This supervisor's own name as a lease holder.
    let holder = format!("{}:{instance}", sup.config.worker);
    'life: loop {
        if stop.is_cancelled() || sup.shutdown.is_cancelled() {
            break;
        }
        // Switched off: wait to be switched on.
        if switched_off(&sup, &def.name, rec.state == InstanceState::Stopped).await {
            // Written when it becomes stopped, then refreshed now and then (not every poll).
            if rec.state != InstanceState::Stopped
                || Timestamp::now()
                    .duration_since(rec.updated_at)
                    .unsigned_abs()
                    >= RECORD_REFRESH
            {
                set_state(&sup, &mut rec, InstanceState::Stopped, None).await;
            }
            if wait_or_end(&sup, &stop, SWITCH_POLL).await {
                break;
            }
            continue;
        }
        if def.singleton {
            match sup
                .host
                .lease_acquire(&lease, &holder, sup.config.singleton_lease)
                .await
            {
                Ok(true) => {}
                Ok(false) | Err(_) => {
                    if wait_or_end(&sup, &stop, sup.config.singleton_lease / 4).await {
                        break;
                    }
                    continue;
                }
            }
        }
        let (end, report) = run_once(&sup, &def, &mut rec, &stop, (&lease, &holder)).await;
        let now = Instant::now();
        match end {
            Ended::Stopped => {
                if def.singleton {
                    let _ = sup.host.lease_release(&lease, &holder).await;
                }
                continue 'life;
            }
            Ended::LostLease => continue 'life,
            Ended::CouldNotStart(why) => {
                tracing::error!(definition = %def.name, %why, "continuous instance could not start");
            }
            Ended::Exited(ran_for) => {
                if ran_for >= HEALTHY_RUN {
                    failures_in_row = 0;
                }
            }
        }
        if def.singleton {
            let _ = sup.host.lease_release(&lease, &holder).await;
        }
        rec.last_exit = report;
        rec.last_exit_at = Some(Timestamp::now());
        rec.restarts += 1;
        failures_in_row += 1;
        recent.push_back(now);
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > def.restart.window)
        {
            recent.pop_front();
        }
        if recent.len() as u32 > def.restart.max_restarts {
            tracing::error!(
                definition = %def.name,
                restarts = recent.len(),
                window = ?def.restart.window,
                "continuous instance restarted too often; marked failed until started again"
            );
            set_state(&sup, &mut rec, InstanceState::Failed, None).await;
            // Failed until someone starts the definition (or it changes, or errand stops).
            loop {
                tokio::select! {
                    name = started.recv() => match name {
                        Ok(n) if n == def.name => break,
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break 'life,
                    },
                    _ = stop.cancelled() => break 'life,
                    _ = sup.shutdown.cancelled() => break 'life,
                    _ = tokio::time::sleep(RECORD_REFRESH) => refresh(&sup, &mut rec).await,
                }
            }
            recent.clear();
            failures_in_row = 0;
            continue;
        }
        let delay = RetryPolicy {
            base: def.restart.backoff.base,
            max: def.restart.backoff.max,
            jitter: 0.1,
        }
        .delay(failures_in_row);
        set_state(&sup, &mut rec, InstanceState::Backoff, None).await;
        // A long backoff still refreshes the record, or the cleaner would take it for a
        // dead node's.
        let until = Instant::now() + delay;
        let mut ended = false;
        while Instant::now() < until {
            if wait_or_end(
                &sup,
                &stop,
                until
                    .saturating_duration_since(Instant::now())
                    .min(RECORD_REFRESH),
            )
            .await
            {
                ended = true;
                break;
            }
            if Instant::now() < until {
                refresh(&sup, &mut rec).await;
            }
        }
        if ended {
            break;
        }
    }
    if let Err(e) = sup.instances.instance_delete(sup.node, instance).await {
        tracing::debug!(definition = %def.name, error = %e, "forgetting a continuous instance");
    }
}

/// How one process of an instance ended.
enum Ended {
    /// It exited (or was killed by something else) after running this long.
    Exited(Duration),
    /// The supervisor stopped it on purpose.
    Stopped,
    /// A singleton's lease went to another node.
    LostLease,
    /// It did not start.
    CouldNotStart(String),
}

/// Starts the process once and follows it to its end.
async fn run_once(
    sup: &Supervision,
    def: &Definition,
    rec: &mut InstanceRecord,
    stop: &CancellationToken,
    (lease, holder): (&str, &str),
) -> (Ended, Option<RunReport>) {
    let restart = rec.restarts + 1;
    let mut env = super::env::definition_env(&sup.config, def);
    env.insert("ERRAND_INSTANCE_ID".into(), rec.instance.to_string());
    env.insert("ERRAND_RESTARTS".into(), rec.restarts.to_string());
    env.insert("ERRAND_NODE_ID".into(), sup.node.to_string());
    let spec = RunSpec {
        program: def.entry.program.clone(),
        args: def.entry.args.clone(),
        working_dir: def.working_dir.clone(),
        env: env.into_iter().collect(),
        stdin: Vec::new(),
        limits: def.limits,
        user: def.user.clone(),
        timeout: None,
        stopping_wait_time: def.stopping_wait_time,
        limits_helper: sup.config.limits_helper.clone(),
        max_line_bytes: sup.config.max_line_bytes,
    };
    let (tx, mut events) = mpsc::channel(1024);
    let started = match process::start(spec, tx).await {
        Ok(p) => p,
        Err(e) => return (Ended::CouldNotStart(e.to_string()), None),
    };
    let began = Instant::now();
    rec.pid = Some(started.pid());
    set_state(sup, rec, InstanceState::Running, rec.pid).await;
    let stopper = started.stopper();
    let waiting = started.wait();
    tokio::pin!(waiting);
    let redactor =
        errand_core::secrets::Redactor::new(super::env::secret_env_values(&sup.config, def));
    let mut lines: Vec<NewLogLine> = Vec::new();
    let mut flush = tokio::time::interval(sup.config.log_flush_interval);
    let mut poll = tokio::time::interval(SWITCH_POLL);
    let mut renew = tokio::time::interval(sup.config.singleton_lease / 3);
    let mut refresh_at = Instant::now() + RECORD_REFRESH;
    let mut renewed = Instant::now();
    let mut why: Option<Ended> = None;
    let outcome = loop {
        tokio::select! {
            outcome = &mut waiting => break outcome,
            event = events.recv() => match event {
                Some(RunEvent::Log(line)) => {
                    lines.push(redacted(&redactor, line));
                    if lines.len() >= sup.config.log_flush_lines {
                        ship(sup, rec.instance, restart, &mut lines).await;
                    }
                }
                Some(RunEvent::Checkpoint { saved, .. }) => { let _ = saved.send(false); }
                Some(_) => {}
                None => break waiting.await,
            },
            _ = flush.tick() => ship(sup, rec.instance, restart, &mut lines).await,
            _ = poll.tick(), if why.is_none() => {
                if switched_off(sup, &def.name, false).await {
                    why = Some(Ended::Stopped);
                    stopper.stop(StopReason::Removed);
                }
                if Instant::now() >= refresh_at {
                    refresh_at = Instant::now() + RECORD_REFRESH;
                    refresh(sup, rec).await;
                }
            }
            _ = renew.tick(), if def.singleton && why.is_none() => {
                match sup.host.lease_acquire(lease, holder, sup.config.singleton_lease).await {
                    Ok(true) => renewed = Instant::now(),
                    Ok(false) => {
                        tracing::warn!(definition = %def.name, "singleton lease went to another node; stopping");
                        why = Some(Ended::LostLease);
                        stopper.stop(StopReason::LeaseLost);
                    }
                    Err(e) => {
                        tracing::warn!(definition = %def.name, error = %e, "renewing the singleton lease failed");
                        if renewed.elapsed() >= sup.config.singleton_lease {
                            tracing::error!(definition = %def.name, "no renewal for a whole lease; stopping");
                            why = Some(Ended::LostLease);
                            stopper.stop(StopReason::LeaseLost);
                        }
                    }
                }
            }
            _ = stop.cancelled(), if why.is_none() => {
                why = Some(Ended::Stopped);
                stopper.stop(StopReason::Removed);
            }
            _ = sup.shutdown.cancelled(), if why.is_none() => {
                why = Some(Ended::Stopped);
                stopper.stop(StopReason::Shutdown);
            }
        }
    };
    while let Some(event) = events.recv().await {
        if let RunEvent::Log(line) = event {
            lines.push(redacted(&redactor, line));
        }
    }
    ship(sup, rec.instance, restart, &mut lines).await;
    rec.pid = None;
    let report = Some(outcome.report);
    match why {
        Some(Ended::Stopped) => {
            rec.last_exit = report.clone();
            rec.last_exit_at = Some(Timestamp::now());
            set_state(sup, rec, InstanceState::Stopped, None).await;
            (Ended::Stopped, report)
        }
        Some(other) => (other, report),
        None => (Ended::Exited(began.elapsed()), report),
    }
}

async fn ship(sup: &Supervision, instance: uuid::Uuid, restart: u32, lines: &mut Vec<NewLogLine>) {
    if lines.is_empty() {
        return;
    }
    let batch = std::mem::take(lines);
    if let Err(e) = sup.instances.instance_logs(instance, restart, batch).await {
        tracing::warn!(%instance, error = %e, "log lines of a continuous instance given up");
    }
}

async fn set_state(
    sup: &Supervision,
    rec: &mut InstanceRecord,
    state: InstanceState,
    pid: Option<u32>,
) {
    if rec.state != state {
        rec.since = Timestamp::now();
    }
    rec.state = state;
    rec.pid = pid;
    refresh(sup, rec).await;
}

async fn refresh(sup: &Supervision, rec: &mut InstanceRecord) {
    rec.updated_at = Timestamp::now();
    if let Err(e) = sup.instances.instance_put(rec.clone()).await {
        tracing::warn!(definition = %rec.definition, error = %e, "recording a continuous instance failed");
    }
}

/// Whether the definition is switched off; when the store cannot tell, what was known
/// (`known`) holds, so an outage neither starts a stopped definition nor stops a running one.
async fn switched_off(sup: &Supervision, definition: &str, known: bool) -> bool {
    match sup.instances.stopped(definition).await {
        Ok(stopped) => stopped,
        Err(e) => {
            tracing::warn!(%definition, error = %e, "cannot read the definition's switch; keeping its state");
            known
        }
    }
}

/// Waits `d`; `true` when supervision should end instead.
async fn wait_or_end(sup: &Supervision, stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.cancelled() => true,
        _ = sup.shutdown.cancelled() => true,
    }
}

/// `line` with the values of the definition's `secret_env` replaced by `***`.
fn redacted(redactor: &errand_core::secrets::Redactor, mut line: NewLogLine) -> NewLogLine {
    if !redactor.is_empty() {
        line.line = redactor.redact(&line.line);
    }
    line
}
