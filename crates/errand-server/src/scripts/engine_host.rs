//! The script host's seam implemented over the engine, for runs inside `errand serve`:
//! claims, heartbeats, settlements and log lines go straight to the engine, and a cancel
//! reaches a run the moment the engine publishes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use errand_core::instance::InstanceRecord;
use errand_core::{JobId, JobKind, JobState, LeaseToken, NewLogLine, NodeId, Progress, QueueName};
use errand_engine::Engine;
use errand_runner::host::{
    HostError, HostedJob, JobHost, RunSettlement, RunVerdict, SettledAndClaimed,
};
use errand_runner::runner::InstanceHost;
use errand_store::{JobHeartbeatParams, JobLogAppendParams, Settlement, StoreError};
use serde_json::Value;
use tokio::sync::Notify;

/// How long a run's lease lasts between heartbeats (the runner beats every 10 s).
const LEASE: Duration = Duration::from_secs(30);

/// Per-attempt log bounds.
#[derive(Debug, Clone, Copy)]
pub struct LogBounds {
    /// Lines kept from an attempt's start.
    pub keep_head: u32,
    /// Lines kept from its end.
    pub keep_tail: u32,
}

impl Default for LogBounds {
    /// 10,000 lines per attempt: the first and last 5,000.
    fn default() -> Self {
        Self {
            keep_head: 5_000,
            keep_tail: 5_000,
        }
    }
}

/// [`JobHost`] and [`InstanceHost`] over the engine of this process.
pub struct EngineHost {
    engine: Arc<Engine>,
    worker: String,
    bounds: LogBounds,
    /// Runs waiting to hear of their job's cancellation.
    cancels: Arc<Mutex<HashMap<JobId, Arc<Notify>>>>,
}

impl EngineHost {
    /// A host for this node's runner; starts the task that passes cancellations on.
    pub fn new(engine: Arc<Engine>, bounds: LogBounds) -> Arc<Self> {
        let worker = format!("errand-node:{}", engine.node_id());
        let cancels: Arc<Mutex<HashMap<JobId, Arc<Notify>>>> = Arc::default();
        let mut events = engine.subscribe();
        let watching = cancels.clone();
        let token = engine.shutdown_token();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    e = events.recv() => e,
                    _ = token.cancelled() => return,
                };
                match event {
                    Ok(e) if e.state == JobState::Cancelled => {
                        let notify = watching.lock().ok().and_then(|m| m.get(&e.id).cloned());
                        if let Some(n) = notify {
                            n.notify_one();
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Arc::new(Self {
            engine,
            worker,
            bounds,
            cancels,
        })
    }

    /// The node this host's runs belong to.
    pub fn node(&self) -> NodeId {
        self.engine.node_id()
    }
}

/// The host's reading of a store error.
fn host_error(e: StoreError) -> HostError {
    match e {
        StoreError::LeaseLost { .. } => HostError::LeaseLost,
        StoreError::NotFound { .. } => HostError::NotFound,
        StoreError::Unavailable(why) => HostError::Unavailable(why),
        other => HostError::Refused(other.to_string()),
    }
}

/// Forgets a run's cancellation watch when its future is dropped.
struct CancelWatch<'a> {
    cancels: &'a Mutex<HashMap<JobId, Arc<Notify>>>,
    id: JobId,
}

impl Drop for CancelWatch<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.cancels.lock() {
            m.remove(&self.id);
        }
    }
}

impl EngineHost {
    fn claim_request(
        &self,
        queue: &QueueName,
        kinds: &[JobKind],
        max: u32,
        wait: Duration,
    ) -> errand_engine::ClaimRequest {
        errand_engine::ClaimRequest {
            queue: queue.clone(),
            worker: self.worker.clone(),
            max,
            lease: LEASE,
            kinds: kinds.to_vec(),
            wait,
        }
    }
}

/// Claimed jobs as the runner holds them.
fn hosted(claimed: Vec<errand_store::ClaimedJob>) -> Vec<HostedJob> {
    claimed
        .into_iter()
        .map(|c| HostedJob {
            job: c.job,
            lease_token: c.lease_token,
        })
        .collect()
}

#[async_trait::async_trait]
impl JobHost for EngineHost {
    async fn claim(
        &self,
        queue: &QueueName,
        kinds: &[JobKind],
        max: u32,
        wait: Duration,
    ) -> Result<Vec<HostedJob>, HostError> {
        let claimed = self
            .engine
            .claim(self.claim_request(queue, kinds, max, wait))
            .await
            .map_err(host_error)?;
        Ok(hosted(claimed))
    }

    /// Settles and claims in one engine call (one store transaction).
    async fn settle_and_claim(
        &self,
        settlements: Vec<RunSettlement>,
        queue: &QueueName,
        kinds: &[JobKind],
        max: u32,
        wait: Duration,
    ) -> Result<SettledAndClaimed, HostError> {
        let settlements = settlements.into_iter().map(settlement).collect();
        let (settled, claimed) = self
            .engine
            .settle_and_claim(settlements, self.claim_request(queue, kinds, max, wait))
            .await
            .map_err(host_error)?;
        Ok(SettledAndClaimed {
            settled: settled
                .into_iter()
                .map(|r| r.map(|_| ()).map_err(host_error))
                .collect(),
            claimed: hosted(claimed),
        })
    }

