//! Bodies of the ordering routes: kind and rate-key limits, sessions, workers, explain.

use errand_core::session::{Session, MAX_SESSION_STATE_BYTES};
use errand_core::throttle::{Limit, LimitInfo, LimitScope, RateLimit};
use errand_core::worker::WorkerInfo;
use errand_core::ValidationError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::StorableJson;

/// `PUT /v1/limits/kind/{name}`: the whole limit of a kind (a field left out is no limit).
/// Clients send it to either scope; a rate key's route takes only `rate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitRequest {
    /// At most this many jobs of the kind running at once, across nodes (kinds only; 1
    /// makes the kind a singleton).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub concurrency: Option<u32>,
    /// At most `limit` starts per `period`, `burst` at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateLimit>,
}

impl LimitRequest {
    /// The limit for `scope`/`name`, checked.
    ///
    /// # Errors
    /// A bad scope or name, or numbers the limit's own validation refuses.
    pub fn into_limit(self, scope: &str, name: &str) -> Result<Limit, ValidationError> {
        let scope = check_limit_name(scope, name)?;
        let limit = Limit {
            scope,
            name: name.to_string(),
            concurrency: self.concurrency,
            rate: self.rate,
        };
        limit.validate()?;
        Ok(limit)
    }
}

/// `PUT /v1/limits/key/{name}`: the whole limit of a rate key, which is only a rate (a
/// concurrency per key is carried by its jobs, as `concurrency_key` and `concurrency_limit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateKeyLimitRequest {
    /// At most `limit` starts per `period`, `burst` at once.
    pub rate: RateLimit,
}

impl RateKeyLimitRequest {
    /// The limit of rate key `name`, checked.
    ///
    /// # Errors
    /// A bad name or rate.
    pub fn into_limit(self, name: &str) -> Result<Limit, ValidationError> {
        LimitRequest {
            concurrency: None,
            rate: Some(self.rate),
        }
        .into_limit(LimitScope::Key.as_str(), name)
    }
}

/// Reads a limit's scope and checks its name: a kind as kinds are named, a rate key as keys.
///
/// # Errors
/// A scope other than `kind` or `key`, or a bad name.
pub fn check_limit_name(scope: &str, name: &str) -> Result<LimitScope, ValidationError> {
    let scope = LimitScope::parse(scope)?;
    match scope {
        LimitScope::Kind => {
            errand_core::JobKind::parse(name)
                .map_err(|e| ValidationError::new("name", e.message))?;
        }
        LimitScope::Key => check_name("name", name)?,
    }
    Ok(scope)
}

/// Checks a rate-key or session name taken from a path.
///
/// # Errors
/// Empty, longer than 255 characters, or with control characters.
pub fn check_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() || name.chars().count() > errand_core::ordering::MAX_KEY_LEN {
        return Err(ValidationError::new(field, "must be 1 to 255 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// `GET /v1/limits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LimitList {
    /// By scope, then name.
    pub limits: Vec<LimitInfo>,
}

/// `GET /v1/sessions` filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SessionListQuery {
    /// Only sessions whose key sorts after this one (the last key of the previous page).
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only blocked (`true`) or unblocked (`false`) sessions.
    pub blocked: Option<bool>,
}

/// A page of sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionList {
    /// By key.
    pub sessions: Vec<Session>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// `PUT /v1/sessions/{key}/state`: compare-and-set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionStateRequest {
    /// The new state (any JSON, at most 256 KiB).
    #[schema(value_type = StorableJson)]
    pub state: Value,
    /// The version read (0 for a session never written); another version answers 409
    /// `version_conflict` and changes nothing.
    pub version: u64,
}

impl SessionStateRequest {
    /// Checks the state's size and text.
    ///
    /// # Errors
    /// A state over [`MAX_SESSION_STATE_BYTES`] or holding NUL characters.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_session_state("state", &self.state)
    }
}

/// Checks a session state a client sends (with a state write or a completion).
///
/// # Errors
/// Over [`MAX_SESSION_STATE_BYTES`] of JSON, or holding NUL characters.
pub fn check_session_state(field: &str, state: &Value) -> Result<(), ValidationError> {
    crate::reject_nul(field, state)?;
    let size = serde_json::to_vec(state).map_or(usize::MAX, |v| v.len());
    if size > MAX_SESSION_STATE_BYTES {
        return Err(ValidationError::new(
            field,
            format!(
                "is {size} bytes of JSON; a session state is at most {MAX_SESSION_STATE_BYTES}"
            ),
        ));
    }
    Ok(())
}

/// `GET /v1/workers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerList {
    /// Latest claim first.
    pub workers: Vec<WorkerInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_of_zero_or_a_zero_rate_is_refused() {
        let zero = LimitRequest {
            concurrency: Some(0),
            rate: None,
        };
        assert!(zero.into_limit("kind", "mail").is_err());
        let bad_rate: Result<LimitRequest, _> =
            serde_json::from_str(r#"{"rate":{"limit":0,"period":"1s"}}"#);
        let bad_rate = bad_rate.expect("parses");
        assert!(bad_rate.into_limit("key", "partner").is_err());
        assert!(
            serde_json::from_str::<LimitRequest>(r#"{"rate":{"limit":-1,"period":"1s"}}"#).is_err()
        );
        let ok: LimitRequest =
            serde_json::from_str(r#"{"rate":{"limit":100,"period":"1s","burst":200}}"#)
                .expect("parses");
        let limit = ok.into_limit("key", "partner").expect("valid");
        assert_eq!(limit.rate.map(|r| r.period_ms), Some(1000));
        assert!(LimitRequest::default().into_limit("queue", "x").is_err());
    }
}
