//! Property test of the workflow rules: random graphs driven through random lives (claims,
//! successes, deaths, failed attempts, user cancels of steps and of the workflow,
//! compensations that succeed or die, retries of ended workflows) by a model of what a store
//! does with each [`Advance`], including the store's shortcut on a success in a running
//! workflow (count `steps_succeeded` instead of loading every step).
//!
//! Checked along the way and at the end:
//! - the shortcut agrees with [`advance`]: "all succeeded" iff `steps_succeeded == steps`,
//!   and `completed_seq` is `steps_succeeded` (also after retries, which number the kept
//!   steps again 1..k as the stores do);
//! - compensations run one at a time, never while a step is alive, in reverse order of the
//!   steps' completion (also across retries);
//! - a workflow never gets stuck: when nothing can happen any more it is final, and a final
//!   workflow has no step or compensation alive;
//! - `succeeded` iff every step succeeded (unless a cancel let the running steps finish); `compensated` leaves no completed compensable step
//!   not undone; `cancelled` only after a cancel request.

use std::collections::HashMap;

use proptest::prelude::*;
use uuid::Uuid;

use super::*;

/// One step of the model store.
#[derive(Debug, Clone)]
struct SimStep {
    deps: Vec<usize>,
    compensable: bool,
    state: JobState,
    seq: Option<u64>,
    comp: Option<JobState>,
    /// Failed attempts it may still have before dying.
    attempts_left: u8,
    /// The model clock when it last succeeded.
    done_at: Option<u64>,
}

/// The model store's workflow row and step rows.
#[derive(Debug)]
struct Sim {
    state: WorkflowState,
    on_failure: OnStepFailure,
    cancel_requested: bool,
    steps_succeeded: u64,
    steps: Vec<SimStep>,
    retries: u32,
    clock: u64,
    /// Compensations created in this episode (since the last retry), in order.
    comp_order: Vec<usize>,
}

fn name(i: usize) -> String {
    format!("s{i}")
}

impl Sim {
    fn new(graph: &[(Vec<usize>, bool)], on_failure: OnStepFailure) -> Self {
        let steps = graph
            .iter()
            .map(|(deps, compensable)| SimStep {
                deps: deps.clone(),
                compensable: *compensable,
                state: if deps.is_empty() {
                    JobState::Available
                } else {
                    JobState::Blocked
                },
                seq: None,
                comp: None,
                attempts_left: 1,
                done_at: None,
            })
            .collect();
        Sim {
            state: WorkflowState::Running,
            on_failure,
            cancel_requested: false,
            steps_succeeded: 0,
            steps,
            retries: 0,
            clock: 0,
            comp_order: Vec::new(),
        }
    }

