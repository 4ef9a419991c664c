//! Queue settings, limits, sessions, workers and explain calls of [`Client`].

use errand_api::{
    LimitList, LimitRequest, SessionList, SessionListQuery, SessionStateRequest, WorkerList,
};
use errand_core::explain::Explanation;
use errand_core::queue::QueueSettingsPatch;
use errand_core::session::Session;
use errand_core::throttle::{LimitInfo, LimitScope};
use errand_core::{JobId, QueueInfo};
use reqwest::Method;

use crate::definitions::seg;
use crate::{Client, ClientError};

impl Client {
    /// `PATCH /v1/queues/{queue}`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn queue_update(
        &self,
        queue: &str,
        patch: &QueueSettingsPatch,
    ) -> Result<QueueInfo, ClientError> {
        self.send(
            self.request(Method::PATCH, &format!("/v1/queues/{}", seg(queue)))
                .json(patch),
        )
        .await
    }

    /// `GET /v1/limits`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn limits(&self) -> Result<LimitList, ClientError> {
        self.get("/v1/limits").await
    }

    /// `PUT /v1/limits/kind/{name}` or `PUT /v1/limits/key/{name}` (a rate key takes only a rate).
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn limit_put(
        &self,
        scope: LimitScope,
        name: &str,
        req: &LimitRequest,
    ) -> Result<LimitInfo, ClientError> {
        self.send(
            self.request(Method::PUT, &limit_path(scope, name))
                .json(req),
        )
        .await
    }

    /// `DELETE /v1/limits/kind/{name}` or `DELETE /v1/limits/key/{name}`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn limit_delete(
        &self,
        scope: LimitScope,
        name: &str,
    ) -> Result<serde_json::Value, ClientError> {
        self.send(self.request(Method::DELETE, &limit_path(scope, name)))
            .await
    }

    /// `GET /v1/sessions`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn sessions(&self, q: &SessionListQuery) -> Result<SessionList, ClientError> {
        self.send(self.request(Method::GET, "/v1/sessions").query(q))
            .await
    }

    /// `GET /v1/sessions/{key}`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn session(&self, key: &str) -> Result<Session, ClientError> {
        self.get(&format!("/v1/sessions/{}", seg(key))).await
    }

    /// `PUT /v1/sessions/{key}/state`.
    ///
    /// # Errors
    /// The server's error (409 `version_conflict`), or a transport failure.
    pub async fn session_state_put(
        &self,
        key: &str,
        req: &SessionStateRequest,
    ) -> Result<Session, ClientError> {
        self.send(
            self.request(Method::PUT, &format!("/v1/sessions/{}/state", seg(key)))
                .json(req),
        )
        .await
    }

    /// `POST /v1/sessions/{key}/unblock`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn session_unblock(&self, key: &str) -> Result<Session, ClientError> {
        self.post(
            &format!("/v1/sessions/{}/unblock", seg(key)),
            &serde_json::json!({}),
        )
        .await
    }

    /// `GET /v1/jobs/{id}/explain`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn explain(&self, id: JobId) -> Result<Explanation, ClientError> {
        self.get(&format!("/v1/jobs/{id}/explain")).await
    }

    /// `GET /v1/workers`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn workers(&self) -> Result<WorkerList, ClientError> {
        self.get("/v1/workers").await
    }
}

fn limit_path(scope: LimitScope, name: &str) -> String {
    format!("/v1/limits/{}/{}", scope.as_str(), seg(name))
}
