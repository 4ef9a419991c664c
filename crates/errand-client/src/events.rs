//! Following `GET /v1/events`: server-sent events parsed into typed items, with reconnects
//! that resume after the last id seen (`Last-Event-ID`), so a dropped connection or a
//! server restart loses nothing the server still keeps.

use std::time::Duration;

use errand_api::{EventCutoff, EventGap, CUTOFF_EVENT, GAP_EVENT};
use errand_core::{Event, EventId};
use reqwest::Method;

use crate::{Client, ClientError};

/// Which events to follow; each list passes any of its values, and every list must pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    /// Queues.
    pub queues: Vec<String>,
    /// Job kinds.
    pub kinds: Vec<String>,
    /// Job ids.
    pub jobs: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Event types (`job.succeeded`, ...).
    pub types: Vec<String>,
}

impl EventQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (name, values) in [
            ("queue", &self.queues),
            ("kind", &self.kinds),
            ("job", &self.jobs),
            ("tag", &self.tags),
            ("type", &self.types),
        ] {
            if !values.is_empty() {
                out.push((name, values.join(",")));
            }
        }
        out
    }
}

/// One item of a followed stream.
#[derive(Debug, Clone, PartialEq)]
pub enum EventStreamItem {
    /// An event.
    Event(Box<Event>),
    /// Events up to `missed_through` were pruned before the stream could send them.
    Gap(EventGap),
    /// The server cut the stream off (the consumer fell behind, or it is stopping); the
    /// follower resumes after `resume_after` on the next call.
    Cutoff(EventCutoff),
    /// The connection dropped or could not be made (the reason); the follower reconnects
    /// on the next call, resuming after the last id it saw.
    Disconnected(String),
}

