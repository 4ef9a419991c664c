//! Shared helpers of the end-to-end tests: a real server process and raw HTTP.
#![allow(dead_code)]

pub mod jobs_dir;
pub mod node;
pub mod receiver;

use std::path::PathBuf;

use errand_testkit::{PgSchema, ServerProcess};
use serde_json::Value;

/// The `errand` binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_errand"))
}

/// A fresh server on a temporary data directory.
pub async fn server() -> ServerProcess {
    ServerProcess::start(&bin())
        .await
        .expect("start errand serve")
}

/// A fresh server started with extra `serve` flags, and its temporary data directory
/// (dropped after the server).
pub async fn server_with(args: &[&str]) -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start_in(&bin(), dir.path(), args)
        .await
        .expect("start errand serve");
    (server, dir)
}

/// Raw HTTP, for requests the typed client would never send.
pub struct Raw {
    pub http: reqwest::Client,
    pub base: String,
}

impl Raw {
    pub fn new(server: &ServerProcess) -> Self {
        Self {
            http: http_client(),
            base: server.url().to_string(),
        }
    }

    /// Sends `body` as-is and returns the status and the parsed JSON answer.
    pub async fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "answer to {path} is not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, json)
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.send("POST", path, Some(body.as_bytes().to_vec()))
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None).await
    }
}

/// A node on the test's PostgreSQL schema, with its own data directory.
pub async fn pg_node(schema: &PgSchema) -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start_in(
        &bin(),
        dir.path(),
        &["--store", &schema.url, "--pg-schema", &schema.name],
    )
    .await
    .expect("start node");
    (server, dir)
}

/// Every job the server lists under `query` (its `limit` and `cursor` are set here), page
/// by page until the last.
pub async fn all_jobs(
    client: &errand_client::Client,
    query: errand_api::JobListQuery,
) -> Vec<errand_core::Job> {
    let mut jobs = Vec::new();
    let mut cursor = None;
    loop {
        let page = client
            .jobs(&errand_api::JobListQuery {
                limit: Some(1000),
                cursor,
                ..query.clone()
            })
            .await
            .expect("list jobs");
        jobs.extend(page.jobs);
        match page.next_cursor {
            Some(next) => cursor = Some(next.to_string()),
            None => return jobs,
        }
    }
}

/// A `reqwest` client builder for tests. reqwest is built with rustls but no crypto
/// provider of its own (errand's client hands it one), so a plain builder needs the
/// process-wide default: `ring`'s, installed here once.
pub fn http_builder() -> reqwest::ClientBuilder {
    // Err: already installed (by an earlier call), which is what is wanted.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// A default `reqwest` client for tests (see [`http_builder`]).
pub fn http_client() -> reqwest::Client {
    http_builder().build().expect("http client")
}
