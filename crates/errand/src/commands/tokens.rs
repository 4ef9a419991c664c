//! `errand tokens create|list|revoke`, run against the store (the first admin token needs
//! no server, and no token to make it), and `errand audit`, which reads the audit trail
//! through the API.

use anyhow::Context;
use errand_api::AuditQuery;
use errand_client::Client;
use errand_core::{ApiToken, NewAuditEntry, QueueName, Scope, TokenId};
use errand_engine::{Engine, EngineConfig, TokenRequest};

use crate::cli::{AuditArgs, StoreArgs, TokenCreateArgs, TokensCommand};
use crate::output::{json, table, when};
use crate::settings::store_location;
use crate::{exit, outln, store_open};

/// Which store a tokens command may open.
enum StoreNeed {
    /// One that is there, so that a mistyped `--data-dir` is an error, not an empty list;
    /// the text says what a missing one has not ("no token to list").
    Existing(&'static str),
    /// Any: creating the first admin token comes before the first start, and may make the
    /// store (and says so).
    MayCreate,
}

/// An engine over the store the flags name (nothing runs in the background); each command
/// closes its store when done with it, as a clean stop of a node does.
async fn engine(location: &StoreArgs, need: StoreNeed) -> anyhow::Result<std::sync::Arc<Engine>> {
    let (data_dir, location) = store_location(location)?;
    let opened = match need {
        StoreNeed::Existing(nothing) => {
            store_open::open_existing(&location, &data_dir, nothing).await?
        }
        StoreNeed::MayCreate => store_open::open(&location, &data_dir).await?,
    };
    if opened.origin == errand_store::StoreOrigin::Created {
        eprintln!(
            "created a new store: {} {} (start errand with the same --data-dir or --store to use it)",
            opened.about.kind, opened.about.location
        );
    }
    Ok(Engine::new(opened.store, EngineConfig::default()))
}

/// Runs a `tokens` subcommand.
pub async fn run(cmd: TokensCommand, as_json: bool) -> anyhow::Result<()> {
    match cmd {
        TokensCommand::Create(args) => create(args, as_json).await,
        TokensCommand::List { location } => {
            let engine = engine(&location, StoreNeed::Existing("no token to list")).await?;
            let tokens = engine.token_list().await;
            engine.close_store().await;
            let tokens = tokens?;
            if as_json {
                return json(&tokens);
            }
            table(
                &[
                    "ID",
                    "NAME",
                    "SCOPES",
                    "QUEUES",
                    "CREATED",
                    "EXPIRES",
                    "LAST USED",
                    "REVOKED",
                ],
                &tokens.iter().map(row).collect::<Vec<_>>(),
            )
        }
        TokensCommand::Revoke { token, location } => {
            let engine = engine(&location, StoreNeed::Existing("no token to revoke")).await?;
            let revoked = async {
                let id = find(&engine, &token).await?;
                let revoked = engine.token_revoke(id).await?;
                record(&engine, "revoke_token", &revoked.name).await;
                anyhow::Ok(revoked)
            }
            .await;
            engine.close_store().await;
            let revoked = revoked?;
            if as_json {
                return json(&revoked);
            }
            outln!(
                "revoked {} ({}); every node refuses it within 5 s",
                revoked.name,
                revoked.id
            );
            Ok(())
        }
    }
}

async fn create(args: TokenCreateArgs, as_json: bool) -> anyhow::Result<()> {
    let scopes = args
        .scopes
        .iter()
        .map(|s| s.trim().parse::<Scope>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| exit::usage(e.to_string()))?;
    let queues = args
        .queues
        .iter()
        .map(|q| QueueName::parse(q.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| exit::usage(e.to_string()))?;
    let expires_at = match &args.expires {
        None => None,
        Some(text) => {
            let d = exit::duration("expires", text)?;
            let span = jiff::SignedDuration::try_from(d).context("--expires: too long")?;
            Some(
                jiff::Timestamp::now()
                    .checked_add(span)
                    .context("--expires: too long")?,
            )
        }
    };
    let engine = engine(&args.location, StoreNeed::MayCreate).await?;
    let issued = engine
        .token_create(TokenRequest {
            name: args.name,
            scopes,
            queues,
            expires_at,
        })
        .await;
    if let Ok(issued) = &issued {
        record(&engine, "create_token", &issued.token.name).await;
    }
    engine.close_store().await;
    let issued = issued?;
    if as_json {
        return json(&serde_json::json!({"token": issued.token, "secret": issued.text}));
    }
    outln!("{}", issued.text);
    eprintln!(
        "token {} ({}), scopes {}: shown this once; errand keeps only its hash",
        issued.token.name,
        issued.token.id,
        scope_list(&issued.token.scopes)
    );
    Ok(())
}

/// The audit entry of a token change made from the command line (`errand tokens`, and
/// `errand import`): actor `cli`, the token by name, and what `detail` adds.
pub(crate) fn cli_token_entry(
    action: &str,
    token: &str,
    detail: serde_json::Value,
) -> NewAuditEntry {
    NewAuditEntry {
        actor: "cli".into(),
        action: action.into(),
        target: format!("token={token}"),
        detail,
        origin: String::new(),
    }
}

/// Records a token change made from the command line in the audit trail.
async fn record(engine: &Engine, action: &str, target: &str) {
    let entry = cli_token_entry(action, target, serde_json::json!({"via": "errand tokens"}));
    if let Err(e) = engine.audit_record(entry).await {
        eprintln!("warning: could not record this in the audit trail: {e}");
    }
}

/// The token named by `text`: an id, or the name of a token not revoked.
async fn find(engine: &Engine, text: &str) -> anyhow::Result<TokenId> {
    if let Ok(id) = text.parse::<TokenId>() {
        return Ok(id);
    }
    engine
        .token_list()
        .await?
        .into_iter()
        .find(|t| t.name == text && t.revoked_at.is_none())
        .map(|t| t.id)
        .ok_or_else(|| {
            anyhow::anyhow!("no token named or with the id `{text}` (errand tokens list)")
        })
}

/// Scopes as the CLI shows them: `enqueue,read`.
pub(crate) fn scope_list(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn row(t: &ApiToken) -> Vec<String> {
    let queues: Vec<&str> = t.queues.iter().map(QueueName::as_str).collect();
    vec![
        t.id.to_string(),
        t.name.clone(),
        scope_list(&t.scopes),
        if queues.is_empty() {
            "*".into()
        } else {
            queues.join(",")
        },
        when(Some(t.created_at)),
        when(t.expires_at),
        when(t.last_used_at),
        when(t.revoked_at),
    ]
}

/// `errand audit`.
pub async fn audit(client: &Client, args: AuditArgs, as_json: bool) -> anyhow::Result<()> {
    let page = client
        .audit(&AuditQuery {
            actor: args.actor,
            action: args.action,
            before: None,
            limit: Some(args.limit),
        })
        .await?;
    if as_json {
        return json(&page);
    }
    table(
        &["ID", "AT", "ACTOR", "ACTION", "TARGET", "FROM"],
        &page
            .entries
            .iter()
            .map(|e| {
                vec![
                    e.id.to_string(),
                    when(Some(e.at)),
                    e.actor.clone(),
                    e.action.clone(),
                    e.target.clone(),
                    e.origin.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    )
}