    fn lease(&self) -> Option<Duration> {
        Some(LEASE)
    }

    async fn heartbeat(
        &self,
        id: JobId,
        lease_token: LeaseToken,
        progress: Option<Progress>,
        checkpoint: Option<Value>,
    ) -> Result<(), HostError> {
        self.engine
            .heartbeat(JobHeartbeatParams {
                id,
                lease_token,
                lease: Some(LEASE),
                progress,
                checkpoint,
            })
            .await
            .map(|_| ())
            .map_err(host_error)
    }

    async fn settle(
        &self,
        settlements: Vec<RunSettlement>,
    ) -> Result<Vec<Result<(), HostError>>, HostError> {
        let settlements = settlements.into_iter().map(settlement).collect();
        let out = self
            .engine
            .settle_many(settlements)
            .await
            .map_err(host_error)?;
        Ok(out
            .into_iter()
            .map(|r| r.map(|_| ()).map_err(host_error))
            .collect())
    }

    /// A run of this node whose job was cancelled while it ran still keeps its last lines
    /// (what it printed as it stopped): only this in-process runner, which watched the
    /// attempt start, may write them unfenced; the HTTP route stays fenced.
    async fn append_logs(
        &self,
        id: JobId,
        attempt: u32,
        lease_token: LeaseToken,
        lines: Vec<NewLogLine>,
    ) -> Result<(), HostError> {
        let params = JobLogAppendParams {
            owner: id.0,
            attempt,
            lease_token: Some(lease_token),
            lines,
            keep_head: self.bounds.keep_head,
            keep_tail: self.bounds.keep_tail,
        };
        match self.engine.log_append(params.clone()).await {
            Ok(_) => Ok(()),
            Err(lost @ StoreError::LeaseLost { .. }) => {
                let job = self
                    .engine
                    .job(id, Duration::ZERO)
                    .await
                    .map_err(host_error)?;
                if job.state != JobState::Cancelled || job.attempt != attempt {
                    return Err(host_error(lost));
                }
                self.engine
                    .log_append(JobLogAppendParams {
                        lease_token: None,
                        ..params
                    })
                    .await
                    .map(|_| ())
                    .map_err(host_error)
            }
            Err(e) => Err(host_error(e)),
        }
    }

    /// Uncounted: the job is never made dead by a release. The engine skips a lease that
    /// no longer holds its job; that is said (`LeaseLost`, or `NotFound` for a job that is
    /// gone) rather than reported as given back.
    async fn release(&self, id: JobId, lease_token: LeaseToken) -> Result<(), HostError> {
        let released = self
            .engine
            .release(vec![(id, lease_token)])
            .await
            .map_err(host_error)?;
        if released.iter().any(|job| job.id == id) {
            return Ok(());
        }
        self.engine
            .job(id, Duration::ZERO)
            .await
            .map_err(host_error)?;
        Err(HostError::LeaseLost)
    }

    async fn cancelled(&self, id: JobId) {
        let notify = Arc::new(Notify::new());
        if let Ok(mut m) = self.cancels.lock() {
            m.insert(id, notify.clone());
        }
        let _watch = CancelWatch {
            cancels: &self.cancels,
            id,
        };
        notify.notified().await;
    }

    async fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, HostError> {
        self.engine
            .lease_acquire(name, holder, ttl)
            .await
            .map_err(host_error)
    }

    async fn lease_release(&self, name: &str, holder: &str) -> Result<(), HostError> {
        self.engine
            .lease_release(name, holder)
            .await
            .map_err(host_error)
    }
}

/// The store's settlement for a run's.
fn settlement(s: RunSettlement) -> Settlement {
    match s.verdict {
        RunVerdict::Complete { result } => Settlement::Complete {
            id: s.id,
            lease_token: s.lease_token,
            result,
            report: s.report,
            session_state: Default::default(),
        },
        RunVerdict::Fail {
            error,
            retry_in,
            dead,
        } => Settlement::Fail {
            id: s.id,
            lease_token: s.lease_token,
            error,
            retry_in,
            dead,
            report: s.report,
        },
    }
}

#[async_trait::async_trait]
impl InstanceHost for EngineHost {
    async fn instance_put(&self, record: InstanceRecord) -> Result<(), HostError> {
        self.engine.instance_put(record).await.map_err(host_error)
    }

    async fn instance_delete(&self, node: NodeId, instance: uuid::Uuid) -> Result<(), HostError> {
        self.engine
            .instance_delete(node, instance)
            .await
            .map_err(host_error)
    }

    async fn instance_logs(
        &self,
        instance: uuid::Uuid,
        restart: u32,
        lines: Vec<NewLogLine>,
    ) -> Result<(), HostError> {
        self.engine
            .log_append(JobLogAppendParams {
                owner: instance,
                attempt: restart,
                lease_token: None,
                lines,
                keep_head: self.bounds.keep_head,
                keep_tail: self.bounds.keep_tail,
            })
            .await
            .map(|_| ())
            .map_err(host_error)
    }

    async fn stopped(&self, definition: &str) -> Result<bool, HostError> {
        let switches = self
            .engine
            .definition_switches()
            .await
            .map_err(host_error)?;
        Ok(switches
            .iter()
            .any(|(name, stopped)| name == definition && *stopped))
    }
}
