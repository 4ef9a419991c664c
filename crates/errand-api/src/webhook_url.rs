//! The rule for URLs errand POSTs to (job callbacks, subscriptions): absolute `http` or
//! `https`, a host, no credentials, at most [`MAX_WEBHOOK_URL_LEN`] bytes. Whether the host
//! may be reached (private addresses) is decided when sending, on the address connected to.

use errand_core::ValidationError;

/// Longest URL accepted.
pub const MAX_WEBHOOK_URL_LEN: usize = 2048;

/// A webhook target URL (OpenAPI schema only).
pub struct WebhookUrl;

impl utoipa::PartialSchema for WebhookUrl {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::Custom("uri".into())))
            .max_length(Some(MAX_WEBHOOK_URL_LEN))
            .pattern(Some("^[hH][tT][tT][pP][sS]?://"))
            .description(Some(
                "An absolute http or https URL, no credentials, no fragment",
            ))
            .into()
    }
}

impl utoipa::ToSchema for WebhookUrl {}

/// Checks a webhook URL.
///
/// # Errors
/// A `ValidationError` naming `field` and what is wrong.
pub fn check(field: &str, text: &str) -> Result<url::Url, ValidationError> {
    if text.len() > MAX_WEBHOOK_URL_LEN {
        return Err(ValidationError::new(
            field,
            format!("at most {MAX_WEBHOOK_URL_LEN} bytes"),
        ));
    }
    let url = url::Url::parse(text)
        .map_err(|e| ValidationError::new(field, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ValidationError::new(field, "must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ValidationError::new(field, "must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ValidationError::new(
            field,
            "must not carry credentials (user:password@)",
        ));
    }
    if url.fragment().is_some() {
        return Err(ValidationError::new(field, "must not have a #fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn only_plain_http_urls_pass() {
        assert!(check("u", "https://example.com/x?y=1").is_ok());
        assert!(check("u", "http://127.0.0.1:8080/").is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/x",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "file:///etc/passwd",
        ] {
            assert!(check("u", bad).is_err(), "{bad}");
        }
        assert!(check("u", &format!("https://e.com/{}", "a".repeat(3000))).is_err());
    }
}
