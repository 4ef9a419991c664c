//! Node listing.

use errand_core::{NodeId, NodeInfo};
use serde::{Deserialize, Serialize};

/// Every node seen in the last day, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeList {
    /// The node that answered.
    pub this_node: NodeId,
    /// The nodes.
    pub nodes: Vec<NodeInfo>,
}
