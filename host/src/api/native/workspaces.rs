//! Workspace endpoints and garbage collection.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Ws};
use crate::tracking::GcReport;
use crate::workspace::Workspace;

#[derive(Serialize)]
struct WorkspaceJson<'a> {
    name: &'a str,
    description: &'a str,
    created_at: i64,
}

fn ws_json(w: &Workspace) -> Value {
    json!(WorkspaceJson {
        name: &w.name,
        description: &w.description,
        created_at: w.created_at
    })
}

pub async fn list(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let all = st.tracking.store.list_workspaces().await?;
    Ok(Json(
        json!({ "workspaces": all.iter().map(ws_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize, Default)]
pub struct PutReq {
    #[serde(default)]
    description: Option<String>,
}

pub async fn put(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<PutReq>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (ws, created) = st
        .tracking
        .put_workspace(&name, req.description.as_deref())
        .await?;
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
