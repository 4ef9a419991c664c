//! Continuous instances: the long-running processes of `continuous` job definitions, as
//! every node of a cluster sees them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{NodeId, RunReport, ValidationError};

/// Where a continuous instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Its process is being started.
    Starting,
    /// Its process runs.
    Running,
    /// Its process exited and waits out the restart backoff.
    Backoff,
    /// It restarted too often within the window and is left stopped until started again.
    Failed,
    /// Stopped on purpose (the definition was stopped or removed, or the node shuts down).
    Stopped,
}

impl InstanceState {
    /// The name stores keep.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Starting => "starting",
            InstanceState::Running => "running",
            InstanceState::Backoff => "backoff",
            InstanceState::Failed => "failed",
            InstanceState::Stopped => "stopped",
        }
    }

    /// Reads a stored name.
    ///
    /// # Errors
    /// A name no version of errand writes: the record is corrupt.
    pub fn from_stored(s: &str) -> Result<Self, ValidationError> {
        Ok(match s {
            "starting" => InstanceState::Starting,
            "running" => InstanceState::Running,
            "backoff" => InstanceState::Backoff,
            "failed" => InstanceState::Failed,
            "stopped" => InstanceState::Stopped,
            other => {
                return Err(ValidationError::new(
                    "state",
                    format!("`{other}` is not an instance state"),
                ))
            }
        })
    }
}

/// One continuous instance on one node, as the store keeps it so that any node (and the
/// API) can list the instances of a definition across the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstanceRecord {
    /// The definition it runs.
    pub definition: String,
    /// The node it runs on.
    pub node: NodeId,
    /// Its id: the owner of its log lines.
    #[schema(value_type = String, format = Uuid)]
    pub instance: uuid::Uuid,
    /// The process id while a process runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Where it is in its life.
    pub state: InstanceState,
    /// When it entered its state.
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
    /// How many times its process was restarted.
    pub restarts: u32,
    /// How its last process ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<RunReport>,
    /// When its last process ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_exit_at: Option<Timestamp>,
    /// When the store last heard of it (the store's clock); a record not updated for long
    /// belongs to a node that died, and is pruned.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::InstanceState;

    #[test]
    fn every_state_reads_back_as_itself() {
        for s in [
            InstanceState::Starting,
            InstanceState::Running,
            InstanceState::Backoff,
            InstanceState::Failed,
            InstanceState::Stopped,
        ] {
            assert_eq!(InstanceState::from_stored(s.as_str()), Ok(s));
        }
        assert!(InstanceState::from_stored("exploded").is_err());
    }
}
