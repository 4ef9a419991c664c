//! The document's frame; operations and schemas come from the handlers.

use utoipa::OpenApi;

/// errand's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "errand",
        description = "A background-jobs server: enqueue over HTTP, work with workers in any language.",
        version = "1"
    ),
    tags(
        (name = "jobs", description = "Enqueue, inspect, cancel and retry jobs"),
        (name = "workers", description = "The remote worker protocol: claim, heartbeat, complete, fail"),
        (name = "queues", description = "Queues and their counts; pause and resume"),
        (name = "dead", description = "Dead jobs: list, requeue, purge"),
        (name = "schedules", description = "Cron and interval schedules that fire exactly once per slot"),
        (name = "nodes", description = "The errand serve processes sharing the store"),
        (name = "health", description = "Liveness and readiness")
    )
)]
pub(crate) struct ApiDoc;
