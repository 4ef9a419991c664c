//! Workflows: steps released as their parents succeed with results flowing to the
//! children, compensation of completed steps in reverse completion order when a step dies,
//! the `on_failure` policies, cancel, retry, the deadline supervisor, idempotent create.

use std::collections::HashSet;
use std::time::Duration;

use errand_core::flow::DeadlinePolicy;
use errand_core::workflow::{OnStepFailure, WorkflowState};
use errand_core::JobState;
use serde_json::json;

use super::flows_support::*;
use super::support::*;
use super::Ctx;
use crate::{StoreError, WorkflowCreateParams, WorkflowListParams};

/// A diamond a -> (b, c) -> d: steps run as their parents succeed, each with the workflow's
/// input and its parents' results by step name; the last success succeeds the workflow.
pub(crate) async fn a_diamond_workflow_hands_results_to_the_join(Ctx { store, .. }: Ctx) {
    let w = create(
        &store,
        workflow(
            &[
                step("a", "wa", &[]),
                step("b", "wb", &["a"]),
                step("c", "wb", &["a"]),
                step("d", "wd", &["b", "c"]),
            ],
            OnStepFailure::Finish,
        ),
    )
    .await;
    assert_eq!(w.state, WorkflowState::Running);
    assert_eq!(step_state(&w, "a"), JobState::Available);
    assert_eq!(step_state(&w, "d"), JobState::Blocked);
    assert!(claim(&store, "wb", 10).await.is_empty());
    let a = claim_only(&store, "wa").await;
    let ctx = a
        .job
        .flow
        .context
        .clone()
        .expect("a root step has a context");
    assert_eq!(ctx["input"], json!({"order": 7}));
    assert_eq!(ctx["workflow"]["step"], "a");
    assert_eq!(a.job.flow.workflow_id, Some(w.id));
    assert_eq!(a.job.flow.step.as_deref(), Some("a"));
    complete_with(&store, &a, json!({"a": 1})).await;
    let bc = claim(&store, "wb", 10).await;
    assert_eq!(bc.len(), 2);
    for c in &bc {
        let ctx = c.job.flow.context.clone().expect("context");
        assert_eq!(ctx["parents"]["a"], json!({"a": 1}));
    }
    assert!(claim(&store, "wd", 10).await.is_empty());
    for c in &bc {
        let name = c.job.flow.step.clone().expect("step");
        complete_with(&store, c, json!({ "from": name })).await;
    }
    let d = claim_only(&store, "wd").await;
    let ctx = d.job.flow.context.clone().expect("context");
    assert_eq!(ctx["parents"]["b"], json!({"from": "b"}));
    assert_eq!(ctx["parents"]["c"], json!({"from": "c"}));
    complete_with(&store, &d, json!("done")).await;
    let w = wf_get(&store, w.id).await;
    assert_eq!(w.state, WorkflowState::Succeeded);
    assert!(w.ended_at.is_some());
    let names: Vec<&str> = w.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d"], "steps in declaration order");
    let listed = store
        .workflow_list(WorkflowListParams {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].steps, listed[0].steps_succeeded), (4, 4));
}

/// One root, 1,000 steps after it, one join after all of them: the join is released once,
/// after the last, with 1,000 parents in its context.
pub(crate) async fn a_thousand_step_fan_out_joins_once(Ctx { store, .. }: Ctx) {
    let mut steps = vec![step("root", "root", &[])];
    let mids: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    for m in &mids {
        steps.push(step(m, "mid", &["root"]));
    }
    let deps: Vec<&str> = mids.iter().map(String::as_str).collect();
    steps.push(step("join", "join", &deps));
    let w = create(&store, workflow(&steps, OnStepFailure::Finish)).await;
    assert_eq!(w.steps.len(), 1002);
    let r = claim_only(&store, "root").await;
    complete_with(&store, &r, json!("r")).await;
    let claimed = claim_all(&store, "mid").await;
    assert_eq!(claimed.len(), 1000);
    complete_all(&store, &claimed[..999], 100).await;
    assert!(
        claim(&store, "join", 10).await.is_empty(),
        "the join waits for the last"
    );
    complete_all(&store, &claimed[999..], 100).await;
    let j = claim_only(&store, "join").await;
    let parents = j.job.flow.context.clone().expect("context")["parents"].clone();
    assert_eq!(parents.as_object().map(|m| m.len()), Some(1000));
    complete_with(&store, &j, json!("joined")).await;
    assert!(
        claim(&store, "join", 10).await.is_empty(),
        "the join ran once"
    );
    assert_eq!(wf_get(&store, w.id).await.state, WorkflowState::Succeeded);
}

