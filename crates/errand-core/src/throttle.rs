//! Limits shared by many jobs and enforced at claim time: how many run at once and how
//! many start per period, per queue, per kind, and per rate key; and the plan a claim
//! follows to respect them.
//!
//! The store reads the limits that apply and the candidates in claim order, calls
//! [`plan_claim`], and writes back the buckets it drew from, all in the claim's
//! transaction. The arithmetic lives here once, for both stores.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{JobId, Millis, ValidationError};

/// Longest rate period: a day. Longer is a quota, not a rate.
pub const MAX_RATE_PERIOD_MS: u64 = 24 * 3600 * 1000;
/// Shortest rate period.
pub const MIN_RATE_PERIOD_MS: u64 = 1;
/// Largest rate limit or burst.
pub const MAX_RATE: u32 = 1_000_000_000;

/// At most `limit` starts per `period_ms`, with up to `burst` at once after a quiet spell
/// (a token bucket of `burst` tokens refilled at `limit / period_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Starts per period.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub limit: u32,
    /// The period (`"1s"`, `"1m"` or milliseconds); kept in milliseconds.
    #[serde(rename = "period", with = "crate::duration::millis_text")]
    #[schema(value_type = crate::duration::PositiveFlexDuration)]
    pub period_ms: u64,
    /// Starts allowed at once; defaults to `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub burst: Option<u32>,
}

impl RateLimit {
    /// Checks the numbers.
    ///
    /// # Errors
    /// A limit or burst of 0 or too big, a period of 0 or over a day.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.limit == 0 || self.limit > MAX_RATE {
            return Err(ValidationError::new(
                "rate.limit",
                format!("must be 1 to {MAX_RATE}"),
            ));
        }
        if !(MIN_RATE_PERIOD_MS..=MAX_RATE_PERIOD_MS).contains(&self.period_ms) {
            return Err(ValidationError::new(
                "rate.period",
                "must be from 1 ms to 24 h",
            ));
        }
        if let Some(b) = self.burst {
            if b == 0 || b > MAX_RATE {
                return Err(ValidationError::new(
                    "rate.burst",
                    format!("must be 1 to {MAX_RATE}"),
                ));
            }
        }
        Ok(())
    }

    /// The bucket's size.
    pub fn capacity(&self) -> f64 {
        f64::from(self.burst.unwrap_or(self.limit))
    }

    /// Tokens per millisecond.
    pub fn per_ms(&self) -> f64 {
        f64::from(self.limit) / self.period_ms as f64
    }
}

/// A token bucket as stored: tokens left at an instant. A bucket never stored is full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    /// Tokens left at `at`.
    pub tokens: f64,
    /// When `tokens` was counted.
    pub at: Millis,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn full(rate: &RateLimit, now: Millis) -> Self {
        TokenBucket {
            tokens: rate.capacity(),
            at: now,
        }
    }

    /// The bucket refilled up to `now` (never over capacity; a clock going back refills
    /// nothing).
    pub fn refilled(self, rate: &RateLimit, now: Millis) -> Self {
        let elapsed = (now - self.at).max(0) as f64;
        TokenBucket {
            tokens: (self.tokens + elapsed * rate.per_ms()).min(rate.capacity()),
            at: now.max(self.at),
        }
    }

    /// Whole tokens available now.
    pub fn whole(&self) -> u32 {
        // Tokens are kept as a float; a hair under a whole token from rounding counts as
        // that token, so a bucket refilled for exactly one period holds `limit` tokens.
        let t = (self.tokens + 1e-9).floor();
        if t <= 0.0 {
            0
        } else if t >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            t as u32
        }
    }

    /// When the next whole token will be there (now, when one already is).
    pub fn next_token_at(&self, rate: &RateLimit) -> Millis {
        if self.whole() > 0 {
            return self.at;
        }
        let missing = 1.0 - self.tokens;
        self.at + (missing / rate.per_ms()).ceil() as Millis
    }
}

/// What a shared limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    /// Every job of a kind, in any queue.
    Kind,
    /// Every job naming this `rate_key`.
    Key,
}

