//! API tokens: issuing them (the secret is shown once and only its SHA-256 is stored),
//! checking a presented token, and revoking. The SHA-256 fits because every secret is 256
//! random bits: a slow password hash protects guessable secrets, and nothing about these
//! can be guessed faster than the 2^256 tries a fast hash leaves. Checks compare hashes in
//! constant time and are cached for [`CHECK_TTL`], so a busy worker costs no store read per
//! request; a revocation reaches every node within that time. Last use is written at most
//! once per [`USE_EVERY`] per token and node, off the request's path.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use errand_core::{ApiToken, NewToken, QueueName, Scope, StoredToken, TokenId};
use errand_store::StoreError;
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Engine;

/// How long a checked token is trusted without reading the store again.
pub const CHECK_TTL: Duration = Duration::from_secs(5);

/// How often a token's last use is written, at most, per node.
pub const USE_EVERY: Duration = Duration::from_secs(60);

/// What every token text starts with (also how secret scanners can find leaked ones).
pub const TOKEN_PREFIX: &str = "errand_";

/// Names the audit trail gives callers without a stored token (auth off, the
/// `ERRAND_ADMIN_TOKEN`, the CLI against the store): no token may take one, so an audit
/// entry's actor is never ambiguous.
pub const RESERVED_NAMES: [&str; 3] = ["local", "env-admin", "cli"];

/// Tokens known to this node: checked ones, and when each was last recorded as used.
#[derive(Default)]
pub(crate) struct TokenCache {
    checked: Mutex<HashMap<TokenId, (StoredToken, Instant)>>,
    used: Mutex<HashMap<TokenId, Instant>>,
}

/// A token just issued: what it may do, and its text, which errand never shows again.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token's record.
    pub token: ApiToken,
    /// The whole token, `errand_<id>_<secret>`, to hand to its user.
    pub text: String,
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// A name for people, unique among tokens not revoked.
    pub name: String,
    /// What it may do (at least one).
    pub scopes: Vec<Scope>,
    /// Queues it is limited to (empty: every queue).
    pub queues: Vec<QueueName>,
    /// When it stops working.
    pub expires_at: Option<Timestamp>,
}

/// Why a presented token was not accepted. Callers answer all of them alike (401), so
/// that nobody learns which tokens exist; the reasons are for logs and metrics.
#[derive(Debug, thiserror::Error)]
pub enum TokenRejected {
    /// Not of the form `errand_<id>_<secret>`.
    #[error("not an errand token")]
    Malformed,
    /// No token has this id, or the secret does not match it.
    #[error("unknown token")]
    Unknown,
    /// The token was revoked.
    #[error("revoked token")]
    Revoked,
    /// The token's expiry has passed.
    #[error("expired token")]
    Expired,
    /// The store could not be read; the token may well be good.
    #[error("tokens cannot be checked: {0}")]
    Store(StoreError),
}

/// The SHA-256 of a token's secret part.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Splits `errand_<32 hex id>_<64 hex secret>`.
fn parse(text: &str) -> Option<(TokenId, &str)> {
    let rest = text.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 || secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = uuid::Uuid::try_parse(id).ok()?;
    Some((TokenId(id), secret))
}

/// Whether a stored token may be used now, and its secret matches.
fn judge(stored: &StoredToken, secret: &str, now: Timestamp) -> Result<(), TokenRejected> {
    let matches: bool = stored.secret_hash.ct_eq(&secret_hash(secret)).into();
    if !matches {
        return Err(TokenRejected::Unknown);
    }
    if stored.token.revoked_at.is_some() {
        return Err(TokenRejected::Revoked);
    }
    if stored.token.expires_at.is_some_and(|at| at <= now) {
        return Err(TokenRejected::Expired);
    }
    Ok(())
}

