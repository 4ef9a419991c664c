//! Who may call what: one rule per route, by the OpenAPI operation id for the API and by
//! method for the dashboard. A route without a rule is refused to everyone (and the route
//! table test fails), so a new route cannot slip in unguarded.

use errand_core::Scope;

/// What a route asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone: health, the server's front page, signed webhooks, the sign-in page.
    Public,
    /// A token holding one of `any` (admin holds all). `audit`: a successful call is
    /// recorded in the audit trail.
    Needs {
        /// Any of these scopes will do.
        any: &'static [Scope],
        /// Whether a success is recorded in the audit trail.
        audit: bool,
    },
}

/// What a token limited to some queues may do on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueCheck {
    /// The route names its queue in the path (`{queue}`): the guard checks it.
    Path,
    /// The handler checks the queues it touches (an enqueue, a job read).
    Handler,
    /// The route holds no queue a token could be checked against (it reaches only what a
    /// lease token already proved, such as a settle), so it is allowed.
    Lease,
    /// The route spans every queue: refused to a queue-limited token.
    Refused,
}

const READ: &[Scope] = &[Scope::Read];
const ENQUEUE: &[Scope] = &[Scope::Enqueue];
const WORK: &[Scope] = &[Scope::Work];
const ADMIN: &[Scope] = &[Scope::Admin];
/// A job's own reads: callers waiting for a result, workers, readers.
const JOB_READ: &[Scope] = &[Scope::Read, Scope::Enqueue, Scope::Work];

const fn needs(any: &'static [Scope]) -> Access {
    Access::Needs { any, audit: false }
}

const fn audited(any: &'static [Scope]) -> Access {
    Access::Needs { any, audit: true }
}

/// The rule of an API operation, by its OpenAPI `operation_id`; `None` for an operation
/// this table does not know (refused).
pub(crate) fn api_rule(operation: &str) -> Option<(Access, QueueCheck)> {
    use QueueCheck::{Handler, Lease, Path, Refused};
    Some(match operation {
        "get_server_info" | "healthz" | "readyz" => (Access::Public, Refused),
        // Authenticated by its own HMAC signature (the hook's secret).
        "receive_hook" => (Access::Public, Refused),
        "get_metrics" => (needs(READ), Refused),
        "enqueue_job" | "enqueue_jobs" => (needs(ENQUEUE), Handler),
        "create_batch" | "add_batch_jobs" | "close_batch" | "create_workflow"
        | "run_definition" => (needs(ENQUEUE), Refused),
        "get_job" => (needs(JOB_READ), Handler),
        "cancel_job" => (audited(&[Scope::Enqueue]), Handler),
        "claim_jobs" => (needs(WORK), Path),
        "heartbeat_job" | "complete_job" | "fail_job" | "release_job" | "settle_jobs"
        | "append_job_logs" => (needs(WORK), Lease),
        "put_session_state" => (needs(WORK), Refused),
        "get_queue" => (needs(READ), Path),
        "update_queue" | "pause_queue" | "resume_queue" => (audited(ADMIN), Path),
        "list_tokens" | "list_audit" => (needs(ADMIN), Refused),
        "create_token" | "revoke_token" => (audited(ADMIN), Refused),
        "retry_job"
        | "purge_dead_jobs"
        | "requeue_dead_jobs"
        | "start_definition"
        | "stop_definition"
        | "put_key_limit"
        | "delete_key_limit"
        | "put_kind_limit"
        | "delete_kind_limit"
        | "create_schedule"
        | "put_schedule"
        | "delete_schedule"
        | "backfill_schedule"
        | "pause_schedule"
        | "resume_schedule"
        | "trigger_schedule"
        | "unblock_session"
        | "create_subscription"
        | "update_subscription"
        | "delete_subscription"
        | "pause_subscription"
        | "resume_subscription"
        | "put_workflow_template"
        | "delete_workflow_template"
        | "cancel_workflow"
        | "retry_workflow" => (audited(ADMIN), Refused),
        "list_batches"
        | "get_batch"
        | "list_dead_jobs"
        | "list_definitions"
        | "get_definition"
        | "instance_logs"
        | "stream_events"
        | "list_jobs"
        | "list_job_attempts"
        | "list_job_deliveries"
        | "explain_job"
        | "job_logs"
        | "list_limits"
        | "get_key_limit"
        | "get_kind_limit"
        | "list_nodes"
        | "list_queues"
        | "list_schedules"
        | "get_schedule"
        | "list_schedule_fire_times"
        | "list_sessions"
        | "get_session"
        | "list_subscriptions"
        | "get_subscription"
        | "list_subscription_deliveries"
        | "list_workers"
        | "list_workflow_templates"
        | "get_workflow_template"
        | "list_workflows"
        | "get_workflow" => (needs(READ), Refused),
        _ => return None,
    })
}

/// The rule of a dashboard route: its assets and sign-in page are public, pages need
/// `read`, actions `admin` (and are audited).
pub(crate) fn dashboard_rule(method: &axum::http::Method, route: &str) -> Access {
    if route.starts_with("/ui/assets/") || route == "/ui/login" || route == "/ui/logout" {
        Access::Public
    } else if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        needs(READ)
    } else {
        audited(ADMIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_operation_has_a_rule() {
        let (_, doc) = crate::routes::router().split_for_parts();
        let mut seen = 0;
        for (path, item) in &doc.paths.paths {
            for op in [&item.get, &item.post, &item.put, &item.patch, &item.delete]
                .into_iter()
                .flatten()
            {
                let id = op.operation_id.as_deref().unwrap_or_default();
                assert!(api_rule(id).is_some(), "{path} ({id}) has no auth rule");
                seen += 1;
            }
        }
        assert!(seen > 80, "{seen} operations");
        assert_eq!(api_rule("no_such_operation"), None);
    }
}
