//! The document's frame; operations and schemas come from the handlers, and the error
//! answers every operation shares are added to each once the route table is complete.

use errand_api::schema::WaitDuration;
use errand_api::ErrorBody;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, RefOr, ResponseBuilder};
use utoipa::{OpenApi, ToSchema};

/// errand's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "errand",
        description = "A background-jobs server: enqueue over HTTP, work with workers in any language.",
        version = "1"
    ),
    components(schemas(
        ErrorBody,
        WaitDuration,
        errand_api::schema::DefinitionName,
        errand_api::schema::InstanceId,
        errand_core::Event,
        errand_api::EventCutoff,
        errand_api::EventGap
    )),
    tags(
        (name = "jobs", description = "Enqueue, inspect, cancel and retry jobs"),
        (name = "workers", description = "The remote worker protocol: claim, heartbeat, complete, fail, settle, ship log lines"),
        (name = "queues", description = "Queues and their counts; settings (concurrency, rate, defaults for new jobs); pause and resume"),
        (name = "limits", description = "Concurrency and rate limits of kinds and rate keys, enforced across nodes"),
        (name = "sessions", description = "Ordered sessions: jobs of one session key run one at a time in enqueue order and share durable state"),
        (name = "dead", description = "Dead jobs: list, requeue, purge"),
        (name = "workflows", description = "Workflows: steps forming a graph, each a job that runs when its parents succeeded, with compensation on failure, deadlines watched by a supervisor, cancel and retry; templates started by name or by a schedule"),
        (name = "batches", description = "Batches: many jobs enqueued as one, with one `on_complete` job and callback when every job has ended"),
        (name = "schedules", description = "Cron and interval schedules that fire exactly once per slot"),
        (name = "definitions", description = "Job definitions of the jobs directory: list, run on demand, stop and start continuous ones, webhooks, instance logs"),
        (name = "subscriptions", description = "Webhook subscriptions: URLs that receive matching job and schedule events, signed the Standard Webhooks way; their deliveries and attempts"),
        (name = "events", description = "The event stream: job and schedule events as server-sent events, resumable by id"),
        (name = "nodes", description = "The errand serve processes sharing the store"),
        (name = "security", description = "API tokens with scopes, and the audit trail of admin and destructive actions"),
        (name = "health", description = "Liveness and readiness"),
        (name = "metrics", description = "This node's Prometheus metrics")
    )
)]
pub(crate) struct ApiDoc;

/// Answers any request may get, whatever its operation. 414 and 431 come from the edge
/// before a route is known, so every operation can get them.
const EVERY_REQUEST: &[(&str, &str)] = &[
    (
        "403",
        "A request from a foreign `Origin` (another web site); nothing changed",
    ),
    (
        "421",
        "A `Host` this server does not answer for (DNS rebinding); nothing changed",
    ),
    (
        "414",
        "The request target (path and query) is longer than the server accepts; nothing changed",
    ),
    (
        "431",
        "The request's headers are larger than the server accepts; nothing changed",
    ),
    (
        "500",
        "A bug or an unreadable record; nothing known to be changed",
    ),
    (
        "503",
        "The store is unavailable or cannot be written; nothing acknowledged, retry",
    ),
];

/// What a 503 `busy` adds on any operation but the health checks (which the edge answers
/// even at its connection cap).
const BUSY: &str = "Or `busy`: the server is at its connection limit, or (with a body) too many large bodies are being read at once; nothing changed, retry after `Retry-After` seconds";

/// What a 503 `busy` adds on the long polls, whose waiting calls are bounded.
const BUSY_WAITING: &str =
    "Also `busy` when a call asks to wait and `max_waiting` calls already wait";

/// The operations that may wait for a change (a claim's `wait_ms`, a job's `?wait=`).
const LONG_POLLS: &[&str] = &["claim_jobs", "get_job"];

/// Answers a request with a body may get.
const WITH_BODY: &[(&str, &str)] = &[
    (
        "413",
        "The body is larger than the server accepts; nothing changed",
    ),
    ("415", "The body is not `application/json`; nothing changed"),
    (
        "408",
        "The body did not arrive within the body timeout; nothing changed",
    ),
];

/// The answer to input that breaks a rule (path, query, header or body).
const BAD_INPUT: (&str, &str) = ("400", "Bad input; nothing changed");

/// What a listed error answer without a description of its own means.
fn default_description(status: &str) -> &'static str {
    match status {
        "400" => BAD_INPUT.1,
        "404" => "No such resource",
        "409" => "The resource is in a state that forbids this; nothing changed",
        _ => "An error",
    }
}