/// The rules a token's name and scopes follow wherever a token is made (issued here, or
/// brought by `errand import`).
///
/// # Errors
/// `Invalid` for an empty, long or control-character name, a name the audit trail
/// reserves, or no scopes.
pub fn check_token(name: &str, scopes: &[Scope]) -> Result<(), StoreError> {
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "name: 1 to 200 characters, no control characters".into(),
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(StoreError::Invalid(format!(
            "name: `{name}` is what the audit trail calls a caller without a stored token \
             ({}); choose another",
            RESERVED_NAMES.join(", ")
        )));
    }
    if scopes.is_empty() {
        return Err(StoreError::Invalid(
            "scopes: at least one of enqueue, work, read, admin".into(),
        ));
    }
    Ok(())
}

impl Engine {
    /// Issues a token: a fresh id and 256 random bits of secret; the store keeps the
    /// secret's hash only.
    ///
    /// # Errors
    /// `Invalid` for an empty name or no scopes; `AlreadyExists` when a token that is not
    /// revoked has the name; the store's error.
    pub async fn token_create(&self, request: TokenRequest) -> Result<IssuedToken, StoreError> {
        let name = request.name;
        check_token(&name, &request.scopes)?;
        let mut scopes = request.scopes;
        scopes.sort();
        scopes.dedup();
        let id = TokenId::new();
        let secret: String = rand::random::<[u8; 32]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let token = self
            .store()
            .token_create(NewToken {
                id,
                name,
                secret_hash: secret_hash(&secret),
                scopes,
                queues: request.queues,
                expires_at: request.expires_at,
            })
            .await?;
        Ok(IssuedToken {
            text: format!("{TOKEN_PREFIX}{}_{secret}", id.0.simple()),
            token,
        })
    }

    /// Every token, revoked ones too, oldest first (never their secrets).
    ///
    /// # Errors
    /// The store's error.
    pub async fn token_list(&self) -> Result<Vec<ApiToken>, StoreError> {
        self.store().token_list().await
    }

    /// Revokes a token: this node refuses it at once, every other node within
    /// [`CHECK_TTL`].
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn token_revoke(&self, id: TokenId) -> Result<ApiToken, StoreError> {
        let token = self.store().token_revoke(id).await?;
        if let Ok(mut checked) = self.tokens.checked.lock() {
            checked.remove(&id);
        }
        Ok(token)
    }

    /// The token `text` names, if it is good now (known, secret matching, not revoked,
    /// not expired).
    ///
    /// # Errors
    /// Why it is not accepted.
    pub async fn token_check(&self, text: &str) -> Result<ApiToken, TokenRejected> {
        let (id, secret) = parse(text).ok_or(TokenRejected::Malformed)?;
        let now = Timestamp::now();
        let stored = self.stored_token(id).await?;
        judge(&stored, secret, now)?;
        self.note_token_use(id, now);
        Ok(stored.token)
    }

    /// Counts a request refused for its credentials: `missing`, `invalid`, `forbidden` or
    /// `limited`.
    pub fn note_auth_refused(&self, reason: &'static str) {
        self.metrics.auth_refused(reason);
    }

    /// The token `id`, the key its dashboard sessions are signed with (its secret's hash)
    /// and when its sessions were last ended (signed out), if the token is usable now.
    ///
    /// # Errors
    /// Unknown, revoked or expired, or the store could not be read.
    pub async fn token_session_key(
        &self,
        id: TokenId,
    ) -> Result<(ApiToken, [u8; 32], Option<Timestamp>), TokenRejected> {
        let stored = self.stored_token(id).await?;
        if stored.token.revoked_at.is_some() {
            return Err(TokenRejected::Revoked);
        }
        if stored
            .token
            .expires_at
            .is_some_and(|at| at <= Timestamp::now())
        {
            return Err(TokenRejected::Expired);
        }
        Ok((stored.token, stored.secret_hash, stored.sessions_ended_at))
    }

