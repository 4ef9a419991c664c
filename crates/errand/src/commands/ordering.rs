//! `errand queues set`, `errand limits ...`, `errand sessions ...`, `errand workers` and
//! `errand jobs explain`, and the flag forms they read (`100/1s`, `1s..1h`, `none`).

use anyhow::Context;
use errand_api::{LimitRequest, SessionListQuery, SessionStateRequest};
use errand_client::Client;
use errand_core::duration::parse;
use errand_core::explain::Explanation;
use errand_core::queue::{Backoff, QueueSettingsPatch};
use errand_core::session::Session;
use errand_core::throttle::{LimitInfo, LimitScope, RateLimit};
use errand_core::JobId;

use crate::cli::{LimitsCommand, QueueSetArgs, SessionsCommand};
use crate::exit::{usage, UsageError};
use crate::output;

/// Reads `100/1s` (100 starts per second) with an optional burst.
///
/// # Errors
/// Not `N/DURATION`.
pub fn rate(text: &str, burst: Option<u32>) -> anyhow::Result<RateLimit> {
    let (n, period) = text.split_once('/').ok_or_else(|| {
        usage(format!(
            "--rate {text}: write it as starts/period, e.g. 100/1s"
        ))
    })?;
    let limit: u32 = n
        .trim()
        .parse()
        .map_err(|_| usage(format!("--rate {text}: `{n}` is not a whole number")))?;
    let period = parse("rate", period).map_err(|e| usage(format!("--rate {text}: {e}")))?;
    Ok(RateLimit {
        limit,
        period_ms: millis(period),
        burst,
    })
}

/// Reads `1s..1h` (base..max).
///
/// # Errors
/// Not `DURATION..DURATION`.
pub fn backoff(text: &str) -> anyhow::Result<Backoff> {
    let (base, max) = text.split_once("..").ok_or_else(|| {
        usage(format!(
            "--backoff {text}: write it as base..max, e.g. 1s..1h"
        ))
    })?;
    let base = parse("backoff", base).map_err(|e| usage(format!("--backoff {text}: {e}")))?;
    let max = parse("backoff", max).map_err(|e| usage(format!("--backoff {text}: {e}")))?;
    Ok(Backoff {
        base_ms: millis(base),
        max_ms: millis(max),
    })
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A flag that sets a value or, as `none`, removes it.
fn or_none<T>(
    raw: Option<&str>,
    read: impl Fn(&str) -> anyhow::Result<T>,
) -> anyhow::Result<Option<Option<T>>> {
    match raw {
        None => Ok(None),
        Some("none") => Ok(Some(None)),
        Some(v) => read(v).map(|v| Some(Some(v))),
    }
}

fn number<T: std::str::FromStr>(flag: &'static str) -> impl Fn(&str) -> anyhow::Result<T> {
    move |v: &str| {
        v.parse()
            .map_err(|_| usage(format!("--{flag} {v}: not a number (or `none`)")))
    }
}

/// The patch `errand queues set` sends.
///
/// # Errors
/// A flag that does not read.
pub fn queue_patch(args: &QueueSetArgs) -> anyhow::Result<QueueSettingsPatch> {
    Ok(QueueSettingsPatch {
        paused: None,
        concurrency: or_none(args.concurrency.as_deref(), number("concurrency"))?,
        rate: or_none(args.rate.as_deref(), |v| rate(v, args.burst))?,
        max_attempts: or_none(args.max_attempts.as_deref(), number("max-attempts"))?,
        priority: or_none(args.priority.as_deref(), number("priority"))?,
        timeout_ms: or_none(args.timeout.as_deref(), |v| {
            crate::exit::duration("timeout", v).map(millis)
        })?,
        backoff: or_none(args.backoff.as_deref(), backoff)?,
    })
}

/// `errand queues set`.
pub async fn queue_set(client: &Client, args: QueueSetArgs, json: bool) -> anyhow::Result<()> {
    let patch = queue_patch(&args)?;
    let info = client.queue_update(&args.queue, &patch).await?;
    if json {
        return output::json(&info);
    }
    crate::outln!("{}: {}", info.name, serde_json::to_string(&info.settings)?);
    Ok(())
}

fn print_limits(limits: &[LimitInfo], json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(&limits);
    }
    let rows = limits
        .iter()
        .map(|l| {
            vec![
                l.limit.scope.as_str().to_string(),
                l.limit.name.clone(),
                l.limit
                    .concurrency
                    .map_or_else(|| "-".into(), |c| c.to_string()),
                l.limit.rate.map_or_else(|| "-".into(), |r| rate_text(&r)),
                l.running.to_string(),
                l.tokens.map_or_else(|| "-".into(), |t| t.to_string()),
            ]
        })
        .collect::<Vec<_>>();
    output::table(
        &["SCOPE", "NAME", "CONCURRENCY", "RATE", "RUNNING", "TOKENS"],
        &rows,
    )?;
    Ok(())
}

fn rate_text(r: &RateLimit) -> String {
    let period = errand_core::duration::format(std::time::Duration::from_millis(r.period_ms));
    match r.burst {
        Some(b) => format!("{}/{period} (burst {b})", r.limit),
        None => format!("{}/{period}", r.limit),
    }
}

