//! Schemas of wire fields that travel as plain JSON (strings, any value) but follow a rule
//! the server checks. The fields keep their plain Rust types; these types exist only so the
//! OpenAPI document states the rule (`#[schema(value_type = ...)]`).

use errand_core::duration::FlexDuration;
use errand_core::limits::MAX_LABEL_LEN;
use errand_core::text_schema::{visible_pattern, NO_NUL_PATTERN};
use errand_core::text_schema_for;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder,
    Schema, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};

/// Longest worker name; it is shown, not parsed.
pub const MAX_WORKER_LEN: usize = 255;

/// A tag: 1 to 255 visible characters (spaces allowed, unlike in a kind).
pub struct Tag;

text_schema_for!(
    Tag,
    visible_pattern(),
    MAX_LABEL_LEN,
    "A tag: 1 to 255 characters, no control, invisible format or line separator characters",
    "billing"
);

/// A lock, concurrency, session, fairness or rate key (and a kind or rate key in a limit's
/// path): 1 to 255 characters without control characters.
pub struct OrderingKey;

text_schema_for!(
    OrderingKey,
    errand_core::text_schema::key_pattern(),
    errand_core::ordering::MAX_KEY_LEN,
    "A key: 1 to 255 characters, no control characters",
    "customer-42"
);

/// An idempotency key: 1 to 255 visible characters.
pub struct IdempotencyKey;

text_schema_for!(
    IdempotencyKey,
    visible_pattern(),
    MAX_LABEL_LEN,
    "An idempotency key: 1 to 255 characters, no control, invisible format or line separator characters",
    "order-4711"
);

/// Longest job definition name: its schedule `definition:<name>` must be a schedule name.
pub const MAX_DEFINITION_NAME_LEN: usize =
    errand_core::names::MAX_QUEUE_NAME_LEN - "definition:".len();

/// A workflow's, step's or workflow template's name: 1 to 128 characters, no whitespace.
pub struct WorkflowName;

text_schema_for!(
    WorkflowName,
    errand_core::text_schema::workflow_name_pattern(),
    errand_core::workflow::MAX_NAME_LEN,
    "A workflow, step or template name: 1 to 128 characters, no whitespace or control characters",
    "nightly-etl"
);

/// A job definition's name: its folder's name in the jobs directory.
pub struct DefinitionName;

text_schema_for!(
    DefinitionName,
    "^[A-Za-z0-9_.-]+$",
    MAX_DEFINITION_NAME_LEN,
    "A job definition's name (its folder's name): 1 to 117 characters from A-Z a-z 0-9 _ - .",
    "nightly-report"
);

/// A continuous instance's id.
pub struct InstanceId;

text_schema_for!(
    InstanceId,
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    36,
    "A continuous instance's id (a UUID)",
    "0193a5b0-7c1e-7d2a-9f00-3c4d5e6f7a8b"
);

/// A worker's name as a claim gives it: 1 to 255 visible characters.
pub struct WorkerName;

text_schema_for!(
    WorkerName,
    visible_pattern(),
    MAX_WORKER_LEN,
    "Who claims: 1 to 255 characters, no control, invisible format or line separator characters",
    "worker-1"
);

/// A duration longer than zero: a job's timeout, a catch-up window.
pub struct PositiveDuration;

impl utoipa::PartialSchema for PositiveDuration {
    fn schema() -> RefOr<Schema> {
        FlexDuration::schema_from(1)
    }
}

impl utoipa::ToSchema for PositiveDuration {}

/// A schedule's interval: at least a second.
pub struct Interval;

impl utoipa::PartialSchema for Interval {
    fn schema() -> RefOr<Schema> {
        FlexDuration::schema_from(1000)
    }
}

impl utoipa::ToSchema for Interval {}

/// How long `GET /v1/jobs/{id}?wait=` long-polls: at most a minute, in milliseconds, seconds
/// or one minute. The server also reads longer spellings (`1s 500ms`); the pattern names the
/// common ones it can bound by text.
pub struct WaitDuration;

/// Waits the pattern admits, each at most `MAX_WAIT_MS` (60 s).
const WAIT_PATTERN: &str = "^\\s*(0*([0-9]{1,4}|[1-5][0-9]{4}|60000)(\\s*(ms|msec|millis))?|0*([0-9]|[1-5][0-9]|60)\\s*(s|sec|secs|second|seconds)|0*[01]\\s*(m|min|mins|minute|minutes))\\s*$";

impl utoipa::PartialSchema for WaitDuration {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .pattern(Some(WAIT_PATTERN))
            .description(Some("At most 60s: `30s`, `1m` or milliseconds (`1500`)"))
            .examples(["30s"])
            .into()
    }
}

impl utoipa::ToSchema for WaitDuration {}

/// Any JSON value without NUL characters in its strings or keys: what a payload, result or
/// checkpoint may be (PostgreSQL's `jsonb` cannot keep `\u0000`, so no store accepts it).
pub struct StorableJson;

