//! `/v1/workflows` and `/v1/workflow-templates`: start, read, cancel and retry workflows;
//! store the templates they are started from.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use errand_api::{
    check_template_name, ErrorBody, WorkflowList, WorkflowListQuery, WorkflowRequest,
    WorkflowTemplateList, WorkflowTemplateRequest, WorkflowTemplateView,
};
use errand_core::workflow::{Workflow, WorkflowState};
use errand_core::WorkflowId;
use errand_store::WorkflowListParams;
use serde_json::{json, Value};

use super::jobs::{DEFAULT_PAGE, MAX_PAGE};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};

fn workflow_id(raw: &str) -> Result<WorkflowId, ApiError> {
    raw.parse::<WorkflowId>()
        .map_err(|_| ApiError::invalid(format!("id: `{raw}` is not a workflow id")))
}

fn template_name(raw: &str) -> Result<String, ApiError> {
    check_template_name("name", raw)?;
    Ok(raw.to_string())
}

/// Starts a workflow from its steps or a stored template. 201 when new; 200 with the first
/// workflow when its idempotency key was seen within the window.
#[utoipa::path(post, path = "/v1/workflows", operation_id = "create_workflow", tag = "workflows",
    request_body = WorkflowRequest,
    responses(
        (status = 201, description = "Started: steps without parents are ready, the others blocked", body = Workflow),
        (status = 200, description = "An earlier workflow with the same idempotency key", body = Workflow),
        (status = 400, description = "Bad input (a cycle, an unknown dependency, a duplicate step name, a bad job: named); nothing stored", body = ErrorBody),
        (status = 404, description = "No template of that name", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<WorkflowRequest>,
) -> Result<(StatusCode, Json<Workflow>), ApiError> {
    let start = req.into_start(&state.enqueue_limits())?;
    let (workflow, created) = state.engine.workflow_start(start).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(workflow)))
}

/// Lists workflows, newest first, without their steps.
#[utoipa::path(get, path = "/v1/workflows", operation_id = "list_workflows", tag = "workflows",
    params(WorkflowListQuery),
    responses((status = 200, description = "A page", body = WorkflowList), (status = 400, description = "Bad filter", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<WorkflowListQuery>,
) -> Result<Json<WorkflowList>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit: must be between 1 and {MAX_PAGE}"
        )));
    }
    let params = WorkflowListParams {
        state: q.state.as_deref().map(WorkflowState::parse).transpose()?,
        template: q.template.as_deref().map(template_name).transpose()?,
        before: q.before.as_deref().map(workflow_id).transpose()?,
        limit,
    };
    let workflows = state.engine.workflow_list(params).await?;
    let next = (workflows.len() == limit as usize)
        .then(|| workflows.last().map(|w| w.id))
        .flatten();
    Ok(Json(WorkflowList { workflows, next }))
}

/// One workflow with every step: state, attempts, timing, result or error, compensation.
#[utoipa::path(get, path = "/v1/workflows/{id}", operation_id = "get_workflow", tag = "workflows",
    params(("id" = WorkflowId, Path, description = "Workflow id")),
    responses((status = 200, description = "The workflow", body = Workflow), (status = 404, description = "No such workflow", body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Workflow>, ApiError> {
    Ok(Json(state.engine.workflow_get(workflow_id(&raw)?).await?))
}

/// Cancels a running workflow: steps not started are cancelled, running ones by its
/// `on_failure`, then completed steps are compensated (latest first).
#[utoipa::path(post, path = "/v1/workflows/{id}/cancel", operation_id = "cancel_workflow", tag = "workflows",
    params(("id" = WorkflowId, Path, description = "Workflow id")),
    responses((status = 200, description = "Cancelling or cancelled", body = Workflow), (status = 404, body = ErrorBody), (status = 409, description = "Not running", body = ErrorBody)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Workflow>, ApiError> {
    Ok(Json(
        state.engine.workflow_cancel(workflow_id(&raw)?).await?,
    ))
}

/// Resumes a workflow that ended other than `succeeded` from its failed steps, keeping the
/// succeeded ones (those whose work a compensation undid run again).
#[utoipa::path(post, path = "/v1/workflows/{id}/retry", operation_id = "retry_workflow", tag = "workflows",
    params(("id" = WorkflowId, Path, description = "Workflow id")),
    responses((status = 200, description = "Running again", body = Workflow), (status = 404, body = ErrorBody), (status = 409, description = "Not ended, or succeeded", body = ErrorBody)))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Workflow>, ApiError> {
    Ok(Json(state.engine.workflow_retry(workflow_id(&raw)?).await?))
}

/// Every workflow template, by name.
#[utoipa::path(get, path = "/v1/workflow-templates", operation_id = "list_workflow_templates", tag = "workflows",
    responses((status = 200, description = "By name", body = WorkflowTemplateList)))]
pub(crate) async fn list_templates(
    State(state): State<AppState>,
) -> Result<Json<WorkflowTemplateList>, ApiError> {
    let templates = state
        .engine
        .workflow_template_list()
        .await?
        .into_iter()
        .map(|(template, spec)| WorkflowTemplateView { template, spec })
        .collect();
    Ok(Json(WorkflowTemplateList { templates }))
}

/// One workflow template.
#[utoipa::path(get, path = "/v1/workflow-templates/{name}", operation_id = "get_workflow_template", tag = "workflows",
    params(("name" = errand_api::schema::WorkflowName, Path, description = "Template name")),
    responses((status = 200, description = "The template", body = WorkflowTemplateView), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_template(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<WorkflowTemplateView>, ApiError> {
    let name = template_name(&raw)?;
    let spec = state.engine.workflow_template_get(&name).await?;
    Ok(Json(WorkflowTemplateView {
        template: name,
        spec,
    }))
}

/// Creates or replaces a workflow template (workflows already started from it go on as
/// they were started).
#[utoipa::path(put, path = "/v1/workflow-templates/{name}", operation_id = "put_workflow_template", tag = "workflows",
    params(("name" = errand_api::schema::WorkflowName, Path, description = "Template name")),
    request_body = WorkflowTemplateRequest,
    responses((status = 200, description = "Stored", body = WorkflowTemplateView), (status = 400, description = "Bad input (a cycle, an unknown dependency, a duplicate step name, a bad job: named); nothing stored", body = ErrorBody)))]
pub(crate) async fn put_template(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<WorkflowTemplateRequest>,
) -> Result<Json<WorkflowTemplateView>, ApiError> {
    let name = template_name(&raw)?;
    let spec = req.into_spec(&state.enqueue_limits())?;
    state
        .engine
        .workflow_template_put(&name, spec.clone())
        .await?;
    Ok(Json(WorkflowTemplateView {
        template: name,
        spec,
    }))
}

/// Deletes a workflow template; workflows started from it go on.
#[utoipa::path(delete, path = "/v1/workflow-templates/{name}", operation_id = "delete_workflow_template", tag = "workflows",
    params(("name" = errand_api::schema::WorkflowName, Path, description = "Template name")),
    responses((status = 200, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete_template(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let name = template_name(&raw)?;
    state.engine.workflow_template_delete(&name).await?;
    Ok(Json(json!({"deleted": name})))
}
