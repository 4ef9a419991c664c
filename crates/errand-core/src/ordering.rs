//! How a job waits its turn: the one key it shares with other jobs (a lock, a concurrency
//! key with a limit, or an ordered session), its tenant for fair claiming, and the rate
//! limit it counts against.
//!
//! A job names at most one of `lock_key`, `concurrency_key` and `session_key`: each is a
//! *gate* with a number of places (1, the limit, 1). A job holding a place is *admitted*;
//! the others wait *parked*, out of the claim index, and cost a claim nothing. One gate per
//! job keeps admission free of deadlock (two jobs each holding one key and waiting on the
//! other's can never happen).

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Longest key a job may name (lock, concurrency, session, fairness, rate).
pub const MAX_KEY_LEN: usize = 255;
/// Largest `concurrency_limit`.
pub const MAX_CONCURRENCY_LIMIT: u32 = 1_000_000;
/// Largest `fairness_weight`: a tenant may be served up to 1000 times as often as another.
pub const MAX_FAIRNESS_WEIGHT: u32 = 1000;
/// The rank step of a fairness key of weight 1; a key of weight `w` steps `FAIR_STEP / w`.
pub const FAIR_STEP: i64 = 1_000_000;

/// What a session does when its head job dies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionOnDead {
    /// The session waits until someone retries the dead job or unblocks the session
    /// (Service Bus and SQS FIFO keep order the same way).
    #[default]
    Block,
    /// The session moves on to its next job.
    Continue,
}

impl SessionOnDead {
    /// The name stores keep.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionOnDead::Block => "block",
            SessionOnDead::Continue => "continue",
        }
    }

    /// Reads a stored name.
    ///
    /// # Errors
    /// A name errand never writes.
    pub fn from_stored(s: &str) -> Result<Self, ValidationError> {
        match s {
            "block" => Ok(SessionOnDead::Block),
            "continue" => Ok(SessionOnDead::Continue),
            other => Err(ValidationError::new(
                "session_on_dead",
                format!("`{other}` is not block or continue"),
            )),
        }
    }
}

/// The one key a job waits its turn on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// At most one job with this key runs at a time, anywhere.
    Lock(String),
    /// At most `limit` jobs with this key run at a time.
    Concurrency {
        /// The key (a customer, a tenant, a resource).
        key: String,
        /// Places; the last enqueue's limit is the key's limit.
        limit: u32,
    },
    /// One job at a time, in enqueue order, with durable session state.
    Session {
        /// The session.
        key: String,
        /// What a dead head does to the session.
        on_dead: SessionOnDead,
    },
}

/// Stored gate names are the key behind one of these prefixes, so the three kinds of key
/// never share places.
const LOCK_PREFIX: &str = "lock:";
const KEY_PREFIX: &str = "key:";
const SESSION_PREFIX: &str = "session:";

impl Gate {
    /// The gate's stored name: `lock:K`, `key:K` or `session:K`.
    pub fn stored_name(&self) -> String {
        match self {
            Gate::Lock(k) => format!("{LOCK_PREFIX}{k}"),
            Gate::Concurrency { key, .. } => format!("{KEY_PREFIX}{key}"),
            Gate::Session { key, .. } => format!("{SESSION_PREFIX}{key}"),
        }
    }

    /// The stored name of a session's gate.
    pub fn session_name(key: &str) -> String {
        format!("{SESSION_PREFIX}{key}")
    }

    /// How many jobs the gate admits at once.
    pub fn capacity(&self) -> u32 {
        match self {
            Gate::Lock(_) | Gate::Session { .. } => 1,
            Gate::Concurrency { limit, .. } => *limit,
        }
    }

    /// Whether jobs are admitted strictly in enqueue order, even a job whose `run_at` has
    /// not come (sessions), rather than as they fall due (locks and concurrency keys).
    pub fn ordered(&self) -> bool {
        matches!(self, Gate::Session { .. })
    }

    /// The session key when this is a session gate's stored name.
    pub fn session_key_of(stored_name: &str) -> Option<&str> {
        stored_name.strip_prefix(SESSION_PREFIX)
    }
}

