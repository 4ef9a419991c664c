//! Checks that a webhook request was signed with the hook's secret, so that `POST
//! /v1/hooks/{name}` enqueues only what the sender that knows the secret sent.
//!
//! Two schemes are accepted, chosen by the headers the request carries:
//! - [Standard Webhooks](https://www.standardwebhooks.com/): `webhook-id`,
//!   `webhook-timestamp` (Unix seconds) and `webhook-signature`, a space-separated list of
//!   `v1,<base64 HMAC-SHA256>` over `id.timestamp.body`. The secret is `whsec_<base64 key>`
//!   or, without that prefix, the key's bytes as written. The timestamp must be within
//!   [`TOLERANCE`] of now, which bounds how long a captured request can be replayed.
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>` over the raw body, keyed by the
//!   secret exactly as written (as GitHub uses it). The delivery id comes from
//!   `X-GitHub-Delivery`.
//!
//! Signatures are compared in constant time (`hmac`'s `verify_slice`).

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far a Standard Webhooks timestamp may be from now, either way.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

const WEBHOOK_ID: &str = "webhook-id";
const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
const WEBHOOK_SIGNATURE: &str = "webhook-signature";
const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
const GITHUB_DELIVERY: &str = "x-github-delivery";
const SECRET_PREFIX: &str = "whsec_";

/// A request whose signature holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The sender's id of this delivery (`webhook-id`, or GitHub's `X-GitHub-Delivery`):
    /// the same delivery sent twice carries the same id, so it can serve as an
    /// idempotency key.
    pub webhook_id: Option<String>,
}

/// Why a request's signature was not accepted. Every variant but [`SignatureError::BadSecret`]
/// is the sender's fault (401); `BadSecret` is the operator's (the configured secret is
/// unusable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Neither `webhook-signature` nor `X-Hub-Signature-256` was sent.
    #[error("the request is not signed: send Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature) or X-Hub-Signature-256")]
    Unsigned,
    /// A header the scheme needs is missing.
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    /// A header is there but cannot be read.
    #[error("the `{header}` header is malformed: {reason}")]
    MalformedHeader {
        /// Which header.
        header: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The Standard Webhooks timestamp is further than [`TOLERANCE`] from now.
    #[error("the `webhook-timestamp` {timestamp} is more than 5 minutes from now ({now})")]
    StaleTimestamp {
        /// The request's timestamp, Unix seconds.
        timestamp: i64,
        /// Now, Unix seconds.
        now: i64,
    },
    /// No signature matches the body under the secret.
    #[error("the signature does not match")]
    BadSignature,
    /// The configured secret cannot be used (empty, or `whsec_` followed by something that
    /// is not base64).
    #[error("the hook's secret is unusable: {0}")]
    BadSecret(String),
}

/// Verifies `body` against the signature headers with `secret`, at `now`.
///
/// # Errors
/// One [`SignatureError`] per reason the request is refused.
pub fn verify(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: jiff::Timestamp,
) -> Result<Verified, SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::BadSecret("it is empty".into()));
    }
    if headers.contains_key(WEBHOOK_SIGNATURE) {
        verify_standard(secret, headers, body, now)
    } else if headers.contains_key(GITHUB_SIGNATURE) {
        verify_github(secret, headers, body)
    } else {
        Err(SignatureError::Unsigned)
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, SignatureError> {
    let value = headers
        .get(name)
        .ok_or(SignatureError::MissingHeader(name))?;
    value
        .to_str()
        .map(str::trim)
        .map_err(|_| SignatureError::MalformedHeader {
            header: name,
            reason: "it is not visible ASCII".into(),
        })
}

fn mac(key: &[u8]) -> Result<HmacSha256, SignatureError> {
    HmacSha256::new_from_slice(key).map_err(|e| SignatureError::BadSecret(e.to_string()))
}

/// The Standard Webhooks key: the base64 after `whsec_`, or the secret's bytes.
fn standard_key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    match secret.strip_prefix(SECRET_PREFIX) {
        Some(encoded) => {
            let key = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| {
                    SignatureError::BadSecret(format!("`whsec_` is not followed by base64: {e}"))
                })?;
            if key.is_empty() {
                return Err(SignatureError::BadSecret(
                    "`whsec_` is followed by nothing".into(),
                ));
            }
            Ok(key)
        }
        None => Ok(secret.as_bytes().to_vec()),
    }
}

fn verify_standard(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: jiff::Timestamp,
) -> Result<Verified, SignatureError> {
    let id = header(headers, WEBHOOK_ID)?;
    let timestamp_text = header(headers, WEBHOOK_TIMESTAMP)?;
    let signatures = header(headers, WEBHOOK_SIGNATURE)?;
    let key = standard_key(secret)?;
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| SignatureError::MalformedHeader {
            header: WEBHOOK_TIMESTAMP,
            reason: format!("`{timestamp_text}` is not a number of seconds since 1970"),
        })?;
    let now_s = now.as_second();
    if timestamp.abs_diff(now_s) > TOLERANCE.as_secs() {
        return Err(SignatureError::StaleTimestamp {
            timestamp,
            now: now_s,
        });
    }
    let mut candidates = Vec::new();
    for entry in signatures.split(' ').filter(|e| !e.is_empty()) {
        let Some((version, encoded)) = entry.split_once(',') else {
            return Err(SignatureError::MalformedHeader {
                header: WEBHOOK_SIGNATURE,
                reason: format!("`{entry}` is not `version,signature`"),
            });
        };
        if version != "v1" {
            // Other schemes (v1a: asymmetric) are not ours to check; another entry may be.
            continue;
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| SignatureError::MalformedHeader {
                header: WEBHOOK_SIGNATURE,
                reason: format!("a v1 signature is not base64: {e}"),
            })?;
        candidates.push(signature);
    }
    if candidates.is_empty() {
        return Err(SignatureError::MalformedHeader {
            header: WEBHOOK_SIGNATURE,
            reason: "it holds no `v1,<base64>` signature".into(),
        });
    }
    let mut signed = mac(&key)?;
    signed.update(id.as_bytes());
    signed.update(b".");
    signed.update(timestamp_text.as_bytes());
    signed.update(b".");
    signed.update(body);
    for candidate in &candidates {
        if signed.clone().verify_slice(candidate).is_ok() {
            return Ok(Verified {
                webhook_id: Some(id.to_string()),
            });
        }
    }
    Err(SignatureError::BadSignature)
}

fn verify_github(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Verified, SignatureError> {
    let value = header(headers, GITHUB_SIGNATURE)?;
    let malformed = |reason: &str| SignatureError::MalformedHeader {
        header: "X-Hub-Signature-256",
        reason: reason.into(),
    };
    let encoded = value
        .strip_prefix("sha256=")
        .ok_or_else(|| malformed("it does not start with `sha256=`"))?;
    let signature =
        hex::decode(encoded).map_err(|_| malformed("`sha256=` is not followed by hex"))?;
    let mut signed = mac(secret.as_bytes())?;
    signed.update(body);
    signed
        .verify_slice(&signature)
        .map_err(|_| SignatureError::BadSignature)?;
    let delivery = headers
        .get(GITHUB_DELIVERY)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    Ok(Verified {
        webhook_id: delivery,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    // The published Standard Webhooks test vector (its reference libraries' tests), checked
    // independently with Python's `hmac`:
    //   base64(hmac(b64decode(key), b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + body, sha256))
    const STD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const STD_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const STD_TS: i64 = 1614265330;
    const STD_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const STD_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    // GitHub's documented example, checked with Python's `hmac`.
    const GH_SECRET: &str = "It's a Secret to Everybody";
    const GH_BODY: &[u8] = b"Hello, World!";
    const GH_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn at(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(secs).unwrap()
    }

    fn standard(id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(WEBHOOK_ID, HeaderValue::from_str(id).unwrap());
        h.insert(WEBHOOK_TIMESTAMP, HeaderValue::from_str(ts).unwrap());
        h.insert(WEBHOOK_SIGNATURE, HeaderValue::from_str(sig).unwrap());
        h
    }

    fn std_headers(sig: &str) -> HeaderMap {
        standard(STD_ID, &STD_TS.to_string(), sig)
    }

    #[test]
    fn standard_vector_verifies() {
        let v = verify(STD_SECRET, &std_headers(STD_SIG), STD_BODY, at(STD_TS)).unwrap();
        assert_eq!(v.webhook_id.as_deref(), Some(STD_ID));
    }

    #[test]
    fn standard_accepts_any_matching_entry_and_skips_other_versions() {
        let sig = format!("v1a,abcd v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {STD_SIG}");
        verify(STD_SECRET, &std_headers(&sig), STD_BODY, at(STD_TS + 299)).unwrap();
    }

    #[test]
    fn standard_raw_secret() {
        // Python: base64(hmac(b"plain-secret", b'evt_1.1700000000.{"a":1}', sha256))
        let h = standard(
            "evt_1",
            "1700000000",
            "v1,wKhIRO95CwgkVRfQoJ5oO40goe0AQm3d2QjVzZkvLnA=",
        );
        verify("plain-secret", &h, br#"{"a":1}"#, at(1700000000)).unwrap();
        assert_eq!(
            verify("other-secret", &h, br#"{"a":1}"#, at(1700000000)),
            Err(SignatureError::BadSignature)
        );
    }

    #[test]
    fn standard_tampered_body_id_or_timestamp_is_refused() {
        let now = at(STD_TS);
        assert_eq!(
            verify(
                STD_SECRET,
                &std_headers(STD_SIG),
                br#"{"test": 2432232315}"#,
                now
            ),
            Err(SignatureError::BadSignature)
        );
        let other_id = standard("msg_other", &STD_TS.to_string(), STD_SIG);
        assert_eq!(
            verify(STD_SECRET, &other_id, STD_BODY, now),
            Err(SignatureError::BadSignature)
        );
        let other_ts = standard(STD_ID, &(STD_TS + 1).to_string(), STD_SIG);
        assert_eq!(
            verify(STD_SECRET, &other_ts, STD_BODY, now),
            Err(SignatureError::BadSignature)
        );
    }

    #[test]
    fn standard_stale_timestamp_is_refused_both_ways() {
        for now in [STD_TS + 301, STD_TS - 301] {
            assert_eq!(
                verify(STD_SECRET, &std_headers(STD_SIG), STD_BODY, at(now)),
                Err(SignatureError::StaleTimestamp {
                    timestamp: STD_TS,
                    now
                })
            );
        }
        verify(
            STD_SECRET,
            &std_headers(STD_SIG),
            STD_BODY,
            at(STD_TS - 300),
        )
        .unwrap();
    }

    #[test]
    fn standard_missing_and_malformed_headers() {
        let mut h = std_headers(STD_SIG);
        h.remove(WEBHOOK_ID);
        assert_eq!(
            verify(STD_SECRET, &h, STD_BODY, at(STD_TS)),
            Err(SignatureError::MissingHeader("webhook-id"))
        );
        let mut h = std_headers(STD_SIG);
        h.remove(WEBHOOK_TIMESTAMP);
        assert_eq!(
            verify(STD_SECRET, &h, STD_BODY, at(STD_TS)),
            Err(SignatureError::MissingHeader("webhook-timestamp"))
        );
        let bad = [
            standard(STD_ID, "yesterday", STD_SIG),
            std_headers("g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            std_headers("v1,not*base64"),
            std_headers("v1a,abcd"),
        ];
        for h in bad {
            assert!(
                matches!(
                    verify(STD_SECRET, &h, STD_BODY, at(STD_TS)),
                    Err(SignatureError::MalformedHeader { .. })
                ),
                "{h:?}"
            );
        }
    }

    #[test]
    fn bad_secrets_are_the_operators_fault() {
        for secret in ["", "whsec_", "whsec_***"] {
            assert!(
                matches!(
                    verify(secret, &std_headers(STD_SIG), STD_BODY, at(STD_TS)),
                    Err(SignatureError::BadSecret(_))
                ),
                "{secret}"
            );
        }
    }

    fn github(sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("X-Hub-Signature-256", HeaderValue::from_str(sig).unwrap());
        h.insert(
            "X-GitHub-Delivery",
            HeaderValue::from_static("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        );
        h
    }

    #[test]
    fn github_vector_verifies() {
        let v = verify(GH_SECRET, &github(GH_SIG), GH_BODY, at(0)).unwrap();
        assert_eq!(
            v.webhook_id.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
    }

    #[test]
    fn github_wrong_body_secret_or_format_is_refused() {
        assert_eq!(
            verify(GH_SECRET, &github(GH_SIG), b"Hello, World?", at(0)),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            verify("another secret", &github(GH_SIG), GH_BODY, at(0)),
            Err(SignatureError::BadSignature)
        );
        for bad in [
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=zz",
        ] {
            assert!(matches!(
                verify(GH_SECRET, &github(bad), GH_BODY, at(0)),
                Err(SignatureError::MalformedHeader { .. })
            ));
        }
        // A truncated signature is a signature that does not match.
        assert_eq!(
            verify(
                GH_SECRET,
                &github(&GH_SIG[..GH_SIG.len() - 2]),
                GH_BODY,
                at(0)
            ),
            Err(SignatureError::BadSignature)
        );
    }

    #[test]
    fn unsigned_request_is_refused() {
        assert_eq!(
            verify(GH_SECRET, &HeaderMap::new(), GH_BODY, at(0)),
            Err(SignatureError::Unsigned)
        );
    }
}
