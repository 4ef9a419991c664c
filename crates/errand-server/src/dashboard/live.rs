//! Live updates: each tab holds one server-sent-event stream (`GET /ui/live?topics=...`)
//! that says *what* changed, never the data itself; the tab re-fetches the fragments that
//! show it.
//!
//! One task per server reads the engine's cluster-wide event feed (the same one
//! `GET /v1/events` streams, so changes made through any node reach every node's tabs) and
//! marks topics: `jobs`, `queues`, `dead`, `schedules`, `job-<id>`. At most once per
//! [`COALESCE`] the marked topics go out in one broadcast, and each tab's stream sends one
//! `changed-<topic>` event per topic it follows. So a tab costs at most one small message
//! per second however busy the cluster is, and an idle cluster costs nothing: no timer runs
//! while nothing changes (a keep-alive comment every 15 s aside).
//!
//! Pages pass the hub's generation as `since`: a change between rendering the page and
//! opening its stream (or while a stream was reconnecting) is sent at once.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use errand_core::{Event, EventType, JobId};
use errand_engine::{Engine, StreamFilter, StreamItem};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::{broadcast, Notify};

use super::series::Series;
use super::Dashboard;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

/// The shortest time between two broadcasts of changes: a live region re-fetches at most
/// once a second, which people read as live and which keeps ten busy tabs at ten small
/// requests a second per region.
pub(crate) const COALESCE: Duration = Duration::from_secs(1);

/// Job topics held per broadcast; past it the broadcast says "every job changed" instead
/// of growing with the cluster's throughput.
const MAX_JOB_TOPICS: usize = 10_000;

/// Broadcasts a slow tab may fall behind before it is told that everything changed.
const BUFFER: usize = 16;

/// Topics one stream may follow.
const MAX_TOPICS: usize = 16;

/// How often an idle stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long the feed reader waits before reopening the feed after it was cut off (the
/// store failed, or the reader fell behind): time for the store to come back, short
/// enough that tabs barely notice.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// Something a live region shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Topic {
    /// Any job (lists).
    Jobs,
    /// Queue counts and settings.
    Queues,
    /// The dead-letter set.
    Dead,
    /// Schedules.
    Schedules,
    /// One job (its page).
    Job(JobId),
}

impl Topic {
    /// The name in `topics=` and in the event `changed-<name>`.
    pub(crate) fn name(&self) -> String {
        match self {
            Topic::Jobs => "jobs".into(),
            Topic::Queues => "queues".into(),
            Topic::Dead => "dead".into(),
            Topic::Schedules => "schedules".into(),
            Topic::Job(id) => format!("job-{id}"),
        }
    }

    fn parse(name: &str) -> Result<Self, ApiError> {
        Ok(match name {
            "jobs" => Topic::Jobs,
            "queues" => Topic::Queues,
            "dead" => Topic::Dead,
            "schedules" => Topic::Schedules,
            other => match other.strip_prefix("job-") {
                Some(id) => Topic::Job(crate::extract::job_id(id)?),
                None => {
                    return Err(ApiError::invalid(format!(
                        "topics: `{other}` is not a topic (jobs, queues, dead, schedules, job-<id>)"
                    )))
                }
            },
        })
    }

    /// The topics an event touches.
    fn of_event(event: &Event) -> Vec<Topic> {
        let body = &event.body;
        let mut topics = Vec::with_capacity(4);
        if let Some(job) = &body.job {
            topics.extend([Topic::Jobs, Topic::Queues, Topic::Job(job.id)]);
            // A job dying, or a dead job requeued (enqueued again after attempts), changes
            // the dead list.
            let requeued = body.event_type == EventType::JobEnqueued && job.attempt > 0;
            if body.event_type == EventType::JobDead || requeued {
                topics.push(Topic::Dead);
            }
            // A schedule's page shows its last job's state.
            if job.schedule.is_some() {
                topics.push(Topic::Schedules);
            }
        }
        if let Some(fired) = &body.schedule {
            topics.extend([Topic::Schedules, Topic::Job(fired.job_id)]);
        }
        topics
    }
}

/// What changed since the last broadcast.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Changes {
    topics: HashSet<Topic>,
    /// Too many jobs changed to name them: every `job-<id>` topic counts as changed.
    every_job: bool,
}

impl Changes {
    fn add(&mut self, topic: Topic) {
        if let Topic::Job(_) = topic {
            if self.every_job {
                return;
            }
            if self.topics.len() >= MAX_JOB_TOPICS {
                self.every_job = true;
                self.topics.retain(|t| !matches!(t, Topic::Job(_)));
                return;
            }
        }
        self.topics.insert(topic);
    }