    /// Ends every dashboard session made from token `id` until now ("sign out"): on this
    /// node at once, on others within [`CHECK_TTL`].
    ///
    /// # Errors
    /// The store's.
    pub async fn token_end_sessions(&self, id: TokenId) -> Result<(), StoreError> {
        self.store()
            .token_end_sessions(id, Timestamp::now())
            .await?;
        if let Ok(mut checked) = self.tokens.checked.lock() {
            checked.remove(&id);
        }
        Ok(())
    }

    /// Records a use of token `id` through a dashboard session made from it (checked by
    /// the caller), as a bearer use is: at most once per minute per node.
    pub fn note_session_use(&self, id: TokenId) {
        self.note_token_use(id, Timestamp::now());
    }

    /// Token `id` from the cache, or from the store when not read within [`CHECK_TTL`].
    async fn stored_token(&self, id: TokenId) -> Result<StoredToken, TokenRejected> {
        let cached = self.tokens.checked.lock().ok().and_then(|checked| {
            checked
                .get(&id)
                .filter(|(_, at)| at.elapsed() < CHECK_TTL)
                .map(|(stored, _)| stored.clone())
        });
        if let Some(stored) = cached {
            return Ok(stored);
        }
        let stored = match self.store().token_get(id).await {
            Ok(stored) => stored,
            Err(StoreError::NotFound { .. }) => return Err(TokenRejected::Unknown),
            Err(e) => return Err(TokenRejected::Store(e)),
        };
        if let Ok(mut checked) = self.tokens.checked.lock() {
            checked.insert(id, (stored.clone(), Instant::now()));
        }
        Ok(stored)
    }

    /// Records a token's use in the store, at most once per [`USE_EVERY`] on this node,
    /// without making the request wait.
    fn note_token_use(&self, id: TokenId, now: Timestamp) {
        let due = self.tokens.used.lock().is_ok_and(|mut used| {
            let due = used.get(&id).is_none_or(|at| at.elapsed() >= USE_EVERY);
            if due {
                used.insert(id, Instant::now());
            }
            due
        });
        if !due {
            return;
        }
        let store = self.store().clone();
        tokio::spawn(async move {
            if let Err(e) = store.token_used(id, now).await {
                tracing::debug!(error = %e, "could not record a token's last use");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(hash_of: &str) -> StoredToken {
        StoredToken {
            token: ApiToken {
                id: TokenId::new(),
                name: "t".into(),
                scopes: vec![Scope::Read],
                queues: vec![],
                created_at: Timestamp::now(),
                expires_at: None,
                last_used_at: None,
                revoked_at: None,
            },
            secret_hash: secret_hash(hash_of),
            sessions_ended_at: None,
        }
    }

    #[test]
    fn a_token_parses_only_in_its_exact_form() {
        let id = TokenId::new();
        let secret = "ab".repeat(32);
        let text = format!("errand_{}_{secret}", id.0.simple());
        assert_eq!(parse(&text), Some((id, secret.as_str())));
        assert_eq!(parse(&text[1..]), None);
        assert_eq!(parse(&format!("{text}0")), None);
        assert_eq!(
            parse(&format!("errand_{}_{}", id.0.simple(), "zz".repeat(32))),
            None
        );
        assert_eq!(parse("errand_"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn a_wrong_secret_a_revoked_or_an_expired_token_is_refused() {
        let now = Timestamp::now();
        let good = stored("secret");
        assert!(judge(&good, "secret", now).is_ok());
        assert!(matches!(
            judge(&good, "other", now),
            Err(TokenRejected::Unknown)
        ));
        let mut revoked = good.clone();
        revoked.token.revoked_at = Some(now);
        assert!(matches!(
            judge(&revoked, "secret", now),
            Err(TokenRejected::Revoked)
        ));
        let mut expired = good;
        expired.token.expires_at = Some(now);
        assert!(matches!(
            judge(&expired, "secret", now),
            Err(TokenRejected::Expired)
        ));
    }
}
