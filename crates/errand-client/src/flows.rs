//! Workflow, workflow template and batch endpoints.

use errand_api::{
    BatchJobsRequest, BatchList, BatchRequest, BatchResponse, WorkflowList, WorkflowListQuery,
    WorkflowRequest, WorkflowTemplateList, WorkflowTemplateRequest, WorkflowTemplateView,
};
use errand_core::batch::Batch;
use errand_core::workflow::Workflow;
use errand_core::{BatchId, WorkflowId};
use reqwest::Method;

use crate::{Client, ClientError};

impl Client {
    /// `POST /v1/workflows`.
    ///
    /// # Errors
    /// The server's error (400 naming a bad step, 404 for an unknown template), or a
    /// transport failure.
    pub async fn workflow_start(&self, req: &WorkflowRequest) -> Result<Workflow, ClientError> {
        self.post("/v1/workflows", req).await
    }

    /// `GET /v1/workflows/{id}`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn workflow(&self, id: WorkflowId) -> Result<Workflow, ClientError> {
        self.get(&format!("/v1/workflows/{id}")).await
    }

    /// `GET /v1/workflows`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn workflows(&self, q: &WorkflowListQuery) -> Result<WorkflowList, ClientError> {
        self.send(self.request(Method::GET, "/v1/workflows").query(q))
            .await
    }

    /// `POST /v1/workflows/{id}/cancel`.
    ///
    /// # Errors
    /// The server's error (409 when not running), or a transport failure.
    pub async fn workflow_cancel(&self, id: WorkflowId) -> Result<Workflow, ClientError> {
        self.post(
            &format!("/v1/workflows/{id}/cancel"),
            &serde_json::json!({}),
        )
        .await
    }

    /// `POST /v1/workflows/{id}/retry`.
    ///
    /// # Errors
    /// The server's error (409 when not ended or succeeded), or a transport failure.
    pub async fn workflow_retry(&self, id: WorkflowId) -> Result<Workflow, ClientError> {
        self.post(&format!("/v1/workflows/{id}/retry"), &serde_json::json!({}))
            .await
    }

    /// `GET /v1/workflow-templates`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn workflow_templates(&self) -> Result<WorkflowTemplateList, ClientError> {
        self.get("/v1/workflow-templates").await
    }

    /// `PUT /v1/workflow-templates/{name}`.
    ///
    /// # Errors
    /// The server's error (400 naming a bad step), or a transport failure.
    pub async fn workflow_template_put(
        &self,
        name: &str,
        req: &WorkflowTemplateRequest,
    ) -> Result<WorkflowTemplateView, ClientError> {
        self.send(
            self.request(
                Method::PUT,
                &format!("/v1/workflow-templates/{}", crate::definitions::seg(name)),
            )
            .json(req),
        )
        .await
    }

    /// `POST /v1/batches`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn batch_create(&self, req: &BatchRequest) -> Result<BatchResponse, ClientError> {
        self.post("/v1/batches", req).await
    }

    /// `POST /v1/batches/{id}/jobs`.
    ///
    /// # Errors
    /// The server's error (409 when the batch is not open), or a transport failure.
    pub async fn batch_add(
        &self,
        id: BatchId,
        req: &BatchJobsRequest,
    ) -> Result<BatchResponse, ClientError> {
        self.post(&format!("/v1/batches/{id}/jobs"), req).await
    }

    /// `POST /v1/batches/{id}/close`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn batch_close(&self, id: BatchId) -> Result<Batch, ClientError> {
        self.post(&format!("/v1/batches/{id}/close"), &serde_json::json!({}))
            .await
    }

    /// `GET /v1/batches/{id}`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn batch(&self, id: BatchId) -> Result<Batch, ClientError> {
        self.get(&format!("/v1/batches/{id}")).await
    }

    /// `GET /v1/batches`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn batches(&self) -> Result<BatchList, ClientError> {
        self.get("/v1/batches").await
    }
}
