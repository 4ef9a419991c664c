//! The web dashboard: server-rendered HTML pages at `/` and under `/ui/`, served by
//! `errand serve` itself with every asset embedded in the binary.
//!
//! **A page is one template and one handler module.** The template (`templates/<page>.html`,
//! askama, compiled into the binary) extends `base.html`; the module reads what the page
//! shows through the engine (never the store), builds the template's struct with a
//! [`Layout`], and answers with [`Dashboard::page`]. Parts of a page that change live are
//! separate fragment templates that the page includes and that a `GET /ui/...` route serves
//! alone; the page marks them with `hx-trigger="sse:changed-<topic>"` so the tab re-fetches
//! them when [`live`] says their topic changed. To add a page: a template, a module, its
//! routes in [`router`], and a line in [`NAV`].
//!
//! Security model (docs/dashboard.md): every value is escaped by the templates (askama
//! escapes HTML by default; no template uses `|safe`); every response carries a strict
//! Content-Security-Policy with no inline script or style ([`security_headers`]); a GET
//! never changes anything; every other method needs the `X-Errand-Csrf` header of [`csrf`],
//! which a cross-site page cannot send without a CORS preflight errand never grants, on top
//! of the site guard's Origin checks.

mod assets;
mod batches;
mod csrf;
mod dead;
mod definitions;
mod job;
mod job_logs;
mod jobs;
mod live;
mod nodes;
mod overview;
mod queues;
mod schedules;
mod series;
mod sessions;
mod subscriptions;
mod view;
mod workflows;

use std::sync::Arc;

use askama::Template;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::{from_fn, map_response};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use errand_engine::Engine;

use crate::{ApiError, AppState};

pub(crate) use assets::urls as asset_urls;
pub(crate) use csrf::HEADER as CSRF_HEADER;
pub(crate) use live::Topic;
pub(crate) use overview::page as overview_page;
pub(crate) use view::query_url;

/// The Content-Security-Policy of every dashboard response: scripts, styles, fonts and
/// connections from errand itself only, no inline script or style, no framing, no plugin,
/// forms post only to errand. Images (the favicon) come from errand; the charts draw on a
/// canvas and need no image source.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The pages in the navigation bar, in order: `(path, label)`.
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/ui/queues", "Queues"),
    ("/ui/jobs", "Jobs"),
    ("/ui/dead", "Dead jobs"),
    ("/ui/schedules", "Schedules"),
    ("/ui/workflows", "Workflows"),
    ("/ui/batches", "Batches"),
    ("/ui/definitions", "Definitions"),
    ("/ui/sessions", "Sessions"),
    ("/ui/subscriptions", "Subscriptions"),
    ("/ui/nodes", "Nodes"),
];

/// What the dashboard keeps for the life of the server: the live-change hub and the chart
/// sampler.
pub(crate) struct Dashboard {
    hub: Arc<live::Hub>,
    series: Arc<series::Series>,
    node: String,
    /// Whether callers sign in (pages then offer to sign out).
    sign_in: bool,
}

