//! The dashboard's static files (`crates/errand-server/assets/`: app.css, app.js, charts.js
//! and the vendored htmx, its SSE extension and uPlot), compiled into the binary.
//!
//! Each is served at `/ui/assets/<version>/<path>`, where the version is the start of the
//! file's SHA-256: a browser keeps it for a year without asking again, and a new build with
//! a changed file gets a new URL. An old version of a path that still exists is served
//! without the long cache, so a tab left open across an upgrade keeps working.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::ApiError;

/// The files, embedded at build time (also in debug builds: what a binary serves never
/// depends on the source tree it was built from).
#[derive(RustEmbed)]
#[folder = "assets/"]
struct Files;

/// Hex digits of the SHA-256 in a URL: 48 bits tell versions of one file apart.
const VERSION_LEN: usize = 12;

/// The versioned URLs `base.html` and the pages link to.
pub(crate) struct AssetUrls {
    /// The dashboard's stylesheet.
    pub(crate) app_css: String,
    /// The dashboard's script (CSRF header, keyboard, relative times, errors).
    pub(crate) app_js: String,
    /// The overview's charts.
    pub(crate) charts_js: String,
    /// htmx.
    pub(crate) htmx: String,
    /// uPlot.
    pub(crate) uplot_js: String,
    /// uPlot's stylesheet.
    pub(crate) uplot_css: String,
    /// The tab's icon.
    pub(crate) favicon: String,
}

/// The URLs, computed once.
pub(crate) fn urls() -> &'static AssetUrls {
    static URLS: OnceLock<AssetUrls> = OnceLock::new();
    URLS.get_or_init(|| AssetUrls {
        app_css: url("app.css"),
        app_js: url("app.js"),
        charts_js: url("charts.js"),
        htmx: url("vendor/htmx.min.js"),
        uplot_js: url("vendor/uPlot.iife.min.js"),
        uplot_css: url("vendor/uPlot.min.css"),
        favicon: url("favicon.svg"),
    })
}

/// The versioned URL of `path`.
fn url(path: &str) -> String {
    let version = Files::get(path)
        .map(|f| version_of(&f.metadata.sha256_hash()))
        .unwrap_or_else(|| "missing".into());
    format!("/ui/assets/{version}/{path}")
}

fn version_of(hash: &[u8; 32]) -> String {
    let mut hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(VERSION_LEN);
    hex
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// `GET /ui/assets/{version}/{path}`: the file, cached for a year when the version is the
/// current one.
pub(crate) async fn serve(Path((version, path)): Path<(String, String)>) -> Response {
    let Some(file) = Files::get(&path) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no dashboard asset {path}"),
        )
        .into_response();
    };
    let cache = if version == version_of(&file.metadata.sha256_hash()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&path)),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        file.data.into_owned(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_linked_asset_is_embedded() {
        let u = urls();
        for link in [
            &u.app_css,
            &u.app_js,
            &u.charts_js,
            &u.htmx,
            &u.uplot_js,
            &u.uplot_css,
            &u.favicon,
        ] {
            assert!(!link.contains("/missing/"), "{link} is not embedded");
        }
    }
}