    /// Whether `topic` changed.
    pub(crate) fn touches(&self, topic: &Topic) -> bool {
        self.topics.contains(topic) || (self.every_job && matches!(topic, Topic::Job(_)))
    }

    fn is_empty(&self) -> bool {
        self.topics.is_empty() && !self.every_job
    }
}

/// Collects changes and broadcasts them, coalesced.
pub(crate) struct Hub {
    /// The shortest time between two broadcasts ([`COALESCE`] in a server).
    interval: Duration,
    pending: Mutex<Changes>,
    marked: Notify,
    sender: broadcast::Sender<Arc<Changes>>,
    /// Broadcasts sent so far.
    generation: AtomicU64,
}

impl Hub {
    /// A hub with nothing pending that broadcasts at most once per `interval`.
    pub(crate) fn new(interval: Duration) -> Self {
        let (sender, _) = broadcast::channel(BUFFER);
        Self {
            interval,
            pending: Mutex::new(Changes::default()),
            marked: Notify::new(),
            sender,
            generation: AtomicU64::new(0),
        }
    }

    /// Marks `topics` changed; they go out with the next broadcast.
    pub(crate) fn touch(&self, topics: impl IntoIterator<Item = Topic>) {
        if let Ok(mut pending) = self.pending.lock() {
            for t in topics {
                pending.add(t);
            }
        }
        self.marked.notify_one();
    }

    /// Marks everything changed (the feed had a gap or was reopened).
    fn touch_everything(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.every_job = true;
            pending.topics.retain(|t| !matches!(t, Topic::Job(_)));
            pending
                .topics
                .extend([Topic::Jobs, Topic::Queues, Topic::Dead, Topic::Schedules]);
        }
        self.marked.notify_one();
    }

    /// Broadcasts sent so far; a page renders with it, its stream starts from it.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Changes>> {
        self.sender.subscribe()
    }

    /// Sends what is pending, if anything.
    fn flush(&self) {
        let changes = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return,
        };
        if changes.is_empty() {
            return;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        // No tab open is not an error.
        let _ = self.sender.send(Arc::new(changes));
    }

    /// Broadcasts marked changes, at most once per interval, until `stop`.
    async fn run_broadcasts(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = self.marked.notified() => {}
                () = stop.cancelled() => return,
            }
            self.flush();
            // Changes marked from now on wait for the next slot.
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

/// Starts the dashboard's background work on `engine`: reading the event feed into the hub
/// and the chart sampler, and the hub's broadcasts. Both stop when the engine shuts down.
pub(crate) fn spawn(engine: Arc<Engine>, hub: Arc<Hub>, series: Arc<Series>) {
    let stop = engine.shutdown_token();
    tokio::spawn(hub.clone().run_broadcasts(stop.clone()));
    tokio::spawn(async move {
        let mut after = None;
        loop {
            let events = match engine.event_stream(after, StreamFilter::default()).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard: the event feed cannot be opened; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(REOPEN_AFTER) => continue,
                        () = stop.cancelled() => return,
                    }
                }
            };
            let mut events = std::pin::pin!(events);
            while let Some(item) = events.next().await {
                match item {
                    StreamItem::Event(event) => {
                        series.record(&event);
                        hub.touch(Topic::of_event(&event));
                    }
                    StreamItem::Gap { .. } => hub.touch_everything(),
                    StreamItem::Cutoff { resume_after, .. } => {
                        // Resuming by id loses nothing; were the log pruned past it, the
                        // stream says so with a gap.
                        after = resume_after;
                        hub.touch_everything();
                        break;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(REOPEN_AFTER) => {}
                () = stop.cancelled() => return,
            }
        }
    });
}

/// The query of `GET /ui/live`.
#[derive(Debug, Deserialize)]
pub(crate) struct LiveQuery {
    /// Comma-separated topics.
    topics: String,
    /// The hub generation the page was rendered at.
    since: Option<u64>,
}

