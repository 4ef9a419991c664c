//! The route table. Each `routes!` call registers handlers and their OpenAPI operations
//! together.

pub(crate) mod batches;
mod dead;
pub(crate) mod definitions;
mod events;
mod health;
mod hooks;
pub(crate) mod jobs;
mod limits;
pub(crate) use limits::other_scope as limits_other_scope;
pub(crate) mod logs;
mod metrics;
mod nodes;
mod queues;
mod root;
mod schedules;
pub(crate) mod sessions;
pub(crate) mod subscriptions;
mod tokens;
mod worker;
mod worker_logs;
mod workers;
pub(crate) mod workflows;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::openapi::ApiDoc;
use crate::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(root::root))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(jobs::enqueue, jobs::list))
        .routes(routes!(jobs::enqueue_batch))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::retry))
        .routes(routes!(jobs::attempts))
        .routes(routes!(jobs::explain))
        .routes(routes!(subscriptions::job_deliveries))
        .routes(routes!(definitions::list))
        .routes(routes!(definitions::get))
        .routes(routes!(definitions::run))
        .routes(routes!(definitions::stop))
        .routes(routes!(definitions::start))
        .routes(routes!(logs::instance_logs))
        .routes(routes!(hooks::receive))
        .routes(routes!(worker::claim))
        .routes(routes!(worker::heartbeat))
        .routes(routes!(worker::complete))
        .routes(routes!(worker::fail))
        .routes(routes!(worker::release))
        .routes(routes!(worker::settle))
        .routes(routes!(logs::job_logs, worker_logs::append))
        .routes(routes!(events::stream))
        .routes(routes!(queues::list))
        .routes(routes!(queues::get, queues::update))
        .routes(routes!(queues::pause))
        .routes(routes!(queues::resume))
        .routes(routes!(dead::list))
        .routes(routes!(dead::requeue))
        .routes(routes!(dead::purge))
        .routes(routes!(nodes::list))
        .routes(routes!(workers::list))
        .routes(routes!(limits::list))
        .routes(routes!(
            limits::get_kind,
            limits::put_kind,
            limits::delete_kind
        ))
        .routes(routes!(
            limits::get_key,
            limits::put_key,
            limits::delete_key
        ))
        .routes(routes!(sessions::list))
        .routes(routes!(sessions::get))
        .routes(routes!(sessions::put_state))
        .routes(routes!(sessions::unblock))
        .routes(routes!(schedules::create, schedules::list))
        .routes(routes!(schedules::get, schedules::put, schedules::delete))
        .routes(routes!(schedules::trigger))
        .routes(routes!(schedules::pause))
        .routes(routes!(schedules::resume))
        .routes(routes!(schedules::next))
        .routes(routes!(schedules::backfill))
        .routes(routes!(subscriptions::create, subscriptions::list))
        .routes(routes!(
            subscriptions::get,
            subscriptions::update,
            subscriptions::delete
        ))
        .routes(routes!(subscriptions::pause))
        .routes(routes!(subscriptions::resume))
        .routes(routes!(subscriptions::subscription_deliveries))
        .routes(routes!(workflows::create, workflows::list))
        .routes(routes!(workflows::get))
        .routes(routes!(workflows::cancel))
        .routes(routes!(workflows::retry))
        .routes(routes!(workflows::list_templates))
        .routes(routes!(
            workflows::get_template,
            workflows::put_template,
            workflows::delete_template
        ))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(tokens::audit))
        .routes(routes!(batches::create, batches::list))
        .routes(routes!(batches::get))
        .routes(routes!(batches::add_jobs))
        .routes(routes!(batches::close))
}

/// The health routes and `/metrics` alone (a node without the `api` role).
pub(crate) fn health_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
}