impl Dashboard {
    /// The dashboard of `engine`. Inside a tokio runtime it starts its one background task,
    /// which reads the engine's cluster-wide event feed to tell tabs what changed and to
    /// fill the charts' time series, and stops when the engine shuts down.
    pub(crate) fn start(engine: &Arc<Engine>, sign_in: bool) -> Arc<Self> {
        let dashboard = Arc::new(Self {
            hub: Arc::new(live::Hub::new(live::COALESCE)),
            series: Arc::new(series::Series::new(jiff::Timestamp::now())),
            node: engine.node_id().to_string(),
            sign_in,
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            live::spawn(
                engine.clone(),
                dashboard.hub.clone(),
                dashboard.series.clone(),
            );
        }
        dashboard
    }

    /// Tells open tabs that `topics` changed (for changes that record no event, such as a
    /// queue paused or dead jobs purged from this dashboard).
    pub(crate) fn touch(&self, topics: &[Topic]) {
        self.hub.touch(topics.iter().copied());
    }

    /// The frame of a page titled `title`, with `current` (a path of [`NAV`]) marked in the
    /// navigation, whose live regions follow `topics`.
    pub(crate) fn layout(
        &self,
        title: impl Into<String>,
        current: &str,
        topics: &[Topic],
    ) -> Layout {
        let live_url = self.live_url(topics, &[]);
        Layout {
            title: title.into(),
            nav: NAV
                .iter()
                .map(|(href, label)| NavItem {
                    href,
                    label,
                    current: *href == current,
                })
                .collect(),
            csrf: csrf::VALUE,
            live_url,
            live_page: None,
            assets: assets::urls(),
            version: env!("CARGO_PKG_VERSION"),
            node: self.node.clone(),
            sign_in: self.sign_in,
        }
    }

    /// The frame of a page whose whole content is fetched again (from `uri`, its own
    /// address) when `topics` change and, with `tick`, every [`TICK`] while the tab shows:
    /// for pages whose data changes without an event to say so (node heartbeats, webhook
    /// deliveries, continuous instances), or that need no fragment route of their own.
    pub(crate) fn live_page_layout(
        &self,
        title: impl Into<String>,
        current: &str,
        uri: &Uri,
        topics: &[Topic],
        tick: bool,
    ) -> Layout {
        let mut layout = self.layout(title, current, topics);
        let mut trigger: Vec<String> = topics
            .iter()
            .map(|t| format!("sse:changed-{}", t.name()))
            .collect();
        if tick {
            trigger.push("tick".into());
        }
        layout.live_page = Some(LivePage {
            url: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string()),
            trigger: trigger.join(", "),
            tick_ms: tick.then(|| TICK.as_millis()),
        });
        layout
    }

    /// Where a page following `topics` (none: no stream) listens, marked with the hub's
    /// present generation; `extra` adds query pairs (a job page's `log` and `after`).
    pub(crate) fn live_url(&self, topics: &[Topic], extra: &[(&str, String)]) -> Option<String> {
        (!topics.is_empty()).then(|| {
            let names: Vec<String> = topics.iter().map(Topic::name).collect();
            let mut pairs = vec![("topics", names.join(",")), ("since", self.hub.since())];
            pairs.extend(extra.iter().cloned());
            view::query_url("/ui/live", &pairs)
        })
    }

    /// A whole page: 200 with the rendered template.
    pub(crate) fn page(&self, template: &impl Template) -> Response {
        render(StatusCode::OK, template)
    }

    /// A page that says what went wrong, with the error's status.
    pub(crate) fn error_page(&self, error: ApiError) -> Response {
        let page = ErrorPage {
            layout: self.layout("Error", "", &[]),
            status: error.status.as_u16(),
            code: error.code,
            message: error.message,
        };
        render(error.status, &page)
    }
}

/// What `base.html` needs: the title, the navigation, the CSRF token, where the tab's live
/// stream is, the asset URLs.
pub(crate) struct Layout {
    /// The page's title.
    pub(crate) title: String,
    /// The navigation bar.
    pub(crate) nav: Vec<NavItem>,
    /// The value of the CSRF header, for app.js to put on actions.
    pub(crate) csrf: &'static str,
    /// `/ui/live?topics=...`, or `None` for a page with nothing live.
    pub(crate) live_url: Option<String>,
    /// The page's content as one live region, see [`Dashboard::live_page_layout`].
    pub(crate) live_page: Option<LivePage>,
    /// Versioned asset URLs.
    pub(crate) assets: &'static assets::AssetUrls,
    /// errand's version.
    pub(crate) version: &'static str,
    /// The node that answered (charts are its view).
    pub(crate) node: String,
    /// Whether to offer "Sign out".
    pub(crate) sign_in: bool,
}

/// A page whose content refreshes as a whole: `base.html` wraps it in a region that
/// fetches `url` again on `trigger` and keeps its `#live-page` part.
pub(crate) struct LivePage {
    /// The page's own address (path and query).
    pub(crate) url: String,
    /// The `hx-trigger` value: `sse:changed-<topic>` events, and `tick`.
    pub(crate) trigger: String,
    /// How often app.js sends `tick` while the tab shows ([`TICK`]), if it does.
    pub(crate) tick_ms: Option<u128>,
}

/// How often a page marked `tick` refreshes while shown (app.js reads it from
/// `data-tick`): often enough for heartbeats every few seconds to look live.
pub(crate) const TICK: std::time::Duration = std::time::Duration::from_secs(5);

