//! Route policies: what a caller needs to use a route.

use serde::Serialize;

use super::Role;

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Anyone, credentials or not (health, capability probes).
    Public,
    /// Any valid token (who am I, my tokens, the workspaces I can see).
    Authenticated,
    /// A server admin (users, host-wide garbage collection, host-wide metrics).
    Admin,
    /// Reader on the workspace in the path (`default` for the root MLflow routes).
    Read,
    /// Contributor on the workspace: creates, changes, deletes.
    Write,
    /// Contributor on the workspace, for high-volume logging (metrics, params, tags): not
    /// recorded call by call in the audit log (the run keeps the history).
    Log,
    /// Owner on the workspace: roles, audit log, deleting the workspace.
    Own,
    /// Creating a workspace needs a server admin, changing one its Owner.
    PutWorkspace,
    /// Scoring: the endpoint's key, or a token with Reader on the endpoint's workspace
    /// (checked by the scoring handler, which knows the endpoint's workspace).
    Scoring,
}

impl Policy {
    /// The workspace role the policy needs, for workspace-scoped policies.
    pub fn role(self) -> Option<Role> {
        match self {
            Policy::Read => Some(Role::Reader),
            Policy::Write | Policy::Log => Some(Role::Contributor),
            Policy::Own | Policy::PutWorkspace => Some(Role::Owner),
            _ => None,
        }
    }

    /// Whether calls that pass through it are recorded in the audit log (state-changing
    /// methods only; the caller decides on the method).
    pub fn audited(self) -> bool {
        matches!(
            self,
            Policy::Authenticated
                | Policy::Admin
                | Policy::Write
                | Policy::Own
                | Policy::PutWorkspace
        )
    }
}
