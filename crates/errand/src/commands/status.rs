//! `errand status`: one screen with the server, its store, nodes, queues and the schedules
//! due next; `--watch` redraws it.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use errand_client::Client;
use errand_core::{NodeInfo, QueueInfo, StoreAbout};
use jiff::Timestamp;
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::output;

/// Schedules shown, soonest first.
const DUE_NEXT: usize = 5;

/// The server that answered.
#[derive(Debug, Serialize)]
struct ServerPart {
    /// Its URL (`--server`).
    url: String,
    /// Its errand version, when it lists itself among the nodes.
    version: Option<String>,
    /// Its node id.
    node_id: String,
    /// Its roles.
    roles: Vec<String>,
    /// Whether it can accept a job now (`/readyz`).
    ready: bool,
}

/// A schedule due soon, its time in UTC and its zone.
#[derive(Debug, Serialize)]
struct DueSchedule {
    name: String,
    next_fire_at: Timestamp,
    timezone: String,
    kind: String,
    queue: String,
}

/// One screen's worth (`--json` prints it as it is).
#[derive(Debug, Serialize)]
struct Snapshot {
    /// When it was read (this machine's clock).
    at: Timestamp,
    server: ServerPart,
    /// The store, as the server says it opened it (absent from servers that do not say).
    store: Option<StoreAbout>,
    nodes: Vec<NodeInfo>,
    queues: Vec<QueueInfo>,
    /// Active schedules by next fire, the first few.
    schedules: Vec<DueSchedule>,
}

async fn gather(client: &Client) -> anyhow::Result<Snapshot> {
    let (nodes, queues, schedules, ready) = tokio::try_join!(
        client.nodes(),
        client.queues(),
        client.schedules(),
        client.ready()
    )?;
    let version = nodes
        .nodes
        .iter()
        .find(|n| n.id == nodes.this_node)
        .map(|n| n.version.clone());
    let now = Timestamp::now();
    let mut due: Vec<DueSchedule> = schedules
        .schedules
        .into_iter()
        .filter(|s| !s.paused)
        .filter_map(|s| {
            Some(DueSchedule {
                next_fire_at: s.next_slot(now)?,
                name: s.spec.name.to_string(),
                timezone: s.spec.timezone,
                kind: s.spec.job.kind.to_string(),
                queue: s.spec.job.queue.to_string(),
            })
        })
        .collect();
    due.sort_by_key(|s| s.next_fire_at);
    due.truncate(DUE_NEXT);
    Ok(Snapshot {
        at: Timestamp::now(),
        server: ServerPart {
            url: client.base_url().to_string(),
            version,
            node_id: nodes.this_node.to_string(),
            roles: nodes.roles,
            ready,
        },
        store: nodes.store,
        nodes: nodes.nodes,
        queues: queues.queues,
        schedules: due,
    })
}

fn print(s: &Snapshot, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(s);
    }
    let server = &s.server;
    let mut about = Vec::new();
    if let Some(v) = &server.version {
        about.push(format!("errand {v}"));
    }
    about.push(format!("node {}", server.node_id));
    about.push(if server.ready {
        "ready".to_string()
    } else {
        "NOT READY: its store takes no jobs (see /readyz)".to_string()
    });
    crate::outln!("   server  {} ({})", server.url, about.join(", "));
    crate::outln!(
        "    store  {}",
        s.store
            .as_ref()
            .map(|st| format!("{} {}", st.kind, st.location))
            .unwrap_or_else(|| "(this server does not say)".into())
    );
    crate::outln!("     time  {} UTC", output::when(Some(s.at)));

    crate::outln!("\nNODES");
    let rows: Vec<Vec<String>> = s
        .nodes
        .iter()
        .map(|n| {
            let this = n.id.to_string() == server.node_id;
            vec![
                format!("{}{}", n.id, if this { " *" } else { "" }),
                n.host.clone(),
                n.pid.to_string(),
                n.version.clone(),
                format!("{:?}", n.status).to_lowercase(),
                if this && !server.roles.is_empty() {
                    server.roles.join(",")
                } else {
                    "-".into()
                },
                output::relative(n.heartbeat_at),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "HOST",
            "PID",
            "VERSION",
            "STATUS",
            "ROLES",
            "LAST SEEN",
        ],
        &rows,
    )?;

    crate::outln!("\nQUEUES");
    if s.queues.is_empty() {
        crate::outln!("(none yet: a queue appears with its first job)");
    } else {
        let rows: Vec<Vec<String>> = s
            .queues
            .iter()
            .map(|q| {
                let c = &q.counts;
                vec![
                    q.name.to_string(),
                    c.available.to_string(),
                    c.running.to_string(),
                    c.scheduled.to_string(),
                    c.blocked.to_string(),
                    c.dead.to_string(),
                    q.oldest_available_age_ms
                        .map(output::span)
                        .unwrap_or_else(|| "-".into()),
                    if q.paused { "paused" } else { "active" }.into(),
                ]
            })
            .collect();
        output::table(
            &[
                "NAME",
                "READY",
                "RUNNING",
                "SCHEDULED",
                "BLOCKED",
                "DEAD",
                "OLDEST READY",
                "STATUS",
            ],
            &rows,
        )?;
    }

    crate::outln!("\nSCHEDULES DUE NEXT");
    if s.schedules.is_empty() {
        crate::outln!("(none active)");
    } else {
        let rows: Vec<Vec<String>> = s
            .schedules
            .iter()
            .map(|d| {
                vec![
                    d.name.clone(),
                    format!(
                        "{} ({})",
                        output::when_in(Some(d.next_fire_at), &d.timezone),
                        d.timezone
                    ),
                    output::relative(d.next_fire_at),
                    d.kind.clone(),
                    d.queue.clone(),
                ]
            })
            .collect();
        output::table(&["NAME", "NEXT", "IN", "KIND", "QUEUE"], &rows)?;
    }
    Ok(())
}

/// Runs `errand status`: once, or with `--watch` every interval until Ctrl-C (exit 0),
/// clearing the screen on a terminal and printing one block after another when piped. A
/// server that cannot be read while watching shows as an error line; the next turn tries
/// again.
pub async fn run(client: &Client, args: StatusArgs, json: bool) -> anyhow::Result<()> {
    let Some(raw) = args.watch else {
        return print(&gather(client).await?, json);
    };
    let every = crate::exit::duration("watch", &raw)?;
    if every < Duration::from_millis(100) {
        return Err(crate::exit::UsageError(format!(
            "--watch {raw}: redraw at most ten times a second (e.g. `--watch 1s`)"
        ))
        .into());
    }
    let clear = !json && std::io::stdout().is_terminal();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut first = true;
    loop {
        let frame = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            frame = gather(client) => frame,
        };
        if clear {
            // Home, then clear the screen: the new frame replaces the last.
            crate::out!("\x1b[H\x1b[2J");
        } else if !first && !json {
            crate::outln!();
        }
        first = false;
        match frame {
            // With --json, one compact object per line per frame (JSON lines).
            Ok(snapshot) if json => crate::outln!("{}", serde_json::to_string(&snapshot)?),
            Ok(snapshot) => print(&snapshot, json)?,
            Err(e) if json => crate::outln!(
                "{}",
                serde_json::json!({"at": Timestamp::now(), "error": format!("{e:#}")})
            ),
            Err(e) => {
                crate::outln!(
                    "{} UTC  error: {e:#} (trying again every {})",
                    output::when(Some(Timestamp::now())),
                    errand_core::duration::format(every)
                );
            }
        }
        std::io::stdout().flush()?;
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            () = tokio::time::sleep(every) => {}
        }
    }
}
