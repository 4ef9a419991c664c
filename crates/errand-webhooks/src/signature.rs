//! Standard Webhooks signing (<https://www.standardwebhooks.com/>): every delivery carries
//! `webhook-id` (the delivery's id, the same on every attempt), `webhook-timestamp` (Unix
//! seconds of this attempt) and `webhook-signature`, a space-separated list of
//! `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`, one entry per configured
//! key, so a receiver that knows any one of them (old or new, during a rotation) can check
//! it. Keys are configured as `whsec_<base64 key>`.
//!
//! [`verify`] is what a receiver does; the documentation's examples follow it.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header carrying the delivery id.
pub const WEBHOOK_ID: &str = "webhook-id";
/// The header carrying the attempt's Unix time in seconds.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying the signatures.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

const SECRET_PREFIX: &str = "whsec_";

/// Why a configured secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// It does not start with `whsec_`.
    #[error("a webhook secret must be `whsec_` followed by a base64 key (generate one with `openssl rand -base64 32`)")]
    NoPrefix,
    /// The text after `whsec_` is not base64.
    #[error("the webhook secret's key after `whsec_` is not base64: {0}")]
    NotBase64(String),
    /// The key is shorter than 16 bytes.
    #[error("the webhook secret's key is {0} bytes; use at least 16 (24 to 64 is usual)")]
    TooShort(usize),
}

/// A signing key, read from its `whsec_...` form. Its `Debug` shows no key material.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    key: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({} bytes)", self.key.len())
    }
}

impl FromStr for SigningKey {
    type Err = SecretError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::NoPrefix)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| SecretError::NotBase64(e.to_string()))?;
        if key.len() < 16 {
            return Err(SecretError::TooShort(key.len()));
        }
        Ok(SigningKey { key })
    }
}

impl SigningKey {
    /// The base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under this key.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        }
    }
}

/// The `webhook-signature` value: one `v1,` entry per key, in the order given.
pub fn signature_header(keys: &[SigningKey], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| format!("v1,{}", k.sign(id, timestamp, body)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a delivery does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp is further than the tolerance from now (a replay, or a wrong clock).
    #[error("the webhook-timestamp {timestamp} is more than {tolerance_secs} s from now ({now})")]
    StaleTimestamp {
        /// The delivery's timestamp.
        timestamp: i64,
        /// The receiver's now.
        now: i64,
        /// The tolerance.
        tolerance_secs: i64,
    },
    /// No `v1` entry matches under the key.
    #[error("no signature matches")]
    NoMatch,
}

/// What a receiver does with a delivery: accept it when the timestamp is within
/// `tolerance_secs` of `now` and any `v1,` entry of `signature` is the signature of
/// `{id}.{timestamp}.{body}` under `key` (compared in constant time).
///
/// # Errors
/// Why it does not verify.
pub fn verify(
    key: &SigningKey,
    id: &str,
    timestamp: i64,
    body: &[u8],
    signature: &str,
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    // `abs_diff`: any two i64 (a hostile header's `i64::MIN` too) without overflow; a
    // negative tolerance accepts nothing.
    let within = u64::try_from(tolerance_secs).is_ok_and(|tol| now.abs_diff(timestamp) <= tol);
    if !within {
        return Err(VerifyError::StaleTimestamp {
            timestamp,
            now,
            tolerance_secs,
        });
    }
    for entry in signature.split_whitespace() {
        let Some(sig) = entry.strip_prefix("v1,") else {
            continue;
        };
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(sig) else {
            continue;
        };
        let mut mac = key.mac();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        if mac.verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks reference test vector (the spec's libraries test with it).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn key(text: &str) -> SigningKey {
        text.parse().unwrap()
    }

    #[test]
    fn signs_the_standard_vector() {
        assert_eq!(signature_header(&[key(SECRET)], ID, TS, BODY), SIG);
        verify(&key(SECRET), ID, TS, BODY, SIG, TS, 300).unwrap();
    }

    #[test]
    fn one_entry_per_key_and_either_key_verifies() {
        let old = key(SECRET);
        let new = key("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
        let header = signature_header(&[new.clone(), old.clone()], ID, TS, BODY);
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.ends_with(SIG));
        verify(&old, ID, TS, BODY, &header, TS, 300).unwrap();
        verify(&new, ID, TS, BODY, &header, TS, 300).unwrap();
    }

    #[test]
    fn a_changed_body_id_or_timestamp_or_a_stale_one_fails() {
        let k = key(SECRET);
        assert_eq!(
            verify(&k, ID, TS, b"{}", SIG, TS, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&k, "msg_other", TS, BODY, SIG, TS, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&k, ID, TS + 1, BODY, SIG, TS, 300),
            Err(VerifyError::NoMatch)
        );
        assert!(matches!(
            verify(&k, ID, TS, BODY, SIG, TS + 301, 300),
            Err(VerifyError::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn a_timestamp_at_the_ends_of_i64_is_stale_not_a_panic() {
        // Found by fuzz/fuzz_targets/webhook_signature.rs: `now - timestamp` overflowed
        // (a panic with overflow checks; without them, i64::MIN + now wrapped to a
        // difference whose `abs` stayed negative, so the timestamp passed as fresh).
        let k = key(SECRET);
        for ts in [i64::MIN, i64::MIN + TS, i64::MAX, -TS] {
            assert!(
                matches!(
                    verify(&k, ID, ts, BODY, SIG, TS, 300),
                    Err(VerifyError::StaleTimestamp { .. })
                ),
                "{ts}"
            );
        }
        assert!(matches!(
            verify(&k, ID, TS, BODY, SIG, i64::MIN, 300),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        assert!(matches!(
            verify(&k, ID, TS, BODY, SIG, TS, -1),
            Err(VerifyError::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn only_whsec_base64_keys_of_16_bytes_or_more_are_accepted() {
        assert_eq!("secret".parse::<SigningKey>(), Err(SecretError::NoPrefix));
        assert!(matches!(
            "whsec_***".parse::<SigningKey>(),
            Err(SecretError::NotBase64(_))
        ));
        assert_eq!(
            "whsec_AAAA".parse::<SigningKey>(),
            Err(SecretError::TooShort(3))
        );
        assert!(!format!("{:?}", key(SECRET)).contains("MfKQ"));
    }
}
