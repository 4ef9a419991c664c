//! `/v1/nodes`: the `errand serve` processes sharing the store.

use axum::extract::State;
use axum::Json;
use errand_api::NodeList;

use crate::{ApiError, AppState};

/// Every node seen in the last day: alive, dead (stopped heartbeating) or stopped; and the
/// store and roles of the node that answered.
#[utoipa::path(get, path = "/v1/nodes", operation_id = "list_nodes", tag = "nodes",
    responses((status = 200, description = "Nodes, newest first", body = NodeList)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<NodeList>, ApiError> {
    let nodes = state.engine.node_list().await?;
    let about = state.engine.about();
    Ok(Json(NodeList {
        this_node: state.engine.node_id(),
        nodes,
        store: about.map(|a| a.store.clone()),
        roles: about.map(|a| a.roles.clone()).unwrap_or_default(),
    }))
}
