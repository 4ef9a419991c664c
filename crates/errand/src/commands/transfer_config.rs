//! What an export carries besides queues, schedules and jobs: the store's own
//! configuration that users made through the API, without which a moved deployment would
//! break in ways found only later. Workflow templates (schedules and callers start
//! workflows by template name), event subscriptions (outgoing webhooks) and API tokens (so
//! every client keeps signing in after the move; only the SHA-256 of each secret travels,
//! never a secret).

use anyhow::Context;
use errand_core::workflow::WorkflowSpec;
use errand_core::{
    ApiToken, NewAuditEntry, NewSubscription, NewToken, Subscription, SubscriptionPatch,
    SubscriptionState,
};
use errand_store::{SharedStore, StoreError};
use serde::{Deserialize, Serialize};

/// A stored workflow template, by name.
#[derive(Debug, Serialize, Deserialize)]
pub struct TemplateLine {
    /// Its name.
    pub name: String,
    /// The template.
    pub spec: WorkflowSpec,
}

/// An API token as an export carries it: what it may do and the hash of its secret.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenLine {
    /// The token (a revoked one is never exported).
    #[serde(flatten)]
    pub token: ApiToken,
    /// SHA-256 of its secret part, in hex.
    pub secret_sha256: String,
    /// Dashboard sessions made from it up to then are over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_ended_at: Option<jiff::Timestamp>,
}

/// Reads the configuration an export writes: every template and subscription, and every
/// token not revoked (a revoked one never works again; it stays behind).
pub async fn read(
    store: &SharedStore,
) -> anyhow::Result<(Vec<TemplateLine>, Vec<Subscription>, Vec<TokenLine>)> {
    let templates = store
        .workflow_template_list()
        .await?
        .into_iter()
        .map(|(name, spec)| TemplateLine { name, spec })
        .collect();
    let subscriptions = store.subscription_list().await?;
    let mut tokens = Vec::new();
    for t in store.token_list().await? {
        if t.revoked_at.is_some() {
            continue;
        }
        let stored = store.token_get(t.id).await?;
        tokens.push(TokenLine {
            token: stored.token,
            secret_sha256: hex::encode(stored.secret_hash),
            sessions_ended_at: stored.sessions_ended_at,
        });
    }
    Ok((templates, subscriptions, tokens))
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
    /// Tokens made.
    pub tokens: u64,
    /// Tokens skipped: one with the same id is there already.
    pub tokens_there: u64,
    /// Tokens not made, each with why (a token of the same name is in use here).
    pub tokens_refused: Vec<String>,
}

impl Imported {
    /// Stores a template after the checks `PUT /v1/workflow-templates/{name}` makes.
    pub async fn template(
        &mut self,
        store: &SharedStore,
        line: TemplateLine,
    ) -> anyhow::Result<()> {
        line.spec
            .validate()
            .map_err(|e| anyhow::anyhow!("workflow template `{}`: {e}", line.name))?;
        store.workflow_template_put(&line.name, line.spec).await?;
        self.templates += 1;
        Ok(())
    }

    /// Makes a subscription with its id and filters, paused if it was; it receives the
    /// events of this store from now on.
    pub async fn subscription(
        &mut self,
        store: &SharedStore,
        sub: Subscription,
    ) -> anyhow::Result<()> {
        if there(store.subscription_get(sub.id).await)? {
            self.subscriptions_there += 1;
            return Ok(());
        }
        let id = sub.id;
        store
            .subscription_create(NewSubscription {
                id,
                url: sub.url,
                events: sub.events,
                queue: sub.queue,
                kind: sub.kind,
                tag: sub.tag,
                description: sub.description,
            })
            .await?;
        if sub.state == SubscriptionState::Paused {
            store
                .subscription_update(
                    id,
                    SubscriptionPatch {
                        state: Some((SubscriptionState::Paused, sub.paused_reason)),
                        ..Default::default()
                    },
                )
                .await?;
        }
        self.subscriptions += 1;
        Ok(())
    }

    /// Makes a token with its id and secret hash, so its text keeps working; its last use
    /// and the end of its dashboard sessions travel, its creation time is the import's.
    pub async fn token(&mut self, store: &SharedStore, line: TokenLine) -> anyhow::Result<()> {
        let t = line.token;
        if t.revoked_at.is_some() {
            return Ok(());
        }
        let secret_hash: [u8; 32] = hex::decode(&line.secret_sha256)
            .ok()
            .and_then(|h| h.try_into().ok())
            .with_context(|| {
                format!(
                    "token `{}`: secret_sha256 must be 64 hexadecimal digits",
                    t.name
                )
            })?;
        if there(store.token_get(t.id).await)? {
            self.tokens_there += 1;
            return Ok(());
        }
        let made = store
            .token_create(NewToken {
                id: t.id,
                name: t.name.clone(),
                secret_hash,
                scopes: t.scopes,
                queues: t.queues,
                expires_at: t.expires_at,
            })
            .await;
        match made {
            Ok(_) => {}
            Err(StoreError::AlreadyExists { .. }) => {
                self.tokens_refused.push(format!(
                    "token `{}` ({}) left out: a token of that name is in use here (revoke it and import again to bring this one)",
                    t.name, t.id
                ));
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        // Made from the command line, like `errand tokens create`: the trail says so.
        store
            .audit_append(NewAuditEntry {
                actor: "cli".into(),
                action: "import_token".into(),
                target: format!("token={}", t.name),
                detail: serde_json::json!({"via": "errand import", "id": t.id}),
                origin: String::new(),
            })
            .await?;
        if let Some(at) = t.last_used_at {
            store.token_used(t.id, at).await?;
        }
        if let Some(at) = line.sessions_ended_at {
            store.token_end_sessions(t.id, at).await?;
        }
        self.tokens += 1;
        Ok(())
    }

    /// The summary's part for configuration, empty when the file held none.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.templates > 0 {
            parts.push(counted(self.templates, "workflow template"));
        }
        if self.subscriptions + self.subscriptions_there > 0 {
            parts.push(format!(
                "{} ({} already there)",
                counted(self.subscriptions, "subscription"),
                self.subscriptions_there
            ));
        }
        if self.tokens + self.tokens_there + self.tokens_refused.len() as u64 > 0 {
            parts.push(format!(
                "{} ({} already there, {} left out)",
                counted(self.tokens, "API token"),
                self.tokens_there,
                self.tokens_refused.len()
            ));
        }
        parts.iter().map(|p| format!(", {p}")).collect()
    }
}

/// Whether a lookup by id found the record: its absence is no error here.
fn there<T>(found: Result<T, StoreError>) -> Result<bool, StoreError> {
    match found {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `n thing` or `n things`.
pub fn counted(n: u64, thing: &str) -> String {
    format!("{n} {thing}{}", if n == 1 { "" } else { "s" })
}
