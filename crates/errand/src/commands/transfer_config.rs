//! What an export carries besides queues, schedules and jobs: the store's own
//! configuration that users made through the API, without which a moved deployment would
//! break in ways found only later. Workflow templates (schedules and callers start
//! workflows by template name), event subscriptions (outgoing webhooks) and API tokens (so
//! every client keeps signing in after the move; only the SHA-256 of each secret travels,
//! never a secret). A revoked token travels as its revocation alone, so that importing a
//! newer export revokes it where an earlier import made it.
//!
//! An export file is trusted input (it can grant any token): each line is checked as the
//! API checks what it makes, and every token made or revoked is named in the output and in
//! the audit trail.

use anyhow::Context;
use errand_api::SubscriptionRequest;
use errand_core::workflow::WorkflowSpec;
use errand_core::{ApiToken, NewToken, Subscription, SubscriptionPatch, SubscriptionState};
use errand_store::{SharedStore, StoreError};
use serde::{Deserialize, Serialize};

use crate::cli::Leave;
use crate::commands::tokens::{cli_token_entry, scope_list};

/// A stored workflow template, by name.
#[derive(Debug, Serialize, Deserialize)]
pub struct TemplateLine {
    /// Its name.
    pub name: String,
    /// The template.
    pub spec: WorkflowSpec,
}

/// An API token as an export carries it: what it may do and the hash of its secret, or,
/// once revoked, that it was revoked.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenLine {
    /// The token.
    #[serde(flatten)]
    pub token: ApiToken,
    /// SHA-256 of its secret part, in hex; absent for a revoked token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sha256: Option<String>,
    /// Dashboard sessions made from it up to then are over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_ended_at: Option<jiff::Timestamp>,
}

/// The configuration an export writes.
#[derive(Debug, Default)]
pub struct Config {
    /// Every workflow template.
    pub templates: Vec<TemplateLine>,
    /// Every subscription.
    pub subscriptions: Vec<Subscription>,
    /// Every token: live ones with their hashes, revoked ones as revocations.
    pub tokens: Vec<TokenLine>,
}

/// Reads the configuration an export writes, leaving out what `without` names.
pub async fn read(store: &SharedStore, without: &[Leave]) -> anyhow::Result<Config> {
    let mut config = Config::default();
    if !without.contains(&Leave::Templates) {
        config.templates = store
            .workflow_template_list()
            .await?
            .into_iter()
            .map(|(name, spec)| TemplateLine { name, spec })
            .collect();
    }
    if !without.contains(&Leave::Subscriptions) {
        config.subscriptions = store.subscription_list().await?;
    }
    if !without.contains(&Leave::Tokens) {
        for t in store.token_list().await? {
            if t.revoked_at.is_some() {
                config.tokens.push(TokenLine {
                    token: t,
                    secret_sha256: None,
                    sessions_ended_at: None,
                });
                continue;
            }
            let stored = store.token_get(t.id).await?;
            config.tokens.push(TokenLine {
                token: stored.token,
                secret_sha256: Some(hex::encode(stored.secret_hash)),
                sessions_ended_at: stored.sessions_ended_at,
            });
        }
    }
    Ok(config)
}

/// What an import did with the configuration lines it read.
#[derive(Debug, Default)]
pub struct Imported {
    /// Templates stored (an existing one of the same name is replaced, as schedules are).
    pub templates: u64,
    /// Subscriptions made.
    pub subscriptions: u64,
    /// Subscriptions skipped: one with the same id is there already.
    pub subscriptions_there: u64,
    /// Subscriptions there already, paused again because the file says paused.
    pub subscriptions_paused: u64,
    /// Tokens made.
    pub tokens: u64,
    /// Tokens skipped: one with the same id is there already (its last use and sign-out
    /// are brought forward).
    pub tokens_there: u64,
    /// Tokens revoked here because the file says revoked.
    pub tokens_revoked: u64,
    /// Tokens not made, each with why (a token of the same name is in use here).
    pub tokens_refused: Vec<String>,
    /// What was made or revoked, a line each, for the operator to read.
    pub said: Vec<String>,
}

impl Imported {
    /// Stores a template after the checks of its name and graph that
    /// `PUT /v1/workflow-templates/{name}` makes.
    pub async fn template(
        &mut self,
        store: &SharedStore,
        line: TemplateLine,
    ) -> anyhow::Result<()> {
        errand_api::check_template_name("name", &line.name)
            .map_err(|e| anyhow::anyhow!("workflow template `{}`: {e}", line.name))?;
        line.spec
            .validate()
            .map_err(|e| anyhow::anyhow!("workflow template `{}`: {e}", line.name))?;
        store.workflow_template_put(&line.name, line.spec).await?;
        self.templates += 1;
        Ok(())
    }

