//! Workspace endpoints and garbage collection.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Ws};
use crate::api::reply::{Empty, Upserted};
use crate::auth::Principal;
use crate::service::GcReport;
use crate::workspace::Workspace;

/// A workspace.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Workspace")]
pub struct WorkspaceJson {
    /// Unique name, used in URLs.
    name: String,
    /// Free text.
    description: String,
    /// Milliseconds since the epoch.
    created_at: i64,
    /// Whether callers without credentials may read it.
    anonymous_read: bool,
}

impl From<Workspace> for WorkspaceJson {
    fn from(w: Workspace) -> Self {
        Self {
            name: w.name,
            description: w.description,
            created_at: w.created_at,
            anonymous_read: w.anonymous_read,
        }
    }
}

/// The workspaces the caller can see.
#[derive(Serialize, JsonSchema)]
pub struct WorkspaceList {
    /// By name.
    workspaces: Vec<WorkspaceJson>,
}

/// `GET /api/v1/workspaces`: the workspaces the caller holds a role on (admins: all).
pub async fn list(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Result<Json<WorkspaceList>, ApiError> {
    let all = st.svc.store.list_workspaces().await?;
    let mut visible = Vec::with_capacity(all.len());
    if let Some(id) = p.identity() {
        for w in all {
            if w.anonymous_read || st.access.role(id, &w.name).await?.is_some() {
                visible.push(w.into());
            }
        }
    }
    Ok(Json(WorkspaceList {
        workspaces: visible,
    }))
}

/// The body of `PUT /api/v1/workspaces/{ws}`.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutReq {
    /// Free text.
    #[serde(default)]
    description: Option<String>,
    /// Let callers without credentials read the workspace (server admins only).
    #[serde(default)]
    anonymous_read: Option<bool>,
}

/// `PUT /api/v1/workspaces/{ws}`: creates (server admin) or updates (Owner) a workspace.
pub async fn put(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<PutReq>,
) -> Result<Upserted<WorkspaceJson>, ApiError> {
    if req.anonymous_read == Some(true) && !p.identity().is_some_and(|i| i.admin) {
        return Err(crate::workspace::DomainError::PermissionDenied(
            "opening a workspace to anonymous readers needs the server admin role (the operator)"
                .into(),
        )
        .into());
    }
    let (mut ws, created) = st
        .svc
        .put_workspace(&name, req.description.as_deref())
        .await?;
    if let Some(on) = req.anonymous_read
        && on != ws.anonymous_read
    {
        st.svc.set_anonymous_read(&name, on).await?;
        ws.anonymous_read = on;
    }
    Ok(Upserted {
        created,
        body: ws.into(),
    })
}

/// `GET /api/v1/workspaces/{ws}`.
pub async fn get(Ws(ws): Ws) -> Json<WorkspaceJson> {
    Json(ws.into())
}

/// `DELETE /api/v1/workspaces/{ws}`: the workspace and everything in it.
pub async fn delete(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Empty>, ApiError> {
    st.svc.delete_workspace(&name).await?;
    Ok(Json(Empty {}))
}

/// The body of `POST /api/v1/gc`.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcReq {
    /// Only this workspace (default: all).
    #[serde(default)]
    workspace: Option<String>,
    /// Only runs deleted before this time (ms since the epoch; default: all deleted runs).
    #[serde(default)]
    deleted_before: Option<i64>,
}

/// `POST /api/v1/gc`.
pub async fn gc(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<GcReq>,
) -> Result<Json<GcReport>, ApiError> {
    Ok(Json(
        st.svc
            .gc(req.workspace.as_deref(), req.deleted_before)
            .await?,
    ))
}
