//! The conformance suite every [`Store`](crate::Store) must pass, case for case.
//!
//! A backend's test file calls [`conformance_suite!`](crate::conformance_suite) with an async
//! function that returns a fresh, empty [`Fixture`]; each case becomes one `#[tokio::test]`.
//! Cases are plain async functions so a failing one reads like a specification.
//!
//! Cases never sleep to let time pass: each fixture hands over a [`DriveClock`] that moves
//! the store's own clock, so a case outlives a lease or a retention by advancing it, runs
//! in no time, and cannot pass or fail by how busy the machine is.
//!
//! The list of cases lives once, in the macro. Each case is crate-private and reached only
//! through the entry points that list generates, so a case left out of the list is dead
//! code, which this module denies: it cannot silently run on neither store.

#![expect(
    clippy::expect_used,
    reason = "the conformance suite is test code: a failed expectation is a failed case"
)]
#![deny(dead_code)]

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::SharedStore;

mod audit;
mod claims;
mod claims_together;
mod concurrency;
mod counts;
mod deliveries;
mod events;
mod fairness;
mod flows_batches;
mod flows_continuations;
mod flows_support;
mod flows_workflows;
mod gates;
mod instances;
mod jobs;
mod leases;
mod lifecycle;
mod limits;
mod logs;
mod marks;
mod nodes;
mod ordering_props;
mod ordering_race;
mod queue_settings;
mod queues;
mod readiness;
mod reports;
mod rescue;
mod restore;
mod retention;
mod schedules;
mod secrets;
mod sessions;
mod settle;
mod support;
mod switches;
mod tokens;
mod upgrade;
mod workers;

pub use self::support::{complete, complete_together, enqueue_ready, new_job};
pub use self::upgrade::{assert_upgraded, previous_version_jobs, OldJob};

use self::{audit::*, claims_together::*, tokens::*};
use self::{
    claims::*, concurrency::*, counts::*, jobs::*, nodes::*, queues::*, readiness::*, rescue::*,
    restore::*, retention::*,
};
use self::{deliveries::*, events::*, schedules::*, secrets::*, settle::*};
use self::{fairness::*, gates::*, lifecycle::*, sessions::*};
use self::{flows_batches::*, flows_continuations::*, flows_workflows::*};
use self::{instances::*, leases::*, logs::*, marks::*, reports::*, switches::*};
use self::{limits::*, ordering_props::*, ordering_race::*, queue_settings::*, workers::*};

/// A fresh store for one case, the handle that drives its clock, and whatever keeps it
/// alive (a temp dir, a schema).
pub struct Fixture {
    /// The store under test, empty.
    pub store: SharedStore,
    /// Moves `store`'s clock: the time every one of its queries judges leases, delays and
    /// retention by.
    pub clock: Arc<dyn DriveClock>,
    /// Dropped when the case ends: cleans up.
    pub guard: Box<dyn Any + Send>,
}

/// Moves a store's clock forward, so a case can let a lease, a delay or a retention run out
/// without waiting for it on the wall clock.
#[async_trait]
pub trait DriveClock: Send + Sync {
    /// Moves the store's "now" forward by `by`, for every query that starts after this
    /// returns, on every connection. Time only moves forward, as it does in production.
    async fn advance(&self, by: Duration);
}

/// An adjustable [`Clock`](errand_core::time::Clock) given to a store that reads its time
/// through it (SQLite) drives that store's time directly.
#[async_trait]
impl DriveClock for errand_core::time::Clock {
    async fn advance(&self, by: Duration) {
        errand_core::time::Clock::advance(self, by);
    }
}

/// What a case runs with: the fixture's store and the handle on its clock.
pub(crate) struct Ctx {
    store: SharedStore,
    clock: Arc<dyn DriveClock>,
}

impl Ctx {
    fn new(fixture: &Fixture) -> Self {
        Self {
            store: fixture.store.clone(),
            clock: fixture.clock.clone(),
        }
    }
}

