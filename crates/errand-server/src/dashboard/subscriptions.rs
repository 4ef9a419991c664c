//! The subscriptions pages: `/ui/subscriptions`, every webhook subscription with its
//! filter and health (what `GET /v1/subscriptions` answers), and
//! `/ui/subscriptions/{id}`, one subscription with its recent deliveries and their
//! attempts; pause and resume go through the routes of `POST /v1/subscriptions/{id}/pause`
//! and `/resume`.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::Response;
use axum::Extension;
use errand_api::{DeliveryListQuery, PauseSubscriptionRequest};
use errand_core::{Subscription, SubscriptionState};
use jiff::Timestamp;

use super::view::{duration_ms, truncate, When};
use super::{render, Dashboard, Layout};
use crate::extract::{ApiPath, ApiQuery, OptionalJson};
use crate::routes::subscriptions as api;
use crate::{ApiError, AppState};

/// Deliveries shown on a subscription's page, newest first.
const RECENT: u32 = 50;

/// A subscription as the pages show it.
struct SubscriptionView {
    id: String,
    href: String,
    url: String,
    events: String,
    filter: String,
    description: String,
    state: &'static str,
    paused: bool,
    paused_reason: String,
    failures: u32,
    created: When,
    updated: When,
}

impl SubscriptionView {
    fn of(s: &Subscription, now: Timestamp) -> Self {
        let mut filter = Vec::new();
        if let Some(q) = &s.queue {
            filter.push(format!("queue {q}"));
        }
        if let Some(k) = &s.kind {
            filter.push(format!("kind {k}"));
        }
        if let Some(t) = &s.tag {
            filter.push(format!("tag {t}"));
        }
        Self {
            id: s.id.to_string(),
            href: format!("/ui/subscriptions/{}", s.id),
            url: s.url.clone(),
            events: s
                .events
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            filter: filter.join(", "),
            description: s.description.clone().unwrap_or_default(),
            state: s.state.as_str(),
            paused: s.state == SubscriptionState::Paused,
            paused_reason: s.paused_reason.clone().unwrap_or_default(),
            failures: s.consecutive_failures,
            created: When::of(s.created_at, now),
            updated: When::of(s.updated_at, now),
        }
    }
}

/// `templates/subscriptions.html`.
#[derive(Template)]
#[template(path = "subscriptions.html")]
struct SubscriptionsPage {
    layout: Layout,
    rows: Vec<SubscriptionView>,
}

/// `GET /ui/subscriptions`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    uri: Uri,
) -> Response {
    let list = match api::list(State(state)).await {
        Ok(l) => l.0,
        Err(e) => return dash.error_page(e),
    };
    let now = Timestamp::now();
    dash.page(&SubscriptionsPage {
        layout: dash.live_page_layout("Subscriptions", "/ui/subscriptions", &uri, &[], true),
        rows: list
            .subscriptions
            .iter()
            .map(|s| SubscriptionView::of(s, now))
            .collect(),
    })
}

/// A delivery as a row.
struct DeliveryRow {
    id: String,
    event: &'static str,
    state: &'static str,
    job: Option<(String, String)>,
    attempts: u32,
    last: String,
    next: Option<When>,
    created: When,
}

/// One subscription with its deliveries: what `subscription.html` and
/// `subscription_body.html` show.
struct DetailView {
    s: SubscriptionView,
    deliveries: Vec<DeliveryRow>,
    flash: Option<String>,
}

/// `templates/subscription.html`.
#[derive(Template)]
#[template(path = "subscription.html")]
struct SubscriptionPage {
    layout: Layout,
    view: DetailView,
}

/// `templates/subscription_body.html`: what pause and resume answer.
#[derive(Template)]
#[template(path = "subscription_body.html")]
struct SubscriptionBody {
    view: DetailView,
}

async fn detail_view(
    state: &AppState,
    id: String,
    flash: Option<String>,
) -> Result<DetailView, ApiError> {
    let s = api::get(State(state.clone()), ApiPath(id.clone())).await?.0;
    let list = api::subscription_deliveries(
        State(state.clone()),
        ApiPath(id),
        ApiQuery(DeliveryListQuery {
            limit: Some(RECENT),
            before: None,
        }),
    )
    .await?
    .0;
    let now = Timestamp::now();
    Ok(DetailView {
        s: SubscriptionView::of(&s, now),
        deliveries: list
            .deliveries
            .iter()
            .map(|d| DeliveryRow {
                id: d.id.to_string(),
                event: d.event_type.as_str(),
                state: d.state.as_str(),
                job: d.job.map(|id| (id.to_string(), format!("/ui/jobs/{id}"))),
                attempts: d.attempts,
                last: d
                    .history
                    .last()
                    .map(|a| {
                        let what = match (a.status, &a.error) {
                            (_, Some(e)) => truncate(e, 200),
                            (Some(st), None) => format!("HTTP {st}"),
                            (None, None) => String::new(),
                        };
                        format!("{what} in {}", duration_ms(a.duration_ms))
                    })
                    .or_else(|| d.last_error.as_deref().map(|e| truncate(e, 200)))
                    .unwrap_or_default(),
                next: When::maybe(d.next_at, now),
                created: When::of(d.created_at, now),
            })
            .collect(),
        flash,
    })
}

/// `GET /ui/subscriptions/{id}`.
pub(crate) async fn detail(
    State(state): State<AppState>,
    Extension(dash): Extension<Arc<Dashboard>>,
    uri: Uri,
    ApiPath(id): ApiPath<String>,
) -> Response {
    match detail_view(&state, id, None).await {
        Ok(view) => dash.page(&SubscriptionPage {
            layout: dash.live_page_layout(
                format!("Subscription {}", view.s.id),
                "/ui/subscriptions",
                &uri,
                &[],
                true,
            ),
            view,
        }),
        Err(e) => dash.error_page(e),
    }
}

/// `POST /ui/subscriptions/{id}/pause`: matching events are not recorded for it until
/// resumed; answers the subscription's body.
pub(crate) async fn pause(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let req = PauseSubscriptionRequest {
        reason: Some("paused from the dashboard".into()),
    };
    let _paused = api::pause(State(state.clone()), ApiPath(id.clone()), OptionalJson(req)).await?;
    Ok(render(
        StatusCode::OK,
        &SubscriptionBody {
            view: detail_view(&state, id, Some("Paused.".into())).await?,
        },
    ))
}

/// `POST /ui/subscriptions/{id}/resume`: delivers again; answers the subscription's body.
pub(crate) async fn resume(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let _active = api::resume(State(state.clone()), ApiPath(id.clone())).await?;
    Ok(render(
        StatusCode::OK,
        &SubscriptionBody {
            view: detail_view(
                &state,
                id,
                Some("Resumed: pending deliveries are sent.".into()),
            )
            .await?,
        },
    ))
}
