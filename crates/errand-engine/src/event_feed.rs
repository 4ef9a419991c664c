//! The live event feed: one tail of the store's event log per engine, fanned out to every
//! open event stream through one bounded broadcast.
//!
//! The tail reads the log from its head at start, then again whenever this node writes
//! (the engine pokes it after every change that records an event) and otherwise every
//! `event_poll` (events of other PostgreSQL nodes arrive so). That is one cheap query per
//! node however many streams are open. A stream ([`Engine::event_stream`]) subscribes to
//! the broadcast first, catches up from the store after the client's cursor, then goes on
//! live, skipping what it already sent: no gap, no duplicate. A stream that falls a whole
//! buffer behind (a slow or stuck consumer) is cut off with the id to resume after, so it
//! never holds more than the shared ring nor slows the tail.
//!
//! While nobody listens (no stream open, no caller waiting for a job's end) the tail stops
//! following and reads nothing. The first listener makes it follow again from the log's
//! head as that listener read it ([`EventFeed::follow`]), before the listener reads
//! anything else: so the tail's start is never later than the end of the listener's
//! catch-up (or its first look at the job it waits for), and nothing falls between.

use std::sync::{Arc, Mutex};

use errand_core::{Event, EventFilter, EventId, EventType, JobId, JobKind, QueueName};
use errand_store::StoreError;
use futures_util::Stream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// The least time between two reads of the tail woken by this node's writes: under load
/// one read takes in the events of many writes, and a stream hears of an event at most
/// this much later.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(5);
/// Events read from the store per page by the tail.
const PAGE: u32 = 500;
/// Events read per page by a stream catching up: what one stream holds at most, so
/// thousands of streams resuming at once stay within tens of megabytes.
const CATCH_UP_PAGE: u32 = 100;

/// What the tail broadcasts.
#[derive(Debug, Clone)]
pub(crate) enum FeedItem {
    /// The next event of the log.
    Event(Arc<Event>),
    /// The tail itself fell behind the retention window: events up to this id are gone.
    Gap(EventId),
}

/// The tail's shared half: the broadcast, its wake-up and how far it has read.
pub(crate) struct EventFeed {
    sender: broadcast::Sender<FeedItem>,
    poke: Notify,
    /// The newest id the tail has broadcast (or started after); `None` while the tail does
    /// not follow the log (before it started, and while nobody listens).
    position: Mutex<Option<EventId>>,
}

impl EventFeed {
    /// A feed whose broadcast holds `buffer` items.
    pub(crate) fn new(buffer: usize) -> Self {
        let (sender, _) = broadcast::channel(buffer.max(1));
        Self {
            sender,
            poke: Notify::new(),
            position: Mutex::new(None),
        }
    }

    /// Tells the tail that this node just wrote events: it reads at once. While the tail
    /// rests (nobody listens) a write does not wake it: it would only find nobody
    /// listening and rest again, and on a lone client's enqueues that wake-up was a task
    /// handed to the other runtime thread per write. The listener that comes wakes it
    /// ([`EventFeed::follow`]).
    pub(crate) fn poke(&self) {
        if self.position().is_some() {
            self.poke.notify_one();
        }
    }

    fn position(&self) -> Option<EventId> {
        self.position.lock().ok().and_then(|p| *p)
    }

    fn set_position(&self, id: EventId) {
        if let Ok(mut p) = self.position.lock() {
            *p = Some(id);
        }
    }

    /// Makes the tail follow the log, for a listener that has already subscribed to the
    /// broadcast (or registered as a waiter): returns where the tail follows from. When it
    /// was not following, that is the head as read here, before the caller reads anything.
    pub(crate) async fn follow(&self, engine: &Engine) -> Result<EventId, StoreError> {
        if let Some(p) = self.position() {
            return Ok(p);
        }
        let head = engine.event_head().await?.unwrap_or_default();
        let start = self.start_at(head);
        // Set before this wake-up, so that the tail, once awake, finds itself following.
        self.poke.notify_one();
        Ok(start)
    }

    /// Where the tail follows from: `head`, unless someone (the tail at its start, another
    /// listener) set it first.
    fn start_at(&self, head: EventId) -> EventId {
        match self.position.lock() {
            Ok(mut p) => *p.get_or_insert(head),
            Err(_) => head,
        }
    }