/// Three compensable steps complete (b, then a, then c), then a step after them dies: the
/// compensations run one at a time, latest completed first (c, a, b), each with its step's
/// result; the workflow ends `compensated`.
pub(crate) async fn a_failure_compensates_in_reverse_completion_order(Ctx { store, .. }: Ctx) {
    let w = create(
        &store,
        workflow(
            &[
                step("a", "s", &[]).compensated_in("undo"),
                step("b", "s", &[]).compensated_in("undo"),
                step("c", "s", &[]).compensated_in("undo"),
                step("x", "x", &["a", "b", "c"]),
            ],
            OnStepFailure::Finish,
        ),
    )
    .await;
    let roots = claim(&store, "s", 10).await;
    assert_eq!(roots.len(), 3);
    let by = |n: &str| {
        roots
            .iter()
            .find(|c| c.job.flow.step.as_deref() == Some(n))
            .expect("step")
            .clone()
    };
    for n in ["b", "a", "c"] {
        complete_with(&store, &by(n), json!({ "did": n })).await;
    }
    let x = claim_only(&store, "x").await;
    kill(&store, &x).await;
    let w1 = wf_get(&store, w.id).await;
    assert_eq!(w1.state, WorkflowState::Compensating);
    assert_eq!(w1.failed_step.as_deref(), Some("x"));
    assert_eq!(w1.error.as_deref(), Some("boom"));
    for expected in ["c", "a", "b"] {
        let u = claim_only(&store, "undo").await;
        let ctx = u.job.flow.context.clone().expect("context");
        assert_eq!(ctx["compensates"], expected);
        assert_eq!(ctx["result"], json!({ "did": expected }));
        assert_eq!(u.job.flow.step.as_deref(), Some(expected));
        complete_with(&store, &u, json!("undone")).await;
    }
    let w2 = wf_get(&store, w.id).await;
    assert_eq!(w2.state, WorkflowState::Compensated);
    for s in ["a", "b", "c"] {
        let view = w2
            .steps
            .iter()
            .find(|st| st.name == s)
            .and_then(|st| st.compensation.clone())
            .expect("compensation shown");
        assert_eq!(view.state, JobState::Succeeded);
    }
}

/// A compensation that dies ends the workflow `compensation_failed`; the compensations
/// after it never run.
pub(crate) async fn a_failed_compensation_stops_the_rest(Ctx { store, .. }: Ctx) {
    let w = create(
        &store,
        workflow(
            &[
                step("a", "s", &[]).compensated_in("undo"),
                step("b", "s2", &["a"]).compensated_in("undo"),
                step("x", "x", &["b"]),
            ],
            OnStepFailure::Finish,
        ),
    )
    .await;
    let a = claim_only(&store, "s").await;
    complete_with(&store, &a, json!(1)).await;
    let b = claim_only(&store, "s2").await;
    complete_with(&store, &b, json!(2)).await;
    let x = claim_only(&store, "x").await;
    kill(&store, &x).await;
    let ub = claim_only(&store, "undo").await;
    assert_eq!(ub.job.flow.step.as_deref(), Some("b"));
    kill(&store, &ub).await;
    let w = wf_get(&store, w.id).await;
    assert_eq!(w.state, WorkflowState::CompensationFailed);
    assert!(w.ended_at.is_some());
    assert!(
        claim(&store, "undo", 10).await.is_empty(),
        "a's compensation never runs"
    );
}