/// `GET /ui/live?topics=jobs,job-<id>&since=<generation>`: a stream of `changed-<topic>`
/// events (data: the topic) for the topics that changed, at most once per second each.
pub(crate) async fn stream(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiQuery(q): ApiQuery<LiveQuery>,
) -> Result<Response, ApiError> {
    let topics = q
        .topics
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Topic::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if topics.is_empty() || topics.len() > MAX_TOPICS {
        return Err(ApiError::invalid(format!(
            "topics: name 1 to {MAX_TOPICS} topics"
        )));
    }
    let place = state.stream_place()?;
    let receiver = dash.hub.subscribe();
    let missed = q.since.is_some_and(|since| dash.hub.generation() > since);
    let tab = Tab {
        receiver,
        outbox: if missed {
            topics.iter().map(Topic::name).collect()
        } else {
            VecDeque::new()
        },
        topics,
        stop: state.engine.shutdown_token(),
        _place: place,
    };
    let events = futures_util::stream::unfold(tab, |mut tab| async move {
        let name = tab.next().await?;
        let event = SseEvent::default()
            .event(format!("changed-{name}"))
            .data(name);
        Some((Ok::<_, Infallible>(event), tab))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// One tab's stream.
struct Tab {
    receiver: broadcast::Receiver<Arc<Changes>>,
    topics: Vec<Topic>,
    /// Topic names to send before waiting again.
    outbox: VecDeque<String>,
    stop: tokio_util::sync::CancellationToken,
    /// Holds one of the server's places for event streams.
    _place: tokio::sync::OwnedSemaphorePermit,
}

impl Tab {
    /// The next topic to announce; `None` ends the stream (the server stops).
    async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(name) = self.outbox.pop_front() {
                return Some(name);
            }
            let got = tokio::select! {
                got = self.receiver.recv() => got,
                () = self.stop.cancelled() => return None,
            };
            match got {
                Ok(changes) => self.outbox.extend(
                    self.topics
                        .iter()
                        .filter(|t| changes.touches(t))
                        .map(Topic::name),
                ),
                // Fell behind: whatever it missed, everything it shows may have changed.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.outbox.extend(self.topics.iter().map(Topic::name));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_and_unknown_ones_are_refused() {
        let id = JobId::new();
        for t in [
            Topic::Jobs,
            Topic::Queues,
            Topic::Dead,
            Topic::Schedules,
            Topic::Job(id),
        ] {
            assert_eq!(Topic::parse(&t.name()).unwrap(), t);
        }
        assert!(Topic::parse("everything").is_err());
        assert!(Topic::parse("job-nope").is_err());
    }

    #[test]
    fn too_many_jobs_become_every_job() {
        let mut c = Changes::default();
        c.add(Topic::Queues);
        for _ in 0..MAX_JOB_TOPICS + 5 {
            c.add(Topic::Job(JobId::new()));
        }
        assert!(c.every_job);
        assert!(c.touches(&Topic::Job(JobId::new())));
        assert!(c.touches(&Topic::Queues));
        assert!(!c.touches(&Topic::Dead));
        assert!(c.topics.len() <= 1);
    }

    #[tokio::test]
    async fn changes_are_coalesced_to_one_broadcast_per_interval() {
        let interval = Duration::from_millis(200);
        let hub = Arc::new(Hub::new(interval));
        let mut rx = hub.subscribe();
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(hub.clone().run_broadcasts(stop.clone()));
        let job = JobId::new();
        hub.touch([Topic::Jobs]);
        let first = rx.recv().await.unwrap();
        let sent_at = tokio::time::Instant::now();
        assert!(first.touches(&Topic::Jobs));
        // A burst right after a broadcast waits for the next slot and goes out as one.
        for _ in 0..100 {
            hub.touch([Topic::Job(job), Topic::Queues]);
        }
        let second = rx.recv().await.unwrap();
        assert!(sent_at.elapsed() >= interval, "{:?}", sent_at.elapsed());
        assert!(second.touches(&Topic::Job(job)) && second.touches(&Topic::Queues));
        assert!(!second.touches(&Topic::Jobs));
        // Nothing of the burst is left over: the next broadcast holds only what came after.
        hub.touch([Topic::Dead]);
        let third = rx.recv().await.unwrap();
        assert!(third.touches(&Topic::Dead));
        assert!(!third.touches(&Topic::Queues) && !third.touches(&Topic::Job(job)));
        assert_eq!(hub.generation(), 3);
        stop.cancel();
    }

    #[tokio::test]
    async fn a_tab_hears_only_its_topics_and_everything_after_lagging() {
        let hub = Hub::new(COALESCE);
        let job = JobId::new();
        let mut tab = Tab {
            receiver: hub.subscribe(),
            topics: vec![Topic::Queues, Topic::Job(job)],
            outbox: VecDeque::new(),
            stop: tokio_util::sync::CancellationToken::new(),
            _place: Arc::new(tokio::sync::Semaphore::new(1))
                .try_acquire_owned()
                .unwrap(),
        };
        hub.touch([Topic::Jobs, Topic::Dead]);
        hub.flush();
        hub.touch([Topic::Job(job)]);
        hub.flush();
        assert_eq!(
            tab.next().await.as_deref(),
            Some(format!("job-{job}").as_str())
        );
        for _ in 0..BUFFER + 2 {
            hub.touch([Topic::Dead]);
            hub.flush();
        }
        let mut after_lag = vec![tab.next().await.unwrap(), tab.next().await.unwrap()];
        after_lag.sort();
        assert_eq!(after_lag, vec![format!("job-{job}"), "queues".to_string()]);
    }
}
