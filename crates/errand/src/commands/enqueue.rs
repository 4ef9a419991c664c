//! `errand enqueue`.

use std::io::Read;
use std::time::Duration;

use anyhow::Context;
use errand_api::EnqueueRequest;
use errand_client::Client;
use errand_core::duration::FlexDuration;

use crate::cli::EnqueueArgs;
use crate::commands::jobs;
use crate::exit::usage;

fn payload(raw: &str) -> anyhow::Result<serde_json::Value> {
    let text = if raw == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the payload from stdin")?;
        s
    } else if let Some(path) = raw.strip_prefix('@') {
        std::fs::read_to_string(path)
            .map_err(|e| usage(format!("--payload @{path}: cannot read it: {e}")))?
    } else {
        raw.to_string()
    };
    serde_json::from_str(&text).map_err(|e| usage(format!("--payload is not valid JSON: {e}")))
}

fn flex(field: &str, raw: &Option<String>) -> anyhow::Result<Option<FlexDuration>> {
    raw.as_deref()
        .map(|d| crate::exit::duration(field, d).map(FlexDuration))
        .transpose()
}

/// The request the flags describe; `kind` is empty when KIND is absent (`--file` lines
/// bring their own).
pub fn request(args: &EnqueueArgs) -> anyhow::Result<EnqueueRequest> {
    Ok(EnqueueRequest {
        secrets: Default::default(),
        reply_to: args.reply_to.clone(),
        correlation_id: args.correlation_id.clone(),
        callback_url: args.callback_url.clone(),
        kind: args.kind.clone().unwrap_or_default(),
        queue: args.queue.clone(),
        payload: args.payload.as_deref().map(payload).transpose()?,
        priority: args.priority,
        run_at: args
            .run_at
            .as_deref()
            .map(|t| {
                t.parse::<jiff::Timestamp>().map_err(|e| {
                    usage(format!(
                        "--run-at {t}: not an RFC 3339 time, e.g. 2026-12-02T12:00:00Z ({e})"
                    ))
                })
            })
            .transpose()?,
        delay: flex("delay", &args.delay)?,
        max_attempts: args.max_attempts,
        timeout: flex("timeout", &args.timeout)?,
        tags: args.tags.clone(),
        idempotency_key: args.idempotency_key.clone(),
        lock_key: args.ordering.lock_key.clone(),
        concurrency_key: args.ordering.concurrency_key.clone(),
        concurrency_limit: args.ordering.concurrency_limit,
        session_key: args.ordering.session_key.clone(),
        session_on_dead: args
            .ordering
            .session_on_dead
            .as_deref()
            .map(|s| {
                errand_core::ordering::SessionOnDead::from_stored(s)
                    .map_err(|e| usage(format!("--session-on-dead: {e}")))
            })
            .transpose()?,
        fairness_key: args.ordering.fairness_key.clone(),
        fairness_weight: args.ordering.fairness_weight,
        rate_key: args.ordering.rate_key.clone(),
        after: args
            .after
            .iter()
            .map(|id| {
                id.parse::<errand_core::JobId>()
                    .map_err(|e| usage(format!("--after {id}: {e}")))
            })
            .collect::<anyhow::Result<_>>()?,
        after_any_end: args.after_any_end,
    })
}

/// Enqueues one job and prints it (or waits for it).
pub async fn run(client: &Client, args: EnqueueArgs, json: bool) -> anyhow::Result<()> {
    let req = request(&args)?;
    let job = client.enqueue(&req).await?;
    if args.wait {
        // As `errand jobs wait`: a script's `... --wait && next` stops on failure.
        return jobs::wait_and_print(client, job.id, Duration::from_secs(24 * 3600), json).await;
    }
    if json {
        crate::output::json(&job)
    } else {
        crate::outln!("{}  {}  {}  {}", job.id, job.kind, job.queue, job.state);
        Ok(())
    }
}