impl LimitScope {
    /// The name stores keep and paths use.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::Kind => "kind",
            LimitScope::Key => "key",
        }
    }

    /// Reads a stored or path name.
    ///
    /// # Errors
    /// Anything but `kind` or `key`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "kind" => Ok(LimitScope::Kind),
            "key" => Ok(LimitScope::Key),
            other => Err(ValidationError::new(
                "scope",
                format!("`{other}` is not kind or key (queue limits are queue settings)"),
            )),
        }
    }
}

/// A limit shared by every job of a kind or of a rate key, across nodes. Queue limits are
/// part of the queue's settings ([`crate::queue::QueueSettings`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Limit {
    /// What it applies to.
    pub scope: LimitScope,
    /// The kind or rate key.
    pub name: String,
    /// At most this many running at once (kinds only; a concurrency key carries its limit
    /// on its jobs). 1 makes the kind a singleton.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub concurrency: Option<u32>,
    /// At most this many starts per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateLimit>,
}

impl Limit {
    /// Checks the numbers and that the limit limits something.
    ///
    /// # Errors
    /// A concurrency of 0, a concurrency on a rate key, a bad rate, or neither set.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(c) = self.concurrency {
            if self.scope == LimitScope::Key {
                return Err(ValidationError::new(
                    "concurrency",
                    "a rate key takes only a rate; give jobs a concurrency_key and concurrency_limit instead",
                ));
            }
            if c == 0 || c > crate::ordering::MAX_CONCURRENCY_LIMIT {
                return Err(ValidationError::new("concurrency", "must be 1 to 1000000"));
            }
        }
        if let Some(r) = &self.rate {
            r.validate()?;
        }
        if self.concurrency.is_none() && self.rate.is_none() {
            return Err(ValidationError::new(
                "concurrency",
                "a limit needs a concurrency or a rate",
            ));
        }
        Ok(())
    }
}

/// A limit and how much of it is in use now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LimitInfo {
    /// The limit.
    #[serde(flatten)]
    pub limit: Limit,
    /// Jobs it covers running now.
    pub running: u64,
    /// Whole start tokens available now (rate limits only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u32>,
}

/// One limit as a claim sees it: its numbers, what runs under it, and its bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitState {
    /// At most this many running.
    pub concurrency: Option<u32>,
    /// Running now (before this claim).
    pub running: u32,
    /// Starts per period.
    pub rate: Option<RateLimit>,
    /// The stored bucket, `None` when never drawn from (full).
    pub bucket: Option<TokenBucket>,
}

impl LimitState {
    /// How many more jobs under this limit may start now.
    fn room(&self, now: Millis) -> u32 {
        let by_conc = self
            .concurrency
            .map_or(u32::MAX, |c| c.saturating_sub(self.running));
        let by_rate = match &self.rate {
            None => u32::MAX,
            Some(r) => self
                .bucket
                .unwrap_or_else(|| TokenBucket::full(r, now))
                .refilled(r, now)
                .whole(),
        };
        by_conc.min(by_rate)
    }
}

/// A ready job as a claim considers it, in claim order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimCandidate {
    /// The job.
    pub id: JobId,
    /// Its kind.
    pub kind: String,
    /// Its rate key.
    pub rate_key: Option<String>,
}

/// The limits one claim must respect.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimLimits {
    /// The queue's concurrency and rate, if it has any.
    pub queue: Option<LimitState>,
    /// Limits of the candidates' kinds that have one.
    pub kinds: HashMap<String, LimitState>,
    /// Limits of the candidates' rate keys that have one.
    pub keys: HashMap<String, LimitState>,
}

/// What a claim takes and which buckets it drew from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimPlan {
    /// The jobs to lease, in claim order.
    pub take: Vec<JobId>,
    /// The queue's bucket after the claim, when the queue has a rate.
    pub queue_bucket: Option<TokenBucket>,
    /// Kind buckets after the claim, for kinds with a rate that took jobs.
    pub kind_buckets: HashMap<String, TokenBucket>,
    /// Rate-key buckets after the claim, for keys that took jobs.
    pub key_buckets: HashMap<String, TokenBucket>,
}