/// `on_failure: cancel`: a step's death cancels the steps still running (their workers'
/// settles are refused) and those not started.
pub(crate) async fn on_failure_cancel_cancels_running_steps(Ctx { store, .. }: Ctx) {
    let w = create(
        &store,
        workflow(
            &[
                step("a", "s", &[]),
                step("b", "s", &[]),
                step("c", "c", &["a", "b"]),
            ],
            OnStepFailure::Cancel,
        ),
    )
    .await;
    let both = claim(&store, "s", 10).await;
    assert_eq!(both.len(), 2);
    kill(&store, &both[0]).await;
    let late = settle(&store, complete(&both[1])).await;
    assert!(
        matches!(late, Err(StoreError::LeaseLost { .. })),
        "a cancelled step's worker loses its lease: {late:?}"
    );
    let w = wf_get(&store, w.id).await;
    assert_eq!(w.state, WorkflowState::Failed);
    let other = both[1].job.flow.step.clone().expect("step");
    assert_eq!(step_state(&w, &other), JobState::Cancelled);
    assert_eq!(step_state(&w, "c"), JobState::Cancelled);
    let j = store.job_get(both[1].job.id).await.expect("job");
    assert_eq!(j.error.as_deref(), Some("cancelled: the workflow failed"));
}

/// `on_failure: finish`: a step's death lets running steps finish; one that succeeds is
/// then compensated too.
pub(crate) async fn on_failure_finish_lets_running_steps_finish_then_compensates(
    Ctx { store, .. }: Ctx,
) {
    let w = create(
        &store,
        workflow(
            &[
                step("a", "a", &[]),
                step("b", "b", &[]).compensated_in("undo"),
            ],
            OnStepFailure::Finish,
        ),
    )
    .await;
    let a = claim_only(&store, "a").await;
    let b = claim_only(&store, "b").await;
    kill(&store, &a).await;
    assert_eq!(wf_get(&store, w.id).await.state, WorkflowState::Failing);
    complete_with(&store, &b, json!("b")).await;
    assert_eq!(
        wf_get(&store, w.id).await.state,
        WorkflowState::Compensating
    );
    let u = claim_only(&store, "undo").await;
    assert_eq!(
        u.job.flow.context.clone().expect("ctx")["result"],
        json!("b")
    );
    complete_with(&store, &u, json!("undone")).await;
    assert_eq!(wf_get(&store, w.id).await.state, WorkflowState::Compensated);
}

/// Cancelling a running workflow cancels its steps not started; with nothing to compensate
/// it ends `cancelled` once the running step finishes. A second cancel is refused.
pub(crate) async fn cancelling_a_running_workflow(Ctx { store, .. }: Ctx) {
    let w = create(
        &store,
        workflow(
            &[step("a", "a", &[]), step("b", "b", &["a"])],
            OnStepFailure::Finish,
        ),
    )
    .await;
    let a = claim_only(&store, "a").await;
    let after = store.workflow_cancel(w.id).await.expect("cancel");
    assert_eq!(after.state, WorkflowState::Failing);
    assert_eq!(step_state(&after, "b"), JobState::Cancelled);
    let j = store.job_get(after.steps[1].job_id).await.expect("b's job");
    assert_eq!(
        j.error.as_deref(),
        Some("cancelled: the workflow was cancelled")
    );
    assert!(matches!(
        store.workflow_cancel(w.id).await,
        Err(StoreError::WrongState(_))
    ));
    complete_with(&store, &a, json!(1)).await;
    let w = wf_get(&store, w.id).await;
    assert_eq!(w.state, WorkflowState::Cancelled);
    assert_eq!(w.error.as_deref(), Some("cancelled"));
    assert!(matches!(
        store.workflow_cancel(w.id).await,
        Err(StoreError::WrongState(_))
    ));
}

