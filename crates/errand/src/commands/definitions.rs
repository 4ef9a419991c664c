//! `errand definitions ...`, `errand run NAME` and `errand logs JOB`.

use std::time::Duration;

use errand_api::{DefinitionView, RunDefinitionRequest};
use errand_client::{Client, LogStreamItem};
use errand_core::{JobId, LogEntry, LogStream};

use crate::cli::{DefinitionsCommand, LogsArgs, RunArgs};
use crate::commands::jobs;
use crate::exit::usage;
use crate::output;

/// `errand definitions ...`.
pub async fn run(client: &Client, cmd: DefinitionsCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        DefinitionsCommand::List => {
            let list = client.definitions().await?;
            if json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .definitions
                .iter()
                .map(|d| {
                    vec![
                        d.name.clone(),
                        d.mode.clone(),
                        d.kind.clone(),
                        d.queue.clone(),
                        triggers(d),
                        if d.stopped {
                            "stopped".into()
                        } else {
                            "-".into()
                        },
                    ]
                })
                .collect();
            output::table(
                &["NAME", "MODE", "KIND", "QUEUE", "TRIGGERS", "SWITCH"],
                &rows,
            )?;
            if !list.problems.is_empty() {
                crate::outln!();
                let folders: std::collections::BTreeSet<&str> =
                    list.problems.iter().map(|p| p.name.as_str()).collect();
                match folders.len() {
                    1 => crate::outln!("1 folder did not load:"),
                    n => crate::outln!("{n} folders did not load:"),
                }
                for p in &list.problems {
                    match &p.key {
                        Some(k) => crate::outln!("  {}: {}: `{k}`: {}", p.name, p.file, p.reason),
                        None => crate::outln!("  {}: {}: {}", p.name, p.file, p.reason),
                    }
                }
            }
            Ok(())
        }
        DefinitionsCommand::Show { name } => show(&client.definition(&name).await?, json),
        DefinitionsCommand::Stop { name } => {
            show(&client.definition_switch(&name, true).await?, json)
        }
        DefinitionsCommand::Start { name } => {
            show(&client.definition_switch(&name, false).await?, json)
        }
    }
}

fn triggers(d: &DefinitionView) -> String {
    let mut t = Vec::new();
    if d.mode == "triggered" {
        t.push("queue".to_string());
    }
    if let Some(s) = &d.schedule {
        t.push(match (&s.cron, s.every_ms) {
            (Some(c), _) => format!("cron {c}"),
            (None, Some(ms)) => format!("every {ms}ms"),
            _ => "schedule".into(),
        });
    }
    for w in &d.watch {
        t.push(format!("watch {}/{}", w.dir, w.glob));
    }
    for h in &d.hooks {
        t.push(format!("hook {}", h.name));
    }
    t.join(", ")
}

fn show(d: &DefinitionView, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(d);
    }
    let rows = vec![
        ("name", d.name.clone()),
        ("mode", d.mode.clone()),
        ("kind", d.kind.clone()),
        ("queue", d.queue.clone()),
        ("format", d.format.clone()),
        ("dir", d.dir.clone()),
        ("command", d.command.join(" ")),
        ("triggers", triggers(d)),
        ("singleton", d.singleton.to_string()),
        ("concurrency", d.concurrency.to_string()),
        ("stopped", d.stopped.to_string()),
    ];
    for (k, v) in rows {
        crate::outln!("{k:<12} {v}");
    }
    if !d.instances.is_empty() {
        crate::outln!();
        let rows: Vec<Vec<String>> = d
            .instances
            .iter()
            .map(|i| {
                vec![
                    i.node.to_string(),
                    i.instance.to_string(),
                    i.pid.map_or("-".into(), |p| p.to_string()),
                    i.state.as_str().to_string(),
                    output::when(Some(i.since)),
                    i.restarts.to_string(),
                    i.last_exit
                        .as_ref()
                        .map_or("-".into(), |r| match (r.exit_code, r.signal) {
                            (Some(c), _) => format!("exit {c}"),
                            (None, Some(s)) => format!("signal {s}"),
                            _ => "-".into(),
                        }),
                ]
            })
            .collect();
        output::table(
            &[
                "NODE",
                "INSTANCE",
                "PID",
                "STATE",
                "SINCE",
                "RESTARTS",
                "LAST EXIT",
            ],
            &rows,
        )?;
    }
    Ok(())
}

