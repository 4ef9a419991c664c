//! One request at the edge, before and after the router: a declared body over the limit
//! gets 413 at once; large bodies wait for room in the shared body budget; the body gets
//! its deadline; a reserve connection answers only the health endpoints.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::{Body, Incoming};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use super::activity::Activity;
use super::body::{GuardedBody, TimedBody};
use super::EdgeLimits;
use crate::ApiError;

/// Bodies up to this size are read without asking the budget: one job's enqueue, a claim
/// or a settle fits, so workers never queue behind a large batch; their memory is bounded
/// by the connection cap.
const SMALL_BODY_BYTES: u64 = 64 * 1024;

/// The budget counts in KiB so that any body size fits a semaphore permit count.
const BUDGET_UNIT: u64 = 1024;

/// What every request on every connection shares.
pub(crate) struct Shared {
    pub(crate) router: Router,
    pub(crate) limits: EdgeLimits,
    /// Bytes of request bodies being read or held at once, in [`BUDGET_UNIT`]s.
    pub(crate) budget: Arc<Semaphore>,
}

impl Shared {
    pub(crate) fn new(router: Router, limits: EdgeLimits) -> Self {
        let units = (limits.body_budget_bytes as u64)
            .div_ceil(BUDGET_UNIT)
            .max(1);
        Self {
            router,
            limits,
            budget: Arc::new(Semaphore::new(
                usize::try_from(units)
                    .unwrap_or(Semaphore::MAX_PERMITS)
                    .min(Semaphore::MAX_PERMITS),
            )),
        }
    }

    /// The budget units a body takes: its declared length, or the largest body when it
    /// declares none (chunked); never more than the whole budget.
    fn budget_units(&self, declared: Option<u64>) -> Option<u32> {
        let bytes = match declared {
            Some(n) if n <= SMALL_BODY_BYTES => return None,
            Some(n) => n,
            None => self.limits.max_request_bytes as u64,
        };
        let whole = (self.limits.body_budget_bytes as u64)
            .div_ceil(BUDGET_UNIT)
            .max(1);
        let units = bytes.div_ceil(BUDGET_UNIT).min(whole);
        Some(u32::try_from(units).unwrap_or(u32::MAX))
    }
}

/// Serves one request: the handler's answer, with the request counted in service until
/// its response body is done.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    activity: Arc<Activity>,
    reserve: bool,
    req: Request<Incoming>,
) -> Result<Response<GuardedBody>, Infallible> {
    let guard = activity.request_started();
    let response = if reserve {
        answer_reserve(&shared, req).await
    } else {
        answer(&shared, req).await
    };
    Ok(response.map(|body| GuardedBody::new(body, guard)))
}

/// Answers that close the connection after them.
fn closing(error: ApiError) -> Response<axum::body::Body> {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn answer(shared: &Shared, req: Request<Incoming>) -> Response<axum::body::Body> {
    let hint = req.body().size_hint();
    let declared = if req.body().is_end_stream() {
        Some(0)
    } else {
        hint.exact()
    };
    let max = shared.limits.max_request_bytes as u64;
    if let Some(len) = declared.filter(|&len| len > max) {
        return closing(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request body ({len} bytes) is larger than the server accepts ({max} bytes)"
            ),
        ));
    }
    let _permit = match shared.budget_units(declared) {
        None => None,
        Some(units) => match acquire(shared, units).await {
            Some(permit) => Some(permit),
            None => {
                return closing(ApiError::busy(
                    "too many large request bodies are being read at once; retry",
                ))
            }
        },
    };
    let expired = Arc::new(AtomicBool::new(false));
    let timeout = shared.limits.body_timeout;
    let req = req.map(|body| TimedBody::new(body, timeout, expired.clone()));
    let response = match shared.router.clone().oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if expired.load(Ordering::Acquire) {
        return closing(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request body did not arrive within {timeout:?}"),
        ));
    }
    response
}

/// Waits for room in the body budget, at most the body timeout.
async fn acquire(shared: &Shared, units: u32) -> Option<OwnedSemaphorePermit> {
    tokio::time::timeout(
        shared.limits.body_timeout,
        shared.budget.clone().acquire_many_owned(units),
    )
    .await
    .ok()?
    .ok()
}

/// A connection past the cap: the health endpoints answer, anything else is told to retry.
async fn answer_reserve(shared: &Shared, req: Request<Incoming>) -> Response<axum::body::Body> {
    match req.uri().path() {
        "/healthz" | "/readyz" => match shared.router.clone().oneshot(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        _ => closing(ApiError::busy(
            "the server is at its connection limit; retry",
        )),
    }
}