    /// Makes a subscription with its id and filters (checked as `POST /v1/subscriptions`
    /// checks them), paused if it was; it receives the events of this store from now on.
    /// One already here is left as it is, except that a pause in the file pauses it.
    pub async fn subscription(
        &mut self,
        store: &SharedStore,
        sub: Subscription,
    ) -> anyhow::Result<()> {
        let id = sub.id;
        let paused = sub.state == SubscriptionState::Paused;
        let pause = || SubscriptionPatch {
            state: Some((SubscriptionState::Paused, sub.paused_reason.clone())),
            ..Default::default()
        };
        match store.subscription_get(id).await {
            Ok(here) => {
                self.subscriptions_there += 1;
                if paused && here.state == SubscriptionState::Active {
                    store.subscription_update(id, pause()).await?;
                    self.subscriptions_paused += 1;
                }
                return Ok(());
            }
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let mut new = SubscriptionRequest {
            url: sub.url.clone(),
            events: sub.events.clone(),
            queue: sub.queue.as_ref().map(ToString::to_string),
            kind: sub.kind.as_ref().map(ToString::to_string),
            tag: sub.tag.clone(),
            description: sub.description.clone(),
        }
        .into_new()
        .map_err(|e| anyhow::anyhow!("subscription {id}: {e}"))?;
        new.id = id;
        store.subscription_create(new).await?;
        if paused {
            store.subscription_update(id, pause()).await?;
        }
        self.subscriptions += 1;
        self.said
            .push(format!("made subscription {id} to {}", sub.url));
        Ok(())
    }

    /// Makes a token with its id and secret hash (checked as `errand tokens create` checks
    /// a token), so its text keeps working; its last use and the end of its dashboard
    /// sessions travel, its creation time is the import's. One already here gets its last
    /// use and sign-out brought forward (never back). A revoked one revokes its copy here.
    pub async fn token(&mut self, store: &SharedStore, line: TokenLine) -> anyhow::Result<()> {
        let t = line.token;
        let here = match store.token_get(t.id).await {
            Ok(stored) => Some(stored),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        if t.revoked_at.is_some() {
            if here.is_some_and(|h| h.token.revoked_at.is_none()) {
                store.token_revoke(t.id).await?;
                self.tokens_revoked += 1;
                self.said.push(format!(
                    "revoked token `{}` ({}): it is revoked in the file",
                    t.name, t.id
                ));
                self.audit(store, "import_revoke_token", &t).await;
            }
            return Ok(());
        }
        errand_engine::check_token(&t.name, &t.scopes)
            .map_err(|e| anyhow::anyhow!("token `{}` ({}): {e}", t.name, t.id))?;
        let secret_hash: [u8; 32] = line
            .secret_sha256
            .as_deref()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|h| h.try_into().ok())
            .with_context(|| {
                format!(
                    "token `{}` ({}): secret_sha256 must be 64 hexadecimal digits",
                    t.name, t.id
                )
            })?;
        if here.is_some() {
            self.tokens_there += 1;
        } else {
            let made = store
                .token_create(NewToken {
                    id: t.id,
                    name: t.name.clone(),
                    secret_hash,
                    scopes: t.scopes.clone(),
                    queues: t.queues.clone(),
                    expires_at: t.expires_at,
                })
                .await;
            match made {
                Ok(_) => {}
                Err(StoreError::AlreadyExists { .. }) => {
                    self.tokens_refused.push(format!(
                        "token `{}` ({}) left out: a token of that name, not revoked, is here (revoke that one with `errand tokens revoke {}` and import again to bring this one)",
                        t.name, t.id, t.name
                    ));
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Both only move forward, so a repeated import brings a later sign-out, never
        // an earlier one.
        if let Some(at) = line.sessions_ended_at {
            store.token_end_sessions(t.id, at).await?;
        }
        if let Some(at) = t.last_used_at {
            store.token_used(t.id, at).await?;
        }
        if here.is_none() {
            self.tokens += 1;
            self.said.push(format!(
                "made token `{}` ({}): scopes {}, {}{}",
                t.name,
                t.id,
                scope_list(&t.scopes),
                if t.queues.is_empty() {
                    "every queue".to_string()
                } else {
                    format!(
                        "queues {}",
                        t.queues
                            .iter()
                            .map(|q| q.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                },
                t.expires_at
                    .map(|at| format!(", expires {at}"))
                    .unwrap_or_default()
            ));
            self.audit(store, "import_token", &t).await;
        }
        Ok(())
    }

    /// Records a token the import made or revoked in the audit trail, as `errand tokens`
    /// does; a trail that refuses the entry is a warning, not a failed import.
    async fn audit(&mut self, store: &SharedStore, action: &str, t: &ApiToken) {
        let detail = serde_json::json!({
            "via": "errand import",
            "id": t.id,
            "scopes": t.scopes,
            "queues": t.queues,
            "expires_at": t.expires_at,
        });
        let entry = cli_token_entry(action, &t.name, detail);
        if let Err(e) = store.audit_append(entry).await {
            self.said.push(format!(
                "warning: could not record {action} of token `{}` in the audit trail: {e}",
                t.name
            ));
        }
    }

    /// The summary's part for configuration, empty when the file held none.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.templates > 0 {
            parts.push(counted(self.templates, "workflow template"));
        }
        if self.subscriptions + self.subscriptions_there > 0 {
            parts.push(format!(
                "{} ({} already there, {} of those paused again)",
                counted(self.subscriptions, "subscription"),
                self.subscriptions_there,
                self.subscriptions_paused
            ));
        }
        if self.tokens + self.tokens_there + self.tokens_revoked + self.tokens_refused.len() as u64
            > 0
        {
            parts.push(format!(
                "{} ({} already there, {} revoked, {} left out)",
                counted(self.tokens, "API token"),
                self.tokens_there,
                self.tokens_revoked,
                self.tokens_refused.len()
            ));
        }
        parts.iter().map(|p| format!(", {p}")).collect()
    }
}

/// `n thing` or `n things`.
pub fn counted(n: u64, thing: &str) -> String {
    format!("{n} {thing}{}", if n == 1 { "" } else { "s" })
}
