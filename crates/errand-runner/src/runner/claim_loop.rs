//! Feeds one triggered definition: claims jobs of its kind from its queue while it has
//! free slots (its per-node `concurrency`), and starts a run for each. A singleton
//! definition claims only while it holds its cluster lease, one job at a time.

use std::sync::Arc;
use std::time::Duration;

use errand_core::JobKind;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::definition::Definition;
use crate::host::HostError;

use super::job_run::{self, RunContext};

/// How long a saturated loop waits for more slots to free before it claims.
const GATHER: Duration = Duration::from_millis(2);

/// Wait after the host failed before claiming again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The lease name a singleton definition holds while it may run.
pub(crate) fn singleton_lease_name(def: &Definition) -> String {
    format!("definition:{}", def.name)
}

/// Claims and runs until `stop` fires; runs it started go on to their end in `runs`.
pub(crate) async fn run(
    ctx: Arc<RunContext>,
    def: Arc<Definition>,
    stop: CancellationToken,
    runs: Arc<tokio::sync::Mutex<JoinSet<()>>>,
) {
    let slots = Arc::new(Semaphore::new(if def.singleton {
        1
    } else {
        def.concurrency.max(1) as usize
    }));
    // A command worker's definition takes every kind of its queue.
    let kinds: Vec<JobKind> = if def.any_kind {
        Vec::new()
    } else {
        vec![def.kind.clone()]
    };
    let lease_name = singleton_lease_name(&def);
    // This loop's own name as a lease holder (a reloaded definition's new loop is another).
    let holder = format!("{}:{}", ctx.config.worker, uuid::Uuid::now_v7());
    let mut holding = false;
    loop {
        if stop.is_cancelled() || ctx.shutdown.is_cancelled() {
            break;
        }
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.cancelled() => break,
            _ = ctx.shutdown.cancelled() => break,
        };
        if def.singleton {
            match ctx
                .host
                .lease_acquire(&lease_name, &holder, ctx.config.singleton_lease)
                .await
            {
                Ok(true) => holding = true,
                Ok(false) => {
                    holding = false;
                    drop(first);
                    if pause(&stop, &ctx, ctx.config.singleton_lease / 4).await {
                        break;
                    }
                    continue;
                }
                Err(HostError::Refused(why)) => {
                    tracing::error!(definition = %def.name, %why, "a singleton definition needs a cluster lease this host cannot give; not running it here");
                    return;
                }
                Err(e) => {
                    tracing::warn!(definition = %def.name, error = %e, "singleton lease unavailable");
                    drop(first);
                    if pause(&stop, &ctx, RETRY_AFTER).await {
                        break;
                    }
                    continue;
                }
            }
        }
        // Every slot was busy until a run just ended: others are about to end too. Gathering
        // them for a moment makes one claim (one store write) serve several runs instead of
        // one each, which is what keeps short runs cheap.
        if slots.available_permits() == 0 && !def.singleton && def.concurrency > 1 {
            tokio::time::sleep(GATHER).await;
        }
        let mut permits = vec![first];
        while let Ok(p) = slots.clone().try_acquire_owned() {
            permits.push(p);
        }
        // A singleton renews its lease at least every third of its life.
        let wait = if def.singleton {
            ctx.config.claim_wait.min(ctx.config.singleton_lease / 3)
        } else {
            ctx.config.claim_wait
        };
        let claimed = tokio::select! {
            c = ctx.host.claim(&def.queue, &kinds, permits.len() as u32, wait) => c,
            _ = stop.cancelled() => break,
            _ = ctx.shutdown.cancelled() => break,
        };
        match claimed {
            Ok(jobs) => {
                for hosted in jobs {
                    let Some(permit) = permits.pop() else {
                        tracing::error!(definition = %def.name, "the host handed out more jobs than asked");
                        break;
                    };
                    let ctx = ctx.clone();
                    let def = def.clone();
                    let lost = CancellationToken::new();
                    let renew = def.singleton.then(|| {
                        lease_renewer(
                            ctx.clone(),
                            lease_name.clone(),
                            holder.clone(),
                            lost.clone(),
                        )
                    });
                    runs.lock().await.spawn(async move {
                        job_run::run(ctx, def, hosted, lost).await;
                        if let Some(renew) = renew {
                            renew.cancel();
                        }
                        drop(permit);
                    });
                }
            }
            Err(HostError::Unavailable(why)) => {
                tracing::warn!(definition = %def.name, %why, "claiming failed; trying again");
                drop(permits);
                if pause(&stop, &ctx, RETRY_AFTER).await {
                    break;
                }
            }
            Err(e) => {
                tracing::error!(definition = %def.name, error = %e, "claiming refused");
                drop(permits);
                if pause(&stop, &ctx, RETRY_AFTER * 5).await {
                    break;
                }
            }
        }
    }
    if holding {
        // Runs still going renew on their own; wait for them before letting go.
        let _ = slots.acquire_many(1).await;
        if let Err(e) = ctx.host.lease_release(&lease_name, &holder).await {
            tracing::debug!(definition = %def.name, error = %e, "releasing the singleton lease");
        }
    }
}

/// Keeps a singleton's lease while its run goes on; cancelled when the run ends. When the
/// lease is lost (another holder has it, or no renewal succeeded for a whole lease) it
/// fires `lost`, which stops the run: another node may start one as the lease runs out.
fn lease_renewer(
    ctx: Arc<RunContext>,
    name: String,
    holder: String,
    lost: CancellationToken,
) -> CancellationToken {
    let done = CancellationToken::new();
    let stop = done.clone();
    tokio::spawn(async move {
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(ctx.config.singleton_lease / 3) => {}
            }
            match ctx
                .host
                .lease_acquire(&name, &holder, ctx.config.singleton_lease)
                .await
            {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = %name, "another node took this singleton's lease; stopping the run");
                    lost.cancel();
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %name, error = %e, "renewing a singleton lease failed");
                    if renewed.elapsed() >= ctx.config.singleton_lease {
                        tracing::error!(lease = %name, "no renewal for a whole lease; stopping the run");
                        lost.cancel();
                        return;
                    }
                }
            }
        }
    });
    done
}

/// Waits `d`; `true` when the loop should end instead.
async fn pause(stop: &CancellationToken, ctx: &RunContext, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.cancelled() => true,
        _ = ctx.shutdown.cancelled() => true,
    }
}
