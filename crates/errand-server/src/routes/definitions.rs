//! `/v1/definitions`: the job definitions of the jobs directory, their problems, on-demand
//! runs, and stop/start of continuous ones.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use errand_api::{
    DefinitionList, DefinitionProblemView, DefinitionScheduleView, DefinitionView, EnqueueRequest,
    ErrorBody, HookView, RunDefinitionRequest, WatchView,
};
use errand_core::Job;
use errand_runner::definition::{Definition, DefinitionSource, Mode};

use crate::extract::{ApiPath, OptionalJson};
use crate::{ApiError, AppState};

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The API's view of a definition.
pub(crate) fn view(def: &Definition, stopped: bool) -> DefinitionView {
    DefinitionView {
        name: def.name.clone(),
        mode: match def.mode {
            Mode::Triggered => "triggered".into(),
            Mode::Continuous => "continuous".into(),
        },
        kind: def.kind.to_string(),
        queue: def.queue.to_string(),
        dir: def.dir.display().to_string(),
        format: match def.source {
            DefinitionSource::JobToml { .. } => "job.toml".into(),
            DefinitionSource::WebJobs { .. } => "webjobs".into(),
        },
        command: std::iter::once(def.entry.program.display().to_string())
            .chain(def.entry.args.iter().cloned())
            .collect(),
        schedule: crate::scripts::owned_spec(def).map(|spec| DefinitionScheduleView {
            name: spec.name.to_string(),
            cron: spec.cron,
            every_ms: spec.every_ms,
            timezone: spec.timezone,
        }),
        singleton: def.singleton,
        concurrency: def.concurrency,
        timeout_ms: def.timeout.map(millis),
        max_attempts: def.max_attempts,
        stopping_wait_ms: millis(def.stopping_wait_time),
        watch: def
            .watch
            .iter()
            .map(|w| WatchView {
                dir: w.dir.display().to_string(),
                glob: w.glob.clone(),
            })
            .collect(),
        hooks: def
            .hooks
            .iter()
            .map(|h| HookView {
                name: h.name.clone(),
                signed: h.secret_env.is_some(),
            })
            .collect(),
        stopped,
        instances: Vec::new(),
    }
}

/// The definition named `name`, or 404.
pub(crate) fn find(state: &AppState, name: &str) -> Result<std::sync::Arc<Definition>, ApiError> {
    state
        .scripts
        .snapshot()
        .definitions
        .get(name)
        .cloned()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no job definition `{name}` in this node's jobs directory"),
            )
        })
}

async fn stopped_names(state: &AppState) -> Result<Vec<String>, ApiError> {
    Ok(state
        .engine
        .definition_switches()
        .await?
        .into_iter()
        .filter(|(_, stopped)| *stopped)
        .map(|(name, _)| name)
        .collect())
}

