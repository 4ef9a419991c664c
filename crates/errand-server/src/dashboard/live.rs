//! Live updates: each tab holds one server-sent-event stream (`GET /ui/live?topics=...`)
//! that says *what* changed, never the data itself; the tab re-fetches the fragments that
//! show it.
//!
//! One task per server reads the cluster-wide event log (the same one `GET /v1/events`
//! streams, so changes made through any node reach every node's tabs) and marks topics:
//! `jobs`, `queues`, `dead`, `schedules`, `job-<id>`. It follows the engine's live feed
//! while a tab is open, and otherwise reads the log every 2 s for the charts, so that a
//! server nobody watches does not keep the engine's live tail reading after every write. At most once per
//! [`COALESCE`] the marked topics go out in one broadcast, and each tab's stream sends one
//! `changed-<topic>` event per topic it follows. So a tab costs at most one small message
//! per second however busy the cluster is, and an idle cluster costs nothing: no timer runs
//! while nothing changes (a keep-alive comment every 15 s aside).
//!
//! Pages pass the hub's mark as `since` (`<epoch>-<generation>`, the epoch random per
//! process): a change between rendering the page and opening its stream (or while a stream
//! was reconnecting, or while the tab was hidden and its stream closed) is sent at once, and
//! so is everything when the stream reaches another node (or this one restarted) than the
//! one that rendered the page, since generations are counted per process.
//!
//! A job's page also follows the job's log over the same stream (`log=<id>&after=<place>`,
//! see [`super::job_logs`]): a tab holds one connection, not two (browsers allow six per
//! host over HTTP/1, across every tab).

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use errand_core::{Event, EventId, EventType, JobId};
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
    /// Lines appended to one job's log on this node (its page's log).
    Log(JobId),
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
            Topic::Log(id) => format!("log-{id}"),
        }
    }

    fn parse(name: &str) -> Result<Self, ApiError> {
        Ok(match name {
            "jobs" => Topic::Jobs,
            "queues" => Topic::Queues,
            "dead" => Topic::Dead,
            "schedules" => Topic::Schedules,
            other => match (other.strip_prefix("job-"), other.strip_prefix("log-")) {
                (Some(id), _) => Topic::Job(crate::extract::job_id(id)?),
                (_, Some(id)) => Topic::Log(crate::extract::job_id(id)?),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "topics: `{other}` is not a topic (jobs, queues, dead, schedules, job-<id>)"
                    )))
                }
            },
        })
    }

    /// Whether the topic names one job (`job-<id>`, `log-<id>`).
    fn is_per_job(&self) -> bool {
        matches!(self, Topic::Job(_) | Topic::Log(_))
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
        if topic.is_per_job() {
            if self.every_job {
                return;
            }
            if self.topics.len() >= MAX_JOB_TOPICS {
                self.every_job = true;
                self.topics.retain(|t| !t.is_per_job());
                return;
            }
        }
        self.topics.insert(topic);
    }

    /// Whether `topic` changed.
    pub(crate) fn touches(&self, topic: &Topic) -> bool {
        self.topics.contains(topic) || (self.every_job && topic.is_per_job())
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
    /// Random per process: a `since` of another process (node) is not comparable.
    epoch: u64,
    /// A tab (or job page) subscribed: the feed reader goes live.
    subscribed: Notify,
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
            epoch: uuid::Uuid::new_v4().as_u64_pair().0,
            subscribed: Notify::new(),
        }
    }

    /// Whether any tab or job page follows the hub now.
    fn watched(&self) -> bool {
        self.sender.receiver_count() > 0
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
            pending.topics.retain(|t| !t.is_per_job());
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

    /// Where a page's live stream starts: `<epoch>-<generation>`.
    pub(crate) fn since(&self) -> String {
        format!("{:x}-{}", self.epoch, self.generation())
    }

    /// Whether a tab whose page was rendered at `since` may have missed a change: a
    /// broadcast went out since, or `since` is another process's (another node behind a
    /// load balancer, or this node before a restart), or it is not a mark at all.
    fn missed(&self, since: &str) -> bool {
        let ours = since.split_once('-').and_then(|(epoch, generation)| {
            let epoch = u64::from_str_radix(epoch, 16).ok()?;
            let generation = generation.parse::<u64>().ok()?;
            (epoch == self.epoch).then_some(generation)
        });
        ours.is_none_or(|generation| self.generation() > generation)
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Changes>> {
        let receiver = self.sender.subscribe();
        self.subscribed.notify_one();
        receiver
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
    // Lines this node's runs print: one reader per server, so a job page's log wakes only
    // for its own job's lines (lines of runs on other nodes are polled while a job runs).
    let mut logs = engine.subscribe_logs();
    let log_hub = hub.clone();
    let log_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            let got = tokio::select! {
                got = logs.recv() => got,
                () = log_stop.cancelled() => return,
            };
            match got {
                Ok(appended) => log_hub.touch([Topic::Log(JobId(appended.owner))]),
                Err(broadcast::error::RecvError::Lagged(_)) => log_hub.touch_everything(),
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    tokio::spawn(read_feed(engine, hub, series, stop));
}

/// How often the feed reader reads the log while no tab follows the hub: the charts'
/// buckets are 10 s wide and placed by each event's own time, so reading every few seconds
/// loses nothing, and the engine's live tail (which reads after every write of this node,
/// and on PostgreSQL polls for other nodes' events) can rest.
const UNWATCHED_POLL: Duration = Duration::from_secs(2);
/// How often the live reader checks whether the last tab has gone.
const WATCH_CHECK: Duration = Duration::from_secs(1);
/// Events read per page while no tab follows.
const UNWATCHED_PAGE: u32 = 1000;

/// Reads the log after `after` to its end, page by page, giving each event to `record`;
/// returns how far it read (a failed read stops it there, to be tried at the next poll).
async fn read_log(
    engine: &Engine,
    hub: &Hub,
    mut after: EventId,
    record: &impl Fn(&Event),
) -> EventId {
    loop {
        let page = match engine.event_read(Some(after), UNWATCHED_PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "dashboard: the event log cannot be read; retrying");
                return after;
            }
        };
        if let Some(missed) = page.missed_through.filter(|m| *m > after) {
            after = missed;
            hub.touch_everything();
        }
        let full = page.events.len() as u32 >= UNWATCHED_PAGE;
        for event in &page.events {
            record(event);
            after = event.id;
        }
        if !full {
            return after;
        }
    }
}

/// Feeds the chart sampler and the hub from the cluster's event log: live (the engine's
/// event stream) while a tab follows the hub, by reading the log every [`UNWATCHED_POLL`]
/// while none does. One cursor carries over between the two, so nothing is missed or read
/// twice.
async fn read_feed(
    engine: Arc<Engine>,
    hub: Arc<Hub>,
    series: Arc<Series>,
    stop: tokio_util::sync::CancellationToken,
) {
    // From the log's head as it is now: the charts start empty with the process. An empty
    // log's head is `0-0`, before every event.
    let mut after = loop {
        match engine.event_head().await {
            Ok(head) => break head.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "dashboard: the event log cannot be read; retrying");
                tokio::select! {
                    () = tokio::time::sleep(REOPEN_AFTER) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    };
    // A tab that opened its stream before the reader knew where the log stood may have
    // seen a change the reader now starts after (a server's first moments): it hears that
    // everything changed.
    if hub.watched() {
        hub.touch_everything();
    }
    let record = |event: &Event| {
        series.record(event);
        hub.touch(Topic::of_event(event));
    };
    loop {
        if stop.is_cancelled() {
            return;
        }
        if !hub.watched() {
            // Woken by a tab, or every poll: read whatever the log gained meanwhile.
            let subscribed = hub.subscribed.notified();
            tokio::pin!(subscribed);
            subscribed.as_mut().enable();
            after = read_log(&engine, &hub, after, &record).await;
            if hub.watched() {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(UNWATCHED_POLL) => {}
                () = &mut subscribed => {}
                () = stop.cancelled() => return,
            }
            continue;
        }
        // Always a place in the log, never "from now on": an event written between the
        // last read and this open (on a new server's empty log, say) is still caught up.
        let events = match engine
            .event_stream(Some(after), StreamFilter::default())
            .await
        {
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
        let mut check = tokio::time::interval(WATCH_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reopen = loop {
            let item = tokio::select! {
                item = events.next() => item,
                _ = check.tick() => {
                    if hub.watched() {
                        continue;
                    }
                    // The last tab went: back to reading now and then.
                    break false;
                }
                () = stop.cancelled() => return,
            };
            match item {
                Some(StreamItem::Event(event)) => {
                    record(&event);
                    after = event.id;
                }
                Some(StreamItem::Gap { .. }) => hub.touch_everything(),
                Some(StreamItem::Cutoff { resume_after, .. }) => {
                    // Resuming by id loses nothing; were the log pruned past it, the
                    // stream says so with a gap.
                    after = resume_after.unwrap_or(after);
                    hub.touch_everything();
                    break true;
                }
                None => break true,
            }
        };
        if reopen {
            tokio::select! {
                () = tokio::time::sleep(REOPEN_AFTER) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

/// The query of `GET /ui/live`.
#[derive(Debug, Deserialize)]
pub(crate) struct LiveQuery {
    /// Comma-separated topics.
    topics: String,
    /// The hub mark the page was rendered at (`<epoch>-<generation>`).
    since: Option<String>,
    /// A job whose log lines the stream carries too (`lines` and `end` events).
    log: Option<String>,
    /// The last line of that log the page shows (`attempt:seq`).
    #[serde(default)]
    after: String,
}

/// `GET /ui/live?topics=jobs,job-<id>&since=<mark>[&log=<id>&after=<attempt:seq>]`: a stream
/// of `changed-<topic>` events (data: the topic) for the topics that changed, at most once
/// per second each; with `log`, also that job's log lines ([`super::job_logs`]).
pub(crate) async fn stream(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    ApiQuery(q): ApiQuery<LiveQuery>,
    headers: HeaderMap,
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
    let log = match q.log.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        Some(id) => {
            // A reconnecting browser says where it got to.
            let resume = headers
                .get("last-event-id")
                .and_then(|h| h.to_str().ok())
                .filter(|h| !h.trim().is_empty());
            let after = resume.unwrap_or(q.after.trim());
            Some(
                super::job_logs::follow(&state, &dash.hub, crate::extract::job_id(id)?, after)
                    .await?,
            )
        }
        None => None,
    };
    let place = state.stream_place()?;
    let receiver = dash.hub.subscribe();
    let missed = q
        .since
        .as_deref()
        .is_some_and(|since| dash.hub.missed(since));
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
    let changes = futures_util::stream::unfold(tab, |mut tab| async move {
        let name = tab.next().await?;
        let event = SseEvent::default()
            .event(format!("changed-{name}"))
            .data(name);
        Some((event, tab))
    });
    // The log's events end after `end`; the changes go on.
    let events = match log {
        Some(lines) => futures_util::stream::select(changes, lines).boxed(),
        None => changes.boxed(),
    }
    .map(Ok::<_, Infallible>);
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
    fn a_mark_of_another_process_or_an_older_count_has_missed_changes() {
        let hub = Hub::new(COALESCE);
        let now = hub.since();
        assert!(!hub.missed(&now));
        assert!(
            hub.missed(&Hub::new(COALESCE).since()),
            "another node's mark"
        );
        assert!(hub.missed("nonsense"));
        hub.touch([Topic::Jobs]);
        hub.flush();
        assert!(hub.missed(&now));
        assert!(!hub.missed(&hub.since()));
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
