//! `errand workflows ...` and `errand batches ...`; `workflows show` draws the step graph.

use std::io::Read;

use anyhow::Context;
use errand_api::{WorkflowListQuery, WorkflowRequest};
use errand_client::Client;
use errand_core::batch::Batch;
use errand_core::workflow::{Workflow, WorkflowStep};
use errand_core::{BatchId, JobState, WorkflowId};

use crate::cli::{BatchesCommand, WorkflowsCommand};
use crate::exit::{usage, UsageError};
use crate::output;

fn workflow_id(raw: &str) -> anyhow::Result<WorkflowId> {
    raw.parse()
        .map_err(|e| usage(format!("`{raw}` is not a workflow id: {e}")))
}

fn batch_id(raw: &str) -> anyhow::Result<BatchId> {
    raw.parse()
        .map_err(|e| usage(format!("`{raw}` is not a batch id: {e}")))
}

/// Runs a `workflows` subcommand.
pub async fn run(client: &Client, cmd: WorkflowsCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        WorkflowsCommand::List {
            state,
            template,
            limit,
        } => {
            let page = client
                .workflows(&WorkflowListQuery {
                    state,
                    template,
                    before: None,
                    limit: Some(limit),
                })
                .await?;
            if json {
                return output::json(&page);
            }
            let rows: Vec<Vec<String>> = page
                .workflows
                .iter()
                .map(|w| {
                    vec![
                        w.id.to_string(),
                        w.name.clone().unwrap_or_else(|| "-".into()),
                        w.state.as_str().into(),
                        format!("{}/{}", w.steps_succeeded, w.steps),
                        w.failed_step.clone().unwrap_or_else(|| "-".into()),
                        output::when(Some(w.created_at)),
                    ]
                })
                .collect();
            output::table(
                &["ID", "NAME", "STATE", "STEPS OK", "FAILED STEP", "CREATED"],
                &rows,
            )?;
            Ok(())
        }
        WorkflowsCommand::Show { id } => {
            let wf = client.workflow(workflow_id(&id)?).await?;
            if json {
                return output::json(&wf);
            }
            crate::out!("{}", render(&wf));
            Ok(())
        }
        WorkflowsCommand::Start {
            template,
            file,
            input,
            idempotency_key,
        } => {
            let mut req = match file {
                Some(path) => {
                    let text = if path.as_os_str() == "-" {
                        let mut s = String::new();
                        std::io::stdin().read_to_string(&mut s)?;
                        s
                    } else {
                        std::fs::read_to_string(&path)
                            .with_context(|| UsageError(format!("reading {}", path.display())))?
                    };
                    serde_json::from_str::<WorkflowRequest>(&text)
                        .context(UsageError("the file is not a workflow request".into()))?
                }
                None => WorkflowRequest {
                    template,
                    ..Default::default()
                },
            };
            if let Some(i) = input {
                req.input = Some(
                    serde_json::from_str(&i).context(UsageError("--input is not JSON".into()))?,
                );
            }
            if idempotency_key.is_some() {
                req.idempotency_key = idempotency_key;
            }
            let wf = client.workflow_start(&req).await?;
            if json {
                return output::json(&wf);
            }
            crate::outln!("{}  {}", wf.id, wf.state.as_str());
            Ok(())
        }
        WorkflowsCommand::Cancel { id } => {
            let wf = client.workflow_cancel(workflow_id(&id)?).await?;
            if json {
                return output::json(&wf);
            }
            crate::outln!("{}  {}", wf.id, wf.state.as_str());
            Ok(())
        }
        WorkflowsCommand::Retry { id } => {
            let wf = client.workflow_retry(workflow_id(&id)?).await?;
            if json {
                return output::json(&wf);
            }
            crate::outln!("{}  {}", wf.id, wf.state.as_str());
            Ok(())
        }
        WorkflowsCommand::Templates => {
            let list = client.workflow_templates().await?;
            if json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .templates
                .iter()
                .map(|t| {
                    vec![
                        t.template.clone(),
                        t.spec.steps.len().to_string(),
                        t.spec.on_failure.as_str().into(),
                        t.spec
                            .steps
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ]
                })
                .collect();
            output::table(&["TEMPLATE", "STEPS", "ON FAILURE", "STEP NAMES"], &rows)?;
            Ok(())
        }
    }
}

/// Runs a `batches` subcommand.
pub async fn batches(client: &Client, cmd: BatchesCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        BatchesCommand::List => {
            let list = client.batches().await?;
            if json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = list.batches.iter().map(batch_row).collect();
            output::table(&BATCH_HEADERS, &rows)?;
            Ok(())
        }
        BatchesCommand::Show { id } => {
            let b = client.batch(batch_id(&id)?).await?;
            if json {
                return output::json(&b);
            }
            output::table(&BATCH_HEADERS, &[batch_row(&b)])?;
            if let Some(job) = b.on_complete_job_id {
                crate::outln!("on_complete job: {job}");
            }
            Ok(())
        }
        BatchesCommand::Close { id } => {
            let b = client.batch_close(batch_id(&id)?).await?;
            if json {
                return output::json(&b);
            }
            output::table(&BATCH_HEADERS, &[batch_row(&b)])?;
            Ok(())
        }
    }
}

