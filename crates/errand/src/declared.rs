//! `[[queues]]` and `[[limits]]` of errand.toml: read and checked at start (a bad entry
//! stops the server with a message naming it), then put in place before serving.
//!
//! Declarations are declarative as schedules are: a declared queue gets exactly the
//! declared settings (a setting left out is removed), on every start and every node.
//! Limits and queues the file does not name are left as the API set them.

use std::collections::HashSet;

use anyhow::Context;
use errand_core::queue::{Backoff, QueueSettingsPatch};
use errand_core::throttle::{Limit, RateLimit};
use errand_core::QueueName;
use serde::Deserialize;

/// One `[[queues]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueDeclaration {
    name: String,
    /// Pauses or resumes at start; left out, the queue stays as it is (a pause made in an
    /// incident survives a restart).
    paused: Option<bool>,
    concurrency: Option<u32>,
    rate: Option<RateLimit>,
    max_attempts: Option<u32>,
    priority: Option<i32>,
    #[serde(default, with = "errand_core::duration::opt_millis_text")]
    timeout: Option<u64>,
    backoff: Option<Backoff>,
}

/// One `[[limits]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitDeclaration {
    scope: String,
    name: String,
    concurrency: Option<u32>,
    rate: Option<RateLimit>,
}

/// A declared queue, checked.
#[derive(Debug, Clone)]
pub struct DeclaredQueue {
    /// The queue.
    pub name: QueueName,
    /// Every setting, set or removed, and the pause when declared.
    pub patch: QueueSettingsPatch,
}

/// Checks `[[queues]]`.
///
/// # Errors
/// A bad name, a repeated name, or a bad value, naming the entry.
pub fn queues(entries: Vec<QueueDeclaration>) -> anyhow::Result<Vec<DeclaredQueue>> {
    let mut seen = HashSet::new();
    entries
        .into_iter()
        .map(|q| {
            let what = format!("[[queues]] `{}`", q.name);
            let name = QueueName::parse(&q.name).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
            anyhow::ensure!(seen.insert(q.name.clone()), "{what} is declared twice");
            let patch = QueueSettingsPatch {
                paused: q.paused,
                concurrency: Some(q.concurrency),
                rate: Some(q.rate),
                max_attempts: Some(q.max_attempts),
                priority: Some(q.priority),
                timeout_ms: Some(q.timeout),
                backoff: Some(q.backoff),
            };
            patch
                .validate()
                .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
            Ok(DeclaredQueue { name, patch })
        })
        .collect()
}

/// Checks `[[limits]]`.
///
/// # Errors
/// A bad scope, name or value, or a limit declared twice, naming the entry.
pub fn limits(entries: Vec<LimitDeclaration>) -> anyhow::Result<Vec<Limit>> {
    let mut seen = HashSet::new();
    entries
        .into_iter()
        .map(|l| {
            let what = format!("[[limits]] {} `{}`", l.scope, l.name);
            anyhow::ensure!(
                seen.insert((l.scope.clone(), l.name.clone())),
                "{what} is declared twice"
            );
            errand_api::LimitRequest {
                concurrency: l.concurrency,
                rate: l.rate,
            }
            .into_limit(&l.scope, &l.name)
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))
        })
        .collect()
}

/// One `[[workflows]]` entry: a workflow template, started by name (`POST /v1/workflows
/// {"template": ...}`) or by a schedule (`workflow = { template = ... }`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDeclaration {
    /// The template's name (also the name its workflows show).
    name: String,
    /// What running steps do when a step dies: `finish` (default) or `cancel`.
    on_failure: Option<errand_core::workflow::OnStepFailure>,
    /// `[[workflows.steps]]`: `name`, `job = { kind, queue, payload, ... }`, `depends_on`,
    /// `compensate`, `deadline`, `on_deadline`.
    #[serde(default)]
    steps: Vec<errand_api::StepRequest>,
}

/// A declared workflow template, checked.
#[derive(Debug, Clone)]
pub struct DeclaredWorkflow {
    /// The template's name.
    pub name: String,
    /// The workflow it starts.
    pub spec: errand_core::workflow::WorkflowSpec,
}

/// Checks `[[workflows]]` as `PUT /v1/workflow-templates/{name}` would.
///
/// # Errors
/// A bad or repeated name, a bad step, a cycle or an unknown dependency, naming the entry.
pub fn workflows(
    entries: Vec<WorkflowDeclaration>,
    max_payload_bytes: usize,
) -> anyhow::Result<Vec<DeclaredWorkflow>> {
    let limits = errand_api::EnqueueLimits { max_payload_bytes };
    let mut seen = HashSet::new();
    entries
        .into_iter()
        .map(|w| {
            let what = format!("[[workflows]] `{}`", w.name);
            errand_api::check_template_name("name", &w.name)
                .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
            anyhow::ensure!(seen.insert(w.name.clone()), "{what} is declared twice");
            let spec = errand_api::WorkflowTemplateRequest {
                name: Some(w.name.clone()),
                steps: w.steps,
                on_failure: w.on_failure,
            }
            .into_spec(&limits)
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
            Ok(DeclaredWorkflow { name: w.name, spec })
        })
        .collect()
}

