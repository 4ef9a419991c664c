//! [`Client`]: one method per endpoint.

use errand_api::{
    AttemptList, BatchEnqueueRequest, BatchEnqueueResponse, ClaimRequest, ClaimResponse,
    CompleteRequest, CountResponse, DeadSelectionRequest, FailRequest, HeartbeatRequest,
    HeartbeatResponse, JobListQuery, JobPage, LogAppendRequest, LogAppendResponse, QueueList,
    ReleaseRequest, SettleRequest, SettleResponse,
};
use errand_core::schedule_spec::Schedule;
use errand_core::{Job, JobId, QueueInfo};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::typed::IntoEnqueueRequest;
use crate::ClientError;

/// How long a call may take when nothing else is said: the answer must have come within
/// this time (long polls get their wait on top).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection-pooled client; clone it freely.
///
/// Every call that reads one answer has a timeout ([`DEFAULT_CALL_TIMEOUT`], or
/// [`Client::with_timeout`]); long polls (`GET /v1/jobs/{id}?wait=`, claims) get their wait
/// on top of it. Streams (events, followed logs) have none.
///
/// Its `Debug` shows whether a token is set, never the token: clients end up in logs and
/// panic messages.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
    token: Option<Arc<str>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:7878`, or `https://...`
    /// for a server with a certificate: trusted when a public CA signed it, or the CA in
    /// the PEM file that `ERRAND_CA_CERT` names).
    ///
    /// # Errors
    /// `BadUrl` when `base` is not an http URL; `CaCert` when `ERRAND_CA_CERT` is unusable.
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::tls::client_config()?)
            .pool_max_idle_per_host(256)
            // Below the server's default `idle_timeout` (60 s): a pooled connection is
            // dropped here before the server closes it, so a request is never sent on a
            // connection the server is closing (an ambiguous failure for an enqueue).
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ClientError::Transport {
                url: base.to_string(),
                cause: e.to_string(),
            })?;
        Self::with_http(base, http)
    }

    /// A client that shares an existing `reqwest` client.
    ///
    /// # Errors
    /// `BadUrl` when `base` is not an http URL.
    pub fn with_http(base: &str, http: reqwest::Client) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::BadUrl(format!(
                "`{base}` must start with http:// or https://"
            )));
        }
        Ok(Self {
            http,
            base,
            timeout: DEFAULT_CALL_TIMEOUT,
            token: None,
        })
    }

    /// This client, sending `token` as `Authorization: Bearer TOKEN` on every call.
    ///
    /// A server on loopback without `--require-auth` ignores it; elsewhere every call but
    /// the health checks needs one with the right scope (docs/security.md).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Arc::from(token.into()));
        self
    }

    /// This client with `timeout` as the longest wait for an answer to one call (long polls
    /// get their wait on top).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest wait for an answer to one call, besides a long poll's wait.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// Sends a call and reads its one answer, within the client's timeout unless the
    /// request set its own (a long poll).
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        req: RequestBuilder,
    ) -> Result<T, ClientError> {
        let (http, req) = req.build_split();
        let mut req = req?;
        if req.timeout().is_none() {
            *req.timeout_mut() = Some(self.timeout);
        }
        let resp = http.execute(req).await?;
        let status = resp.status();
        let mut url = resp.url().clone();
        url.set_query(None);
        let bytes = resp.bytes().await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                ClientError::Unreadable(format!("unreadable answer from {url}: {e}"))
            });
        }
        Err(ClientError::from_answer(status, &bytes))
    }

    pub(crate) async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.request(Method::GET, path)).await
    }

    /// `POST /v1/jobs`: enqueues a request (`&EnqueueRequest` or `EnqueueRequest`) or a
    /// typed job (any [`JobType`](crate::JobType), e.g. `client.enqueue(SendEmail { .. })`).
    ///
    /// # Errors
    /// `Payload` when a typed job does not serialise; the server's error, or a transport
    /// failure.
    pub async fn enqueue(&self, job: impl IntoEnqueueRequest) -> Result<Job, ClientError> {
        let req = job.into_enqueue_request()?;
        self.post("/v1/jobs", &req).await
    }

    /// `POST /v1/jobs/batch` of requests or typed jobs (1 to 10,000), all or none.
    ///
    /// # Errors
    /// `Payload` when a typed job does not serialise; the server's error, or a transport
    /// failure.
    pub async fn enqueue_many<I>(&self, jobs: I) -> Result<BatchEnqueueResponse, ClientError>
    where
        I: IntoIterator,
        I::Item: IntoEnqueueRequest,
    {
        let jobs = jobs
            .into_iter()
            .map(IntoEnqueueRequest::into_enqueue_request)
            .collect::<Result<Vec<_>, _>>()?;
        self.enqueue_batch(&BatchEnqueueRequest { jobs }).await
    }

    /// `POST /v1/jobs/batch`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn enqueue_batch(
        &self,
        req: &BatchEnqueueRequest,
    ) -> Result<BatchEnqueueResponse, ClientError> {
        self.post("/v1/jobs/batch", req).await
    }

    /// `GET /v1/jobs/{id}`, long-polling with `wait` (e.g. `"30s"`).
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn job(&self, id: JobId, wait: Option<&str>) -> Result<Job, ClientError> {
        let mut req = self.request(Method::GET, &format!("/v1/jobs/{id}"));
        if let Some(w) = wait {
            req = req.query(&[("wait", w)]);
            if let Some(waited) = crate::typed::wait_duration(w) {
                req = req.timeout(waited + self.timeout);
            }
        }
        self.send(req).await
    }

    /// `GET /v1/jobs`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn jobs(&self, q: &JobListQuery) -> Result<JobPage, ClientError> {
        self.send(self.request(Method::GET, "/v1/jobs").query(q))
            .await
    }

    /// `POST /v1/jobs/{id}/cancel`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn cancel(&self, id: JobId) -> Result<Job, ClientError> {
        self.post(&format!("/v1/jobs/{id}/cancel"), &serde_json::json!({}))
            .await
    }

    /// `POST /v1/jobs/{id}/retry`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn retry(&self, id: JobId) -> Result<Job, ClientError> {
        self.post(&format!("/v1/jobs/{id}/retry"), &serde_json::json!({}))
            .await
    }

    /// `GET /v1/jobs/{id}/attempts`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn attempts(&self, id: JobId) -> Result<AttemptList, ClientError> {
        self.get(&format!("/v1/jobs/{id}/attempts")).await
    }

    /// `POST /v1/queues/{queue}/claim`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn claim(
        &self,
        queue: &str,
        req: &ClaimRequest,
    ) -> Result<ClaimResponse, ClientError> {
        let waited = Duration::from_millis(req.wait_ms.unwrap_or(0));
        self.send(
            self.request(Method::POST, &format!("/v1/queues/{queue}/claim"))
                .json(req)
                .timeout(waited + self.timeout),
        )
        .await
    }

    /// `POST /v1/jobs/{id}/heartbeat`.
    ///
    /// # Errors
    /// The server's error (`lease_lost`: stop working), or a transport failure.
    pub async fn heartbeat(
        &self,
        id: JobId,
        req: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        self.post(&format!("/v1/jobs/{id}/heartbeat"), req).await
    }

    /// `POST /v1/jobs/{id}/release`: gives a held job back uncounted (a worker stopping).
    ///
    /// # Errors
    /// The server's error (`lease_lost`: the lease no longer holds the job), or a
    /// transport failure.
    pub async fn release(&self, id: JobId, req: &ReleaseRequest) -> Result<Job, ClientError> {
        self.post(&format!("/v1/jobs/{id}/release"), req).await
    }

    /// `POST /v1/jobs/{id}/complete`.
    ///
    /// # Errors
    /// The server's error (`lease_lost`), or a transport failure.
    pub async fn complete(&self, id: JobId, req: &CompleteRequest) -> Result<Job, ClientError> {
        self.post(&format!("/v1/jobs/{id}/complete"), req).await
    }

    /// `POST /v1/jobs/{id}/fail`.
    ///
    /// # Errors
    /// The server's error (`lease_lost`), or a transport failure.
    pub async fn fail(&self, id: JobId, req: &FailRequest) -> Result<Job, ClientError> {
        self.post(&format!("/v1/jobs/{id}/fail"), req).await
    }

    /// `POST /v1/jobs/settle`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn settle(&self, req: &SettleRequest) -> Result<SettleResponse, ClientError> {
        self.post("/v1/jobs/settle", req).await
    }

    /// `POST /v1/jobs/{id}/logs`: lines a hosted run printed, fenced by the attempt's lease.
    ///
    /// # Errors
    /// The server's error (`lease_lost`: the run must stop), or a transport failure.
    pub async fn append_logs(
        &self,
        id: JobId,
        req: &LogAppendRequest,
    ) -> Result<LogAppendResponse, ClientError> {
        self.post(&format!("/v1/jobs/{id}/logs"), req).await
    }

    /// `GET /v1/queues`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn queues(&self) -> Result<QueueList, ClientError> {
        self.get("/v1/queues").await
    }

    /// `GET /v1/queues/{queue}`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn queue(&self, queue: &str) -> Result<QueueInfo, ClientError> {
        self.get(&format!("/v1/queues/{queue}")).await
    }

    /// `POST /v1/queues/{queue}/pause` or `/resume`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<QueueInfo, ClientError> {
        let verb = if paused { "pause" } else { "resume" };
        self.post(
            &format!("/v1/queues/{queue}/{verb}"),
            &serde_json::json!({}),
        )
        .await
    }

    /// `GET /v1/dead`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn dead(&self, q: &JobListQuery) -> Result<JobPage, ClientError> {
        self.send(self.request(Method::GET, "/v1/dead").query(q))
            .await
    }

    /// `POST /v1/dead/requeue`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn dead_requeue(
        &self,
        sel: &DeadSelectionRequest,
    ) -> Result<CountResponse, ClientError> {
        self.post("/v1/dead/requeue", sel).await
    }

    /// `POST /v1/dead/purge`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn dead_purge(
        &self,
        sel: &DeadSelectionRequest,
    ) -> Result<CountResponse, ClientError> {
        self.post("/v1/dead/purge", sel).await
    }

    /// `GET /v1/schedules`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn schedules(&self) -> Result<errand_api::ScheduleList, ClientError> {
        self.get("/v1/schedules").await
    }

    /// `GET /v1/schedules/{name}`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn schedule(&self, name: &str) -> Result<Schedule, ClientError> {
        self.get(&format!("/v1/schedules/{name}")).await
    }

    /// `POST /v1/schedules`.
    ///
    /// # Errors
    /// The server's error (`already_exists` when the name is taken), or a transport failure.
    pub async fn schedule_create(
        &self,
        req: &errand_api::ScheduleRequest,
    ) -> Result<Schedule, ClientError> {
        self.post("/v1/schedules", req).await
    }

    /// `DELETE /v1/schedules/{name}`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn schedule_delete(&self, name: &str) -> Result<serde_json::Value, ClientError> {
        self.send(self.request(Method::DELETE, &format!("/v1/schedules/{name}")))
            .await
    }

    /// `POST /v1/schedules/{name}/pause` or `/resume`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn schedule_set_paused(
        &self,
        name: &str,
        paused: bool,
    ) -> Result<Schedule, ClientError> {
        let verb = if paused { "pause" } else { "resume" };
        self.post(
            &format!("/v1/schedules/{name}/{verb}"),
            &serde_json::json!({}),
        )
        .await
    }

    /// `POST /v1/schedules/{name}/trigger`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn schedule_trigger(&self, name: &str) -> Result<Job, ClientError> {
        self.post(
            &format!("/v1/schedules/{name}/trigger"),
            &serde_json::json!({}),
        )
        .await
    }

    /// `GET /v1/schedules/{name}/next?count=N`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn schedule_next(
        &self,
        name: &str,
        count: usize,
    ) -> Result<errand_api::NextFireTimes, ClientError> {
        self.send(
            self.request(Method::GET, &format!("/v1/schedules/{name}/next"))
                .query(&[("count", count)]),
        )
        .await
    }

    /// `GET /v1/audit`: the audit trail, newest first (needs an admin token).
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn audit(
        &self,
        q: &errand_api::AuditQuery,
    ) -> Result<errand_api::AuditPage, ClientError> {
        self.send(self.request(Method::GET, "/v1/audit").query(q))
            .await
    }

    /// `GET /v1/nodes`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn nodes(&self) -> Result<errand_api::NodeList, ClientError> {
        self.get("/v1/nodes").await
    }

    /// `GET /readyz`: true when the server can accept a job (its store answers and takes
    /// writes).
    ///
    /// # Errors
    /// A transport failure.
    pub async fn ready(&self) -> Result<bool, ClientError> {
        let resp = self
            .request(Method::GET, "/readyz")
            .timeout(self.timeout)
            .send()
            .await?;
        Ok(resp.status().is_success())
    }

    /// `GET /healthz`: true while the process runs and can work once its store answers;
    /// unlike [`Client::ready`], a store that takes no writes leaves it true.
    ///
    /// # Errors
    /// A transport failure.
    pub async fn healthy(&self) -> Result<bool, ClientError> {
        let resp = self
            .request(Method::GET, "/healthz")
            .timeout(self.timeout)
            .send()
            .await?;
        Ok(resp.status().is_success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn debug_never_shows_the_token() {
        let client = Client::new("http://127.0.0.1:1")
            .expect("client")
            .with_token("s3cret-token");
        let shown = format!("{client:?}");
        assert!(!shown.contains("s3cret-token"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        let host = crate::HttpJobHost::new(client, "w", Duration::from_secs(30));
        let shown = format!("{host:?} {host:#?}");
        assert!(!shown.contains("s3cret-token"), "{shown}");
    }

    /// The head of the one request a tiny local listener receives, answered with `body`.
    async fn one_request_head(
        call: impl FnOnce(Client) -> tokio::task::JoinHandle<()>,
        token: Option<&str>,
        body: &str,
    ) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut client = Client::new(&format!("http://{addr}")).expect("client");
        if let Some(t) = token {
            client = client.with_token(t);
        }
        let calling = call(client);
        let (mut conn, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.expect("read");
            assert!(n > 0, "the request ended early");
            head.extend_from_slice(&buf[..n]);
        }
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(answer.as_bytes()).await.expect("write");
        calling.await.expect("call");
        String::from_utf8_lossy(&head).to_lowercase()
    }

    #[tokio::test]
    async fn with_token_sends_a_bearer_authorization_header_on_every_call() {
        let queues = |client: Client| {
            tokio::spawn(async move {
                client.queues().await.expect("queues");
            })
        };
        let head = one_request_head(queues, Some("s3cret-token"), r#"{"queues":[]}"#).await;
        assert!(
            head.contains("\r\nauthorization: bearer s3cret-token\r\n"),
            "{head}"
        );
        let settle = |client: Client| {
            tokio::spawn(async move {
                let req = SettleRequest::default();
                client.settle(&req).await.expect("settle");
            })
        };
        let head = one_request_head(settle, Some("s3cret-token"), r#"{"results":[]}"#).await;
        assert!(
            head.contains("\r\nauthorization: bearer s3cret-token\r\n"),
            "{head}"
        );
        let head = one_request_head(queues, None, r#"{"queues":[]}"#).await;
        assert!(!head.contains("authorization"), "{head}");
    }
}