/// How a job waits its turn, as the API takes and shows it (flat fields of the job).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobOrdering {
    /// Jobs with the same lock key never run at the same time anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_key: Option<String>,
    /// At most `concurrency_limit` jobs with this key run at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
    /// The limit of `concurrency_key` (default 1); the last enqueue's limit counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub concurrency_limit: Option<u32>,
    /// Jobs with the same session key run one at a time in enqueue order, and share state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// What the session does if this job dies (default `block`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_on_dead: Option<SessionOnDead>,
    /// The tenant: a queue's jobs are claimed round-robin across fairness keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairness_key: Option<String>,
    /// How many turns this key gets per turn of a weight-1 key (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub fairness_weight: Option<u32>,
    /// The rate limit (`PUT /v1/limits/key/{name}`) this job's start counts against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_key: Option<String>,
}

fn check_key(field: &str, key: &Option<String>) -> Result<(), ValidationError> {
    if let Some(k) = key {
        if k.is_empty() || k.chars().count() > MAX_KEY_LEN {
            return Err(ValidationError::new(
                field,
                format!("must be 1 to {MAX_KEY_LEN} characters"),
            ));
        }
        if k.chars().any(char::is_control) {
            return Err(ValidationError::new(
                field,
                "must not contain control characters",
            ));
        }
    }
    Ok(())
}

impl JobOrdering {
    /// Checks the fields and how they combine: at most one of `lock_key`,
    /// `concurrency_key` and `session_key`; `concurrency_limit` only with a
    /// `concurrency_key`; `session_on_dead` only with a `session_key`; `fairness_weight`
    /// only with a `fairness_key`; numbers in range.
    ///
    /// # Errors
    /// The first rule broken, naming its field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_key("lock_key", &self.lock_key)?;
        check_key("concurrency_key", &self.concurrency_key)?;
        check_key("session_key", &self.session_key)?;
        check_key("fairness_key", &self.fairness_key)?;
        check_key("rate_key", &self.rate_key)?;
        let gates = [
            self.lock_key.is_some(),
            self.concurrency_key.is_some(),
            self.session_key.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if gates > 1 {
            return Err(ValidationError::new(
                "lock_key",
                "a job takes at most one of lock_key, concurrency_key and session_key",
            ));
        }
        if let Some(limit) = self.concurrency_limit {
            if self.concurrency_key.is_none() {
                return Err(ValidationError::new(
                    "concurrency_limit",
                    "needs a concurrency_key",
                ));
            }
            if limit == 0 || limit > MAX_CONCURRENCY_LIMIT {
                return Err(ValidationError::new(
                    "concurrency_limit",
                    format!("must be 1 to {MAX_CONCURRENCY_LIMIT}"),
                ));
            }
        }
        if self.session_on_dead.is_some() && self.session_key.is_none() {
            return Err(ValidationError::new(
                "session_on_dead",
                "needs a session_key",
            ));
        }
        if let Some(w) = self.fairness_weight {
            if self.fairness_key.is_none() {
                return Err(ValidationError::new(
                    "fairness_weight",
                    "needs a fairness_key",
                ));
            }
            if w == 0 || w > MAX_FAIRNESS_WEIGHT {
                return Err(ValidationError::new(
                    "fairness_weight",
                    format!("must be 1 to {MAX_FAIRNESS_WEIGHT}"),
                ));
            }
        }
        Ok(())
    }

    /// The job's gate, if it names a key.
    pub fn gate(&self) -> Option<Gate> {
        if let Some(k) = &self.lock_key {
            return Some(Gate::Lock(k.clone()));
        }
        if let Some(k) = &self.concurrency_key {
            return Some(Gate::Concurrency {
                key: k.clone(),
                limit: self.concurrency_limit.unwrap_or(1),
            });
        }
        self.session_key.as_ref().map(|k| Gate::Session {
            key: k.clone(),
            on_dead: self.session_on_dead.unwrap_or_default(),
        })
    }

    /// The rank step of this job's fairness key: `FAIR_STEP / weight`.
    pub fn fair_step(&self) -> i64 {
        FAIR_STEP / i64::from(self.fairness_weight.unwrap_or(1).max(1))
    }

    /// Whether any field is set (a plain job takes the fast paths).
    pub fn is_plain(&self) -> bool {
        *self == JobOrdering::default()
    }
}