/// Runs a `limits` subcommand.
pub async fn limits(client: &Client, cmd: LimitsCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        LimitsCommand::List => print_limits(&client.limits().await?.limits, json),
        LimitsCommand::Set {
            scope,
            name,
            concurrency,
            rate: r,
            burst,
        } => {
            let scope = LimitScope::parse(&scope).map_err(usage)?;
            let req = LimitRequest {
                concurrency,
                rate: r.as_deref().map(|t| rate(t, burst)).transpose()?,
            };
            print_limits(&[client.limit_put(scope, &name, &req).await?], json)
        }
        LimitsCommand::Delete { scope, name } => {
            let scope = LimitScope::parse(&scope).map_err(usage)?;
            let out = client.limit_delete(scope, &name).await?;
            if json {
                return output::json(&out);
            }
            crate::outln!("deleted {} limit {name}", scope.as_str());
            Ok(())
        }
    }
}

fn print_sessions(sessions: &[Session], json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(&sessions);
    }
    let rows = sessions
        .iter()
        .map(|s| {
            vec![
                s.key.clone(),
                s.head.map_or_else(|| "-".into(), |h| h.to_string()),
                s.length.to_string(),
                s.version.to_string(),
                s.blocked_by
                    .map_or_else(|| "-".into(), |b| format!("blocked by {b}")),
            ]
        })
        .collect::<Vec<_>>();
    output::table(&["SESSION", "HEAD", "LENGTH", "VERSION", "BLOCKED"], &rows)?;
    Ok(())
}

fn print_session(s: &Session, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(s);
    }
    print_sessions(std::slice::from_ref(s), false)?;
    crate::outln!("state: {}", s.state);
    Ok(())
}

/// Runs a `sessions` subcommand.
pub async fn sessions(client: &Client, cmd: SessionsCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        SessionsCommand::List {
            after,
            limit,
            blocked,
        } => {
            let q = SessionListQuery {
                after,
                limit: Some(limit),
                blocked: blocked.then_some(true),
            };
            print_sessions(&client.sessions(&q).await?.sessions, json)
        }
        SessionsCommand::Show { key } => print_session(&client.session(&key).await?, json),
        SessionsCommand::SetState {
            key,
            state,
            expected_version: version,
        } => {
            let state = serde_json::from_str(&state)
                .context(UsageError("the state is not valid JSON".into()))?;
            let req = SessionStateRequest { state, version };
            print_session(&client.session_state_put(&key, &req).await?, json)
        }
        SessionsCommand::Unblock { key } => {
            print_session(&client.session_unblock(&key).await?, json)
        }
    }
}

/// `errand workers`.
pub async fn workers(client: &Client, json: bool) -> anyhow::Result<()> {
    let workers = client.workers().await?.workers;
    if json {
        return output::json(&workers);
    }
    let rows = workers
        .iter()
        .map(|w| {
            vec![
                w.name.clone(),
                w.node.to_string(),
                w.queues.join(","),
                if w.kinds.is_empty() {
                    "*".into()
                } else {
                    w.kinds.join(",")
                },
                output::when(Some(w.last_claim_at)),
                w.jobs_in_flight.to_string(),
            ]
        })
        .collect::<Vec<_>>();
    output::table(
        &[
            "WORKER",
            "NODE",
            "QUEUES",
            "KINDS",
            "LAST CLAIM",
            "IN FLIGHT",
        ],
        &rows,
    )?;
    Ok(())
}

/// `errand jobs explain ID`.
pub async fn explain(client: &Client, id: JobId, json: bool) -> anyhow::Result<()> {
    let e: Explanation = client.explain(id).await?;
    if json {
        return output::json(&e);
    }
    crate::outln!("job {} is {}", e.job, e.state.as_str());
    for r in &e.reasons {
        crate::outln!("- {}", r.message);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_backoffs_read_as_written() {
        let r = rate("100/1s", Some(200)).expect("rate");
        assert_eq!((r.limit, r.period_ms, r.burst), (100, 1000, Some(200)));
        assert!(rate("100", None).is_err());
        assert!(rate("x/1s", None).is_err());
        let b = backoff("1s..1h").expect("backoff");
        assert_eq!((b.base_ms, b.max_ms), (1000, 3_600_000));
        assert!(backoff("1s").is_err());
    }

    #[test]
    fn none_removes_and_absent_keeps() {
        let args = QueueSetArgs {
            queue: "q".into(),
            concurrency: Some("none".into()),
            rate: None,
            burst: None,
            max_attempts: Some("5".into()),
            priority: Some("-3".into()),
            timeout: Some("30s".into()),
            backoff: None,
        };
        let p = queue_patch(&args).expect("patch");
        assert_eq!(p.concurrency, Some(None));
        assert_eq!(p.rate, None);
        assert_eq!(p.max_attempts, Some(Some(5)));
        assert_eq!(p.priority, Some(Some(-3)));
        assert_eq!(p.timeout_ms, Some(Some(30_000)));
    }
}
