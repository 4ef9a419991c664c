//! A queue's load as stores count it.

use serde::{Deserialize, Serialize};

use crate::{JobState, QueueName};

/// Jobs per state in one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateCounts {
    /// Waiting for `run_at`.
    pub scheduled: u64,
    /// Ready to claim.
    pub available: u64,
    /// Leased by a worker.
    pub running: u64,
    /// Finished well.
    pub succeeded: u64,
    /// Out of attempts.
    pub dead: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Waiting for another job.
    pub blocked: u64,
}

impl StateCounts {
    /// Adds `n` to the count of `state`.
    pub fn add(&mut self, state: JobState, n: u64) {
        let slot = match state {
            JobState::Scheduled => &mut self.scheduled,
            JobState::Available => &mut self.available,
            JobState::Running => &mut self.running,
            JobState::Succeeded => &mut self.succeeded,
            JobState::Dead => &mut self.dead,
            JobState::Cancelled => &mut self.cancelled,
            JobState::Blocked => &mut self.blocked,
        };
        *slot += n;
    }
}

/// A queue's settings and load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueInfo {
    /// Its name.
    pub name: QueueName,
    /// Paused queues hand out no jobs.
    pub paused: bool,
    /// Jobs per state.
    pub counts: StateCounts,
    /// Age of the oldest job ready to run, in milliseconds; the autoscaling signal.
    pub oldest_available_age_ms: Option<u64>,
    /// Claims parked on this queue on the node that answered, waiting for work (stores
    /// answer 0; the engine counts). Shows idle workers, and tells a caller that a claim is
    /// waiting before it measures how fast an enqueue wakes it.
    #[serde(default)]
    pub waiting_claims: u32,
    /// Concurrency, rate and defaults for new jobs.
    #[serde(default)]
    pub settings: QueueSettings,
}

/// Longest default timeout or backoff a queue keeps: a year. A longer one is taken as a
/// year, so instants computed from it stay far inside the stores' 64-bit milliseconds.
pub const MAX_DEFAULT_DURATION_MS: u64 = 365 * 24 * 3600 * 1000;

/// Defaults a queue gives new jobs that do not name their own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobDefaults {
    /// Attempts before a job is dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10000)]
    pub max_attempts: Option<u32>,
    /// Priority, -1000 to 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: Option<i32>,
    /// Longest one attempt may run (`"5m"` or milliseconds); kept in milliseconds.
    #[serde(
        default,
        rename = "timeout",
        skip_serializing_if = "Option::is_none",
        with = "crate::duration::opt_millis_text"
    )]
    #[schema(value_type = Option<crate::duration::PositiveFlexDuration>)]
    pub timeout_ms: Option<u64>,
    /// The retry backoff of failed jobs of this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
}

/// A queue's retry backoff: `base` doubling per attempt up to `max`, with the server's jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// The wait after the first failure (`"1s"` or milliseconds).
    #[serde(rename = "base", with = "crate::duration::millis_text")]
    #[schema(value_type = crate::duration::PositiveFlexDuration)]
    pub base_ms: u64,
    /// The longest wait (`"1h"` or milliseconds).
    #[serde(rename = "max", with = "crate::duration::millis_text")]
    #[schema(value_type = crate::duration::PositiveFlexDuration)]
    pub max_ms: u64,
}

/// What a queue enforces and gives: at most `concurrency` running and `rate` starts per
/// period across every node, and defaults for new jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueSettings {
    /// At most this many of the queue's jobs run at once, across nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub concurrency: Option<u32>,
    /// At most this many of the queue's jobs start per period, across nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<crate::throttle::RateLimit>,
    /// Defaults for new jobs.
    #[serde(default)]
    pub defaults: JobDefaults,
}

/// A change to a queue's settings: a field left out stays, a field set to `null` is removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSettingsPatch {
    /// Pause (`true`) or resume (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// New concurrency limit; `null` removes it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::queue::patch_field"
    )]
    #[schema(value_type = Option<u32>, minimum = 1)]
    pub concurrency: Option<Option<u32>>,
    /// New rate limit; `null` removes it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::queue::patch_field"
    )]
    #[schema(value_type = Option<crate::throttle::RateLimit>)]
    pub rate: Option<Option<crate::throttle::RateLimit>>,
    /// New default attempts; `null` removes it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::queue::patch_field"
    )]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    pub max_attempts: Option<Option<u32>>,
    /// New default priority; `null` removes it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::queue::patch_field"
    )]
    #[schema(value_type = Option<i32>, minimum = -1000, maximum = 1000)]
    pub priority: Option<Option<i32>>,
    /// New default timeout (`"5m"` or milliseconds); `null` removes it.
    #[serde(
        default,
        rename = "timeout",
        skip_serializing_if = "Option::is_none",
        with = "crate::duration::patch_millis_text"
    )]
    #[schema(value_type = Option<crate::duration::PositiveFlexDuration>)]
    pub timeout_ms: Option<Option<u64>>,
    /// New backoff; `null` removes it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::queue::patch_field"
    )]
    #[schema(value_type = Option<Backoff>)]
    pub backoff: Option<Option<Backoff>>,
}

