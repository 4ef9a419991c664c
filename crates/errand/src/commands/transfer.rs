//! `errand export` and `errand import`: move every job, attempt and queue setting from one
//! store to another (SQLite to PostgreSQL and back), as JSON lines.
//!
//! The first line names the format; then one line per queue, per workflow template, per
//! event subscription and per API token (see [`transfer_config`]), one per schedule
//! followed by its slot ledger in pages (which slots already ran, so a backfill after the
//! move does not run them again), then one per job with its attempts, newest first. An
//! import stopped part-way can be run again: jobs, slots, subscriptions and tokens
//! already in the target are kept (a job that differs from the file is named), settings
//! are written over (docs/operations.md, "Importing again").

use std::io::{BufRead, BufReader, BufWriter, Write};

use anyhow::{bail, Context};
use clap::ValueEnum;
use errand_core::queue::{QueueSettings, QueueSettingsPatch};
use errand_core::schedule_spec::ScheduleSpec;
use errand_core::throttle::Limit;
use errand_core::NodeStatus;
use errand_core::QueueName;
use errand_engine::maintenance::NODE_DEAD_AFTER;
use errand_store::{
    JobListParams, QueueUpsertParams, RestoredJob, SchedulePut, SchedulePutParams,
    ScheduleSlotListParams, ScheduleSlotRecord, SharedStore,
};
use serde::{Deserialize, Serialize};

use crate::cli::{ExportArgs, ImportArgs, Leave, StoreArgs};
use crate::commands::progress;
use crate::commands::transfer_config::{self, counted, TemplateLine, TokenLine};
use crate::settings::store_location;
use crate::store_open;

/// The first line of every export.
const FORMAT: &str = "errand-export";
/// Bumped when an export holds lines an older import cannot read. Version 2 added `slots`
/// lines; version 3 `limit`, `template`, `subscription` and `token` lines and the queue
/// line's `settings`. Older exports still import.
const VERSION: u32 = 3;
/// Jobs read per page and written per import batch: big enough to amortise round trips,
/// small enough to keep each transaction short.
const PAGE: u32 = 500;

/// One line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    /// The header.
    Format {
        name: String,
        version: u32,
        /// `included` when the jobs carry their secret values (`--include-secrets`),
        /// `omitted` when not; absent in exports from before secrets.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secrets: Option<String>,
    },
    /// A queue's pause and settings (concurrency, rate, job defaults; absent in exports
    /// from before they travelled, which leave the target's as they are).
    Queue {
        name: QueueName,
        paused: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settings: Option<QueueSettings>,
    },
    /// A kind's or rate key's limit.
    Limit(Box<Limit>),
    /// A workflow template.
    Template(Box<TemplateLine>),
    /// An event subscription.
    Subscription(Box<errand_core::Subscription>),
    /// An API token (the hash of its secret, never the secret).
    Token(Box<TokenLine>),
    /// A schedule's definition and whether it is paused.
    Schedule {
        spec: Box<ScheduleSpec>,
        paused: bool,
    },
    /// A page of a schedule's slot ledger.
    Slots(Vec<ScheduleSlotRecord>),
    /// A job and its attempts.
    Job(Box<RestoredJob>),
}

/// Opens the store the flags name: an export reads an existing store only. Returns the
/// store, its description as opening found it (an export's source), and where it is
/// (an import's target, which the import fills).
async fn open(
    location: &StoreArgs,
    existing_only: bool,
    report: &mut Report,
) -> anyhow::Result<(SharedStore, String, String)> {
    let (data_dir, location) = store_location(location)?;
    let opened = if existing_only {
        store_open::open_existing(&location, &data_dir, "nothing to export").await?
    } else {
        store_open::open(&location, &data_dir).await?
    };
    let place = format!("{} {}", opened.about.kind, opened.about.location);
    if opened.origin == errand_store::StoreOrigin::Created {
        report.say(format!("created a new store: {place}"));
    }
    // A node serving the store keeps writing while it is read or written here: an export
    // may miss its latest writes, and an import writes over settings it serves.
    let nodes = opened
        .store
        .node_list(NODE_DEAD_AFTER, NODE_DEAD_AFTER)
        .await?;
    for n in nodes.iter().filter(|n| n.status == NodeStatus::Alive) {
        report.say(format!(
            "warning: node {} ({} pid {}) is serving this store (heartbeat at {}): stop it first, or what it writes meanwhile may be missed or written over",
            n.id, n.host, n.pid, n.heartbeat_at
        ));
    }
    Ok((opened.store, opened.desc, place))
}