    fn facts(&self) -> WorkflowFacts {
        WorkflowFacts {
            state: self.state,
            on_failure: self.on_failure,
            cancel_requested: self.cancel_requested,
            steps: self
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| StepFact {
                    name: name(i),
                    job_id: JobId(Uuid::from_u128(i as u128 + 1)),
                    state: s.state,
                    compensable: s.compensable,
                    completed_seq: s.seq,
                    compensation: s.comp,
                })
                .collect(),
        }
    }

    fn alive(&self) -> bool {
        self.steps.iter().any(|s| !s.state.is_final())
    }

    /// Applies a plan as the store does, checking what must hold when it is applied.
    fn apply(&mut self, plan: Advance) -> Result<(), TestCaseError> {
        for id in &plan.cancel {
            let i = (id.0.as_u128() - 1) as usize;
            prop_assert!(
                !self.steps[i].state.is_final(),
                "cancel of an ended step {i}"
            );
            self.steps[i].state = JobState::Cancelled;
        }
        if let Some(step) = plan.compensate {
            let i: usize = step[1..].parse().unwrap();
            prop_assert!(
                !self.alive(),
                "compensation of {step} while a step is alive"
            );
            prop_assert!(
                self.steps
                    .iter()
                    .all(|s| s.comp.is_none_or(|c| c.is_final())),
                "two compensations at once"
            );
            let s = &mut self.steps[i];
            prop_assert!(s.state == JobState::Succeeded && s.compensable && s.comp.is_none());
            s.comp = Some(JobState::Available);
            self.comp_order.push(i);
        }
        if let Some(state) = plan.state {
            self.state = state;
            if state.is_final() {
                prop_assert!(
                    !self.alive(),
                    "{state:?} with a step alive: {:?}",
                    self.steps
                );
                prop_assert!(
                    self.steps
                        .iter()
                        .all(|s| s.comp.is_none_or(|c| c.is_final())),
                    "{state:?} with a compensation alive"
                );
            }
        }
        Ok(())
    }

    /// Step `i` reached the final `state` (already written, as the store's hook sees it).
    fn step_ended(&mut self, i: usize, state: JobState) -> Result<(), TestCaseError> {
        self.clock += 1;
        self.steps[i].state = state;
        let event = WorkflowEvent::StepEnded {
            step: name(i),
            state,
            error: None,
        };
        let plan = advance(&self.facts(), &event);
        if state == JobState::Succeeded {
            self.steps_succeeded += 1;
            self.steps[i].done_at = Some(self.clock);
            if self.state == WorkflowState::Running {
                // The store's shortcut, checked against the rules.
                let all = self.steps_succeeded == self.steps.len() as u64;
                prop_assert_eq!(plan.state == Some(WorkflowState::Succeeded), all);
                prop_assert_eq!(plan.completed_seq, Some(self.steps_succeeded));
                prop_assert_eq!(
                    &plan,
                    &advance_counted_success(self.steps_succeeded, self.steps.len() as u64)
                );
                self.steps[i].seq = Some(self.steps_succeeded);
                if all {
                    self.state = WorkflowState::Succeeded;
                }
                self.release_children(i);
                return Ok(());
            }
        }
        if let Some(seq) = plan.completed_seq {
            self.steps[i].seq = Some(seq);
        }
        self.apply(plan)?;
        self.release_children(i);
        Ok(())
    }

    /// The store's children hook: a blocked child whose parents all succeeded is ready.
    fn release_children(&mut self, parent: usize) {
        if self.steps[parent].state != JobState::Succeeded {
            return;
        }
        for c in 0..self.steps.len() {
            let ready = self.steps[c].state == JobState::Blocked
                && self.steps[c].deps.contains(&parent)
                && self.steps[c]
                    .deps
                    .iter()
                    .all(|p| self.steps[*p].state == JobState::Succeeded);
            if ready {
                self.steps[c].state = JobState::Available;
            }
        }
    }

    fn compensation_ended(&mut self, i: usize, state: JobState) -> Result<(), TestCaseError> {
        self.steps[i].comp = Some(state);
        let plan = advance(
            &self.facts(),
            &WorkflowEvent::CompensationEnded {
                step: name(i),
                state,
                error: None,
            },
        );
        self.apply(plan)
    }

    fn cancel(&mut self) -> Result<(), TestCaseError> {
        self.cancel_requested = true;
        let plan = advance(&self.facts(), &WorkflowEvent::CancelRequested);
        self.apply(plan)
    }

    /// `workflow_retry` as the store does it.
    fn retry(&mut self) -> Result<(), TestCaseError> {
        let parents: HashMap<String, Vec<String>> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (name(i), s.deps.iter().map(|d| name(*d)).collect()))
            .collect();
        let plan = plan_retry(&self.facts(), &parents).map_err(|e| {
            TestCaseError::fail(format!("retry of a {:?} workflow: {e}", self.state))
        })?;
        for (step, waiting) in &plan.rerun {
            let i: usize = step[1..].parse().unwrap();
            let s = &mut self.steps[i];
            s.state = if *waiting == 0 {
                JobState::Available
            } else {
                JobState::Blocked
            };
            s.seq = None;
            s.comp = None;
            s.attempts_left = 1;
            s.done_at = None;
        }
        // As both stores do: the kept steps are numbered again 1..k in their order of
        // completion, so the count stays the highest number.
        let mut kept: Vec<usize> = plan.keep.iter().map(|n| n[1..].parse().unwrap()).collect();
        kept.sort_by_key(|i| self.steps[*i].seq.unwrap_or(0));
        for (k, i) in kept.iter().enumerate() {
            self.steps[*i].seq = Some(k as u64 + 1);
        }
        self.steps_succeeded = plan.keep.len() as u64;
        self.state = WorkflowState::Running;
        self.cancel_requested = false;
        self.retries += 1;
        self.comp_order.clear();
        Ok(())
    }

    /// What must hold once nothing can happen any more.
    fn check_end(&self) -> Result<(), TestCaseError> {
        prop_assert!(
            self.state.is_final(),
            "stuck in {:?}: {:?}",
            self.state,
            self.steps
        );
        let all = self.steps.iter().all(|s| s.state == JobState::Succeeded);
        // A cancel under `finish` may let every step finish well: the workflow still ends
        // cancelled (or compensated).
        if self.state == WorkflowState::Succeeded || !self.cancel_requested {
            prop_assert_eq!(self.state == WorkflowState::Succeeded, all, "{:?}", self);
        }
        if self.state == WorkflowState::Compensated {
            for (i, s) in self.steps.iter().enumerate() {
                prop_assert!(
                    !(s.state == JobState::Succeeded && s.compensable && s.comp.is_none()),
                    "step {} was not undone",
                    i
                );
            }
        }
        if self.state == WorkflowState::Cancelled {
            prop_assert!(self.cancel_requested);
        }
        // Reverse order of completion (by the model clock, not by the numbers).
        let done: Vec<u64> = self
            .comp_order
            .iter()
            .map(|i| self.steps[*i].done_at.unwrap_or(0))
            .collect();
        prop_assert!(
            done.windows(2).all(|w| w[0] > w[1]),
            "compensation order {:?} completed at {:?}",
            self.comp_order,
            done
        );
        Ok(())
    }
}

