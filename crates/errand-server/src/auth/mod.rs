//! Authentication and authorisation: API tokens with scopes (`Authorization: Bearer`), the
//! dashboard's sign-in sessions, and the audit trail of admin and destructive actions.
//!
//! Off only while errand listens on loopback (the README's first command needs nothing
//! set up); `errand serve` turns it on for any other address and refuses to start without
//! a token to sign in with (see `docs/security.md`).

mod fence;
mod guard;
pub mod limits;
pub(crate) mod rules;
pub(crate) mod session;
mod session_secret;

use errand_core::{QueueName, Scope};
use sha2::{Digest, Sha256};

pub(crate) use fence::check_parents;
pub(crate) use guard::{guard, AuditTarget, GuardState, Operations};
pub use session_secret::{
    load_session_secret, session_secret_from_env, SessionSecretSource, SESSION_SECRET_FILE,
};

/// How the server authenticates.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Whether requests need a token (or a dashboard session).
    pub enabled: bool,
    /// SHA-256 of `ERRAND_ADMIN_TOKEN`, an admin token kept outside the store.
    env_admin: Option<[u8; 32]>,
    /// Whether session cookies are marked `Secure` (the server speaks TLS).
    pub secure_cookies: bool,
    /// Requests a second per token (0: no limit).
    pub token_rate: u32,
    /// Long polls and streams held at once per token (0: no limit).
    pub token_long_polls: u32,
    /// Mixed into every dashboard session's key, so that reading the store (which holds
    /// the tokens' hashes) is not enough to mint a session. Random per process unless set.
    session_secret: [u8; 32],
}

/// Why an auth setting cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// `ERRAND_ADMIN_TOKEN` is too short to be a secret.
    #[error("ERRAND_ADMIN_TOKEN must be at least 32 characters (use `openssl rand -hex 32`)")]
    WeakAdminToken,
    /// `ERRAND_SESSION_SECRET` is too short to be a secret.
    #[error("ERRAND_SESSION_SECRET must be at least 32 characters (use `openssl rand -hex 32`)")]
    WeakSessionSecret,
    /// The data directory's session secret file cannot be used.
    #[error("the dashboard's session secret {}: {source}", path.display())]
    SessionSecretFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            env_admin: None,
            secure_cookies: false,
            token_rate: limits::DEFAULT_RATE,
            token_long_polls: limits::DEFAULT_LONG_POLLS,
            session_secret: rand::random(),
        }
    }
}

impl AuthConfig {
    /// No authentication: every caller is the local admin.
    pub fn off() -> Self {
        Self::default()
    }

    /// Tokens required; `env_admin` (from `ERRAND_ADMIN_TOKEN`) also works as an admin.
    ///
    /// # Errors
    /// A weak admin token.
    pub fn on(env_admin: Option<&str>) -> Result<Self, AuthConfigError> {
        let env_admin = match env_admin.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) if t.len() < 32 => return Err(AuthConfigError::WeakAdminToken),
            Some(t) => Some(Sha256::digest(t.as_bytes()).into()),
            None => None,
        };
        Ok(Self {
            enabled: true,
            env_admin,
            ..Self::default()
        })
    }

    /// Uses `secret` for dashboard sessions: nodes (and restarts) that share it accept each
    /// other's sessions.
    #[must_use]
    pub fn with_session_secret(mut self, secret: [u8; 32]) -> Self {
        self.session_secret = secret;
        self
    }

    /// The key of the sessions made from a token whose stored hash is `stored`.
    fn session_key(&self, stored: &[u8; 32]) -> [u8; 32] {
        use hmac::{KeyInit, Mac};
        let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.session_secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        m.update(b"errand-session-key");
        m.update(stored);
        m.finalize().into_bytes().into()
    }

    /// Whether an admin token outside the store is configured.
    pub fn has_env_admin(&self) -> bool {
        self.env_admin.is_some()
    }

    /// The env admin's key when `presented` is that token.
    fn env_admin_matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.env_admin.is_some_and(|want| {
            let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
            want.ct_eq(&got).into()
        })
    }
}

/// Who is calling: a token's name and what it may do. Handlers that must check queues take
/// it as an extension.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// The token's name; `local` with auth off, `env-admin` for `ERRAND_ADMIN_TOKEN`.
    pub(crate) name: String,
    /// What it may do.
    pub(crate) scopes: Vec<Scope>,
    /// The queues it is limited to (empty: every queue).
    pub(crate) queues: Vec<QueueName>,
    /// Signed in through the dashboard (actions need the session's CSRF value).
    pub(crate) session: Option<session::Session>,
}

impl Principal {
    /// The caller when auth is off.
    fn local() -> Self {
        Self {
            name: "local".into(),
            scopes: vec![Scope::Admin],
            queues: vec![],
            session: None,
        }
    }

    /// `ERRAND_ADMIN_TOKEN`'s holder.
    fn env_admin() -> Self {
        Self {
            name: "env-admin".into(),
            scopes: vec![Scope::Admin],
            queues: vec![],
            session: None,
        }
    }

    /// Whether it may touch `queue`.
    pub(crate) fn allows_queue(&self, queue: &str) -> bool {
        self.queues.is_empty() || self.queues.iter().any(|q| q.as_str() == queue)
    }

    /// `Ok` when it may touch `queue`, else the 403 to answer.
    pub(crate) fn check_queue(&self, queue: &str) -> Result<(), crate::ApiError> {
        if self.allows_queue(queue) {
            Ok(())
        } else {
            Err(forbidden_queue(&self.queues, queue))
        }
    }
}

/// The 403 for a queue outside a token's queues.
fn forbidden_queue(queues: &[QueueName], queue: &str) -> crate::ApiError {
    let list: Vec<&str> = queues.iter().map(QueueName::as_str).collect();
    crate::ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "this token is limited to the queues {}; `{queue}` is not one of them",
            list.join(", ")
        ),
    )
}
