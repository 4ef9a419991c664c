//! `errand events`: follows the event stream, one line per event (or one JSON object per
//! line with `--json`), reconnecting after a drop and saying so on gaps and cut-offs.

use errand_client::{Client, EventQuery, EventStreamItem};
use errand_core::{Event, EventType};

use crate::cli::EventsArgs;

/// One readable line for an event.
pub fn line(e: &Event) -> String {
    let at = e.body.at.strftime("%H:%M:%S%.3f");
    let ty = e.body.event_type;
    if let Some(s) = &e.body.schedule {
        return format!(
            "{at} {ty:<15} schedule {} slot {} job {}",
            s.schedule, s.slot, s.job_id
        );
    }
    let Some(j) = &e.body.job else {
        return format!("{at} {ty}");
    };
    let mut out = format!("{at} {ty:<15} {} {}/{}", j.id, j.queue, j.kind);
    if ty != EventType::JobEnqueued || j.attempt > 0 {
        out.push_str(&format!(" attempt {}/{}", j.attempt, j.max_attempts));
    }
    if let Some(p) = &j.progress {
        if let Some(pct) = p.percent {
            out.push_str(&format!(" {pct:.1}%"));
        }
        if let Some(m) = &p.message {
            out.push_str(&format!(" {m}"));
        }
    }
    if let Some(r) = &j.result {
        out.push_str(&format!(" result {r}"));
    } else if let Some(n) = j.result_bytes {
        out.push_str(&format!(" result of {n} bytes"));
    }
    if let Some(err) = &j.error {
        out.push_str(&format!(" error: {err}"));
    }
    out
}

/// Runs `errand events` until interrupted.
pub async fn run(client: &Client, args: EventsArgs, json: bool) -> anyhow::Result<()> {
    let after = args
        .after
        .as_deref()
        .map(|a| {
            a.parse().map_err(|e: errand_core::ValidationError| {
                crate::exit::usage(format!("--after: {}", e.message))
            })
        })
        .transpose()?;
    let query = EventQuery {
        queues: args.queue,
        kinds: args.kind,
        jobs: args.job,
        tags: args.tag,
        types: args.event_type,
    };
    let mut follow = client.follow_events(query, after).await?;
    let mut disconnected = false;
    loop {
        match follow.next().await? {
            EventStreamItem::Event(e) => {
                disconnected = false;
                if json {
                    crate::outln!("{}", serde_json::to_string(&e)?);
                } else {
                    crate::outln!("{}", line(&e));
                }
            }
            EventStreamItem::Gap(g) => eprintln!(
                "events up to {} were pruned (older than the retention) before they could be shown",
                g.missed_through
            ),
            EventStreamItem::Cutoff(c) => eprintln!(
                "the server ended the stream ({}); resuming after {}",
                c.reason,
                c.resume_after.map_or("the start".into(), |i| i.to_string())
            ),
            EventStreamItem::Disconnected(why) => {
                if !disconnected {
                    eprintln!(
                        "disconnected ({why}); reconnecting after {}",
                        follow
                            .last_id()
                            .map_or("the start".into(), |i| i.to_string())
                    );
                }
                disconnected = true;
            }
        }
    }
}
