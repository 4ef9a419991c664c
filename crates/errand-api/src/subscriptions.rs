//! Subscription and delivery bodies: `POST/PATCH /v1/subscriptions`, the lists, and
//! `GET .../deliveries`.

use errand_core::limits::MAX_LABEL_LEN;
use errand_core::names::check_label;
use errand_core::{
    Delivery, DeliveryId, EventType, JobKind, NewSubscription, QueueName, Subscription,
    SubscriptionId, SubscriptionPatch, ValidationError,
};
use serde::{Deserialize, Deserializer, Serialize};

use crate::schema::Tag;
use crate::webhook_url::WebhookUrl;

/// Longest description.
pub const MAX_DESCRIPTION_LEN: usize = 1024;

/// `POST /v1/subscriptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRequest {
    /// Where matching events are POSTed.
    #[schema(value_type = WebhookUrl)]
    pub url: String,
    /// Which event types, at least one.
    #[schema(min_items = 1)]
    pub events: Vec<EventType>,
    /// Only jobs of this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<QueueName>)]
    pub queue: Option<String>,
    /// Only jobs of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<JobKind>)]
    pub kind: Option<String>,
    /// Only jobs carrying this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Tag>)]
    pub tag: Option<String>,
    /// Free text for people, at most 1024 characters, no NUL characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1024, pattern = "^[^\\u0000]*$")]
    pub description: Option<String>,
}

fn events(field: &str, list: Vec<EventType>) -> Result<Vec<EventType>, ValidationError> {
    if list.is_empty() {
        return Err(ValidationError::new(
            field,
            format!(
                "name at least one event type ({})",
                EventType::ALL.map(EventType::as_str).join(", ")
            ),
        ));
    }
    let mut out: Vec<EventType> = Vec::with_capacity(list.len());
    for t in list {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

fn queue(raw: Option<String>) -> Result<Option<QueueName>, ValidationError> {
    raw.map(|q| QueueName::parse(&q).map_err(|e| ValidationError::new("queue", e.message)))
        .transpose()
}

fn kind(raw: Option<String>) -> Result<Option<JobKind>, ValidationError> {
    raw.map(|k| JobKind::parse(&k).map_err(|e| ValidationError::new("kind", e.message)))
        .transpose()
}

fn tag(raw: Option<String>) -> Result<Option<String>, ValidationError> {
    if let Some(t) = &raw {
        check_label("tag", t, MAX_LABEL_LEN)?;
    }
    Ok(raw)
}

fn description(raw: Option<String>) -> Result<Option<String>, ValidationError> {
    if let Some(d) = &raw {
        crate::reject_nul_text("description", d)?;
        if d.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(ValidationError::new(
                "description",
                format!("at most {MAX_DESCRIPTION_LEN} characters"),
            ));
        }
    }
    Ok(raw)
}

impl SubscriptionRequest {
    /// Checks every field and builds the subscription to create.
    ///
    /// # Errors
    /// The first field that breaks a rule.
    pub fn into_new(self) -> Result<NewSubscription, ValidationError> {
        crate::webhook_url::check("url", &self.url)?;
        Ok(NewSubscription {
            id: SubscriptionId::new(),
            events: events("events", self.events)?,
            queue: queue(self.queue)?,
            kind: kind(self.kind)?,
            tag: tag(self.tag)?,
            description: description(self.description)?,
            url: self.url,
        })
    }
}

/// Reads a present field (even `null`) as `Some`, so a PATCH tells "remove" (`null`) from
/// "leave as it is" (absent).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /v1/subscriptions/{id}`: absent fields stay; `null` removes a filter or the
/// description.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionPatchRequest {
    /// New URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<WebhookUrl>)]
    pub url: Option<String>,
    /// New event types, at least one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1)]
    pub events: Option<Vec<EventType>>,
    /// New queue filter; `null` removes it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<QueueName>)]
    pub queue: Option<Option<String>>,
    /// New kind filter; `null` removes it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<JobKind>)]
    pub kind: Option<Option<String>>,
    /// New tag filter; `null` removes it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Tag>)]
    pub tag: Option<Option<String>>,
    /// New description; `null` removes it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, max_length = 1024, pattern = "^[^\\u0000]*$")]
    pub description: Option<Option<String>>,
}