/// A graph: each step depends on a subset of earlier steps (so it is acyclic) and may be
/// compensable.
fn graph() -> impl Strategy<Value = Vec<(Vec<usize>, bool)>> {
    (1usize..8).prop_flat_map(|n| {
        (0..n)
            .map(|i| {
                (
                    proptest::collection::vec(any::<bool>(), i),
                    proptest::bool::weighted(0.6),
                )
                    .prop_map(|(picks, comp)| {
                        let deps = picks
                            .iter()
                            .enumerate()
                            .filter(|(_, p)| **p)
                            .map(|(j, _)| j)
                            .collect::<Vec<_>>();
                        (deps, comp)
                    })
            })
            .collect::<Vec<_>>()
    })
}

fn run(
    graph: &[(Vec<usize>, bool)],
    on_failure: OnStepFailure,
    choices: &[u16],
) -> Result<(), TestCaseError> {
    let mut sim = Sim::new(graph, on_failure);
    let mut c = choices.iter().cycle();
    let mut pick = |n: usize| -> usize { usize::from(*c.next().unwrap_or(&0)) % n.max(1) };
    for _ in 0..10_000 {
        // Everything that can happen now.
        #[derive(Debug, Clone, Copy)]
        enum Act {
            Claim(usize),
            Succeed(usize),
            Die(usize),
            FailAttempt(usize),
            UserCancelStep(usize),
            Undo(usize, bool),
            CancelWorkflow,
            Retry,
        }
        let mut acts = Vec::new();
        for (i, s) in sim.steps.iter().enumerate() {
            match s.state {
                JobState::Available => {
                    acts.extend([Act::Claim(i), Act::Claim(i), Act::Claim(i)]);
                    acts.push(Act::UserCancelStep(i));
                }
                JobState::Running => {
                    acts.extend([Act::Succeed(i), Act::Succeed(i), Act::Succeed(i)]);
                    acts.push(Act::Die(i));
                    if s.attempts_left > 0 {
                        acts.push(Act::FailAttempt(i));
                    }
                }
                _ => {}
            }
            if s.comp == Some(JobState::Available) {
                acts.extend([Act::Undo(i, true), Act::Undo(i, true), Act::Undo(i, false)]);
            }
        }
        if sim.state == WorkflowState::Running {
            acts.push(Act::CancelWorkflow);
        }
        if acts.is_empty() {
            sim.check_end()?;
            if sim.state != WorkflowState::Succeeded && sim.retries < 2 && pick(2) == 0 {
                acts.push(Act::Retry);
            } else {
                return Ok(());
            }
        }
        match acts[pick(acts.len())] {
            Act::Claim(i) => sim.steps[i].state = JobState::Running,
            Act::Succeed(i) => sim.step_ended(i, JobState::Succeeded)?,
            Act::Die(i) => sim.step_ended(i, JobState::Dead)?,
            Act::UserCancelStep(i) => sim.step_ended(i, JobState::Cancelled)?,
            Act::FailAttempt(i) => {
                // Back to available (a scheduled retry's backoff passes at once here).
                sim.steps[i].attempts_left -= 1;
                sim.steps[i].state = JobState::Available;
            }
            Act::Undo(i, ok) => sim.compensation_ended(
                i,
                if ok {
                    JobState::Succeeded
                } else {
                    JobState::Dead
                },
            )?,
            Act::CancelWorkflow => sim.cancel()?,
            Act::Retry => sim.retry()?,
        }
    }
    Err(TestCaseError::fail("the workflow never settled"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn workflows_settle_by_the_rules_and_the_store_shortcut_agrees(
        graph in graph(),
        cancel in any::<bool>(),
        choices in proptest::collection::vec(any::<u16>(), 1..64),
    ) {
        let on_failure = if cancel { OnStepFailure::Cancel } else { OnStepFailure::Finish };
        run(&graph, on_failure, &choices)?;
    }
}
