//! `GET /v1/events`: the event log as a server-sent event stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use errand_api::{ErrorBody, EventCutoff, EventGap, EventStreamQuery, CUTOFF_EVENT, GAP_EVENT};
use errand_core::{EventId, EventType, JobKind, QueueName};
use errand_engine::{StreamFilter, StreamItem};
use futures_util::StreamExt;

use crate::{ApiError, AppState};

/// How often an idle stream sends a comment, so proxies and clients see it alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Most values per filter: a stream's filter is checked against every event.
const MAX_FILTER_ENTRIES: usize = 100;

/// The cursor and filter a request asks for.
fn parse_query(
    raw: Option<&str>,
    last_event_id: Option<&str>,
) -> Result<(Option<EventId>, StreamFilter), ApiError> {
    let mut filter = StreamFilter::default();
    let mut after = None;
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let entries = || value.split(',').map(str::trim).filter(|v| !v.is_empty());
        match key.as_ref() {
            "queue" => {
                for v in entries() {
                    filter.queues.push(QueueName::parse(v)?);
                }
            }
            "kind" => {
                for v in entries() {
                    filter.kinds.push(JobKind::parse(v)?);
                }
            }
            "job" => {
                for v in entries() {
                    filter.jobs.push(crate::extract::job_id(v)?);
                }
            }
            "tag" => filter.tags.extend(entries().map(str::to_owned)),
            "type" => {
                for v in entries() {
                    filter.types.push(v.parse::<EventType>()?);
                }
            }
            "after" => after = Some(event_id("after", &value)?),
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter `{other}`; use queue, kind, job, tag, type or after"
                )))
            }
        }
    }
    let counts = [
        ("queue", filter.queues.len()),
        ("kind", filter.kinds.len()),
        ("job", filter.jobs.len()),
        ("tag", filter.tags.len()),
    ];
    if let Some((name, _)) = counts.iter().find(|(_, n)| *n > MAX_FILTER_ENTRIES) {
        return Err(ApiError::invalid(format!(
            "{name}: at most {MAX_FILTER_ENTRIES} values"
        )));
    }
    if let Some(h) = last_event_id {
        after = Some(event_id("Last-Event-ID header", h)?);
    }
    Ok((after, filter))
}

/// Items waiting for a client's socket beyond what the connection buffers.
const OUTBOX: usize = 16;

/// How long a stream may wait for its client to take anything before it is dropped as
/// stuck. A slow client that still reads is cut off by the feed instead (`cutoff`).
const STALL_LIMIT: Duration = Duration::from_secs(60);

fn event_id(field: &str, raw: &str) -> Result<EventId, ApiError> {
    raw.trim().parse::<EventId>().map_err(|_| {
        ApiError::invalid(format!(
            "{field}: `{raw}` is not an event id (use the `id` of an event)"
        ))
    })
}

/// One stream item as an SSE event.
fn sse_event(item: StreamItem) -> SseEvent {
    match item {
        StreamItem::Event(e) => {
            let base = SseEvent::default()
                .id(e.id.to_string())
                .event(e.body.event_type.as_str());
            match serde_json::to_string(&*e) {
                Ok(json) => base.data(json),
                // An event always serialises; were one not to, say so rather than drop it.
                Err(err) => base.data(format!("{{\"error\":\"{err}\"}}")),
            }
        }
        StreamItem::Gap { missed_through } => SseEvent::default()
            .id(missed_through.to_string())
            .event(GAP_EVENT)
            .data(json_or_empty(&EventGap { missed_through })),
        StreamItem::Cutoff {
            resume_after,
            reason,
        } => {
            let base = SseEvent::default().event(CUTOFF_EVENT);
            let base = match resume_after {
                Some(id) => base.id(id.to_string()),
                None => base,
            };
            base.data(json_or_empty(&EventCutoff {
                resume_after,
                reason,
            }))
        }
    }
}

fn json_or_empty<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

/// A server-sent event stream of job and schedule events: `id:` the event id (send it
/// back as `Last-Event-ID` to resume), `event:` its type, `data:` the event as JSON. Two
/// items of their own: `gap` (events up to `missed_through` were pruned before they could
/// be sent; the stream goes on) and `cutoff` (the stream's last: the consumer fell too far
/// behind or the server is stopping; resume after `resume_after`). Without `after` or
/// `Last-Event-ID` the stream starts now. A comment every 15 s keeps it alive.
#[utoipa::path(get, path = "/v1/events", operation_id = "stream_events", tag = "events",
    params(EventStreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (wins over `after`)")),
    responses(
        (status = 200, description = "The stream: events, and `gap` and `cutoff` items", content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad filter or event id", body = ErrorBody),
        (status = 503, description = "Too many streams open (`busy`, see Retry-After), or the store is unavailable", body = ErrorBody)))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let last_event_id = headers
        .get("last-event-id")
        .map(|h| {
            h.to_str()
                .map_err(|_| ApiError::invalid("Last-Event-ID header: must be visible ASCII"))
        })
        .transpose()?
        .filter(|h| !h.trim().is_empty());
    let (after, filter) = parse_query(raw.as_deref(), last_event_id)?;
    if let Some(cursor) = after.filter(|c| *c != EventId::default()) {
        // An id past the newest event cannot come from this store (another installation, a
        // replaced data directory, a restored dump): resuming from it would silently skip
        // everything until the log grows past it.
        // (An empty log, everything pruned, cannot tell: the cursor is taken as it is.)
        if let Some(head) = state.engine.event_head().await?.filter(|h| cursor > *h) {
            return Err(ApiError::invalid(format!(
                "event id `{cursor}` is ahead of the newest event ({head}): it does not come \
                 from this store; resume with `after=0-0` (everything kept) or without one \
                 (from now)"
            )));
        }
    }
    let place = state.stream_place()?;
    let events = state.engine.event_stream(after, filter).await?;
    let (outbox, taken) = tokio::sync::mpsc::channel::<SseEvent>(OUTBOX);
    tokio::spawn(async move {
        // The place is held as long as the stream lives.
        let _held = place;
        let mut events = std::pin::pin!(events);
        loop {
            let item = tokio::select! {
                item = events.next() => item,
                // The client went away while nothing was happening.
                () = outbox.closed() => return,
            };
            let Some(item) = item else { return };
            // A client that takes nothing for STALL_LIMIT is stuck: let it go, with its
            // place and buffers, rather than hold them until TCP gives up.
            match tokio::time::timeout(STALL_LIMIT, outbox.send(sse_event(item))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return,
            }
        }
    });
    let events = futures_util::stream::unfold(taken, |mut taken| async move {
        taken.recv().await.map(|e| (Ok::<_, Infallible>(e), taken))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_repeat_or_split_on_commas_and_the_header_wins() {
        let (after, f) = parse_query(
            Some("queue=a,b&queue=c&type=job.succeeded&tag=x&after=5-6"),
            Some("7-8"),
        )
        .unwrap();
        assert_eq!(after, Some(EventId { tx: 7, seq: 8 }));
        assert_eq!(f.queues.len(), 3);
        assert_eq!(f.types, vec![EventType::JobSucceeded]);
        assert_eq!(f.tags, vec!["x".to_string()]);
        assert!(parse_query(Some("type=job.exploded"), None).is_err());
        assert!(parse_query(Some("after=nope"), None).is_err());
        assert!(parse_query(Some("colour=red"), None).is_err());
        let (after, _) = parse_query(Some("after=1-2"), None).unwrap();
        assert_eq!(after, Some(EventId { tx: 1, seq: 2 }));
    }
}