/// Retrying a failed workflow keeps the steps that succeeded and runs the failed one again,
/// with one more round of attempts and its parents' results.
pub(crate) async fn retrying_a_failed_workflow_reruns_only_failed_steps(Ctx { store, .. }: Ctx) {
    let w = create(
        &store,
        workflow(
            &[step("a", "a", &[]), step("b", "b", &["a"])],
            OnStepFailure::Finish,
        ),
    )
    .await;
    assert!(matches!(
        store.workflow_retry(w.id).await,
        Err(StoreError::WrongState(_))
    ));
    let a = claim_only(&store, "a").await;
    complete_with(&store, &a, json!({"a": 1})).await;
    let b = claim_only(&store, "b").await;
    kill(&store, &b).await;
    assert_eq!(wf_get(&store, w.id).await.state, WorkflowState::Failed);
    let r = store.workflow_retry(w.id).await.expect("retry");
    assert_eq!(r.state, WorkflowState::Running);
    assert_eq!(r.retries, 1);
    assert_eq!(r.failed_step, None);
    assert_eq!(step_state(&r, "a"), JobState::Succeeded);
    assert!(
        claim(&store, "a", 10).await.is_empty(),
        "a is kept, not rerun"
    );
    let b2 = claim_only(&store, "b").await;
    assert_eq!(b2.job.id, b.job.id, "the same job runs again");
    assert_eq!(b2.job.attempt, 2);
    assert_eq!(b2.job.max_attempts, 2);
    assert_eq!(
        b2.job.flow.context.clone().expect("ctx")["parents"]["a"],
        json!({"a": 1})
    );
    complete_with(&store, &b2, json!(2)).await;
    assert_eq!(wf_get(&store, w.id).await.state, WorkflowState::Succeeded);
}

/// The supervisor fails a step past its deadline (`fail`): the step is dead and the
/// workflow fails; what it did is shown on the step.
pub(crate) async fn a_step_past_its_deadline_fails_the_workflow(Ctx { store, clock }: Ctx) {
    let w = create(
        &store,
        workflow(
            &[step("a", "a", &[]).deadline(60_000, DeadlinePolicy::Fail)],
            OnStepFailure::Finish,
        ),
    )
    .await;
    assert!(w.steps[0].deadline_at.is_some());
    let wait = store
        .due_in(crate::DueWork::Deadline)
        .await
        .expect("due")
        .expect("a deadline waits");
    assert!(
        wait <= Duration::from_secs(60) && wait > Duration::from_secs(50),
        "{wait:?}"
    );
    let _a = claim_only(&store, "a").await;
    assert!(store
        .workflow_supervise(10)
        .await
        .expect("early")
        .is_empty());
    clock.advance(Duration::from_secs(61)).await;
    assert_eq!(
        store.due_in(crate::DueWork::Deadline).await.expect("due"),
        Some(Duration::ZERO),
        "a passed deadline is due now"
    );
    let acted = store.workflow_supervise(10).await.expect("supervise");
    assert_eq!(acted.len(), 1);
    assert_eq!(acted[0].action, DeadlinePolicy::Fail);
    assert_eq!(acted[0].job.state, JobState::Dead);
    assert!(store
        .workflow_supervise(10)
        .await
        .expect("again")
        .is_empty());
    assert_eq!(
        store.due_in(crate::DueWork::Deadline).await.expect("due"),
        None,
        "a dead step has no deadline"
    );
    let w = wf_get(&store, w.id).await;
    assert_eq!(w.state, WorkflowState::Failed);
    assert_eq!(w.steps[0].supervised.len(), 1);
    assert_eq!(w.steps[0].supervised[0].was, JobState::Running);
}

/// `retry`: the first deadline starts the step over (its running attempt failed, one more
/// attempt granted, a new deadline); the second fails it.
pub(crate) async fn a_step_past_its_deadline_is_retried_once_then_failed(
    Ctx { store, clock }: Ctx,
) {
    let w = create(
        &store,
        workflow(
            &[step("a", "a", &[]).deadline(60_000, DeadlinePolicy::Retry)],
            OnStepFailure::Finish,
        ),
    )
    .await;
    let first = claim_only(&store, "a").await;
    clock.advance(Duration::from_secs(61)).await;
    let acted = store.workflow_supervise(10).await.expect("supervise");
    assert_eq!(acted.len(), 1);
    assert_eq!(acted[0].action, DeadlinePolicy::Retry);
    assert_eq!(acted[0].job.state, JobState::Available);
    let late = settle(&store, complete(&first)).await;
    assert!(
        matches!(late, Err(StoreError::LeaseLost { .. })),
        "{late:?}"
    );
    let second = claim_only(&store, "a").await;
    assert_eq!(second.job.attempt, 2);
    assert_eq!(wf_get(&store, w.id).await.state, WorkflowState::Running);
    clock.advance(Duration::from_secs(61)).await;
    let acted = store.workflow_supervise(10).await.expect("supervise");
    assert_eq!(acted.len(), 1);
    assert_eq!(acted[0].action, DeadlinePolicy::Fail);
    let w = wf_get(&store, w.id).await;
    assert_eq!(w.state, WorkflowState::Failed);
    assert_eq!(w.steps[0].supervised.len(), 2);
}

