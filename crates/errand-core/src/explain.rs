//! "Why isn't it running?": the facts a store gathers about a job that has not started,
//! and the reasons, in words and as structured codes, read from them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::queue::QueueSettings;
use crate::session::Session;
use crate::throttle::{Limit, TokenBucket};
use crate::time::{to_millis, to_timestamp};
use crate::worker::WorkerInfo;
use crate::{Job, JobId, JobState, Millis};

/// A worker that has not claimed for this long no longer counts as asking for a queue.
pub const WORKER_SILENT_AFTER_MS: i64 = 60_000;

/// Jobs under a limit, as many as a reason names (a sample when there are many).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders {
    /// How many.
    pub count: u64,
    /// Up to ten of them.
    pub sample: Vec<JobId>,
}

/// What a store knows that bears on why a job waits, read in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainFacts {
    /// The job.
    pub job: Job,
    /// The store's clock.
    pub now: Millis,
    /// Whether its queue is paused.
    pub queue_paused: bool,
    /// Its queue's settings.
    pub queue_settings: QueueSettings,
    /// Its queue's running jobs.
    pub queue_running: Holders,
    /// Its queue's rate bucket, when the queue has a rate and was drawn from.
    pub queue_bucket: Option<TokenBucket>,
    /// The limit of its kind, with what runs under it and its bucket.
    pub kind_limit: Option<(Limit, Holders, Option<TokenBucket>)>,
    /// The limit of its rate key, with its bucket.
    pub key_limit: Option<(Limit, Option<TokenBucket>)>,
    /// Its gate (lock, concurrency key or session), when it has one.
    pub gate: Option<GateFacts>,
    /// Workers seen asking for its queue, latest first.
    pub workers: Vec<WorkerInfo>,
}

/// A gate as an explanation needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct GateFacts {
    /// `lock:K`, `key:K` or `session:K`.
    pub name: String,
    /// Places.
    pub capacity: u32,
    /// The jobs holding its places (admitted: running, ready or, for a session, waiting
    /// for a retry).
    pub holders: Holders,
    /// The session, for a session gate.
    pub session: Option<Session>,
}

/// Why a job waits, as a code clients can switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// It is not waiting: it runs or has finished.
    NotWaiting,
    /// It is `blocked` until other jobs end: its parents (`after`) or, for a workflow's
    /// step, the steps it depends on.
    WaitingForJobs,
    /// It is `blocked` but waits for no job in this store: its flow is not here (export
    /// and import carry jobs, not their flows), so nothing will release it.
    FlowMissing,
    /// Its queue is paused.
    QueuePaused,
    /// Its `run_at` has not come.
    RunAtFuture,
    /// Another job holds its lock key.
    LockHeld,
    /// Its concurrency key's places are taken.
    ConcurrencyKeyFull,
    /// Another job of its session goes first.
    SessionHead,
    /// Its session waits behind a dead job.
    SessionBlocked,
    /// Its queue's concurrency limit is reached.
    QueueConcurrencyFull,
    /// Its kind's concurrency limit is reached.
    KindConcurrencyFull,
    /// A rate limit has no token until `until`.
    RateLimited,
    /// No worker has asked for its queue (or kind) lately.
    NoWorker,
    /// Nothing holds it back: the next claim for its queue takes it.
    Ready,
}

/// One reason a job waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reason {
    /// What kind of reason.
    pub code: ReasonCode,
    /// The reason in words.
    pub message: String,
    /// When it will have passed, if known (a `run_at`, the next rate token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<Timestamp>,
    /// The key or limit concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The jobs holding it back (a sample of up to ten); for `waiting_for_jobs`, its
    /// parents, ended ones included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub jobs: Vec<JobId>,
}

/// The answer of `GET /v1/jobs/{id}/explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Explanation {
    /// The job.
    #[schema(value_type = String)]
    pub job: JobId,
    /// Its state.
    pub state: crate::JobState,
    /// The reasons in one sentence.
    pub summary: String,
    /// Every reason that holds now, most decisive first.
    pub reasons: Vec<Reason>,
}

