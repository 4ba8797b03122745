//! The audit log: who changed what, on which object, when, with what result.

use serde::Serialize;

use crate::workspace::Millis;

/// One recorded call.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// Sequence number (newer is larger).
    pub id: i64,
    /// When (ms since the epoch).
    pub at: Millis,
    /// The workspace, for workspace-scoped calls.
    pub workspace: Option<String>,
    /// Who: a user name, `anonymous`, or `datastore:NAME` / `job:ID` for secret use.
    pub actor: String,
    /// The token used, if any.
    pub token_id: Option<String>,
    /// What: the method and route, e.g. `DELETE /api/v1/workspaces/{ws}/runs/{id}`, or an
    /// event such as `secret.use`.
    pub action: String,
    /// Which object: the concrete path, or `kind:name` (MLflow calls add the ids of the body).
    pub object: String,
    /// The HTTP status answered (0 for events outside a request).
    pub status: u16,
    /// `ok`, `denied` (401/403/404 from access control) or `failed`.
    pub result: String,
}

/// A record to append.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    /// When.
    pub at: Millis,
    /// The workspace, if scoped.
    pub workspace: Option<String>,
    /// Who.
    pub actor: String,
    /// The token used.
    pub token_id: Option<String>,
    /// What.
    pub action: String,
    /// Which object.
    pub object: String,
    /// HTTP status.
    pub status: u16,
    /// `ok`, `denied` or `failed`.
    pub result: &'static str,
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this workspace.
    pub workspace: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Actions containing this text.
    pub action: Option<String>,
    /// Objects containing this text.
    pub object: Option<String>,
    /// Only this result.
    pub result: Option<String>,
    /// At or after (ms).
    pub since: Option<Millis>,
    /// Before (ms).
    pub until: Option<Millis>,
    /// Records older than this id (paging).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// The result word for an HTTP status.
pub fn result_of(status: u16, denied_by_access: bool) -> &'static str {
    if denied_by_access {
        "denied"
    } else if (200..400).contains(&status) {
        "ok"
    } else {
        "failed"
    }
}
