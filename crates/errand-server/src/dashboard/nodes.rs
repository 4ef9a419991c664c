//! The nodes page (`/ui/nodes`): the `errand serve` processes sharing the store with their
//! status and heartbeats (what `GET /v1/nodes` answers), and the workers seen claiming
//! (what `GET /v1/workers` answers). Read only.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use axum::Extension;
use errand_core::NodeStatus;
use jiff::Timestamp;

use super::view::When;
use super::{Dashboard, Layout};
use crate::{ApiError, AppState};

/// A node as a row (this page and the overview).
pub(super) struct NodeRow {
    pub(super) id: String,
    pub(super) host: String,
    pub(super) pid: u32,
    pub(super) version: String,
    pub(super) status: &'static str,
    pub(super) started: When,
    pub(super) heartbeat: When,
    pub(super) this: bool,
}

/// A worker as a row (this page and the overview).
pub(super) struct WorkerRow {
    pub(super) name: String,
    pub(super) node: String,
    pub(super) queues: String,
    pub(super) kinds: String,
    pub(super) last_seen: When,
    pub(super) in_flight: u64,
}

/// `templates/nodes.html`.
#[derive(Template)]
#[template(path = "nodes.html")]
struct NodesPage {
    layout: Layout,
    nodes: Vec<NodeRow>,
    roles: String,
    store: Option<(String, String)>,
    workers: Vec<WorkerRow>,
}

fn status_name(s: NodeStatus) -> &'static str {
    match s {
        NodeStatus::Alive => "alive",
        NodeStatus::Dead => "dead",
        NodeStatus::Stopped => "stopped",
    }
}

async fn read(state: &AppState, layout: Layout) -> Result<NodesPage, ApiError> {
    let now = Timestamp::now();
    let this = state.engine.node_id();
    let nodes = state.engine.node_list().await?;
    let workers = state.engine.worker_list().await?;
    let about = state.engine.about();
    Ok(NodesPage {
        layout,
        nodes: node_rows(&nodes, this, now),
        roles: about.map(|a| a.roles.join(", ")).unwrap_or_default(),
        store: about.map(|a| (a.store.kind.clone(), a.store.location.clone())),
        workers: worker_rows(&workers, now),
    })
}

/// The nodes as rows, `this` marked.
pub(super) fn node_rows(
    nodes: &[errand_core::NodeInfo],
    this: errand_core::NodeId,
    now: Timestamp,
) -> Vec<NodeRow> {
    nodes
        .iter()
        .map(|n| NodeRow {
            id: n.id.to_string(),
            host: n.host.clone(),
            pid: n.pid,
            version: n.version.clone(),
            status: status_name(n.status),
            started: When::of(n.started_at, now),
            heartbeat: When::of(n.heartbeat_at, now),
            this: n.id == this,
        })
        .collect()
}

/// The workers seen as rows.
pub(super) fn worker_rows(
    workers: &[errand_core::worker::WorkerInfo],
    now: Timestamp,
) -> Vec<WorkerRow> {
    workers
        .iter()
        .map(|w| WorkerRow {
            name: w.name.clone(),
            node: w.node.to_string(),
            queues: w.queues.join(", "),
            kinds: if w.kinds.is_empty() {
                "any".into()
            } else {
                w.kinds.join(", ")
            },
            last_seen: When::of(w.last_claim_at, now),
            in_flight: w.jobs_in_flight,
        })
        .collect()
}

/// `GET /ui/nodes`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    uri: Uri,
) -> Response {
    match read(
        &state,
        dash.live_page_layout("Nodes and workers", "/ui/nodes", &uri, &[], true),
    )
    .await
    {
        Ok(p) => dash.page(&p),
        Err(e) => dash.error_page(e),
    }
}