/// Two supervisors racing act on each overdue step once: with `retry`, every step is
/// retried exactly once; with `fail`, the first death fails the workflow and cancels the
/// other steps, which are then not acted on (a cancelled step does not turn dead).
pub(crate) async fn racing_supervisors_act_on_each_step_once(Ctx { store, clock }: Ctx) {
    async fn race(store: &crate::SharedStore) -> Vec<crate::SupervisedStep> {
        let (s1, s2) = (store.clone(), store.clone());
        let t1 = tokio::spawn(async move { s1.workflow_supervise(100).await });
        let t2 = tokio::spawn(async move { s2.workflow_supervise(100).await });
        let mut acted = t1.await.expect("join").expect("supervise");
        acted.extend(t2.await.expect("join").expect("supervise"));
        acted
    }
    let retried: Vec<Step> = (0..20)
        .map(|i| step(&format!("r{i}"), "r", &[]).deadline(1_000, DeadlinePolicy::Retry))
        .collect();
    let wr = create(&store, workflow(&retried, OnStepFailure::Finish)).await;
    let failed: Vec<Step> = (0..20)
        .map(|i| step(&format!("f{i}"), "f", &[]).deadline(1_000, DeadlinePolicy::Fail))
        .collect();
    let wf = create(&store, workflow(&failed, OnStepFailure::Finish)).await;
    clock.advance(Duration::from_secs(5)).await;
    let acted = race(&store).await;
    let retries: Vec<_> = acted.iter().filter(|a| a.workflow == wr.id).collect();
    let names: HashSet<&str> = retries.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(
        (retries.len(), names.len()),
        (20, 20),
        "each step retried once"
    );
    assert!(retries.iter().all(|a| a.action == DeadlinePolicy::Retry));
    let deaths: Vec<_> = acted.iter().filter(|a| a.workflow == wf.id).collect();
    assert_eq!(
        deaths.len(),
        1,
        "one death fails the workflow; the rest are cancelled"
    );
    assert_eq!(deaths[0].job.state, JobState::Dead);
    let w = wf_get(&store, wf.id).await;
    assert_eq!(w.state, WorkflowState::Failed);
    for s in &w.steps {
        if s.name == deaths[0].step {
            assert_eq!((s.state, s.supervised.len()), (JobState::Dead, 1));
        } else {
            assert_eq!((s.state, s.supervised.len()), (JobState::Cancelled, 0));
        }
    }
    let w = wf_get(&store, wr.id).await;
    assert_eq!(w.state, WorkflowState::Running);
    assert!(w.steps.iter().all(|s| s.supervised.len() == 1));
}

