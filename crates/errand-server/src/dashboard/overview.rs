//! The overview (`GET /` for browsers): throughput, failures and latency over the last hour
//! as charts (charts.js over [`super::series`]), queue depths with the oldest ready job's
//! age, nodes and workers.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use jiff::Timestamp;

use super::nodes::{NodeRow, WorkerRow};
use super::queues::QueueRow;
use super::view::{count, duration_ms};
use super::{render, Dashboard, Layout, Topic};
use crate::{ApiError, AppState};

/// Sums over every queue, for the headline numbers.
struct Totals {
    ready: String,
    running: String,
    scheduled: String,
    dead: String,
    oldest_ready: String,
    alive_nodes: usize,
    workers: usize,
}

/// What the live part of the overview shows.
struct Live {
    queues: Vec<QueueRow>,
    nodes: Vec<NodeRow>,
    workers: Vec<WorkerRow>,
    totals: Totals,
}

/// `templates/overview.html`.
#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    layout: Layout,
    live: Live,
}

/// `templates/overview_live.html`: the numbers, queues, nodes and workers, re-fetched when
/// queues change.
#[derive(Template)]
#[template(path = "overview_live.html")]
struct OverviewLive {
    live: Live,
}

async fn read(state: &AppState) -> Result<Live, ApiError> {
    let now = Timestamp::now();
    let infos = state.engine.queue_list().await?;
    let this = state.engine.node_id();
    let nodes = super::nodes::node_rows(&state.engine.node_list().await?, this, now);
    let workers = super::nodes::worker_rows(&state.engine.worker_list().await?, now);
    let sum = |f: fn(&errand_core::QueueInfo) -> u64| count(infos.iter().map(f).sum());
    let totals = Totals {
        ready: sum(|q| q.counts.available),
        running: sum(|q| q.counts.running),
        scheduled: sum(|q| q.counts.scheduled),
        dead: sum(|q| q.counts.dead),
        oldest_ready: infos
            .iter()
            .filter_map(|q| q.oldest_available_age_ms)
            .max()
            .map(duration_ms)
            .unwrap_or_else(|| "none ready".into()),
        alive_nodes: nodes.iter().filter(|n| n.status == "alive").count(),
        workers: workers.len(),
    };
    Ok(Live {
        queues: infos.iter().map(QueueRow::of).collect(),
        nodes,
        workers,
        totals,
    })
}

/// The overview page; `GET /` answers it to browsers.
pub(crate) async fn page(state: &AppState, dash: &Dashboard) -> Response {
    let layout = dash.layout("Overview", "/", &[Topic::Queues, Topic::Jobs]);
    match read(state).await {
        Ok(live) => dash.page(&OverviewPage { layout, live }),
        Err(e) => dash.error_page(e),
    }
}

/// `GET /ui/overview/live`.
pub(crate) async fn live(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(render(
        StatusCode::OK,
        &OverviewLive {
            live: read(&state).await?,
        },
    ))
}