/// Generates one test per conformance case, each on a fresh fixture from `$factory`, an
/// async function returning `Option<Fixture>`; `None` skips the case (the factory says why,
/// loudly: e.g. no PostgreSQL reachable and none required).
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path) => {
        $crate::conformance_suite!(@list tests $factory);
    };
    // The one list of cases; every other arm receives it.
    (@list $($mode:tt)*) => {
        $crate::conformance_suite!(@$($mode)*;
            insert_then_get_round_trips,
            insert_many_is_all_or_nothing,
            idempotency_key_returns_the_first_job,
            idempotency_key_is_released_after_its_window,
            get_unknown_job_is_not_found,
            attempts_are_recorded,
            list_filters_and_paginates,
            list_by_tag_and_kind_pages_newest_first,
            list_by_queue_pages_newest_first_across_states,
            claim_takes_highest_priority_then_oldest,
            claim_counts_the_attempt_and_leases,
            claim_skips_paused_queue,
            claim_filters_by_kind,
            claim_waits_for_run_at,
            release_undoes_a_claim_nobody_heard,
            complete_with_stale_token_is_rejected,
            complete_after_lease_expiry_is_rejected,
            complete_repeated_by_its_token_answers_the_job,
            fail_repeated_by_its_token_answers_the_job,
            fail_after_rescue_is_not_a_repeat,
            heartbeat_after_lease_expiry_is_rejected,
            checkpoint_after_lease_expiry_is_rejected,
            fail_after_lease_expiry_is_rejected,
            concurrent_claimers_never_share_a_job,
            concurrent_enqueues_with_one_key_make_one_job,
            fail_retries_with_backoff_then_goes_dead,
            fail_with_dead_flag_is_final,
            fail_with_zero_retry_is_claimable_again,
            heartbeat_extends_lease_and_saves_progress,
            cancel_running_job_fences_its_worker,
            cancel_finished_job_conflicts,
            retry_dead_job_grants_one_more_attempt,
            retry_running_job_conflicts,
            settle_many_fences_each_entry,
            settle_and_claim_settles_first_then_claims,
            claims_together_lease_each_taker_its_own_jobs,
            claims_together_share_a_queue_limit,
            claims_together_give_the_first_takers_the_first_jobs,
            claims_together_of_many_deal_across_takers_in_claim_order,
            insert_and_claim_hands_new_jobs_to_waiting_takers,
            insert_and_claim_keeps_nothing_when_the_insert_fails,
            expired_lease_returns_job_to_queue,
            expired_lease_without_attempts_left_is_dead,
            attempt_past_timeout_is_failed,
            due_in_tells_when_work_comes_due,
            queue_list_counts_states,
            queue_counts_follow_every_state_change,
            pause_unknown_queue_is_not_found,
            dead_requeue_and_purge_by_selection,
            promote_due_makes_jobs_available,
            nodes_register_heartbeat_and_stop,
            a_writable_store_is_ready,
            a_migrated_store_is_at_its_build_version,
            prune_deletes_only_finished_jobs_past_retention,
            restore_keeps_exported_jobs_and_is_repeatable,
            secrets_are_kept_and_returned_by_insert_get_list_claim_and_restore,
            restore_of_a_fired_job_claims_its_slot,
            schedules_are_created_replaced_paused_and_deleted,
            schedule_fire_is_exactly_once_per_slot,
            schedule_due_lists_unpaused_schedules_with_work,
            schedule_due_counts_the_lead_only_for_schedules_that_fire_ahead,
            schedule_changes_take_back_jobs_written_ahead,
            a_job_written_ahead_that_ended_is_kept_by_a_pause,
            schedule_fire_on_a_replaced_definition_is_moved,
            schedule_fire_many_applies_each_decision_on_its_own,
            schedule_fire_cancels_only_when_it_wins,
            schedule_manual_run_becomes_the_last_job,
            schedule_due_leaves_out_a_buffered_slot_while_its_job_runs,
            schedule_slots_are_listed_restored_and_pruned,
            schedule_fire_of_older_slots_keeps_the_newest_run,
            logs_are_numbered_per_attempt_and_paged_by_cursor,
            fenced_log_append_refuses_a_stale_token,
            log_bound_keeps_first_and_last_lines_across_appends,
            logs_go_with_their_job_and_instance_logs_by_age,
            a_run_report_is_kept_on_the_attempt_it_ends,
            a_named_lease_is_taken_over_only_after_expiry,
            instances_are_put_listed_deleted_and_pruned,
            definition_switches_are_kept_and_replaced,
            a_mark_enqueues_once_even_after_its_job_is_pruned,
            subscriptions_are_created_updated_paused_and_deleted,
            delivery_fanout_moves_the_cursor_once,
            delivery_claim_takes_the_oldest_due_and_leases_it,
            delivery_claim_skips_paused_subscriptions,
            a_new_url_moves_pending_deliveries_and_orphans_are_pruned,
            delivery_settle_records_each_outcome_fenced_on_the_token,
            delivery_failures_pause_a_subscription_and_success_resets,
            deliveries_are_listed_with_history_and_pruned,
            each_transition_writes_its_event,
            cancel_dead_retry_and_rescue_write_their_events,
            a_job_that_ends_leaves_one_reply,
            a_fired_slot_writes_schedule_fired,
            event_log_pages_prunes_and_reports_what_was_missed,
            concurrent_delivery_claims_and_fanouts_never_double,
            lock_key_runs_one_job_at_a_time,
            lock_key_is_freed_by_a_failure_with_backoff,
            lock_key_is_freed_by_cancel,
            lock_key_survives_lease_expiry,
            a_delayed_job_holds_no_place,
            concurrency_key_runs_up_to_its_limit,
            raising_a_key_limit_admits_more,
            a_retried_job_rejoins_its_lock_line,
            session_runs_jobs_one_at_a_time_in_order,
            a_failing_session_head_holds_the_session,
            a_dead_session_head_blocks_until_retried,
            session_unblock_moves_past_the_dead_head,
            a_session_set_to_continue_moves_past_a_dead_head,
            session_state_is_handed_on_from_job_to_job,
            session_state_put_is_compare_and_set,
            an_oversized_session_state_is_refused_on_complete,
            session_list_filters_and_pages,
            a_small_tenant_is_not_starved_by_a_backlog,
            fairness_weights_share_claims,
            a_quiet_tenant_starts_level,
            a_high_priority_job_does_not_push_tenants_back,
            a_delayed_backlog_does_not_starve_new_tenants,
            a_manual_retry_of_a_waiting_key_job_keeps_the_count,
            a_revived_job_keeps_the_key_limit,
            deleting_a_blocking_head_moves_the_session_on,
            a_restored_job_not_due_runs_when_due,
            a_bulk_requeue_keeps_line_order,
            a_rescue_uses_the_queue_backoff,
            queue_concurrency_caps_running_jobs,
            queue_rate_holds_jobs_until_tokens_refill,
            kind_concurrency_is_shared_across_queues,
            kind_rate_holds_jobs_until_tokens_refill,
            rate_key_limits_starts_across_queues,
            limits_are_put_listed_and_deleted,
            queue_defaults_fill_unset_fields_only,
            queue_backoff_spaces_retries,
            queue_update_refuses_bad_values_whole,
            workers_are_seen_listed_and_pruned,
            explain_facts_name_the_lock_holder,
            explain_facts_show_the_session,
            concurrent_claims_never_exceed_a_limit_or_a_lock,
            random_operations_keep_every_ordering_rule,
            fair_claiming_starves_no_tenant,
            fair_claims_follow_the_rank_rule,
            a_continuation_runs_after_its_parent_succeeds,
            a_dead_parent_cancels_its_continuations_down_the_chain,
            a_long_chain_is_doomed_whole,
            a_revived_parent_that_ends_again_counts_once,
            after_any_end_runs_after_a_death,
            a_parent_already_ended_counts_at_insert,
            an_unknown_parent_is_refused_and_nothing_stored,
            a_continuation_waits_for_every_parent_and_wakes_its_queue,
            a_diamond_workflow_hands_results_to_the_join,
            a_thousand_step_fan_out_joins_once,
            a_failure_compensates_in_reverse_completion_order,
            a_failed_compensation_stops_the_rest,
            on_failure_cancel_cancels_running_steps,
            on_failure_finish_lets_running_steps_finish_then_compensates,
            cancelling_a_running_workflow,
            retrying_a_failed_workflow_reruns_only_failed_steps,
            a_workflow_step_is_not_retried_on_its_own,
            a_retry_reruns_waiting_steps_after_their_rerun_parents,
            steps_declared_children_first_run_in_graph_order,
            a_step_past_its_deadline_fails_the_workflow,
            a_step_past_its_deadline_is_retried_once_then_failed,
            racing_supervisors_act_on_each_step_once,
            workflow_create_is_idempotent,
            workflow_templates_are_kept,
            a_batch_completes_once_with_counts_and_failed_ids,
            an_open_batch_takes_jobs_until_closed,
            an_empty_closed_batch_completes_at_once,
            racing_ends_complete_a_batch_once,
            racing_parents_release_a_join_once,
            a_completed_batch_calls_back_and_logs_its_event,
            cancelling_a_waiting_continuation_dooms_its_own,
            a_waiting_continuation_holds_no_lock_until_released,
            a_token_round_trips_with_its_hash,
            a_token_name_is_taken_while_the_token_is_active,
            a_revoked_tokens_name_may_be_reused,
            revoking_a_token_twice_keeps_the_first_time,
            an_unknown_token_is_not_found,
            token_use_keeps_the_latest_time,
            ending_sessions_keeps_the_latest_time,
            tokens_list_oldest_first_with_revoked_ones,
            racing_token_creates_of_one_name_keep_one,
            audit_entries_get_growing_ids_and_the_store_time,
            audit_list_pages_newest_first,
            audit_list_filters_by_actor_and_action,
            audit_detail_round_trips,
        );
    };
    (@tests $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture) = $factory().await else {
                    return;
                };
                $crate::conformance::entry::$case(&fixture).await;
                drop(fixture);
            }
        )*
    };
    (@entries; $($case:ident),* $(,)?) => {
        /// One public entry point per listed case, for the tests the macro generates.
        pub mod entry {
            use super::{Ctx, Fixture};
            $(
                #[doc = concat!("Runs the `", stringify!($case), "` case on `fixture`.")]
                pub async fn $case(fixture: &Fixture) {
                    super::$case(Ctx::new(fixture)).await
                }
            )*
        }
    };
}

crate::conformance_suite!(@list entries);
