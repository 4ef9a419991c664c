//! Node listing.

use errand_core::{NodeId, NodeInfo, StoreAbout};
use serde::{Deserialize, Serialize};

/// Every node seen in the last day, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeList {
    /// The node that answered.
    pub this_node: NodeId,
    /// The nodes.
    pub nodes: Vec<NodeInfo>,
    /// The store the nodes share, as the node that answered opened it (kind and location,
    /// no credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreAbout>,
    /// The roles of the node that answered (`api`, `scheduler`, `worker`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}