/// One entry of the navigation bar.
pub(crate) struct NavItem {
    /// Where it goes.
    pub(crate) href: &'static str,
    /// What it says.
    pub(crate) label: &'static str,
    /// The page being shown.
    pub(crate) current: bool,
}

/// `templates/error.html`: a page that could not be shown.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    code: &'static str,
    message: String,
}

/// Renders `template` as an HTML answer with `status`; a template that fails to render (a
/// bug) is a 500 in the API's shape.
pub(crate) fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            status,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Html(html),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a dashboard template failed to render");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the page could not be rendered",
            )
            .into_response()
        }
    }
}

/// Adds the dashboard's security headers to an answer: the CSP, `nosniff` (a JSON error or
/// a log line is never taken for a script) and no referrer (job ids in URLs stay here).
pub(crate) fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Framing is refused twice: by the CSP's frame-ancestors and, for older browsers, here.
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn with_security_headers(response: Response) -> Response {
    security_headers(response)
}

/// The dashboard's routes under `/ui/`. They are not API and not in the OpenAPI document.
/// Handlers reach the [`Dashboard`] through an `Extension` that [`crate::app`] installs.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { axum::response::Redirect::to("/") }))
        .route("/ui/overview/live", get(overview::live))
        .route("/ui/series", get(series::json))
        .route("/ui/queues", get(queues::page))
        .route("/ui/queues/rows", get(queues::rows))
        .route("/ui/queues/pause", post(queues::pause))
        .route("/ui/queues/resume", post(queues::resume))
        .route("/ui/jobs", get(jobs::page))
        .route("/ui/jobs/rows", get(jobs::rows))
        .route("/ui/jobs/{id}", get(job::page))
        .route("/ui/jobs/{id}/live", get(job::live))
        .route("/ui/jobs/{id}/cancel", post(job::cancel))
        .route("/ui/jobs/{id}/retry", post(job::retry))
        .route("/ui/dead", get(dead::page))
        .route("/ui/dead/rows", get(dead::rows))
        .route("/ui/dead/requeue", post(dead::requeue))
        .route("/ui/dead/purge", post(dead::purge))
        .route("/ui/schedules", get(schedules::page))
        .route("/ui/schedules/rows", get(schedules::rows))
        .route("/ui/schedules/pause", post(schedules::pause))
        .route("/ui/schedules/resume", post(schedules::resume))
        .route("/ui/schedules/trigger", post(schedules::trigger))
        .route("/ui/schedules/backfill", post(schedules::backfill))
        .route("/ui/nodes", get(nodes::page))
        .route("/ui/workflows", get(workflows::page))
        .route("/ui/workflows/{id}", get(workflows::detail))
        .route("/ui/workflows/{id}/cancel", post(workflows::cancel))
        .route("/ui/workflows/{id}/retry", post(workflows::retry))
        .route("/ui/batches", get(batches::page))
        .route("/ui/batches/{id}", get(batches::detail))
        .route("/ui/batches/{id}/close", post(batches::close))
        .route("/ui/definitions", get(definitions::page))
        .route("/ui/definitions/{name}/run", post(definitions::run))
        .route("/ui/definitions/{name}/stop", post(definitions::stop))
        .route("/ui/definitions/{name}/start", post(definitions::start))
        .route(
            "/ui/definitions/{name}/instances/{instance}/logs",
            get(definitions::instance_logs),
        )
        .route("/ui/sessions", get(sessions::page))
        .route("/ui/sessions/unblock", post(sessions::unblock))
        .route("/ui/subscriptions", get(subscriptions::page))
        .route("/ui/subscriptions/{id}", get(subscriptions::detail))
        .route("/ui/subscriptions/{id}/pause", post(subscriptions::pause))
        .route("/ui/subscriptions/{id}/resume", post(subscriptions::resume))
        .route("/ui/live", get(live::stream))
        .route("/ui/assets/{version}/{*path}", get(assets::serve))
        .route("/ui/{*rest}", get(not_found))
        .layer(from_fn(csrf::guard))
        .layer(map_response(with_security_headers))
}

/// An unknown page under `/ui/`: a page that says so (the API answers JSON elsewhere).
async fn not_found(Extension(dash): Extension<Arc<Dashboard>>, req: Request) -> Response {
    dash.error_page(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("there is no page at {}", req.uri().path()),
    ))
}
