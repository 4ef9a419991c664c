//! Webhook signatures. Incoming: `POST /v1/hooks/{name}` checks Standard Webhooks headers
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> ...`) or GitHub's
//! `X-Hub-Signature-256: sha256=<hex>` with `errand_runner::triggers::hook_signature::verify`.
//! Outgoing: `errand_webhooks::signature` reads `whsec_` keys, signs, and documents a
//! receiver's `verify`.
//!
//! Properties: nothing panics on any headers, secret, body or timestamp; a request signed
//! with the secret verifies (with its delivery id) when its timestamp is within tolerance
//! and is stale otherwise; a flipped byte of the body or of the signature does not verify;
//! an unusable secret is the operator's fault (`BadSecret`), whatever the request.
#![no_main]

use base64::Engine as _;
use errand_runner::triggers::hook_signature::{self, SignatureError};
use errand_webhooks::signature::{self as outgoing, SigningKey, VerifyError};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

/// The receiver's clock (fixed, so a crash reproduces).
const NOW: i64 = 1_764_072_000;
const TOLERANCE: i64 = 300;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            h.insert(*name, v);
        }
    }
    h
}

/// What the incoming scheme takes as the Standard Webhooks key: the base64 after `whsec_`
/// (not empty), or the secret's bytes.
fn standard_key(secret: &str) -> Option<Vec<u8>> {
    if secret.is_empty() {
        return None;
    }
    match secret.strip_prefix("whsec_") {
        Some(enc) => base64::engine::general_purpose::STANDARD
            .decode(enc)
            .ok()
            .filter(|k| !k.is_empty()),
        None => Some(secret.as_bytes().to_vec()),
    }
}

fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if !out.is_empty() {
        let i = at % out.len();
        out[i] ^= 1;
    }
    out
}

fn fuzz(mut u: Unstructured<'_>) -> Option<()> {
    let secret: String = u.arbitrary().ok()?;
    let raw_id: String = u.arbitrary().ok()?;
    let raw_ts: Vec<u8> = u.arbitrary().ok()?;
    let raw_sig: Vec<u8> = u.arbitrary().ok()?;
    let raw_github: Vec<u8> = u.arbitrary().ok()?;
    let offset: i64 = u.arbitrary().ok()?;
    let flip: usize = u.arbitrary().ok()?;
    let body = u.take_rest();
    let now = jiff::Timestamp::from_second(NOW).expect("a valid instant");

    // Any headers at all: no panic.
    let _ = hook_signature::verify(
        &secret,
        &headers(&[
            ("webhook-id", raw_id.as_bytes()),
            ("webhook-timestamp", &raw_ts),
            ("webhook-signature", &raw_sig),
        ]),
        body,
        now,
    );
    let _ = hook_signature::verify(
        &secret,
        &headers(&[
            ("x-hub-signature-256", &raw_github),
            ("x-github-delivery", raw_id.as_bytes()),
        ]),
        body,
        now,
    );

    // A request signed as Standard Webhooks says, at now + offset (mostly near now).
    let id: String = raw_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let id = if id.is_empty() { "msg".to_string() } else { id };
    let offset = if offset % 4 == 0 {
        offset
    } else {
        offset % (2 * TOLERANCE + 10)
    };
    let ts = NOW.saturating_add(offset);
    let ts_text = ts.to_string();
    let fresh = ts.abs_diff(NOW) <= TOLERANCE as u64;
    let signed = |key: &[u8], body: &[u8]| {
        b64(&hmac(
            key,
            &[id.as_bytes(), b".", ts_text.as_bytes(), b".", body],
        ))
    };
    let standard = |sig: &str, body: &[u8]| {
        hook_signature::verify(
            &secret,
            &headers(&[
                ("webhook-id", id.as_bytes()),
                ("webhook-timestamp", ts_text.as_bytes()),
                ("webhook-signature", sig.as_bytes()),
            ]),
            body,
            now,
        )
    };
    match standard_key(&secret) {
        None => {
            let got = standard("v1,AAAA", body);
            assert!(matches!(got, Err(SignatureError::BadSecret(_))), "{got:?}");
        }
        Some(key) => {
            let sig = signed(&key, body);
            let got = standard(&format!("v1a,ignored v1,{sig}"), body);
            if fresh {
                assert_eq!(got.map(|v| v.webhook_id), Ok(Some(id.clone())));
                if !body.is_empty() {
                    let other = flipped(body, flip);
                    assert_eq!(
                        standard(&format!("v1,{sig}"), &other),
                        Err(SignatureError::BadSignature)
                    );
                }
                let bad = b64(&flipped(
                    &hmac(&key, &[id.as_bytes(), b".", ts_text.as_bytes(), b".", body]),
                    flip,
                ));
                assert_eq!(
                    standard(&format!("v1,{bad}"), body),
                    Err(SignatureError::BadSignature)
                );
            } else {
                assert!(
                    matches!(got, Err(SignatureError::StaleTimestamp { .. })),
                    "{got:?}"
                );
            }
        }
    }

    // GitHub: HMAC of the body keyed by the secret as written.
    let github = |value: &str, body: &[u8]| {
        hook_signature::verify(
            &secret,
            &headers(&[("x-hub-signature-256", value.as_bytes())]),
            body,
            now,
        )
    };
    let mac = hmac(secret.as_bytes(), &[body]);
    let got = github(&format!("sha256={}", hex::encode(&mac)), body);
    if secret.is_empty() {
        assert!(matches!(got, Err(SignatureError::BadSecret(_))), "{got:?}");
    } else {
        assert_eq!(got, Ok(hook_signature::Verified { webhook_id: None }));
        if !body.is_empty() {
            let got = github(
                &format!("sha256={}", hex::encode(&mac)),
                &flipped(body, flip),
            );
            assert_eq!(got, Err(SignatureError::BadSignature));
        }
        let got = github(
            &format!("sha256={}", hex::encode(flipped(&mac, flip))),
            body,
        );
        assert_eq!(got, Err(SignatureError::BadSignature));
    }

    // Outgoing: the configured key, what errand sends, and the receiver's check.
    let Ok(key) = secret.parse::<SigningKey>() else {
        return Some(());
    };
    // Any timestamp and signature header a receiver might be handed: no panic.
    // Mostly the edges of i64 (what a receiver parses from a hostile header), else any.
    let any_ts = match raw_ts.first().map(|b| b % 4) {
        Some(0) => i64::MIN,
        Some(1) => i64::MAX,
        Some(2) => -NOW,
        _ => i64::from_le_bytes(
            raw_ts
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .unwrap_or([0; 8]),
        ),
    };
    let _ = outgoing::verify(
        &key,
        &raw_id,
        any_ts,
        body,
        &String::from_utf8_lossy(&raw_sig),
        NOW,
        TOLERANCE,
    );
    let header = outgoing::signature_header(std::slice::from_ref(&key), &id, ts, body);
    let got = outgoing::verify(&key, &id, ts, body, &header, NOW, TOLERANCE);
    if fresh {
        assert_eq!(got, Ok(()));
        if !body.is_empty() {
            let got =
                outgoing::verify(&key, &id, ts, &flipped(body, flip), &header, NOW, TOLERANCE);
            assert_eq!(got, Err(VerifyError::NoMatch));
        }
    } else {
        assert!(
            matches!(got, Err(VerifyError::StaleTimestamp { .. })),
            "{got:?}"
        );
    }
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let _ = fuzz(Unstructured::new(data));
});
