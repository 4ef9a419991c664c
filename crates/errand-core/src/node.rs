//! Nodes: running `errand serve` processes that share a store.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A node's id, new for every process start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct NodeId(pub Uuid);

impl NodeId {
    /// A fresh id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for NodeId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether a node is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Heartbeating.
    Alive,
    /// Stopped heartbeating without saying goodbye (crashed, partitioned).
    Dead,
    /// Shut down cleanly.
    Stopped,
}

/// A node as the store knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeInfo {
    /// Its id.
    pub id: NodeId,
    /// Host name.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// errand version.
    pub version: String,
    /// Status, judged on the store's clock.
    pub status: NodeStatus,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    /// Its last heartbeat.
    #[schema(value_type = String, format = DateTime)]
    pub heartbeat_at: Timestamp,
}

/// The store a node opened, as `GET /v1/nodes` shows it: its kind and where it is, never
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoreAbout {
    /// `sqlite` or `postgres`.
    pub kind: String,
    /// The SQLite file, or the PostgreSQL `host:port/database` and schema.
    pub location: String,
}

/// What a node says about itself, set once at start: its store and its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAbout {
    /// The store it opened.
    pub store: StoreAbout,
    /// Its roles (`api`, `scheduler`, `worker`).
    pub roles: Vec<String>,
}