/// A repeated create with the same idempotency key returns the first workflow and creates
/// nothing.
pub(crate) async fn workflow_create_is_idempotent(Ctx { store, .. }: Ctx) {
    let mut first = workflow(&[step("a", "a", &[])], OnStepFailure::Finish);
    first.idempotency_key = Some("wf-key".into());
    let mut again = workflow(&[step("a", "a", &[])], OnStepFailure::Finish);
    again.idempotency_key = Some("wf-key".into());
    let (w1, new1) = store
        .workflow_create(WorkflowCreateParams {
            workflow: first,
            idempotency_window: WINDOW,
        })
        .await
        .expect("create");
    let (w2, new2) = store
        .workflow_create(WorkflowCreateParams {
            workflow: again.clone(),
            idempotency_window: WINDOW,
        })
        .await
        .expect("repeat");
    assert!(new1 && !new2);
    assert_eq!(w1.id, w2.id);
    assert!(matches!(
        store.workflow_get(again.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(claim(&store, "a", 10).await.len(), 1, "one step job in all");
}

/// Templates are put, replaced, listed and deleted.
pub(crate) async fn workflow_templates_are_kept(Ctx { store, .. }: Ctx) {
    let spec = errand_core::workflow::WorkflowSpec {
        name: Some("t".into()),
        steps: vec![errand_core::workflow::StepSpec {
            name: "a".into(),
            job: template("a"),
            depends_on: vec![],
            compensate: None,
            deadline_ms: None,
            on_deadline: DeadlinePolicy::Fail,
        }],
        on_failure: OnStepFailure::Finish,
    };
    store
        .workflow_template_put("t1", spec.clone())
        .await
        .expect("put");
    let mut other = spec.clone();
    other.on_failure = OnStepFailure::Cancel;
    store
        .workflow_template_put("t1", other.clone())
        .await
        .expect("replace");
    assert_eq!(store.workflow_template_get("t1").await.expect("get"), other);
    assert_eq!(
        store.workflow_template_list().await.expect("list"),
        vec![("t1".to_string(), other)]
    );
    store.workflow_template_delete("t1").await.expect("delete");
    assert!(matches!(
        store.workflow_template_get("t1").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.workflow_template_delete("t1").await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A workflow's job is run again with its workflow only: retrying it alone or requeueing it
/// from the dead set is refused and changes nothing.
pub(crate) async fn a_workflow_step_is_not_retried_on_its_own(Ctx { store, .. }: Ctx) {
    let w = create(
        &store,
        workflow(&[step("a", "a", &[])], OnStepFailure::Finish),
    )
    .await;
    let a = claim_only(&store, "a").await;
    kill(&store, &a).await;
    assert_eq!(wf_get(&store, w.id).await.state, WorkflowState::Failed);
    assert!(matches!(
        store.job_retry(a.job.id).await,
        Err(StoreError::WrongState(_))
    ));
    let requeued = store
        .dead_requeue_many(crate::DeadSelection::Queue(queue("a")))
        .await
        .expect("requeue");
    assert_eq!(requeued, 0);
    assert_eq!(
        store.job_get(a.job.id).await.expect("a").state,
        JobState::Dead
    );
    assert!(claim(&store, "a", 10).await.is_empty());
}

/// A retry reruns a chain from its dead first step: the later steps wait again for their
/// rerun parents and run in order.
pub(crate) async fn a_retry_reruns_waiting_steps_after_their_rerun_parents(Ctx { store, .. }: Ctx) {
    let w = create(
        &store,
        workflow(
            &[
                step("a", "a", &[]),
                step("b", "b", &["a"]),
                step("c", "c", &["b"]),
            ],
            OnStepFailure::Finish,
        ),
    )
    .await;
    let a = claim_only(&store, "a").await;
    kill(&store, &a).await;
    assert_eq!(wf_get(&store, w.id).await.state, WorkflowState::Failed);
    let r = store.workflow_retry(w.id).await.expect("retry");
    assert_eq!(step_state(&r, "b"), JobState::Blocked);
    assert_eq!(step_state(&r, "c"), JobState::Blocked);
    assert!(claim(&store, "b", 10).await.is_empty());
    let a = claim_only(&store, "a").await;
    complete_with(&store, &a, json!("A")).await;
    assert!(claim(&store, "c", 10).await.is_empty(), "c waits for b");
    let b = claim_only(&store, "b").await;
    assert_eq!(
        b.job.flow.context.clone().expect("ctx")["parents"]["a"],
        json!("A")
    );
    complete_with(&store, &b, json!("B")).await;
    let c = claim_only(&store, "c").await;
    complete_with(&store, &c, json!("C")).await;
    assert_eq!(wf_get(&store, w.id).await.state, WorkflowState::Succeeded);
}

/// Steps may be declared children first: a step whose parent is declared after it waits for
/// that parent like any other.
pub(crate) async fn steps_declared_children_first_run_in_graph_order(Ctx { store, .. }: Ctx) {
    let w = create(
        &store,
        workflow(
            &[step("b", "b", &["a"]), step("a", "a", &[])],
            OnStepFailure::Finish,
        ),
    )
    .await;
    assert_eq!(step_state(&w, "b"), JobState::Blocked);
    assert!(claim(&store, "b", 10).await.is_empty());
    let a = claim_only(&store, "a").await;
    complete_with(&store, &a, json!("A")).await;
    let b = claim_only(&store, "b").await;
    complete_with(&store, &b, json!("B")).await;
    assert_eq!(wf_get(&store, w.id).await.state, WorkflowState::Succeeded);
}
