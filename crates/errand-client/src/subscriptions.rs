//! Subscription and delivery calls of [`Client`].

use errand_api::{
    DeliveryList, PauseSubscriptionRequest, SubscriptionList, SubscriptionPatchRequest,
    SubscriptionRequest,
};
use errand_core::{JobId, Subscription, SubscriptionId};
use reqwest::Method;

use crate::{Client, ClientError};

impl Client {
    /// `POST /v1/subscriptions`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn subscription_create(
        &self,
        req: &SubscriptionRequest,
    ) -> Result<Subscription, ClientError> {
        self.post("/v1/subscriptions", req).await
    }

    /// `GET /v1/subscriptions`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn subscriptions(&self) -> Result<SubscriptionList, ClientError> {
        self.get("/v1/subscriptions").await
    }

    /// `GET /v1/subscriptions/{id}`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn subscription(&self, id: SubscriptionId) -> Result<Subscription, ClientError> {
        self.get(&format!("/v1/subscriptions/{id}")).await
    }

    /// `PATCH /v1/subscriptions/{id}`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn subscription_update(
        &self,
        id: SubscriptionId,
        req: &SubscriptionPatchRequest,
    ) -> Result<Subscription, ClientError> {
        self.send(
            self.request(Method::PATCH, &format!("/v1/subscriptions/{id}"))
                .json(req),
        )
        .await
    }

    /// `DELETE /v1/subscriptions/{id}`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn subscription_delete(
        &self,
        id: SubscriptionId,
    ) -> Result<serde_json::Value, ClientError> {
        self.send(self.request(Method::DELETE, &format!("/v1/subscriptions/{id}")))
            .await
    }

    /// `POST /v1/subscriptions/{id}/pause` (with an optional reason) or `/resume`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn subscription_set_paused(
        &self,
        id: SubscriptionId,
        paused: bool,
        reason: Option<String>,
    ) -> Result<Subscription, ClientError> {
        if paused {
            self.post(
                &format!("/v1/subscriptions/{id}/pause"),
                &PauseSubscriptionRequest { reason },
            )
            .await
        } else {
            self.send(self.request(Method::POST, &format!("/v1/subscriptions/{id}/resume")))
                .await
        }
    }

    /// `GET /v1/subscriptions/{id}/deliveries`: the newest `limit` (at most 1000).
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn subscription_deliveries(
        &self,
        id: SubscriptionId,
        limit: u32,
    ) -> Result<DeliveryList, ClientError> {
        self.send(
            self.request(Method::GET, &format!("/v1/subscriptions/{id}/deliveries"))
                .query(&[("limit", limit)]),
        )
        .await
    }

    /// `GET /v1/jobs/{id}/deliveries`: the job's callback and subscription deliveries.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn job_deliveries(&self, id: JobId, limit: u32) -> Result<DeliveryList, ClientError> {
        self.send(
            self.request(Method::GET, &format!("/v1/jobs/{id}/deliveries"))
                .query(&[("limit", limit)]),
        )
        .await
    }
}