/// One SSE frame as received.
#[derive(Debug, Default, PartialEq)]
struct Frame {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

/// Splits SSE text into frames: fields per line, a blank line ends a frame, comment lines
/// (`:`) are ignored.
#[derive(Debug, Default)]
struct SseParser {
    buf: Vec<u8>,
    frame: Frame,
    has_data: bool,
}

impl SseParser {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame in the buffer.
    fn next_frame(&mut self) -> Option<Frame> {
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                let frame = std::mem::take(&mut self.frame);
                let had = std::mem::take(&mut self.has_data);
                if had || frame.event.is_some() {
                    return Some(frame);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "id" => self.frame.id = Some(value.to_owned()),
                "event" => self.frame.event = Some(value.to_owned()),
                "data" => {
                    if self.has_data {
                        self.frame.data.push('\n');
                    }
                    self.frame.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        None
    }
}

/// A followed event stream. Call [`EventFollow::next`] in a loop; it reconnects by itself.
#[derive(Debug)]
pub struct EventFollow {
    client: Client,
    query: EventQuery,
    /// The last id seen: where a reconnect resumes.
    last_id: Option<EventId>,
    resp: Option<reqwest::Response>,
    parser: SseParser,
    /// Drops, refusals and cut-offs since the last event (for the reconnect backoff).
    failures: u32,
}

impl EventFollow {
    /// The id a reconnect resumes after.
    pub fn last_id(&self) -> Option<EventId> {
        self.last_id
    }

    /// The next item, waiting for it. A dropped connection comes out as
    /// [`EventStreamItem::Disconnected`] once; the call after reconnects (with a short
    /// backoff when connecting keeps failing).
    ///
    /// # Errors
    /// A 4xx answer other than `busy` (a bad filter or id): reconnecting would not help.
    pub async fn next(&mut self) -> Result<EventStreamItem, ClientError> {
        loop {
            if let Some(frame) = self.parser.next_frame() {
                if let Some(item) = self.item(frame)? {
                    return Ok(item);
                }
                continue;
            }
            let Some(resp) = self.resp.as_mut() else {
                if self.failures > 0 {
                    let backoff = Duration::from_millis(200 * u64::from(self.failures.min(25)));
                    tokio::time::sleep(backoff).await;
                }
                match self.connect().await {
                    Ok(resp) => {
                        self.parser = SseParser::default();
                        self.resp = Some(resp);
                    }
                    Err(e @ ClientError::Api { status, .. })
                        if status != 503 && (400..500).contains(&status) =>
                    {
                        return Err(e);
                    }
                    Err(e) => {
                        self.failures += 1;
                        return Ok(EventStreamItem::Disconnected(e.to_string()));
                    }
                }
                continue;
            };
            match resp.chunk().await {
                Ok(Some(bytes)) => self.parser.push(&bytes),
                Ok(None) => {
                    self.resp = None;
                    return Ok(EventStreamItem::Disconnected(
                        "the server closed the stream".into(),
                    ));
                }
                Err(e) => {
                    self.resp = None;
                    self.failures += 1;
                    return Ok(EventStreamItem::Disconnected(e.to_string()));
                }
            }
        }
    }

    fn item(&mut self, frame: Frame) -> Result<Option<EventStreamItem>, ClientError> {
        let bad = |e: serde_json::Error| ClientError::Unreadable(format!("unreadable event: {e}"));
        if let Some(id) = frame.id.as_deref().and_then(|i| i.parse::<EventId>().ok()) {
            self.last_id = Some(id);
        }
        Ok(Some(match frame.event.as_deref() {
            Some(CUTOFF_EVENT) => {
                // The server ends the stream after this; reconnect on the next call (backing
                // off when cut-offs come one after another with nothing between).
                self.resp = None;
                self.failures += 1;
                let cutoff: EventCutoff = serde_json::from_str(&frame.data).map_err(bad)?;
                if let Some(id) = cutoff.resume_after {
                    self.last_id = Some(id);
                }
                EventStreamItem::Cutoff(cutoff)
            }
            Some(GAP_EVENT) => {
                let gap: EventGap = serde_json::from_str(&frame.data).map_err(bad)?;
                self.last_id = Some(gap.missed_through);
                EventStreamItem::Gap(gap)
            }
            _ if frame.data.is_empty() => return Ok(None),
            _ => {
                self.failures = 0;
                EventStreamItem::Event(Box::new(serde_json::from_str(&frame.data).map_err(bad)?))
            }
        }))
    }

    async fn connect(&self) -> Result<reqwest::Response, ClientError> {
        let mut req = self
            .client
            .request(Method::GET, "/v1/events")
            .header("accept", "text/event-stream")
            .query(&self.query.pairs());
        if let Some(id) = self.last_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = resp.bytes().await?;
        Err(ClientError::from_answer(status, &bytes))
    }
}

impl Client {
    /// Follows `GET /v1/events` after `after` (`None`: from now on, no history). The first
    /// connection is made here, so a bad filter fails at once.
    ///
    /// # Errors
    /// The server's refusal or a transport failure of the first connection.
    pub async fn follow_events(
        &self,
        query: EventQuery,
        after: Option<EventId>,
    ) -> Result<EventFollow, ClientError> {
        let mut follow = EventFollow {
            client: self.clone(),
            query,
            last_id: after,
            resp: None,
            parser: SseParser::default(),
            failures: 0,
        };
        follow.resp = Some(follow.connect().await?);
        Ok(follow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_on_blank_lines_across_chunks_and_skip_comments() {
        let mut p = SseParser::default();
        p.push(b": keep-alive\n\nid: 1-2\nevent: job.enq");
        assert_eq!(p.next_frame(), None);
        p.push(b"ueued\ndata: {\"a\":\r\ndata: 1}\n\nevent: cutoff\ndata: {}\n\n");
        assert_eq!(
            p.next_frame(),
            Some(Frame {
                id: Some("1-2".into()),
                event: Some("job.enqueued".into()),
                data: "{\"a\":\n1}".into(),
            })
        );
        assert_eq!(
            p.next_frame(),
            Some(Frame {
                id: None,
                event: Some("cutoff".into()),
                data: "{}".into(),
            })
        );
        assert_eq!(p.next_frame(), None);
    }
}