/// Every definition this node loaded, and every folder that did not load with why.
#[utoipa::path(get, path = "/v1/definitions", operation_id = "list_definitions", tag = "definitions",
    responses((status = 200, description = "Definitions and problems", body = DefinitionList),
        (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<DefinitionList>, ApiError> {
    let snapshot = state.scripts.snapshot();
    let stopped = stopped_names(&state).await?;
    Ok(Json(DefinitionList {
        jobs_dir: state.scripts.jobs_dir().map(|d| d.display().to_string()),
        definitions: snapshot
            .definitions
            .values()
            .map(|d| view(d, stopped.contains(&d.name)))
            .collect(),
        problems: snapshot
            .problems
            .iter()
            .map(|p| DefinitionProblemView {
                name: p.name.clone(),
                file: p.file.display().to_string(),
                key: p.key.clone(),
                reason: p.reason.clone(),
            })
            .collect(),
    }))
}

/// One definition, with its continuous instances across the cluster.
#[utoipa::path(get, path = "/v1/definitions/{name}", operation_id = "get_definition", tag = "definitions",
    params(("name" = errand_api::schema::DefinitionName, Path, description = "Definition name")),
    responses((status = 200, description = "The definition", body = DefinitionView),
        (status = 404, description = "No such definition", body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DefinitionView>, ApiError> {
    let def = find(&state, &name)?;
    let stopped = stopped_names(&state).await?;
    let mut v = view(&def, stopped.contains(&def.name));
    v.instances = state.engine.instances(Some(def.name.clone())).await?;
    Ok(Json(v))
}

/// Runs a definition now: enqueues a job of its kind on its queue with the given payload.
#[utoipa::path(post, path = "/v1/definitions/{name}/run", operation_id = "run_definition", tag = "definitions",
    params(("name" = errand_api::schema::DefinitionName, Path, description = "Definition name")),
    request_body = Option<RunDefinitionRequest>,
    responses((status = 201, description = "The job, stored durably", body = Job),
        (status = 200, description = "An earlier job with the same idempotency key", body = Job),
        (status = 400, description = "Bad payload", body = ErrorBody),
        (status = 404, description = "No such definition", body = ErrorBody),
        (status = 409, description = "A continuous definition runs all the time; start it instead", body = ErrorBody)))]
pub(crate) async fn run(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    OptionalJson(req): OptionalJson<RunDefinitionRequest>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let def = find(&state, &name)?;
    if def.mode == Mode::Continuous {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "wrong_state",
            format!("`{name}` is continuous: it runs all the time; use POST /v1/definitions/{name}/start"),
        ));
    }
    let job = enqueue_for(&state, &def, req.payload, req.idempotency_key).await?;
    Ok(job)
}

/// Enqueues a job that runs `def` (on-demand runs, hooks).
pub(crate) async fn enqueue_for(
    state: &AppState,
    def: &Definition,
    payload: Option<serde_json::Value>,
    idempotency_key: Option<String>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let mut req = EnqueueRequest::new(def.kind.to_string());
    req.queue = Some(def.queue.to_string());
    req.payload = Some(payload.unwrap_or_else(|| serde_json::json!({})));
    req.max_attempts = Some(def.max_attempts);
    req.idempotency_key = idempotency_key;
    super::jobs::enqueue_one(state, req.into_new_job(&state.enqueue_limits())?).await
}

async fn switch(state: &AppState, name: &str, stopped: bool) -> Result<DefinitionView, ApiError> {
    let def = find(state, name)?;
    if def.mode != Mode::Continuous {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "wrong_state",
            format!("`{name}` is triggered: it runs when work arrives; pause its queue `{}` to hold its jobs", def.queue),
        ));
    }
    state
        .engine
        .definition_switch_put(&def.name, stopped)
        .await?;
    if !stopped {
        state.scripts.announce_start(&def.name);
    }
    let mut v = view(&def, stopped);
    v.instances = state.engine.instances(Some(def.name.clone())).await?;
    Ok(v)
}

/// Stops a continuous definition's instances on every node (gracefully: shutdown file,
/// SIGTERM, `stopping_wait_time`, SIGKILL) until it is started again; holds across restarts.
#[utoipa::path(post, path = "/v1/definitions/{name}/stop", operation_id = "stop_definition", tag = "definitions",
    params(("name" = errand_api::schema::DefinitionName, Path, description = "Definition name")),
    responses((status = 200, description = "Stopped", body = DefinitionView),
        (status = 404, description = "No such definition", body = ErrorBody),
        (status = 409, description = "Not a continuous definition", body = ErrorBody)))]
pub(crate) async fn stop(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DefinitionView>, ApiError> {
    Ok(Json(switch(&state, &name, true).await?))
}

/// Starts a stopped continuous definition again, and an instance marked failed after too
/// many restarts.
#[utoipa::path(post, path = "/v1/definitions/{name}/start", operation_id = "start_definition", tag = "definitions",
    params(("name" = errand_api::schema::DefinitionName, Path, description = "Definition name")),
    responses((status = 200, description = "Started", body = DefinitionView),
        (status = 404, description = "No such definition", body = ErrorBody),
        (status = 409, description = "Not a continuous definition", body = ErrorBody)))]
pub(crate) async fn start(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DefinitionView>, ApiError> {
    Ok(Json(switch(&state, &name, false).await?))
}