/// Puts the declared workflow templates in place (replacing templates of the same name;
/// others are left as the API set them).
///
/// # Errors
/// The store refused one; the message names it.
pub async fn apply_workflows(
    engine: &errand_engine::Engine,
    workflows: &[DeclaredWorkflow],
) -> anyhow::Result<()> {
    for w in workflows {
        engine
            .workflow_template_put(&w.name, w.spec.clone())
            .await
            .with_context(|| format!("declaring workflow template `{}`", w.name))?;
        tracing::info!(template = %w.name, "declared workflow template in place");
    }
    Ok(())
}

/// Puts the declared queues and limits in place.
///
/// # Errors
/// The store refused one; the message names it.
pub async fn apply(
    engine: &errand_engine::Engine,
    queues: &[DeclaredQueue],
    limits: &[Limit],
) -> anyhow::Result<()> {
    for q in queues {
        engine
            .queue_update(&q.name, q.patch.clone())
            .await
            .with_context(|| format!("declaring queue `{}`", q.name))?;
        tracing::info!(queue = %q.name, "declared queue settings in place");
    }
    for l in limits {
        engine
            .limit_put(l.clone())
            .await
            .with_context(|| format!("declaring the {} limit `{}`", l.scope.as_str(), l.name))?;
        tracing::info!(scope = l.scope.as_str(), name = %l.name, "declared limit in place");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        queues: Vec<QueueDeclaration>,
        #[serde(default)]
        limits: Vec<LimitDeclaration>,
        #[serde(default)]
        workflows: Vec<WorkflowDeclaration>,
    }

    fn read(text: &str) -> anyhow::Result<(Vec<DeclaredQueue>, Vec<Limit>)> {
        let f: File = toml::from_str(text)?;
        Ok((queues(f.queues)?, limits(f.limits)?))
    }

    #[test]
    fn a_declared_queue_gets_exactly_its_settings() {
        let (q, l) = read(
            r#"
            [[queues]]
            name = "mail"
            concurrency = 5
            rate = { limit = 100, period = "1s", burst = 200 }
            timeout = "30s"
            backoff = { base = "1s", max = "1h" }

            [[limits]]
            scope = "kind"
            name = "report"
            concurrency = 1
            "#,
        )
        .expect("valid");
        let p = &q[0].patch;
        assert_eq!(p.concurrency, Some(Some(5)));
        assert_eq!(p.rate.and_then(|r| r).map(|r| r.period_ms), Some(1000));
        assert_eq!(p.timeout_ms, Some(Some(30_000)));
        assert_eq!(p.max_attempts, Some(None), "left out is removed");
        assert_eq!(p.paused, None, "left out leaves the pause alone");
        assert_eq!(l[0].concurrency, Some(1));
    }

    fn read_workflows(text: &str) -> anyhow::Result<Vec<DeclaredWorkflow>> {
        let f: File = toml::from_str(text)?;
        workflows(f.workflows, 1024)
    }

    #[test]
    fn a_declared_workflow_is_checked_like_a_template() {
        let w = read_workflows(
            r#"
            [[workflows]]
            name = "etl"
            on_failure = "cancel"
            [[workflows.steps]]
            name = "extract"
            job = { kind = "extract", queue = "etl" }
            deadline = "10m"
            on_deadline = "retry"
            [[workflows.steps]]
            name = "load"
            job = { kind = "load" }
            depends_on = ["extract"]
            compensate = { kind = "unload" }
            "#,
        )
        .expect("valid");
        assert_eq!(w[0].name, "etl");
        assert_eq!(w[0].spec.steps[0].deadline_ms, Some(600_000));
        assert!(w[0].spec.steps[1].compensate.is_some());
        let dup = read_workflows(
            r#"
            [[workflows]]
            name = "etl"
            [[workflows.steps]]
            name = "a"
            job = { kind = "a" }
            depends_on = ["zzz"]
            "#,
        )
        .expect_err("unknown dependency");
        let text = dup.to_string();
        assert!(
            text.contains("[[workflows]] `etl`") && text.contains("zzz"),
            "{text}"
        );
    }

    #[test]
    fn bad_entries_name_themselves() {
        let e = read("[[queues]]\nname = \"mail\"\nconcurrency = 0\n").unwrap_err();
        assert!(e.to_string().contains("`mail`"), "{e}");
        let e = read("[[limits]]\nscope = \"queue\"\nname = \"x\"\nconcurrency = 1\n").unwrap_err();
        assert!(e.to_string().contains("kind or key"), "{e}");
        let e = read("[[queues]]\nname = \"a\"\n[[queues]]\nname = \"a\"\n").unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        assert!(read("[[queues]]\nname = \"a\"\nspeed = 3\n").is_err());
    }
}