impl utoipa::PartialSchema for StorableJson {
    fn schema() -> RefOr<Schema> {
        let itself = || reference::<StorableJson>();
        let no_nul = || {
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .pattern(Some(NO_NUL_PATTERN))
        };
        let scalars = [Type::Null, Type::Boolean, Type::Number];
        AnyOfBuilder::new()
            .description(Some(
                "Any JSON value; its strings and keys must not contain NUL (\\u0000)",
            ))
            .item(ObjectBuilder::new().schema_type(SchemaType::from_iter(scalars)))
            .item(no_nul())
            .item(ArrayBuilder::new().items(itself()))
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::Object))
                    .property_names(Some(no_nul()))
                    .additional_properties(Some(itself())),
            )
            .into()
    }
}

impl utoipa::ToSchema for StorableJson {}

/// One way a body may be valid: the properties it must have, and what they must then hold.
type Alternative<'a> = (Vec<&'a str>, Vec<(&'a str, Schema)>);

/// An object schema with `properties`, no others, and `one_of_these` (each a set of
/// property schemas that must hold, with the listed properties required): how a body whose
/// fields depend on each other is described.
fn object_with_alternatives(
    description: &str,
    properties: Vec<(&str, RefOr<Schema>)>,
    one_of_these: Vec<Alternative>,
) -> RefOr<Schema> {
    let mut fields = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Object))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for (name, schema) in properties {
        fields = fields.property(name, schema);
    }
    let mut any = AnyOfBuilder::new();
    for (required, constraints) in one_of_these {
        let mut alternative = ObjectBuilder::new().schema_type(SchemaType::AnyValue);
        for name in required {
            alternative = alternative.required(name);
        }
        for (name, schema) in constraints {
            alternative = alternative.property(name, schema);
        }
        any = any.item(alternative);
    }
    AllOfBuilder::new()
        .description(Some(description))
        .item(fields)
        .item(any)
        .into()
}

/// An array schema with only a size bound, for an alternative of [`object_with_alternatives`].
fn sized(min: Option<usize>, max: Option<usize>) -> Schema {
    ArrayBuilder::new().min_items(min).max_items(max).into()
}

/// A schema admitting exactly `value`.
fn exactly(value: serde_json::Value) -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .enum_values(Some([value]))
        .into()
}

/// An array of `item` with at most `max` entries.
fn list_of(item: RefOr<Schema>, max: Option<usize>) -> RefOr<Schema> {
    ArrayBuilder::new().items(item).max_items(max).into()
}

impl utoipa::PartialSchema for crate::SettleRequest {
    fn schema() -> RefOr<Schema> {
        let most = Some(errand_core::limits::MAX_CLAIM as usize * 10);
        object_with_alternatives(
            "Completions and failures, 1 to 10,000 in all",
            vec![
                (
                    "completions",
                    list_of(reference::<crate::SettleCompletion>(), most),
                ),
                (
                    "failures",
                    list_of(reference::<crate::SettleFailure>(), most),
                ),
            ],
            vec![
                (
                    vec!["completions"],
                    vec![("completions", sized(Some(1), None))],
                ),
                (vec!["failures"], vec![("failures", sized(Some(1), None))]),
            ],
        )
    }
}

impl utoipa::ToSchema for crate::SettleRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(named::<crate::SettleCompletion>());
        schemas.push(named::<crate::SettleFailure>());
        crate::SettleCompletion::schemas(schemas);
        crate::SettleFailure::schemas(schemas);
    }
}

impl utoipa::PartialSchema for crate::DeadSelectionRequest {
    fn schema() -> RefOr<Schema> {
        let queue = OneOfBuilder::new()
            .item(typed(Type::Null))
            .item(reference::<errand_core::QueueName>())
            .into();
        let ids = list_of(reference::<errand_core::JobId>(), None);
        object_with_alternatives(
            "Which dead jobs: ids (maybe within a queue), a whole queue, or `all: true` alone",
            vec![
                ("queue", queue),
                ("ids", ids),
                ("all", typed(Type::Boolean).into()),
            ],
            vec![
                (
                    vec!["ids"],
                    vec![
                        ("ids", sized(Some(1), None)),
                        ("all", exactly(false.into())),
                    ],
                ),
                (
                    vec!["queue"],
                    vec![
                        ("queue", typed(Type::String)),
                        ("all", exactly(false.into())),
                    ],
                ),
                (
                    vec!["all"],
                    vec![
                        ("all", exactly(true.into())),
                        ("queue", typed(Type::Null)),
                        ("ids", sized(None, Some(0))),
                    ],
                ),
            ],
        )
    }
}

impl utoipa::ToSchema for crate::DeadSelectionRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(named::<errand_core::QueueName>());
        schemas.push(named::<errand_core::JobId>());
    }
}

/// A schema of one JSON type and nothing else.
fn typed(ty: Type) -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(ty))
        .into()
}

/// A reference to `T`'s component.
fn reference<T: utoipa::ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

/// `T`'s component, to register with the schemas a body refers to.
fn named<T: utoipa::ToSchema>() -> (String, RefOr<Schema>) {
    (T::name().into_owned(), T::schema())
}

/// A job's `after`: at most [`errand_core::flow::MAX_AFTER`] job ids, each named once (the
/// server refuses repeats).
pub fn after_list() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(reference::<errand_core::JobId>())
        .max_items(Some(errand_core::flow::MAX_AFTER))
        .unique_items(true)
        .description(Some(
            "Jobs that must succeed (or, with `after_any_end`, end) first: at most 1000, each once",
        ))
}