/// States the rules derived schemas cannot: the dead list's `state` can only be `dead`, and
/// an enqueue names `run_at` or `delay`, not both.
pub(crate) fn add_field_relations(doc: &mut Document) {
    let dead_list = doc
        .paths
        .paths
        .get_mut("/v1/dead")
        .and_then(|i| i.get.as_mut());
    for p in dead_list
        .and_then(|op| op.parameters.as_mut())
        .into_iter()
        .flatten()
    {
        if p.name == "state" {
            p.description = Some("`dead`, the only state the dead list holds".into());
            p.schema = Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["dead"]))
                    .into(),
            );
        }
    }
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    if let Some(enqueue) = components.schemas.remove("EnqueueRequest") {
        let absent_or_null = |field: &str| {
            ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .property(field, ObjectBuilder::new().schema_type(Type::Null))
        };
        let one_of_two = AnyOfBuilder::new()
            .description(Some("`run_at` or `delay`, not both"))
            .item(absent_or_null("run_at"))
            .item(absent_or_null("delay"));
        let both = AllOfBuilder::new().item(enqueue).item(one_of_two).build();
        components
            .schemas
            .insert("EnqueueRequest".into(), RefOr::T(Schema::AllOf(both)));
    }
    // A kind's limit limits something: a concurrency or a rate that is not null.
    if let Some(limit) = components.schemas.remove("LimitRequest") {
        let present = |field: &str, kind: Type| {
            ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .property(field, ObjectBuilder::new().schema_type(kind))
                .required(field)
        };
        let one_of_two = AnyOfBuilder::new()
            .description(Some("`concurrency` or `rate`, or both"))
            .item(present("concurrency", Type::Integer))
            .item(present("rate", Type::Object));
        let both = AllOfBuilder::new().item(limit).item(one_of_two).build();
        components
            .schemas
            .insert("LimitRequest".into(), RefOr::T(Schema::AllOf(both)));
    }
}

/// Gives every operation the error answers it can get, each with the JSON error body: the
/// ones every request may get, 400 where it takes input, 408, 413 and 415 where it takes a
/// body, and 503 `busy` with its `Retry-After` header outside the health checks.
pub(crate) fn add_error_responses(doc: &mut Document, auth: bool) {
    // Tokens are bearer tokens; with auth on, operations that need one say so (`security`),
    // public ones do not.
    if auth {
        add_bearer_scheme(doc);
    }
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            add_to_operation(op, auth);
        }
    }
}

/// The `bearer` security scheme: errand's API tokens.
fn add_bearer_scheme(doc: &mut Document) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        utoipa::openapi::security::SecurityScheme::Http(
            utoipa::openapi::security::HttpBuilder::new()
                .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
                .description(Some(
                    "An errand API token (`errand tokens create`), required off loopback or with --require-auth",
                ))
                .build(),
        ),
    );
}

fn add_to_operation(op: &mut Operation, auth: bool) {
    let has_body = op.request_body.is_some();
    let has_input = has_body || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let mut wanted: Vec<(&str, &str)> = EVERY_REQUEST.to_vec();
    if has_body {
        wanted.extend_from_slice(WITH_BODY);
    }
    if has_input {
        wanted.push(BAD_INPUT);
    }
    let responses = &mut op.responses.responses;
    for (status, description) in wanted {
        responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(description));
    }
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(r) = response {
            if r.description.is_empty() && !status.starts_with('2') {
                r.description = default_description(status).to_string();
            }
        }
    }
    // A server without auth (loopback) answers no 401 or token 429, and needs no token:
    // its document says so, so that it matches what the server does.
    let guarded = auth
        && op
            .operation_id
            .as_deref()
            .and_then(crate::auth::rules::api_rule)
            .is_none_or(|(access, _)| access != crate::auth::rules::Access::Public);
    if guarded {
        op.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
        let responses = &mut op.responses.responses;
        responses.entry("401".to_string()).or_insert_with(|| {
            error_response(
                "No token, or one that is unknown, revoked or expired (when auth is on: any address but loopback, or --require-auth); nothing changed",
            )
        });
        responses.entry("429".to_string()).or_insert_with(|| {
            let mut r = error_response(
                "The token is over its request rate (--token-rate) or holds as many waiting calls and streams as it may (--token-long-polls); retry after `Retry-After` seconds; nothing changed",
            );
            if let RefOr::T(r) = &mut r {
                r.headers.insert("Retry-After".into(), retry_after());
            }
            r
        });
        if let Some(RefOr::T(r)) = responses.get_mut("403") {
            r.description = format!(
                "{}; or a token without the scope (or the queue) this needs; nothing changed",
                r.description.trim_end_matches("; nothing changed")
            );
        }
    }
    let health = op
        .tags
        .as_ref()
        .is_some_and(|t| t.iter().any(|t| t == "health"));
    if !health {
        let long_poll = op
            .operation_id
            .as_deref()
            .is_some_and(|id| LONG_POLLS.contains(&id));
        if let Some(RefOr::T(r)) = op.responses.responses.get_mut("503") {
            r.description = format!("{}. {BUSY}", r.description.trim_end_matches('.'));
            if long_poll {
                r.description = format!("{}. {BUSY_WAITING}", r.description);
            }
            r.headers.insert("Retry-After".into(), retry_after());
        }
    }
}

/// The header a 503 `busy` carries: whole seconds to wait before retrying.
fn retry_after() -> Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some("With `busy`: seconds to wait before retrying"))
        .build()
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    ErrorBody::name(),
                ))))
                .build(),
        )
        .into()
}
