//! `errand subscriptions ...` and the deliveries table `errand jobs deliveries` shares.

use anyhow::Context;
use errand_api::{DeliveryList, SubscriptionRequest};
use errand_client::Client;
use errand_core::{EventType, Subscription, SubscriptionId};

use crate::cli::{SubscriptionCreateArgs, SubscriptionsCommand};
use crate::output;

fn id(raw: &str) -> anyhow::Result<SubscriptionId> {
    raw.parse::<SubscriptionId>().map_err(crate::exit::usage)
}

fn print(subs: &[Subscription], json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(&subs);
    }
    let rows: Vec<Vec<String>> = subs
        .iter()
        .map(|s| {
            let mut filter = Vec::new();
            if let Some(q) = &s.queue {
                filter.push(format!("queue={q}"));
            }
            if let Some(k) = &s.kind {
                filter.push(format!("kind={k}"));
            }
            if let Some(t) = &s.tag {
                filter.push(format!("tag={t}"));
            }
            vec![
                s.id.to_string(),
                s.url.clone(),
                s.events
                    .iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                if filter.is_empty() {
                    "-".into()
                } else {
                    filter.join(" ")
                },
                s.state.as_str().to_string(),
                s.consecutive_failures.to_string(),
                s.paused_reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "URL",
            "EVENTS",
            "FILTER",
            "STATE",
            "FAILURES",
            "PAUSED BECAUSE",
        ],
        &rows,
    )?;
    Ok(())
}

/// Prints deliveries with their attempts (one row per attempt under its delivery).
pub fn print_deliveries(list: &DeliveryList, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(list);
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for d in &list.deliveries {
        rows.push(vec![
            d.id.to_string(),
            d.event_type.to_string(),
            d.state.as_str().to_string(),
            d.attempts.to_string(),
            output::when(d.next_at),
            d.url.clone(),
        ]);
        for a in &d.history {
            rows.push(vec![
                format!("  #{}", a.attempt),
                output::when(Some(a.at)),
                a.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                format!("{}ms", a.duration_ms),
                String::new(),
                a.error.clone().unwrap_or_else(|| "ok".into()),
            ]);
        }
    }
    output::table(
        &[
            "DELIVERY",
            "EVENT",
            "STATE",
            "ATTEMPTS",
            "NEXT",
            "URL / RESULT",
        ],
        &rows,
    )?;
    Ok(())
}

fn request(args: SubscriptionCreateArgs) -> anyhow::Result<SubscriptionRequest> {
    let events = args
        .events
        .iter()
        .map(|e| {
            e.trim()
                .parse::<EventType>()
                .map_err(|e| crate::exit::usage(format!("--event: {e}")))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(SubscriptionRequest {
        url: args.url,
        events,
        queue: args.queue,
        kind: args.kind,
        tag: args.tag,
        description: args.description,
    })
}

/// Runs one `errand subscriptions` command.
///
/// # Errors
/// Bad arguments, or the server's error.
pub async fn run(client: &Client, cmd: SubscriptionsCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        SubscriptionsCommand::List => print(&client.subscriptions().await?.subscriptions, json),
        SubscriptionsCommand::Create(args) => {
            let sub = client
                .subscription_create(&request(args)?)
                .await
                .context("creating the subscription")?;
            print(&[sub], json)
        }
        SubscriptionsCommand::Show { id: raw } => {
            print(&[client.subscription(id(&raw)?).await?], json)
        }
        SubscriptionsCommand::Pause { id: raw, reason } => print(
            &[client
                .subscription_set_paused(id(&raw)?, true, reason)
                .await?],
            json,
        ),
        SubscriptionsCommand::Resume { id: raw } => print(
            &[client
                .subscription_set_paused(id(&raw)?, false, None)
                .await?],
            json,
        ),
        SubscriptionsCommand::Delete { id: raw } => {
            let out = client.subscription_delete(id(&raw)?).await?;
            if json {
                output::json(&out)
            } else {
                crate::outln!("deleted {raw}");
                Ok(())
            }
        }
        SubscriptionsCommand::Deliveries { id: raw, limit } => print_deliveries(
            &client.subscription_deliveries(id(&raw)?, limit).await?,
            json,
        ),
    }
}