    /// Stops following when nobody listens; true when the tail is not following.
    fn rest_if_unheard(&self, waiters: &crate::waiters::Waiters) -> bool {
        let Ok(mut p) = self.position.lock() else {
            return false;
        };
        if self.sender.receiver_count() == 0 && waiters.jobs_waited_on() == 0 {
            *p = None;
        }
        p.is_none()
    }
}

/// Which events a stream passes: each list is a set of alternatives (empty: any), and an
/// event must pass every list. Queue, kind and tag lists pass only job events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamFilter {
    /// Event types.
    pub types: Vec<EventType>,
    /// Queues.
    pub queues: Vec<QueueName>,
    /// Job kinds.
    pub kinds: Vec<JobKind>,
    /// Jobs (a `schedule.fired` passes for the job it enqueued).
    pub jobs: Vec<JobId>,
    /// Tags (a job passes when it carries any of them).
    pub tags: Vec<String>,
}

impl StreamFilter {
    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        let body = &event.body;
        if !self.types.is_empty() && !self.types.contains(&body.event_type) {
            return false;
        }
        if !self.jobs.is_empty() && !body.job_id().is_some_and(|j| self.jobs.contains(&j)) {
            return false;
        }
        if self.queues.is_empty() && self.kinds.is_empty() && self.tags.is_empty() {
            return true;
        }
        let Some(job) = &body.job else {
            return false;
        };
        (self.queues.is_empty() || self.queues.contains(&job.queue))
            && (self.kinds.is_empty() || self.kinds.contains(&job.kind))
            && (self.tags.is_empty() || job.tags.iter().any(|t| self.tags.contains(t)))
    }
}

impl From<EventFilter> for StreamFilter {
    fn from(f: EventFilter) -> Self {
        StreamFilter {
            types: f.types,
            queues: f.queue.into_iter().collect(),
            kinds: f.kind.into_iter().collect(),
            jobs: f.job.into_iter().collect(),
            tags: f.tag.into_iter().collect(),
        }
    }
}

/// One item of an event stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// An event that passed the filter.
    Event(Arc<Event>),
    /// Events right after the cursor were pruned (the cursor is older than the retention
    /// window): everything up to and including `missed_through` is gone. The stream goes on
    /// after it.
    Gap {
        /// The newest event the stream could not deliver.
        missed_through: EventId,
    },
    /// The stream's last item: its consumer fell too far behind (or the store failed) and
    /// it is cut off. Resume after `resume_after` (`None`: from where the stream began).
    Cutoff {
        /// The last event this stream handled (sent, or filtered out).
        resume_after: Option<EventId>,
        /// Why.
        reason: String,
    },
}

/// A stream's state between items.
struct StreamState {
    engine: Arc<Engine>,
    live: broadcast::Receiver<FeedItem>,
    filter: StreamFilter,
    /// The last id handled; live items at or before it were already handled in catch-up.
    cursor: Option<EventId>,
    /// Still reading the store page by page.
    catching_up: bool,
    /// Items of the current catch-up page still to hand out.
    pending: std::collections::VecDeque<StreamItem>,
    done: bool,
    shutdown: CancellationToken,
}