/// `errand run NAME`: an on-demand run; with `--follow` its lines stream to the terminal,
/// with `--wait` it waits for the job to end.
pub async fn run_now(client: &Client, args: RunArgs, json: bool) -> anyhow::Result<()> {
    let payload = args
        .payload
        .as_deref()
        .map(|p| {
            serde_json::from_str(p).map_err(|e| usage(format!("--payload is not valid JSON: {e}")))
        })
        .transpose()?;
    let job = client
        .run_definition(
            &args.name,
            &RunDefinitionRequest {
                payload,
                idempotency_key: args.idempotency_key,
            },
        )
        .await?;
    if args.follow {
        follow(client, job.id, None, json).await?;
    }
    if args.wait || args.follow {
        // As `errand jobs wait`: a script's `... --wait && next` stops on failure.
        return jobs::wait_and_print(client, job.id, Duration::from_secs(24 * 3600), json).await;
    }
    if json {
        output::json(&job)
    } else {
        crate::outln!("{}  {}  {}  {}", job.id, job.kind, job.queue, job.state);
        Ok(())
    }
}

/// `errand logs JOB`.
pub async fn logs(client: &Client, args: LogsArgs, json: bool) -> anyhow::Result<()> {
    let id: JobId = crate::commands::jobs::id(&args.job)?;
    if args.follow {
        return follow(client, id, args.attempt, json).await;
    }
    let mut cursor: Option<String> = None;
    loop {
        let page = client.job_logs(id, args.attempt, cursor.as_deref()).await?;
        let mut gaps = page.gaps.iter().peekable();
        for line in &page.lines {
            while let Some(g) =
                gaps.next_if(|g| g.attempt == line.attempt && g.after_seq < line.seq)
            {
                print_gap(g.dropped, json)?;
            }
            print_line(line, json)?;
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

/// Reconnects in a row that brought no new line, after which a broken follow gives up
/// (waiting 1, 2, then 4 s before each).
const FRUITLESS_RESUMES: u32 = 3;

/// Streams a job's lines: of `attempt` only, or of every attempt (the running one, then
/// each retry) until the job reaches a final state.
async fn follow(
    client: &Client,
    id: JobId,
    attempt: Option<u32>,
    json: bool,
) -> anyhow::Result<()> {
    // The last line (or gap) shown, while the attempt it belongs to is followed: a stream
    // broken before its end (the server lets go of a reader that stopped taking its lines,
    // such as a pager left paused) is picked up after it, on the same attempt.
    let mut shown: Option<(u32, u64)> = None;
    // Breaks in a row that brought no new line; a reconnect refused after a break (a
    // server restarting) counts as one.
    let mut fruitless = 0u32;
    let mut resuming = false;
    // The attempt to follow next: the one asked for; after an attempt ends, the one after
    // it when that has begun (so none is skipped, however long the output sat unread);
    // else whichever the server picks (the running one, else the next to start).
    let mut next = attempt;
    loop {
        let opened = match shown {
            Some((a, seq)) => {
                client
                    .follow_logs_after(id, Some(a), Some(&format!("{a}:{seq}")))
                    .await
            }
            None => client.follow_logs(id, next).await,
        };
        let reading = match opened {
            Ok(mut stream) => read_stream(&mut stream, json, &mut shown).await?,
            Err(e @ errand_client::ClientError::Transport { .. }) if resuming => {
                Reading::broken(e.to_string())
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(why) = reading.broken {
            resuming = true;
            fruitless = if reading.progressed { 0 } else { fruitless + 1 };
            if fruitless > FRUITLESS_RESUMES {
                anyhow::bail!(
                    "the log stream broke {fruitless} times in a row without a new line: {why}"
                );
            }
            if fruitless > 0 {
                tokio::time::sleep(std::time::Duration::from_secs(1 << (fruitless - 1))).await;
            }
            eprintln!("errand: the log stream broke ({why}); going on after the last line shown");
            continue;
        }
        (fruitless, resuming, shown) = (0, false, None);
        if !reading.started {
            // The attempt has not started yet (the job waits for a worker): ask again.
            continue;
        }
        if attempt.is_some() {
            return Ok(());
        }
        let job = client.job(id, None).await?;
        next = match reading.ended_attempt.and_then(|a| u32::try_from(a).ok()) {
            Some(a) if job.attempt > a => Some(a + 1),
            _ if job.state.is_final() => return Ok(()),
            _ => None,
        };
    }
}

/// What one log stream brought before it ended or broke.
struct Reading {
    /// Why it broke before its end object; `None` when it ended.
    broken: Option<String>,
    /// It brought a line or a gap.
    progressed: bool,
    /// The attempt its end object names.
    ended_attempt: Option<u64>,
    /// False when its end object says the attempt had not started.
    started: bool,
}

impl Reading {
    /// A stream that broke (or could not be opened again) before bringing anything.
    fn broken(why: String) -> Self {
        Self {
            broken: Some(why),
            progressed: false,
            ended_attempt: None,
            started: true,
        }
    }
}

/// Prints what `stream` brings until its end object or a break, keeping `shown` at the
/// last line or gap printed.
async fn read_stream(
    stream: &mut errand_client::LogFollow,
    json: bool,
    shown: &mut Option<(u32, u64)>,
) -> anyhow::Result<Reading> {
    let (mut progressed, mut ended_attempt, mut started, mut ended) = (false, None, true, false);
    let broken = loop {
        let item = match stream.next().await {
            Ok(Some(item)) => item,
            Ok(None) if ended => break None,
            Ok(None) => break Some("the stream ended before its end".to_string()),
            Err(e @ errand_client::ClientError::Transport { .. }) => break Some(e.to_string()),
            Err(e) => return Err(e.into()),
        };
        match item {
            LogStreamItem::Line(l) => {
                print_line(&l, json)?;
                *shown = Some((l.attempt, l.seq));
                progressed = true;
            }
            LogStreamItem::Gap(g) => {
                print_gap(g.dropped, json)?;
                *shown = Some((g.attempt, g.after_seq.saturating_add(g.dropped)));
                progressed = true;
            }
            LogStreamItem::End(end) => {
                ended = true;
                ended_attempt = end.get("attempt").and_then(serde_json::Value::as_u64);
                started = end.get("started") != Some(&serde_json::Value::Bool(false));
                if let Some(e) = end.get("error") {
                    anyhow::bail!("the log stream ended: {e}");
                }
            }
        }
    };
    Ok(Reading {
        broken,
        progressed,
        ended_attempt,
        started,
    })
}

fn print_line(l: &LogEntry, json: bool) -> anyhow::Result<()> {
    if json {
        crate::outln!("{}", serde_json::to_string(l)?);
        return Ok(());
    }
    let at = l.at.strftime("%H:%M:%S%.3f");
    match l.stream {
        LogStream::Stdout => crate::outln!("{at} #{} INFO  {}", l.attempt, l.line),
        LogStream::Stderr => crate::outln!("{at} #{} ERROR {}", l.attempt, l.line),
    }
    Ok(())
}

fn print_gap(dropped: u64, json: bool) -> anyhow::Result<()> {
    if json {
        crate::outln!("{}", serde_json::json!({ "dropped": dropped }));
    } else {
        crate::outln!("... {dropped} line(s) dropped by the per-attempt bound ...");
    }
    Ok(())
}