/// What export and import tell the user: lines on stderr as they come, or, with `--json`,
/// kept for the one object the command prints at its end.
#[derive(Debug, Default)]
struct Report {
    json: bool,
    said: Vec<String>,
}

impl Report {
    fn say(&mut self, line: String) {
        if self.json {
            self.said.push(line);
        } else {
            eprintln!("{line}");
        }
    }
}

fn line(l: &Line, out: &mut impl Write) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, l)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes the store's queues and jobs.
pub async fn export(args: ExportArgs, json: bool) -> anyhow::Result<()> {
    let mut report = Report {
        json,
        ..Report::default()
    };
    let (store, desc, _) = open(&args.location, true, &mut report).await?;
    let done = export_from(&args, &store, &desc, &mut report).await;
    // A one-shot command leaves the database as a clean stop of a node does.
    store.close().await;
    let jobs = done?;
    if json {
        let summary =
            serde_json::json!({"export": {"from": desc, "jobs": jobs, "said": report.said}});
        // Standard output carries the export itself when no file is named.
        if args.file.is_some() {
            println!("{summary}");
        } else {
            eprintln!("{summary}");
        }
    }
    Ok(())
}

/// Writes the export; how many jobs it wrote.
async fn export_from(
    args: &ExportArgs,
    store: &SharedStore,
    desc: &str,
    report: &mut Report,
) -> anyhow::Result<u64> {
    let sink: Box<dyn Write> = match &args.file {
        Some(path) => Box::new(
            errand_core::private_fs::rewrite_private_file(path)
                .with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(sink);
    line(
        &Line::Format {
            name: FORMAT.into(),
            version: VERSION,
            secrets: Some(
                if args.include_secrets {
                    "included"
                } else {
                    "omitted"
                }
                .into(),
            ),
        },
        &mut out,
    )?;
    let queues = store.queue_list().await?;
    for q in &queues {
        line(
            &Line::Queue {
                name: q.name.clone(),
                paused: q.paused,
                settings: Some(q.settings.clone()),
            },
            &mut out,
        )?;
    }
    let limits = store.limit_list().await?;
    for l in &limits {
        line(&Line::Limit(Box::new(l.limit.clone())), &mut out)?;
    }
    let config = transfer_config::read(store, &args.without).await?;
    // The summary's counts, in the file's order (schedules are counted below).
    let mut written = vec![
        counted(queues.len() as u64, "queue"),
        counted(limits.len() as u64, "limit"),
    ];
    let revoked = config
        .tokens
        .iter()
        .filter(|t| t.token.revoked_at.is_some())
        .count();
    for (leave, text) in [
        (Leave::Templates, counted(config.templates.len() as u64, "workflow template")),
        (Leave::Subscriptions, counted(config.subscriptions.len() as u64, "subscription")),
        (
            Leave::Tokens,
            format!(
                "{} (each as the hash of its secret, never the secret; {revoked} revoked, as their revocations)",
                counted(config.tokens.len() as u64, "API token")
            ),
        ),
    ] {
        if !args.without.contains(&leave) {
            written.push(text);
        }
    }
    for t in config.templates {
        line(&Line::Template(Box::new(t)), &mut out)?;
    }
    for s in config.subscriptions {
        line(&Line::Subscription(Box::new(s)), &mut out)?;
    }
    for t in config.tokens {
        line(&Line::Token(Box::new(t)), &mut out)?;
    }
    let mut schedules = 0u64;
    let mut owned_by_definitions = 0usize;
    for s in store.schedule_list().await? {
        // A definition's schedule belongs to its jobs directory: the node that loads the
        // folder makes it again, and one imported where no node has the folder would fire
        // jobs nobody runs. A paused one travels (it fires nothing), so that its pause
        // outlives the move.
        let owned = s
            .spec
            .name
            .as_str()
            .starts_with(errand_runner::definition::SCHEDULE_PREFIX);
        if owned && !s.paused {
            owned_by_definitions += 1;
            continue;
        }
        let name = s.spec.name.clone();
        schedules += 1;
        line(
            &Line::Schedule {
                spec: Box::new(s.spec),
                paused: s.paused,
            },
            &mut out,
        )?;
        let mut after = None;
        loop {
            let page = store
                .schedule_slot_list(ScheduleSlotListParams {
                    schedule: name.clone(),
                    after,
                    limit: PAGE,
                })
                .await?;
            match page.last() {
                Some(last) => after = Some(last.slot),
                None => break,
            }
            let full = page.len() == PAGE as usize;
            line(&Line::Slots(page), &mut out)?;
            if !full {
                break;
            }
        }
    }
    // The total is the queues' counts at the start: a guide for the bar, not a promise.
    let expected: u64 = store
        .queue_list()
        .await?
        .iter()
        .map(|q| {
            let c = &q.counts;
            c.scheduled + c.available + c.running + c.succeeded + c.dead + c.cancelled + c.blocked
        })
        .sum();
    let bar = progress::count(Some(expected), "exporting jobs");
    let mut before = None;
    let mut jobs = 0u64;
    let mut in_flows = FlowJobs::default();
    loop {
        let page = store
            .job_list(JobListParams {
                before,
                limit: PAGE,
                ..Default::default()
            })
            .await?;
        for job in &page {
            in_flows.count(job);
            let attempts = store.job_attempt_list(job.id).await?;
            line(
                &Line::Job(Box::new(RestoredJob {
                    secrets: (args.include_secrets && !job.secrets.is_empty())
                        .then(|| job.secrets.reveal().clone()),
                    job: job.clone(),
                    attempts,
                })),
                &mut out,
            )?;
        }
        jobs += page.len() as u64;
        if jobs > expected {
            bar.set_length(jobs);
        }
        bar.set_position(jobs);
        // Without a bar (not a terminal), a line at every ten thousand.
        if bar.is_hidden() && !report.json && jobs / 10_000 > (jobs - page.len() as u64) / 10_000 {
            eprintln!("exported {jobs} jobs…");
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => before = Some(last.id),
            _ => break,
        }
    }
    out.flush()?;
    bar.finish_and_clear();
    report.say(format!("exported {jobs} jobs from {desc}"));
    written.push(counted(schedules, "schedule"));
    report.say(format!(
        "and {}{}",
        written.join(", "),
        match args.without.as_slice() {
            [] => String::new(),
            left => format!(
                "; left out: {}",
                left.iter()
                    .filter_map(|l| l.to_possible_value())
                    .map(|v| v.get_name().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    ));
    if owned_by_definitions > 0 {
        report.say(format!(
            "left out {owned_by_definitions} schedule{} of job definitions (`{}<name>`, not paused): the node that loads the jobs directory makes {} again",
            if owned_by_definitions == 1 { "" } else { "s" },
            errand_runner::definition::SCHEDULE_PREFIX,
            if owned_by_definitions == 1 { "it" } else { "them" },
        ));
    }
    if let Some(warning) = in_flows.warning() {
        report.say(warning);
    }
    if !args.include_secrets {
        report.say("secret values left out (--include-secrets exports them)".into());
    }
    Ok(jobs)
}

/// Exported jobs that belong to a flow (a workflow, a batch, parents), which the export
/// does not carry: the user hears how many arrive as plain jobs, and how many are
/// `blocked` with nothing left to release them there (those of a flow, and those already
/// left without one by an earlier move).
#[derive(Debug, Default)]
struct FlowJobs {
    in_flows: u64,
    blocked: u64,
}

impl FlowJobs {
    /// Counts `job` when it has not ended and is part of a flow (an ended one has nothing
    /// left to lose), and when it is blocked.
    fn count(&mut self, job: &errand_core::Job) {
        let f = &job.flow;
        let in_flow = f.workflow_id.is_some() || f.batch_id.is_some() || !f.after.is_empty();
        if in_flow && !job.state.is_final() {
            self.in_flows += 1;
        }
        if job.state == errand_core::JobState::Blocked {
            self.blocked += 1;
        }
    }

    fn warning(&self) -> Option<String> {
        let flows = match self.in_flows {
            0 => None,
            1 => Some("1 unfinished job is part of a workflow, a batch or a continuation (`after`), which are not exported: it arrives as a plain job".to_string()),
            n => Some(format!(
                "{n} unfinished jobs are part of workflows, batches or continuations (`after`), which are not exported: they arrive as plain jobs"
            )),
        };
        let blocked = match self.blocked {
            0 => None,
            1 => Some("1 job is blocked and waits forever where it arrives".to_string()),
            n => Some(format!(
                "{n} jobs are blocked and wait forever where they arrive"
            )),
        };
        let text = match (flows, blocked) {
            (None, None) => return None,
            (Some(f), None) => f,
            (None, Some(b)) => b,
            (Some(f), Some(b)) => format!("{f}; {b}"),
        };
        Some(format!(
            "warning: {text} (let flows finish, or cancel them, before moving stores; `errand jobs explain ID` says flow_missing for one left waiting)"
        ))
    }
}

/// Loads an export into a store (what is there already: see the module's doc).
pub async fn import(args: ImportArgs, json: bool) -> anyhow::Result<()> {
    // The file and its header first: a missing file or one that is not an export changes
    // nothing (no store is created for it).
    let (source, size): (Box<dyn std::io::Read>, Option<u64>) = match &args.file {
        Some(path) => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let size = file.metadata().ok().map(|m| m.len());
            (Box::new(file), size)
        }
        None => (Box::new(std::io::stdin().lock()), None),
    };
    let source_name = args
        .file
        .as_ref()
        .map_or_else(|| "standard input".to_string(), |p| p.display().to_string());
    let mut lines = BufReader::new(source).lines();
    let header = lines
        .next()
        .transpose()
        .with_context(|| format!("reading {source_name}"))?;
    match header.as_deref().map(serde_json::from_str::<Line>) {
        Some(Ok(Line::Format { name, version, .. })) if name == FORMAT && version <= VERSION => {}
        Some(Ok(Line::Format { name, version, .. })) => {
            bail!("cannot read {name} version {version}")
        }
        _ => bail!("not an errand export: the first line must be its format header"),
    }
    let mut report = Report {
        json,
        ..Report::default()
    };
    let (store, _, place) = open(&args.location, false, &mut report).await?;
    let read = header.map_or(0, |h| h.len() as u64 + 1);
    let done = import_into(
        &args,
        &store,
        &place,
        &source_name,
        lines,
        (read, size),
        report,
    )
    .await;
    store.close().await;
    done
}

/// A queue's exported settings as the patch that gives a queue exactly those (a setting
/// the file leaves unset is removed here too).
fn settings_patch(settings: QueueSettings) -> QueueSettingsPatch {
    let d = settings.defaults;
    QueueSettingsPatch {
        paused: None,
        concurrency: Some(settings.concurrency),
        rate: Some(settings.rate),
        max_attempts: Some(d.max_attempts),
        priority: Some(d.priority),
        timeout_ms: Some(d.timeout_ms),
        backoff: Some(d.backoff),
    }
}

/// Jobs of the file that did not arrive as the file has them: already in the target in
/// another version (changed on either side since an earlier import; the target keeps
/// its own), or not imported because the target holds another job with the same
/// idempotency key.
#[derive(Debug, Default)]
struct SkippedJobs {
    different: Vec<errand_core::JobId>,
    key_taken: Vec<errand_core::JobId>,
    /// Jobs handed to the store (read from the file and not left in an unfinished batch).
    sent: u64,
}

/// What a run changes in a job, compared between the file and the target: its attempts,
/// when it ended, whether it has ended.
fn run_marks(job: &errand_core::Job) -> (u32, Option<jiff::Timestamp>, bool) {
    (job.attempt, job.finished_at, job.state.is_final())
}

/// How many skipped jobs are read back at once, on a store's several connections.
const READ_BACK: usize = 16;

impl SkippedJobs {
    /// Restores `batch`; where some were not inserted, reads each back and compares what
    /// a run changes (attempts, the end, whether it ended) with the file's.
    async fn restore(
        &mut self,
        store: &SharedStore,
        batch: Vec<RestoredJob>,
    ) -> anyhow::Result<u64> {
        use futures_util::{StreamExt, TryStreamExt};
        let versions: Vec<_> = batch
            .iter()
            .map(|r| (r.job.id, run_marks(&r.job)))
            .collect();
        let total = batch.len() as u64;
        let inserted = store.job_restore_many(batch).await?;
        self.sent += total;
        if inserted == total {
            return Ok(inserted);
        }
        let found: Vec<_> = futures_util::stream::iter(versions)
            .map(|(id, marks)| async move {
                match store.job_get(id).await {
                    Ok(here) => Ok((id, Some(run_marks(&here) != marks))),
                    Err(errand_store::StoreError::NotFound { .. }) => Ok((id, None)),
                    Err(e) => Err(e),
                }
            })
            .buffered(READ_BACK)
            .try_collect()
            .await?;
        for (id, differs) in found {
            match differs {
                Some(false) => {}
                Some(true) => self.different.push(id),
                None => self.key_taken.push(id),
            }
        }
        Ok(inserted)
    }

    /// What the user must hear: a line per kind of job that did not arrive as the file
    /// has it.
    fn problems(&self) -> Vec<String> {
        let ids = |named: &[errand_core::JobId]| {
            named
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut out = Vec::new();
        if !self.different.is_empty() {
            out.push(format!(
                "{} already here {} from the file (run, ended or retried here or there since an earlier import): this store kept its own. To take the file's, import it into an empty store. They are: {}",
                counted(self.different.len() as u64, "job"),
                if self.different.len() == 1 { "differs" } else { "differ" },
                ids(&self.different)
            ));
        }
        if !self.key_taken.is_empty() {
            out.push(format!(
                "{} not imported: another job here has the same idempotency key. They are: {}",
                counted(self.key_taken.len() as u64, "job"),
                ids(&self.key_taken)
            ));
        }
        out
    }
}

/// The counts of one import, kept whether it finishes or stops at a bad line.
#[derive(Debug, Default)]
struct ImportRun {
    seen: u64,
    inserted: u64,
    queues: u64,
    slots: u64,
    schedules: u64,
    limits: u64,
    skipped: u64,
    config: transfer_config::Imported,
    jobs: SkippedJobs,
}

async fn import_into(
    args: &ImportArgs,
    store: &SharedStore,
    place: &str,
    source_name: &str,
    lines: std::io::Lines<BufReader<Box<dyn std::io::Read>>>,
    (read, size): (u64, Option<u64>),
    mut report: Report,
) -> anyhow::Result<()> {
    // Measured in bytes of the file read, so the total is known before any line is parsed.
    let bar = progress::bytes(size);
    bar.set_message("importing: 0 jobs");
    bar.inc(read);
    let mut run = ImportRun::default();
    let outcome = import_lines(args, store, source_name, lines, &bar, &mut run).await;
    bar.finish_and_clear();
    // What was done is said whether or not the import got to the end.
    let not_reached = run.seen - run.jobs.sent;
    report.say(format!(
        "imported into {place}: {} of {} jobs ({} were already there{}), {}, {}, {} schedule slot records, {}{}",
        run.inserted,
        run.seen,
        run.jobs.sent - run.inserted,
        if not_reached > 0 {
            format!(", {not_reached} not reached: the import stopped before them")
        } else {
            String::new()
        },
        counted(run.queues, "queue"),
        counted(run.schedules, "schedule"),
        run.slots,
        counted(run.limits, "limit"),
        run.config.summary()
    ));
    if run.skipped > 0 {
        report.say(format!(
            "skipped {} left out by --without",
            counted(run.skipped, "line")
        ));
    }
    for said in std::mem::take(&mut run.config.said) {
        report.say(said);
    }
    if run.config.subscriptions > 0 {
        report.say(
            "subscriptions deliver from nodes started with a webhook secret (--webhook-secret, ERRAND_WEBHOOK_SECRETS): give them the old nodes' so receivers keep verifying the signatures".into(),
        );
    }
    let mut problems = run.config.tokens_refused.clone();
    problems.extend(run.jobs.problems());
    if report.json {
        let c = &run.config;
        println!(
            "{}",
            serde_json::json!({"import": {
                "into": place,
                "jobs": {
                    "read": run.seen,
                    "new": run.inserted,
                    "already_there": run.jobs.sent - run.inserted,
                    "not_reached": not_reached,
                    "differing": run.jobs.different,
                    "idempotency_key_taken": run.jobs.key_taken,
                },
                "queues": run.queues,
                "schedules": run.schedules,
                "schedule_slot_records": run.slots,
                "limits": run.limits,
                "workflow_templates": c.templates,
                "subscriptions": {"new": c.subscriptions, "already_there": c.subscriptions_there, "paused_again": c.subscriptions_paused},
                "tokens": {"new": c.tokens, "already_there": c.tokens_there, "revoked": c.tokens_revoked, "left_out": c.tokens_refused.len()},
                "skipped_by_without": run.skipped,
                "problems": problems,
                "said": report.said,
            }})
        );
    } else {
        for p in &problems {
            eprintln!("{p}");
        }
    }
    outcome.context("the import stopped part-way (what it did is above): fix the file or the store and import again; what is there already is skipped")?;
    if problems.is_empty() {
        return Ok(());
    }
    Err(crate::exit::Incomplete {
        problems: problems.len(),
    }
    .into())
}

/// Reads the file's lines after the header into the store, counting in `run`.
async fn import_lines(
    args: &ImportArgs,
    store: &SharedStore,
    source_name: &str,
    lines: std::io::Lines<BufReader<Box<dyn std::io::Read>>>,
    bar: &indicatif::ProgressBar,
    run: &mut ImportRun,
) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(PAGE as usize);
    for (n, text) in lines.enumerate() {
        let at = || format!("line {}", n + 2);
        let text = text.with_context(|| format!("reading {source_name} {}", at()))?;
        bar.inc(text.len() as u64 + 1);
        if text.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&text).with_context(at)?;
        let leave = match &parsed {
            Line::Template(_) => Some(Leave::Templates),
            Line::Subscription(_) => Some(Leave::Subscriptions),
            Line::Token(_) => Some(Leave::Tokens),
            _ => None,
        };
        if leave.is_some_and(|l| args.without.contains(&l)) {
            run.skipped += 1;
            continue;
        }
        match parsed {
            Line::Format { .. } => bail!("{}: a second format header", at()),
            Line::Queue {
                name,
                paused,
                settings,
            } => {
                // Checked before anything of the queue is written.
                let patch = settings.map(settings_patch);
                if let Some(patch) = &patch {
                    patch
                        .validate()
                        .map_err(|e| anyhow::anyhow!("{}: queue {name}: {e}", at()))?;
                }
                store
                    .queue_upsert(QueueUpsertParams {
                        name: name.clone(),
                        paused,
                    })
                    .await?;
                if let Some(patch) = patch {
                    store.queue_update(&name, patch).await?;
                }
                run.queues += 1;
            }
            Line::Limit(limit) => {
                limit
                    .validate()
                    .map_err(|e| anyhow::anyhow!("{}: limit of {}: {e}", at(), limit.name))?;
                store.limit_put(*limit).await?;
                run.limits += 1;
            }
            Line::Template(t) => run.config.template(store, *t).await.with_context(at)?,
            Line::Subscription(s) => run.config.subscription(store, *s).await.with_context(at)?,
            Line::Token(t) => run.config.token(store, *t).await.with_context(at)?,
            Line::Schedule { spec, paused } => {
                // The first slot counts from the importing store's clock, like every slot.
                let now = errand_core::time::to_timestamp(store.clock_now().await?);
                // Checked as the API and errand.toml check a schedule.
                let trigger = spec
                    .validate(now)
                    .map_err(|e| anyhow::anyhow!("{}: schedule {}: {e}", at(), spec.name))?;
                let name = spec.name.clone();
                store
                    .schedule_put(SchedulePutParams {
                        spec: *spec,
                        next_fire_at: trigger.next_after(now).map(|t| t.as_millisecond()),
                        mode: SchedulePut::Replace,
                    })
                    .await?;
                if paused {
                    store.schedule_pause(&name).await?;
                } else {
                    store.schedule_resume(&name).await?;
                }
                run.schedules += 1;
            }
            Line::Slots(slots) => {
                run.slots += store.schedule_slot_restore_many(slots).await?;
            }
            Line::Job(job) => {
                if let Some(secrets) = &job.secrets {
                    errand_core::Secrets::new("secrets", secrets.clone())
                        .map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
                }
                batch.push(*job);
                run.seen += 1;
                if run.seen.is_multiple_of(100) {
                    bar.set_message(format!("importing: {} jobs", run.seen));
                }
                if batch.len() == PAGE as usize {
                    run.inserted += run.jobs.restore(store, std::mem::take(&mut batch)).await?;
                }
            }
        }
    }
    if !batch.is_empty() {
        run.inserted += run.jobs.restore(store, batch).await?;
    }
    Ok(())
}