impl StreamState {
    async fn next(&mut self) -> Option<StreamItem> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            if self.catching_up {
                if let Err(e) = self.catch_up_page().await {
                    return Some(self.cut_off(format!("reading the event log failed: {e}")));
                }
                continue;
            }
            let got = tokio::select! {
                got = self.live.recv() => got,
                _ = self.shutdown.cancelled() => {
                    return Some(self.cut_off("the server is shutting down".into()));
                }
            };
            match got {
                Ok(FeedItem::Event(event)) => {
                    if self.cursor.is_some_and(|c| event.id <= c) {
                        continue;
                    }
                    self.cursor = Some(event.id);
                    if self.filter.matches(&event) {
                        return Some(StreamItem::Event(event));
                    }
                }
                Ok(FeedItem::Gap(through)) => {
                    if self.cursor.is_some_and(|c| through <= c) {
                        continue;
                    }
                    self.cursor = Some(through);
                    return Some(StreamItem::Gap {
                        missed_through: through,
                    });
                }
                Err(RecvError::Lagged(n)) => {
                    return Some(self.cut_off(format!(
                        "the consumer fell {n} events behind the live feed; resume by id"
                    )));
                }
                Err(RecvError::Closed) => {
                    return Some(self.cut_off("the event feed stopped".into()));
                }
            }
        }
    }

    /// Reads one page of the log after the cursor into `pending`; a short page ends the
    /// catch-up (the live broadcast, subscribed before the first page, holds the rest).
    async fn catch_up_page(&mut self) -> Result<(), StoreError> {
        let page = self.engine.event_read(self.cursor, CATCH_UP_PAGE).await?;
        if let Some(through) = page.missed_through {
            if self.cursor.is_none_or(|c| through > c) {
                self.pending.push_back(StreamItem::Gap {
                    missed_through: through,
                });
                self.cursor = Some(through);
            }
        }
        if (page.events.len() as u32) < CATCH_UP_PAGE {
            self.catching_up = false;
        }
        for event in page.events {
            if self.cursor.is_some_and(|c| event.id <= c) {
                continue;
            }
            self.cursor = Some(event.id);
            if self.filter.matches(&event) {
                self.pending.push_back(StreamItem::Event(Arc::new(event)));
            }
        }
        Ok(())
    }

    fn cut_off(&mut self, reason: String) -> StreamItem {
        self.done = true;
        self.pending.clear();
        StreamItem::Cutoff {
            resume_after: self.cursor,
            reason,
        }
    }
}

impl Engine {
    /// A stream of the events that pass `filter`, after `after` (`None`: from now on, no
    /// history), with no gap and no duplicate. It ends only with a [`StreamItem::Cutoff`]
    /// (consumer too slow, store failure, shutdown).
    ///
    /// # Errors
    /// The store's error when the start (the log's head) cannot be read.
    pub async fn event_stream(
        self: &Arc<Self>,
        after: Option<EventId>,
        filter: StreamFilter,
    ) -> Result<impl Stream<Item = StreamItem> + Send + 'static, StoreError> {
        // Subscribed before anything is read: whatever the tail sends from now on reaches
        // this stream, and whatever it sent before is in the store for the catch-up.
        let live = self.feed.sender.subscribe();
        // An empty log starts at `0-0`, before every event: a cut-off before the first
        // event then still names a place to resume from.
        let following = self.feed.follow(self).await?;
        let cursor = after.unwrap_or(following);
        let state = StreamState {
            engine: self.clone(),
            live,
            filter,
            cursor: Some(cursor),
            catching_up: true,
            pending: Default::default(),
            done: false,
            shutdown: self.shutdown_token(),
        };
        Ok(futures_util::stream::unfold(state, |mut s| async move {
            let item = s.next().await?;
            Some((item, s))
        }))
    }

    /// Event streams open on this node (receivers of the live feed).
    pub fn event_streams_open(&self) -> usize {
        self.feed.sender.receiver_count()
    }

    /// One read of the log after `cursor` by the tail: broadcasts what it finds and wakes
    /// the waiters of jobs that ended. Returns the new cursor and whether a full page came
    /// (more may be waiting).
    async fn tail_once(
        &self,
        cursor: Option<EventId>,
    ) -> Result<(Option<EventId>, bool), StoreError> {
        let page = self.event_read(cursor, PAGE).await?;
        let mut cursor = cursor;
        if let Some(through) = page.missed_through {
            if cursor.is_none_or(|c| through > c) {
                tracing::warn!(missed_through = %through, "the event tail fell behind the retention window");
                let _ = self.feed.sender.send(FeedItem::Gap(through));
                cursor = Some(through);
            }
        }
        let full = page.events.len() as u32 >= PAGE;
        for event in page.events {
            if cursor.is_some_and(|c| event.id <= c) {
                continue;
            }
            cursor = Some(event.id);
            if matches!(
                event.body.event_type,
                EventType::JobSucceeded | EventType::JobDead | EventType::JobCancelled
            ) {
                if let Some(job) = event.body.job_id() {
                    self.waiters.wake(job);
                }
            }
            // No stream open is not an error.
            let _ = self.feed.sender.send(FeedItem::Event(Arc::new(event)));
        }
        if let Some(c) = cursor {
            self.feed.set_position(c);
        }
        Ok((cursor, full))
    }
}