impl SubscriptionPatchRequest {
    /// Checks every field given and builds the change.
    ///
    /// # Errors
    /// The first field that breaks a rule.
    pub fn into_patch(self) -> Result<SubscriptionPatch, ValidationError> {
        if let Some(u) = &self.url {
            crate::webhook_url::check("url", u)?;
        }
        Ok(SubscriptionPatch {
            url: self.url,
            events: self.events.map(|e| events("events", e)).transpose()?,
            queue: self.queue.map(queue).transpose()?,
            kind: self.kind.map(kind).transpose()?,
            tag: self.tag.map(tag).transpose()?,
            description: self.description.map(description).transpose()?,
            state: None,
        })
    }
}

/// `POST /v1/subscriptions/{id}/pause`: an optional reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseSubscriptionRequest {
    /// Why (shown as `paused_reason`); "paused by hand" when absent. No NUL characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1024, pattern = "^[^\\u0000]*$")]
    pub reason: Option<String>,
}

impl PauseSubscriptionRequest {
    /// The reason to record.
    ///
    /// # Errors
    /// A reason too long or with NUL characters.
    pub fn into_reason(self) -> Result<String, ValidationError> {
        let r = self.reason.unwrap_or_else(|| "paused by hand".into());
        crate::reject_nul_text("reason", &r)?;
        if r.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(ValidationError::new(
                "reason",
                format!("at most {MAX_DESCRIPTION_LEN} characters"),
            ));
        }
        Ok(r)
    }
}

/// Every subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubscriptionList {
    /// Oldest first.
    pub subscriptions: Vec<Subscription>,
}

/// `GET .../deliveries` paging.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListQuery {
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page: deliveries older than this one.
    #[param(value_type = Option<String>, format = Uuid)]
    pub before: Option<String>,
}

/// A page of deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryList {
    /// Newest first, each with its attempts.
    pub deliveries: Vec<Delivery>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<DeliveryId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_checked_field_by_field() {
        let ok = SubscriptionRequest {
            url: "https://example.com/h".into(),
            events: vec![EventType::JobSucceeded, EventType::JobSucceeded],
            queue: Some("mail".into()),
            ..Default::default()
        }
        .into_new()
        .unwrap();
        assert_eq!(ok.events, vec![EventType::JobSucceeded]);
        let no_events = SubscriptionRequest {
            url: "https://example.com/h".into(),
            ..Default::default()
        };
        assert!(no_events
            .into_new()
            .unwrap_err()
            .to_string()
            .contains("events"));
        let bad_url = SubscriptionRequest {
            url: "ftp://x/".into(),
            events: vec![EventType::JobDead],
            ..Default::default()
        };
        assert!(bad_url.into_new().unwrap_err().to_string().contains("url"));
        let bad_queue = SubscriptionRequest {
            url: "https://example.com/h".into(),
            events: vec![EventType::JobDead],
            queue: Some("no spaces".into()),
            ..Default::default()
        };
        assert!(bad_queue
            .into_new()
            .unwrap_err()
            .to_string()
            .contains("queue"));
    }

    #[test]
    fn a_patch_tells_null_from_absent() {
        let p: SubscriptionPatchRequest =
            serde_json::from_str(r#"{"queue": null, "kind": "send"}"#).unwrap();
        let patch = p.into_patch().unwrap();
        assert_eq!(patch.queue, Some(None));
        assert_eq!(patch.kind, Some(Some(JobKind::parse("send").unwrap())));
        assert_eq!(patch.tag, None);
    }
}