/// A gate's bookkeeping as stored: places, how many are held, how many wait, and the dead
/// job a session is blocked behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateRow {
    /// Places.
    pub capacity: u32,
    /// Places held (admitted jobs: ready, running, or a session head waiting for a retry).
    pub admitted: u32,
    /// Jobs parked in the line.
    pub waiting: u64,
    /// A session blocked behind a dead head.
    pub blocked: bool,
}

impl GateRow {
    /// Whether a job arriving now (inserted, retried, or made due) takes a place at once
    /// rather than parking: a session admits only into an empty, unblocked session with no
    /// line (its order is enqueue order, due or not); a lock or concurrency key admits a
    /// due job whenever a place is free (a delayed job parks until it is due, so it holds
    /// no place while it waits).
    pub fn admits_arrival(&self, ordered: bool, due: bool) -> bool {
        if ordered {
            self.admitted == 0 && self.waiting == 0 && !self.blocked
        } else {
            due && self.admitted < self.capacity
        }
    }

    /// How many parked jobs the line may let in now.
    pub fn free_places(&self) -> u32 {
        if self.blocked {
            0
        } else {
            self.capacity.saturating_sub(self.admitted)
        }
    }
}

impl JobOrdering {
    /// Rebuilds the API fields from the stored columns.
    ///
    /// # Errors
    /// A gate name without a known prefix or a bad `session_on_dead`: a corrupt record.
    pub fn from_stored(
        gate: Option<&str>,
        gate_limit: Option<u32>,
        session_on_dead: Option<&str>,
        fairness_key: Option<String>,
        fairness_weight: Option<u32>,
        rate_key: Option<String>,
    ) -> Result<Self, ValidationError> {
        let mut o = JobOrdering {
            fairness_key,
            fairness_weight,
            rate_key,
            ..JobOrdering::default()
        };
        if let Some(g) = gate {
            if let Some(k) = g.strip_prefix(LOCK_PREFIX) {
                o.lock_key = Some(k.to_string());
            } else if let Some(k) = g.strip_prefix(KEY_PREFIX) {
                o.concurrency_key = Some(k.to_string());
                o.concurrency_limit = gate_limit;
            } else if let Some(k) = g.strip_prefix(SESSION_PREFIX) {
                o.session_key = Some(k.to_string());
                o.session_on_dead = session_on_dead
                    .map(SessionOnDead::from_stored)
                    .transpose()?;
            } else {
                return Err(ValidationError::new(
                    "gate",
                    format!("`{g}` is not a lock, key or session gate"),
                ));
            }
        }
        Ok(o)
    }
}

/// The rank a job of a fairness key gets at enqueue (start-time fair queuing): one step
/// after the later of the key's last rank and `base`, the start tag of the job in service:
/// the lowest rank of the queue's ready jobs (available or scheduled, not parked), or the
/// queue's virtual time (the highest rank claimed so far) when none is ready. So a key
/// that was quiet starts level with the others instead of getting turns it did not use,
/// and a job claimed out of rank order (higher priority, kinds filter, a limit skip, a late
/// admission, a delayed job) cannot push other keys' new jobs behind a whole backlog.
pub fn fair_rank(key_last_rank: Option<i64>, base: i64, step: i64) -> i64 {
    key_last_rank
        .unwrap_or(i64::MIN)
        .max(base)
        .saturating_add(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_gate_per_job() {
        let o = JobOrdering {
            lock_key: Some("a".into()),
            session_key: Some("b".into()),
            ..JobOrdering::default()
        };
        assert!(o.validate().is_err());
        let o = JobOrdering {
            concurrency_key: Some("c".into()),
            concurrency_limit: Some(3),
            ..JobOrdering::default()
        };
        assert!(o.validate().is_ok());
        assert_eq!(o.gate().map(|g| g.capacity()), Some(3));
    }

    #[test]
    fn a_quiet_key_starts_level_with_the_queue() {
        assert_eq!(fair_rank(Some(5), 100, 10), 110);
        assert_eq!(fair_rank(Some(500), 100, 10), 510);
        assert_eq!(fair_rank(None, 100, 10), 110);
    }
}