/// The tail: starts at the log's head and follows it until `token` fires.
pub(crate) async fn run_tail(engine: Arc<Engine>, token: CancellationToken) {
    let poll = engine.config().event_poll;
    let mut failures = crate::maintenance::PassFailures::new("event_tail");
    // Where to start: the head, read until the store answers.
    let mut cursor = loop {
        match engine.event_head().await {
            Ok(head) => {
                failures.succeeded();
                // A listener that came first (while this read was retried) has set where
                // the tail follows from: keep it.
                break match head {
                    Some(h) => Some(engine.feed.start_at(h)),
                    None => engine.feed.position(),
                };
            }
            Err(e) => failures.failed(&e),
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(poll.max(std::time::Duration::from_millis(500))) => {}
        }
    };
    loop {
        if engine.feed.rest_if_unheard(&engine.waiters) {
            // Nobody listens: nothing is read until a listener makes the tail follow again.
            cursor = None;
            let notified = engine.feed.poke.notified();
            tokio::select! {
                _ = token.cancelled() => return,
                _ = notified => {}
            }
            continue;
        }
        if cursor.is_none() {
            cursor = engine.feed.position();
        }
        let more = match engine.tail_once(cursor).await {
            Ok((c, full)) => {
                failures.succeeded();
                cursor = c;
                full
            }
            Err(e) => {
                failures.failed(&e);
                false
            }
        };
        if more {
            continue;
        }
        let read_at = tokio::time::Instant::now();
        let notified = engine.feed.poke.notified();
        tokio::select! {
            _ = token.cancelled() => return,
            _ = notified => {
                // Writes that come close together are read together: one read of the
                // log per gap rather than one per write.
                tokio::time::sleep_until(read_at + COALESCE).await;
            }
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use errand_core::{EventBody, JobSnapshot, JobState};

    use super::*;

    fn event(queue: &str, kind: &str, tags: &[&str], ty: EventType) -> Event {
        Event {
            id: EventId { tx: 1, seq: 1 },
            body: EventBody {
                event_type: ty,
                at: jiff::Timestamp::UNIX_EPOCH,
                job: Some(JobSnapshot {
                    id: JobId(uuid::Uuid::nil()),
                    queue: QueueName::parse(queue).unwrap(),
                    kind: JobKind::parse(kind).unwrap(),
                    state: JobState::Available,
                    attempt: 0,
                    max_attempts: 1,
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                    correlation_id: None,
                    schedule: None,
                    progress: None,
                    result: None,
                    result_bytes: None,
                    error: None,
                }),
                schedule: None,
                batch: None,
            },
        }
    }

    #[test]
    fn a_write_does_not_wake_a_resting_tail_but_does_wake_a_following_one() {
        use futures_util::FutureExt;
        let feed = EventFeed::new(8);
        // Nobody listens: the tail rests (it follows from nowhere).
        feed.poke();
        assert!(
            feed.poke.notified().now_or_never().is_none(),
            "a write woke the resting tail"
        );
        // A listener made it follow: a write wakes it.
        feed.start_at(EventId { tx: 1, seq: 1 });
        feed.poke();
        assert!(
            feed.poke.notified().now_or_never().is_some(),
            "a write did not wake the following tail"
        );
    }

    #[test]
    fn a_filter_passes_any_of_each_list_and_all_lists() {
        let e = event("mail", "send", &["a", "b"], EventType::JobEnqueued);
        assert!(StreamFilter::default().matches(&e));
        let f = StreamFilter {
            queues: vec![
                QueueName::parse("other").unwrap(),
                QueueName::parse("mail").unwrap(),
            ],
            tags: vec!["z".into(), "b".into()],
            ..Default::default()
        };
        assert!(f.matches(&e));
        let f = StreamFilter {
            queues: vec![QueueName::parse("mail").unwrap()],
            types: vec![EventType::JobSucceeded],
            ..Default::default()
        };
        assert!(!f.matches(&e));
        let f = StreamFilter {
            kinds: vec![JobKind::parse("other").unwrap()],
            ..Default::default()
        };
        assert!(!f.matches(&e));
        let f = StreamFilter {
            jobs: vec![JobId(uuid::Uuid::max())],
            ..Default::default()
        };
        assert!(!f.matches(&e));
    }
}
