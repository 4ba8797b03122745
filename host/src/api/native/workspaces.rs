//! Workspace endpoints and garbage collection.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Ws};
use crate::auth::Principal;
use crate::tracking::GcReport;
use crate::workspace::Workspace;

#[derive(Serialize)]
struct WorkspaceJson<'a> {
    name: &'a str,
    description: &'a str,
    created_at: i64,
    anonymous_read: bool,
}

fn ws_json(w: &Workspace) -> Value {
    json!(WorkspaceJson {
        name: &w.name,
        description: &w.description,
        created_at: w.created_at,
        anonymous_read: w.anonymous_read,
    })
}

/// `GET /api/v1/workspaces`: the workspaces the caller holds a role on (admins: all).
pub async fn list(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let all = st.tracking.store.list_workspaces().await?;
    let mut visible = Vec::with_capacity(all.len());
    if let Some(id) = p.identity() {
        for w in &all {
            if w.anonymous_read || st.access.role(id, &w.name).await?.is_some() {
                visible.push(ws_json(w));
            }
        }
    }
    Ok(Json(json!({ "workspaces": visible })))
}

#[derive(Deserialize, Default)]
pub struct PutReq {
    #[serde(default)]
    description: Option<String>,
    /// Let callers without credentials read the workspace.
    #[serde(default)]
    anonymous_read: Option<bool>,
}

/// `PUT /api/v1/workspaces/{ws}`: creates (server admin) or updates (Owner) a workspace.
pub async fn put(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<PutReq>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if req.anonymous_read == Some(true) && !p.identity().is_some_and(|i| i.admin) {
        return Err(crate::workspace::DomainError::PermissionDenied(
            "opening a workspace to anonymous readers needs the server admin role (the operator)"
                .into(),
        )
        .into());
    }
    let (mut ws, created) = st
        .tracking
        .put_workspace(&name, req.description.as_deref())
        .await?;
    if let Some(on) = req.anonymous_read
        && on != ws.anonymous_read
    {
        st.tracking.set_anonymous_read(&name, on).await?;
        ws.anonymous_read = on;
    }
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(ws_json(&ws)),
    ))
}

pub async fn get(Ws(ws): Ws) -> Json<Value> {
    Json(ws_json(&ws))
}

pub async fn delete(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    st.tracking.delete_workspace(&name).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize, Default)]
pub struct GcReq {
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    deleted_before: Option<i64>,
}

pub async fn gc(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<GcReq>,
) -> Result<Json<GcReport>, ApiError> {
    Ok(Json(
        st.tracking
            .gc(req.workspace.as_deref(), req.deleted_before)
            .await?,
    ))
}