/// Picks, in claim order, up to `max` candidates that every applicable limit has room for,
/// skipping (not failing) the ones a full limit holds back, and draws one token per job
/// taken from each rate limit it counts against. A limit without a stored bucket starts
/// full. Buckets are returned refilled to `now` for every rate limit that took a job (and
/// the queue's whenever it has a rate), so the store writes exactly those back.
pub fn plan_claim(
    max: u32,
    candidates: &[ClaimCandidate],
    limits: &ClaimLimits,
    now: Millis,
) -> ClaimPlan {
    let mut plan = ClaimPlan::default();
    let mut queue_room = limits.queue.as_ref().map_or(u32::MAX, |q| q.room(now));
    let mut kind_room: HashMap<&str, u32> = HashMap::new();
    let mut key_room: HashMap<&str, u32> = HashMap::new();
    let mut kinds_taken: HashMap<&str, u32> = HashMap::new();
    let mut keys_taken: HashMap<&str, u32> = HashMap::new();
    for c in candidates {
        if plan.take.len() as u32 >= max || queue_room == 0 {
            break;
        }
        let kr = limits.kinds.get(&c.kind).map(|l| {
            *kind_room
                .entry(c.kind.as_str())
                .or_insert_with(|| l.room(now))
        });
        if kr == Some(0) {
            continue;
        }
        let rk = c.rate_key.as_deref().and_then(|k| {
            limits
                .keys
                .get(k)
                .map(|l| *key_room.entry(k).or_insert_with(|| l.room(now)))
        });
        if rk == Some(0) {
            continue;
        }
        plan.take.push(c.id);
        queue_room -= 1;
        if let Some(r) = kind_room.get_mut(c.kind.as_str()) {
            *r -= 1;
            *kinds_taken.entry(c.kind.as_str()).or_default() += 1;
        }
        if let Some(k) = c.rate_key.as_deref() {
            if let Some(r) = key_room.get_mut(k) {
                *r -= 1;
                *keys_taken.entry(k).or_default() += 1;
            }
        }
    }
    let drawn = |l: &LimitState, n: u32| -> Option<TokenBucket> {
        l.rate.map(|r| {
            let b = l
                .bucket
                .unwrap_or_else(|| TokenBucket::full(&r, now))
                .refilled(&r, now);
            TokenBucket {
                tokens: b.tokens - f64::from(n),
                at: b.at,
            }
        })
    };
    if let Some(q) = &limits.queue {
        plan.queue_bucket = drawn(q, plan.take.len() as u32);
    }
    for (k, n) in kinds_taken {
        if let Some(b) = limits.kinds.get(k).and_then(|l| drawn(l, n)) {
            plan.kind_buckets.insert(k.to_string(), b);
        }
    }
    for (k, n) in keys_taken {
        if let Some(b) = limits.keys.get(k).and_then(|l| drawn(l, n)) {
            plan.key_buckets.insert(k.to_string(), b);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(kind: &str, key: Option<&str>) -> ClaimCandidate {
        ClaimCandidate {
            id: JobId::new(),
            kind: kind.into(),
            rate_key: key.map(Into::into),
        }
    }

    #[test]
    fn a_full_kind_is_skipped_not_the_claim() {
        let mut limits = ClaimLimits::default();
        limits.kinds.insert(
            "slow".into(),
            LimitState {
                concurrency: Some(1),
                running: 1,
                rate: None,
                bucket: None,
            },
        );
        let c = [cand("slow", None), cand("fast", None), cand("slow", None)];
        let plan = plan_claim(10, &c, &limits, 0);
        assert_eq!(plan.take, vec![c[1].id]);
    }

    #[test]
    fn a_rate_draws_tokens_and_refills_over_time() {
        let rate = RateLimit {
            limit: 2,
            period_ms: 1000,
            burst: None,
        };
        let limits = ClaimLimits {
            queue: Some(LimitState {
                concurrency: None,
                running: 0,
                rate: Some(rate),
                bucket: None,
            }),
            ..ClaimLimits::default()
        };
        let c: Vec<_> = (0..5).map(|_| cand("k", None)).collect();
        let plan = plan_claim(10, &c, &limits, 0);
        assert_eq!(plan.take.len(), 2);
        let b = plan.queue_bucket.expect("bucket");
        assert_eq!(b.whole(), 0);
        assert_eq!(b.next_token_at(&rate), 500);
        assert_eq!(b.refilled(&rate, 1000).whole(), 2);
    }
}