/// Serde for "absent / null / value" patch fields: absent is `None`, `null` is
/// `Some(None)`.
pub mod patch_field {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Reads a present field (absent fields never reach here: `#[serde(default)]`).
    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }

    /// Writes a present field (`None` is skipped by `skip_serializing_if`).
    pub fn serialize<S, T>(v: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        T: Serialize,
    {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }
}

impl QueueSettingsPatch {
    /// Checks every value the patch sets.
    ///
    /// # Errors
    /// A concurrency of 0, a bad rate, attempts or priority out of range, a zero timeout,
    /// a backoff whose max is under its base.
    pub fn validate(&self) -> Result<(), crate::ValidationError> {
        use crate::ValidationError;
        if let Some(Some(c)) = self.concurrency {
            if c == 0 || c > crate::ordering::MAX_CONCURRENCY_LIMIT {
                return Err(ValidationError::new("concurrency", "must be 1 to 1000000"));
            }
        }
        if let Some(Some(r)) = &self.rate {
            r.validate()?;
        }
        if let Some(Some(a)) = self.max_attempts {
            if a == 0 || a > crate::limits::MAX_MAX_ATTEMPTS {
                return Err(ValidationError::new("max_attempts", "must be 1 to 10000"));
            }
        }
        if let Some(Some(p)) = self.priority {
            if !crate::limits::PRIORITY_RANGE.contains(&p) {
                return Err(ValidationError::new("priority", "must be -1000 to 1000"));
            }
        }
        if let Some(Some(0)) = self.timeout_ms {
            return Err(ValidationError::new("timeout", "must be positive"));
        }
        if let Some(Some(b)) = &self.backoff {
            if b.base_ms == 0 || b.max_ms < b.base_ms {
                return Err(ValidationError::new(
                    "backoff",
                    "base must be positive and max at least base",
                ));
            }
        }
        Ok(())
    }

    /// The settings after this patch (`paused` is not a setting; stores apply it apart).
    pub fn apply_to(&self, s: &QueueSettings) -> QueueSettings {
        let mut out = s.clone();
        if let Some(v) = self.concurrency {
            out.concurrency = v;
        }
        if let Some(v) = self.rate {
            out.rate = v;
        }
        if let Some(v) = self.max_attempts {
            out.defaults.max_attempts = v;
        }
        if let Some(v) = self.priority {
            out.defaults.priority = v;
        }
        // Longer than a year is taken as a year: instants computed from it must stay far
        // inside the stores' 64-bit milliseconds.
        if let Some(v) = self.timeout_ms {
            out.defaults.timeout_ms = v.map(|t| t.min(MAX_DEFAULT_DURATION_MS));
        }
        if let Some(v) = self.backoff {
            out.defaults.backoff = v.map(|b| Backoff {
                base_ms: b.base_ms.min(MAX_DEFAULT_DURATION_MS),
                max_ms: b.max_ms.min(MAX_DEFAULT_DURATION_MS),
            });
        }
        out
    }
}

impl JobDefaults {
    /// Fills the fields a new job left unset (`job.inherit`) from these defaults.
    pub fn apply(&self, job: &mut crate::NewJob) {
        if job.inherit.max_attempts {
            if let Some(a) = self.max_attempts {
                job.max_attempts = a;
            }
        }
        if job.inherit.priority {
            if let Some(p) = self.priority {
                job.priority = p;
            }
        }
        if job.inherit.timeout && job.timeout.is_none() {
            if let Some(t) = self.timeout_ms {
                job.timeout = Some(std::time::Duration::from_millis(t));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_use_duration_texts_on_the_wire() {
        let patch: QueueSettingsPatch = serde_json::from_str(
            r#"{"rate":{"limit":100,"period":"1s","burst":200},"timeout":"30s",
                "backoff":{"base":"1s","max":"1h"},"concurrency":null}"#,
        )
        .expect("patch");
        assert_eq!(patch.concurrency, Some(None));
        assert_eq!(patch.timeout_ms, Some(Some(30_000)));
        let s = patch.apply_to(&QueueSettings::default());
        assert_eq!(s.rate.map(|r| r.period_ms), Some(1000));
        assert_eq!(
            serde_json::to_value(&s).expect("json"),
            serde_json::json!({
                "rate": {"limit": 100, "period": "1s", "burst": 200},
                "defaults": {"timeout": "30s", "backoff": {"base": "1s", "max": "1h"}}
            })
        );
        let back: QueueSettings =
            serde_json::from_value(serde_json::to_value(&s).expect("json")).expect("back");
        assert_eq!(back, s);
    }
}
