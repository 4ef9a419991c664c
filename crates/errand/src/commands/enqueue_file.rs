//! `errand enqueue --file FILE`: enqueue a JSON-lines file, one enqueue body per line.
//!
//! The whole file is checked first (each line a JSON object that makes a valid job once
//! KIND and the flags fill what it lacks); a bad line is a usage error naming its number,
//! and nothing is sent. Then the jobs go in batches of [`BATCH`] through
//! `POST /v1/jobs/batch`, each batch stored whole or not at all.

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::Context;
use errand_api::{BatchEnqueueRequest, EnqueueLimits, EnqueueRequest};
use errand_client::Client;
use serde_json::{Map, Value};

use crate::cli::EnqueueArgs;
use crate::commands::{enqueue, progress};
use crate::exit::UsageError;

/// Jobs per batch call: big enough to amortise round trips, far below the API's 10,000.
const BATCH: usize = 1000;

/// Enqueues every line of `args.file` and prints a summary (with `--json`, one object per
/// job: `{"line", "id", "state", "inserted"}`).
pub async fn run(client: &Client, args: EnqueueArgs, json: bool) -> anyhow::Result<()> {
    let Some(file) = args.file.clone() else {
        return Err(UsageError("--file is missing".into()).into());
    };
    let from_stdin = file.as_os_str() == "-";
    if from_stdin && args.payload.as_deref() == Some("-") {
        return Err(UsageError(
            "--file - and --payload - both read standard input: give one of them a file".into(),
        )
        .into());
    }
    let text = read(&file, from_stdin)?;
    let name = if from_stdin {
        "standard input".to_string()
    } else {
        file.display().to_string()
    };
    let jobs = parse(&text, &defaults(&args)?, &name)?;
    send(client, jobs, json).await
}

fn read(file: &Path, from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        if std::io::stdin().is_terminal() {
            eprintln!("reading jobs from standard input, one JSON object per line (Ctrl-D ends)");
        }
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading jobs from standard input")?;
        Ok(text)
    } else {
        // An unreadable file named by a flag is a usage mistake (exit 2), as for `--payload @F`.
        std::fs::read_to_string(file).map_err(|e| {
            crate::exit::usage(format!("--file {}: cannot read it: {e}", file.display()))
        })
    }
}

/// The fields KIND and the flags set, as a JSON object a line's own fields override.
fn defaults(args: &EnqueueArgs) -> anyhow::Result<Map<String, Value>> {
    let Value::Object(mut fields) = serde_json::to_value(enqueue::request(args)?)? else {
        anyhow::bail!("an enqueue request is a JSON object");
    };
    if args.kind.is_none() {
        fields.remove("kind");
    }
    Ok(fields)
}

/// Every job of the file with its line number, or a usage error naming the first bad line.
fn parse(
    text: &str,
    defaults: &Map<String, Value>,
    name: &str,
) -> anyhow::Result<Vec<(usize, EnqueueRequest)>> {
    // Checked here only for shape and rules; the server applies its own payload limit.
    let limits = EnqueueLimits {
        max_payload_bytes: usize::MAX,
    };
    let mut jobs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| UsageError(format!("{name} line {n}: {why}; nothing was sent"));
        let mut fields = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(fields)) => fields,
            Ok(_) => return Err(bad("not a JSON object (one enqueue body per line)".into()).into()),
            Err(e) => return Err(bad(format!("not JSON ({e})")).into()),
        };
        for (key, value) in defaults {
            fields.entry(key.clone()).or_insert_with(|| value.clone());
        }
        if !fields.contains_key("kind") {
            return Err(bad("no \"kind\": give one on the line or as KIND".into()).into());
        }
        // The field at fault named, in the API's words, as the server would answer.
        let req: EnqueueRequest =
            serde_path_to_error::deserialize(Value::Object(fields)).map_err(|e| {
                let path = e.path().to_string();
                let said = if path == "." {
                    e.inner().to_string()
                } else {
                    format!("{path}: {}", e.inner())
                };
                bad(errand_api::plain_words::plain(&said))
            })?;
        req.clone()
            .into_new_job(&limits)
            .map_err(|e| bad(e.to_string()))?;
        jobs.push((n, req));
    }
    Ok(jobs)
}

async fn send(
    client: &Client,
    jobs: Vec<(usize, EnqueueRequest)>,
    json: bool,
) -> anyhow::Result<()> {
    let total = jobs.len();
    let bar = progress::count(Some(total as u64), "enqueueing");
    let (mut sent, mut inserted) = (0usize, 0usize);
    let mut rest = jobs.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<(usize, EnqueueRequest)> = rest.by_ref().take(BATCH).collect();
        let (lines, reqs): (Vec<usize>, Vec<EnqueueRequest>) = chunk.into_iter().unzip();
        let (first, last) = (lines[0], lines[lines.len() - 1]);
        let answer = client
            .enqueue_batch(&BatchEnqueueRequest { jobs: reqs })
            .await
            .map_err(|e| {
                // A refusal stores none of the batch; a lost connection or a timeout leaves
                // it unknown.
                let these = if matches!(e, errand_client::ClientError::Transport { .. }) {
                    "they may or may not have been stored"
                } else {
                    "none of them was stored"
                };
                anyhow::Error::new(e).context(format!(
                    "enqueueing lines {first} to {last}: {these}; the {sent} jobs of earlier lines were (a re-run skips those that have an idempotency key)"
                ))
            });
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                bar.finish_and_clear();
                return Err(e);
            }
        };
        inserted += answer.inserted;
        sent += answer.jobs.len();
        bar.inc(answer.jobs.len() as u64);
        if json {
            for (line, job) in lines.iter().zip(&answer.jobs) {
                bar.suspend(|| -> anyhow::Result<()> {
                    crate::outln!(
                        "{}",
                        serde_json::json!({
                            "line": line, "id": job.id, "state": job.state, "inserted": job.inserted
                        })
                    );
                    Ok(())
                })?;
            }
        }
    }
    bar.finish_and_clear();
    if !json {
        crate::outln!(
            "sent {sent} job{}: {inserted} new, {} already there by idempotency key",
            if sent == 1 { "" } else { "s" },
            sent - inserted
        );
    }
    Ok(())
}
