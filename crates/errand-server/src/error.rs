//! The error policy of the API: every failure is `{"error":{"code","message"}}` with a
//! fitting status. Bad input is a 4xx and changes nothing; store trouble is a 503 that
//! says the request may be retried; a bug is a 500, never a dropped connection.

use std::any::Any;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use errand_api::{ErrorBody, ErrorDetail};
use errand_core::ValidationError;
use errand_store::StoreError;

/// An API failure.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// Human message.
    pub message: String,
    /// Seconds a client should wait before trying again (`Retry-After`), for overload.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 503 `busy`: a bound on what the server holds at once is reached; the answer says
    /// when to try again. Nothing was done.
    pub fn busy(message: impl Into<String>) -> Self {
        Self {
            retry_after_secs: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// The body of this error, as settle results carry it.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code.to_string(),
            message: self.message.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.detail(),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::invalid(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        match e {
            StoreError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            StoreError::WrongState(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            StoreError::Contended(_) => ApiError::new(StatusCode::CONFLICT, "contended", message),
            StoreError::AlreadyExists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "already_exists", message)
            }
            StoreError::ConstraintViolated(_) => {
                tracing::error!(error = %message, "unexpected constraint violation");
                ApiError::new(StatusCode::CONFLICT, "constraint_violated", message)
            }
            StoreError::LeaseLost { .. } => {
                ApiError::new(StatusCode::CONFLICT, "lease_lost", message)
            }
            StoreError::Invalid(_) => ApiError::invalid(message),
            StoreError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            StoreError::Corrupt(_) => {
                tracing::error!(error = %message, "corrupt record");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
            StoreError::Internal(_) => {
                tracing::error!(error = %message, "store bug");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
            StoreError::ResultTooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "result_too_large", message)
            }
            StoreError::VersionConflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "version_conflict", message)
            }
        }
    }
}

/// Answer for paths no route serves.
pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such endpoint: {}", uri.path()),
    )
}

/// Answer for a known path with the wrong method.
pub(crate) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// A handler panicked: answer 500 in the usual shape; the server keeps running.
pub(crate) fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let what = errand_core::panic_message(err.as_ref());
    tracing::error!(panic = %what, "handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
    .into_response()
}