const BATCH_HEADERS: [&str; 8] = [
    "ID",
    "STATE",
    "TOTAL",
    "PENDING",
    "SUCCEEDED",
    "DEAD",
    "CANCELLED",
    "CREATED",
];

fn batch_row(b: &Batch) -> Vec<String> {
    vec![
        b.id.to_string(),
        b.state.as_str().into(),
        b.counts.total.to_string(),
        b.counts.pending.to_string(),
        b.counts.succeeded.to_string(),
        b.counts.dead.to_string(),
        b.counts.cancelled.to_string(),
        output::when(Some(b.created_at)),
    ]
}

/// A state's mark in the graph.
fn mark(state: JobState) -> &'static str {
    match state {
        JobState::Succeeded => "[✓]",
        JobState::Dead => "[✗]",
        JobState::Cancelled => "[-]",
        JobState::Running => "[▶]",
        JobState::Available | JobState::Scheduled => "[·]",
        JobState::Blocked => "[ ]",
    }
}

/// The workflow drawn for a terminal: a header, the steps in layers by depth (parents
/// above children) with a state mark, attempts and dependencies, then the failure and the
/// compensations.
pub fn render(wf: &Workflow) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "workflow {}{}  {}\n",
        wf.id,
        wf.name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default(),
        wf.state.as_str()
    ));
    let depth = errand_core::workflow::step_depths(&wf.steps);
    let layers = depth.iter().copied().max().map_or(0, |m| m + 1);
    let width = wf
        .steps
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    for layer in 0..layers {
        out.push_str(&format!("layer {layer}\n"));
        for (s, _) in wf.steps.iter().zip(&depth).filter(|(_, d)| **d == layer) {
            let mut line = format!(
                "  {} {:<width$}  {:<9}  attempt {}/{}",
                mark(s.state),
                s.name,
                s.state.as_str(),
                s.attempt,
                s.max_attempts
            );
            if !s.depends_on.is_empty() {
                line.push_str(&format!("  <- {}", s.depends_on.join(", ")));
            }
            if let Some(c) = &s.compensation {
                line.push_str(&format!("  compensation {}", c.state.as_str()));
            }
            if !s.supervised.is_empty() {
                line.push_str(&format!("  supervised {}x", s.supervised.len()));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    if let Some(step) = &wf.failed_step {
        out.push_str(&format!("failed step: {step}\n"));
    }
    if let Some(error) = &wf.error {
        out.push_str(&format!("error: {error}\n"));
    }
    let mut comps: Vec<&WorkflowStep> = wf
        .steps
        .iter()
        .filter(|s| s.compensation.is_some())
        .collect();
    if !comps.is_empty() {
        comps.sort_by_key(|s| s.finished_at);
        comps.reverse();
        out.push_str("compensations (latest completed step first):\n");
        for s in comps {
            if let Some(c) = &s.compensation {
                out.push_str(&format!(
                    "  {} {}  {}{}\n",
                    mark(c.state),
                    s.name,
                    c.state.as_str(),
                    c.error
                        .as_deref()
                        .map(|e| format!("  error: {e}"))
                        .unwrap_or_default()
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, deps: &[&str], state: JobState) -> WorkflowStep {
        WorkflowStep {
            name: name.into(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            job_id: errand_core::JobId::new(),
            kind: errand_core::JobKind::parse("k").expect("kind"),
            queue: errand_core::QueueName::default_queue(),
            state,
            attempt: 1,
            max_attempts: 3,
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
            deadline_at: None,
            supervised: vec![],
            compensation: None,
        }
    }

    #[test]
    fn a_diamond_is_drawn_in_three_layers_parents_first() {
        // Declared child first: layers come from the graph, not the order.
        let steps = vec![
            step("join", &["left", "right"], JobState::Blocked),
            step("left", &["start"], JobState::Succeeded),
            step("start", &[], JobState::Succeeded),
            step("right", &["start"], JobState::Running),
        ];
        assert_eq!(errand_core::workflow::step_depths(&steps), vec![2, 1, 0, 1]);
        let wf: Workflow = serde_json::from_value(serde_json::json!({
            "id": WorkflowId::new(),
            "state": "running",
            "on_failure": "finish",
            "input": null,
            "retries": 0,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "steps": steps,
        }))
        .expect("workflow");
        let text = render(&wf);
        let at = |s: &str| text.find(s).unwrap_or(usize::MAX);
        assert!(
            at("start") < at("left") && at("left") < at("join"),
            "{text}"
        );
        assert!(text.contains("<- left, right"), "{text}");
        assert!(text.contains("[▶] right"), "{text}");
    }
}