/// Reads the reasons from the facts: every one that holds now, most decisive first
/// (its flow, paused, run_at, gate, queue/kind concurrency, rate, workers), or `Ready`
/// when none does, or `NotWaiting` when the job is running or finished.
pub fn explain(facts: &ExplainFacts) -> Explanation {
    let job = &facts.job;
    let reasons = if matches!(job.state, JobState::Running) || job.state.is_final() {
        vec![reason(
            ReasonCode::NotWaiting,
            format!("job {} is {}, not waiting", job.id, job.state.as_str()),
        )]
    } else {
        let mut out = Vec::new();
        flow(facts, &mut out);
        paused(facts, &mut out);
        run_at(facts, &mut out);
        gate(facts, &mut out);
        concurrency(facts, &mut out);
        rates(facts, &mut out);
        workers(facts, &mut out);
        if out.is_empty() {
            out.push(reason(
                ReasonCode::Ready,
                format!(
                    "nothing holds it back: the next claim on queue `{}` takes it",
                    job.queue
                ),
            ));
        }
        out
    };
    let summary = reasons
        .iter()
        .map(|r| r.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Explanation {
        job: job.id,
        state: job.state,
        summary,
        reasons,
    }
}

fn reason(code: ReasonCode, message: String) -> Reason {
    Reason {
        code,
        message,
        until: None,
        key: None,
        jobs: Vec::new(),
    }
}

/// "job A", "jobs A, B" or "3 jobs (A, B, ...)" for a message.
fn naming(h: &Holders) -> String {
    let ids: Vec<String> = h.sample.iter().map(ToString::to_string).collect();
    match (h.count, ids.len()) {
        (_, 0) => format!("{} jobs", h.count),
        (1, 1) => format!("job {}", ids[0]),
        (n, shown) if n as usize == shown => format!("jobs {}", ids.join(", ")),
        (n, _) => format!("{n} jobs ({}, ...)", ids.join(", ")),
    }
}

/// Parents a reason names at most.
const PARENTS_NAMED: usize = 10;

fn flow(facts: &ExplainFacts, out: &mut Vec<Reason>) {
    let job = &facts.job;
    if job.state != JobState::Blocked {
        return;
    }
    let flow = &job.flow;
    if flow.waiting_for == 0 {
        out.push(reason(
            ReasonCode::FlowMissing,
            "blocked, and nothing will release it: what it waited for (its parents or its \
             workflow) did not come with it into this store (export and import carry jobs, \
             not their flows); cancel it, then retry it to run it as a plain job"
                .to_string(),
        ));
        return;
    }
    let waiting = flow.waiting_for;
    let mut r = match (&flow.workflow_id, &flow.step) {
        (Some(workflow), Some(step)) => reason(
            ReasonCode::WaitingForJobs,
            format!(
                "step `{step}` of workflow {workflow} waits for {waiting} step{} it depends on",
                if waiting == 1 { "" } else { "s" }
            ),
        ),
        _ => {
            let parents = flow.after.len().max(waiting as usize);
            reason(
                ReasonCode::WaitingForJobs,
                format!(
                    "waits for {waiting} of its {parents} parent job{} to {}",
                    if parents == 1 { "" } else { "s" },
                    if flow.after_any_end { "end" } else { "succeed" }
                ),
            )
        }
    };
    r.jobs = flow.after.iter().take(PARENTS_NAMED).copied().collect();
    out.push(r);
}

fn paused(facts: &ExplainFacts, out: &mut Vec<Reason>) {
    if facts.queue_paused {
        out.push(reason(
            ReasonCode::QueuePaused,
            format!("queue `{}` is paused", facts.job.queue),
        ));
    }
}

fn run_at(facts: &ExplainFacts, out: &mut Vec<Reason>) {
    let at = to_millis(facts.job.run_at);
    if at > facts.now {
        let mut r = reason(
            ReasonCode::RunAtFuture,
            format!(
                "its run_at is {} (in {})",
                facts.job.run_at,
                in_words(at - facts.now)
            ),
        );
        r.until = Some(facts.job.run_at);
        out.push(r);
    }
}

fn gate(facts: &ExplainFacts, out: &mut Vec<Reason>) {
    let (Some(g), true) = (&facts.gate, facts.job.parked) else {
        return;
    };
    let o = &facts.job.ordering;
    let mut r = if let Some(key) = &o.lock_key {
        let mut r = reason(
            ReasonCode::LockHeld,
            format!("lock key `{key}` is held by {}", naming(&g.holders)),
        );
        r.key = Some(key.clone());
        r.jobs = g.holders.sample.clone();
        r
    } else if let Some(key) = &o.concurrency_key {
        let mut r = reason(
            ReasonCode::ConcurrencyKeyFull,
            format!(
                "concurrency key `{key}` is at its limit of {} ({} running or ready: {})",
                g.capacity,
                g.holders.count,
                naming(&g.holders)
            ),
        );
        r.key = Some(key.clone());
        r.jobs = g.holders.sample.clone();
        r
    } else if let Some(key) = &o.session_key {
        match g.session.as_ref().and_then(|s| s.blocked_by) {
            Some(dead) => {
                let mut r = reason(
                    ReasonCode::SessionBlocked,
                    format!(
                        "session `{key}` is blocked behind dead job {dead}: retry it or unblock the session"
                    ),
                );
                r.jobs = vec![dead];
                r
            }
            None => {
                let head = g
                    .session
                    .as_ref()
                    .and_then(|s| s.head)
                    .or_else(|| g.holders.sample.first().copied());
                let mut r = reason(
                    ReasonCode::SessionHead,
                    match head {
                        Some(h) => format!("session `{key}` runs job {h} first"),
                        None => format!("session `{key}` runs earlier jobs first"),
                    },
                );
                r.jobs = head.into_iter().collect();
                r
            }
        }
    } else {
        return;
    };
    if r.key.is_none() {
        r.key = o.session_key.clone();
    }
    out.push(r);
}

fn concurrency(facts: &ExplainFacts, out: &mut Vec<Reason>) {
    if let Some(c) = facts.queue_settings.concurrency {
        if facts.queue_running.count >= u64::from(c) {
            let mut r = reason(
                ReasonCode::QueueConcurrencyFull,
                format!(
                    "queue `{}` runs {} of its {c} allowed at once ({})",
                    facts.job.queue,
                    facts.queue_running.count,
                    naming(&facts.queue_running)
                ),
            );
            r.key = Some(facts.job.queue.to_string());
            r.jobs = facts.queue_running.sample.clone();
            out.push(r);
        }
    }
    if let Some((limit, running, _)) = &facts.kind_limit {
        if let Some(c) = limit.concurrency {
            if running.count >= u64::from(c) {
                let mut r = reason(
                    ReasonCode::KindConcurrencyFull,
                    format!(
                        "kind `{}` runs {} of its {c} allowed at once ({})",
                        limit.name,
                        running.count,
                        naming(running)
                    ),
                );
                r.key = Some(limit.name.clone());
                r.jobs = running.sample.clone();
                out.push(r);
            }
        }
    }
}

fn rates(facts: &ExplainFacts, out: &mut Vec<Reason>) {
    let queue = facts.job.queue.to_string();
    let limited = [
        facts
            .queue_settings
            .rate
            .map(|r| ("queue", queue.as_str(), r, facts.queue_bucket)),
        facts
            .kind_limit
            .as_ref()
            .and_then(|(l, _, b)| l.rate.map(|r| ("kind", l.name.as_str(), r, *b))),
        facts
            .key_limit
            .as_ref()
            .and_then(|(l, b)| l.rate.map(|r| ("rate key", l.name.as_str(), r, *b))),
    ];
    for (what, name, rate, bucket) in limited.into_iter().flatten() {
        let now = bucket
            .unwrap_or_else(|| TokenBucket::full(&rate, facts.now))
            .refilled(&rate, facts.now);
        if now.whole() == 0 {
            let at = now.next_token_at(&rate);
            let until = to_timestamp(at);
            let mut r = reason(
                ReasonCode::RateLimited,
                format!(
                    "{what} `{name}` is rate-limited ({} per {}) until {until}",
                    rate.limit,
                    in_words(i64::try_from(rate.period_ms).unwrap_or(i64::MAX))
                ),
            );
            r.until = Some(until);
            r.key = Some(name.to_string());
            out.push(r);
        }
    }
}

fn workers(facts: &ExplainFacts, out: &mut Vec<Reason>) {
    let kind = facts.job.kind.as_str();
    let asks_for_kind = |w: &&WorkerInfo| w.kinds.is_empty() || w.kinds.iter().any(|k| k == kind);
    let recent = |w: &&WorkerInfo| facts.now - to_millis(w.last_claim_at) <= WORKER_SILENT_AFTER_MS;
    if facts
        .workers
        .iter()
        .filter(recent)
        .any(|w| asks_for_kind(&w))
    {
        return;
    }
    let silent = in_words(WORKER_SILENT_AFTER_MS);
    let message = match facts.workers.iter().find(asks_for_kind) {
        Some(w) => format!(
            "no worker has asked for queue `{}` (kind `{kind}`) in the last {silent}; the last, `{}`, claimed at {}",
            facts.job.queue, w.name, w.last_claim_at
        ),
        None if !facts.workers.is_empty() => format!(
            "the workers of queue `{}` ask only for other kinds than `{kind}`",
            facts.job.queue
        ),
        None => format!(
            "no worker has asked for queue `{}` in the last {silent}",
            facts.job.queue
        ),
    };
    let mut r = reason(ReasonCode::NoWorker, message);
    r.key = Some(facts.job.queue.to_string());
    out.push(r);
}

/// A span of milliseconds as a person reads it (`1s`, `2m 5s`).
fn in_words(ms: i64) -> String {
    crate::duration::format(std::time::Duration::from_millis(ms.max(0).unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::RunAt;
    use crate::throttle::{LimitScope, RateLimit};
    use crate::{EndNotice, JobKind, NewJob, NodeId, QueueName};

    const NOW: Millis = 1_700_000_000_000;

    fn job(state: JobState, run_at: Millis) -> Job {
        let new = NewJob {
            secrets: Default::default(),
            flow: Default::default(),
            id: JobId::new(),
            kind: JobKind::parse("mail").expect("kind"),
            queue: QueueName::parse("q").expect("queue"),
            payload: serde_json::json!({}),
            priority: 0,
            run_at: RunAt::Now,
            max_attempts: 3,
            timeout: None,
            tags: Vec::new(),
            idempotency_key: None,
            slot: None,
            notify: EndNotice::default(),
            ordering: Default::default(),
            inherit: Default::default(),
        };
        Job::inserted(new, state, run_at, NOW - 1000)
    }

    fn worker(last: Millis, kinds: &[&str]) -> WorkerInfo {
        WorkerInfo {
            name: "w1".into(),
            node: NodeId::new(),
            queues: vec!["q".into()],
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            last_claim_at: to_timestamp(last),
            jobs_in_flight: 0,
        }
    }

    fn facts(job: Job) -> ExplainFacts {
        ExplainFacts {
            job,
            now: NOW,
            queue_paused: false,
            queue_settings: QueueSettings::default(),
            queue_running: Holders::default(),
            queue_bucket: None,
            kind_limit: None,
            key_limit: None,
            gate: None,
            workers: vec![worker(NOW - 1000, &[])],
        }
    }

    fn codes(e: &Explanation) -> Vec<ReasonCode> {
        e.reasons.iter().map(|r| r.code).collect()
    }

    #[test]
    fn a_ready_job_with_a_worker_is_ready() {
        let e = explain(&facts(job(JobState::Available, NOW)));
        assert_eq!(codes(&e), vec![ReasonCode::Ready]);
        assert!(e.summary.contains("next claim"), "{}", e.summary);
    }

    #[test]
    fn a_blocked_job_names_its_parents_first_and_one_left_without_them_says_so() {
        let parent = JobId::new();
        let mut j = job(JobState::Blocked, NOW);
        j.flow.after = vec![parent, JobId::new()];
        j.flow.waiting_for = 1;
        let e = explain(&facts(j.clone()));
        assert_eq!(codes(&e)[0], ReasonCode::WaitingForJobs, "{e:?}");
        assert!(!codes(&e).contains(&ReasonCode::Ready), "{e:?}");
        assert_eq!(e.reasons[0].jobs[0], parent);
        assert!(
            e.summary
                .contains("waits for 1 of its 2 parent jobs to succeed"),
            "{}",
            e.summary
        );
        // Imported without its flow: nothing will release it.
        j.flow.waiting_for = 0;
        let e = explain(&facts(j));
        assert_eq!(codes(&e)[0], ReasonCode::FlowMissing, "{e:?}");
        assert!(
            e.summary.contains("nothing will release it"),
            "{}",
            e.summary
        );
    }

    #[test]
    fn a_running_job_is_not_waiting() {
        let e = explain(&facts(job(JobState::Running, NOW)));
        assert_eq!(codes(&e), vec![ReasonCode::NotWaiting]);
    }

    #[test]
    fn every_reason_that_holds_comes_most_decisive_first() {
        let mut f = facts(job(JobState::Scheduled, NOW + 5000));
        f.queue_paused = true;
        f.workers.clear();
        let e = explain(&f);
        assert_eq!(
            codes(&e),
            vec![
                ReasonCode::QueuePaused,
                ReasonCode::RunAtFuture,
                ReasonCode::NoWorker
            ]
        );
        assert_eq!(e.reasons[1].until, Some(to_timestamp(NOW + 5000)));
        assert!(e.summary.contains("paused"), "{}", e.summary);
    }

    #[test]
    fn a_parked_lock_job_names_the_holder() {
        let mut j = job(JobState::Available, NOW);
        j.parked = true;
        j.ordering.lock_key = Some("acct-1".into());
        let holder = JobId::new();
        let mut f = facts(j);
        f.gate = Some(GateFacts {
            name: "lock:acct-1".into(),
            capacity: 1,
            holders: Holders {
                count: 1,
                sample: vec![holder],
            },
            session: None,
        });
        let e = explain(&f);
        assert_eq!(codes(&e), vec![ReasonCode::LockHeld]);
        assert_eq!(e.reasons[0].jobs, vec![holder]);
        assert_eq!(e.reasons[0].key.as_deref(), Some("acct-1"));
        assert!(e.summary.contains(&holder.to_string()), "{}", e.summary);
    }

    #[test]
    fn a_blocked_session_names_the_dead_job() {
        let mut j = job(JobState::Available, NOW);
        j.parked = true;
        j.ordering.session_key = Some("s".into());
        let dead = JobId::new();
        let mut f = facts(j);
        f.gate = Some(GateFacts {
            name: "session:s".into(),
            capacity: 1,
            holders: Holders::default(),
            session: Some(Session {
                key: "s".into(),
                state: serde_json::Value::Null,
                version: 0,
                head: Some(dead),
                length: 2,
                blocked_by: Some(dead),
                updated_at: to_timestamp(NOW),
            }),
        });
        let e = explain(&f);
        assert_eq!(codes(&e), vec![ReasonCode::SessionBlocked]);
        assert_eq!(e.reasons[0].jobs, vec![dead]);
    }

    #[test]
    fn full_queue_and_kind_limits_name_their_holders() {
        let mut f = facts(job(JobState::Available, NOW));
        let running = Holders {
            count: 2,
            sample: vec![JobId::new(), JobId::new()],
        };
        f.queue_settings.concurrency = Some(2);
        f.queue_running = running.clone();
        f.kind_limit = Some((
            Limit {
                scope: LimitScope::Kind,
                name: "mail".into(),
                concurrency: Some(3),
                rate: None,
            },
            running,
            None,
        ));
        let e = explain(&f);
        // The kind has room (2 of 3); the queue does not.
        assert_eq!(codes(&e), vec![ReasonCode::QueueConcurrencyFull]);
        assert_eq!(e.reasons[0].jobs.len(), 2);
    }

    #[test]
    fn an_empty_bucket_says_when_the_next_token_comes() {
        let rate = RateLimit {
            limit: 1,
            period_ms: 1000,
            burst: None,
        };
        let mut f = facts(job(JobState::Available, NOW));
        f.key_limit = Some((
            Limit {
                scope: LimitScope::Key,
                name: "partner".into(),
                concurrency: None,
                rate: Some(rate),
            },
            Some(TokenBucket {
                tokens: 0.0,
                at: NOW - 250,
            }),
        ));
        let e = explain(&f);
        assert_eq!(codes(&e), vec![ReasonCode::RateLimited]);
        assert_eq!(e.reasons[0].until, Some(to_timestamp(NOW + 750)));
        assert_eq!(e.reasons[0].key.as_deref(), Some("partner"));
        // A full (never drawn) bucket holds nothing back.
        f.key_limit = Some((f.key_limit.clone().expect("limit").0, None));
        assert_eq!(codes(&explain(&f)), vec![ReasonCode::Ready]);
    }

    #[test]
    fn a_silent_or_other_kind_worker_does_not_count() {
        let mut f = facts(job(JobState::Available, NOW));
        f.workers = vec![worker(NOW - WORKER_SILENT_AFTER_MS - 1, &[])];
        assert_eq!(codes(&explain(&f)), vec![ReasonCode::NoWorker]);
        f.workers = vec![worker(NOW - 10, &["other"])];
        assert_eq!(codes(&explain(&f)), vec![ReasonCode::NoWorker]);
        f.workers = vec![worker(NOW - 10, &["mail"])];
        assert_eq!(codes(&explain(&f)), vec![ReasonCode::Ready]);
    }
}
