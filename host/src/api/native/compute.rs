//! Compute target endpoints: create (the Owner grants a plugin one host and secrets), list,
//! show (the engine's pools and health, asked now), delete.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::Serialize;

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Ws};
use crate::api::reply::{Created, Empty};
use crate::auth::Principal;
use crate::compute::{ComputeRequest, ComputeView};

type Reply<T> = Result<Json<T>, ApiError>;

/// The compute targets of a workspace.
#[derive(Serialize, JsonSchema)]
pub struct ComputeList {
    /// By name; `health` is `unchecked` (show one to ask its engine).
    compute: Vec<ComputeView>,
}

/// `GET .../compute`.
pub async fn list(State(st): State<AppState>, Ws(ws): Ws) -> Reply<ComputeList> {
    Ok(Json(ComputeList {
        compute: st.svc.list_compute(&ws).await?,
    }))
}

/// `PUT .../compute/{name}` with a [`ComputeRequest`]: 201 once the engine answered.
pub async fn create(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<ComputeRequest>,
) -> Result<Created<ComputeView>, ApiError> {
    let v = st
        .svc
        .create_compute(&ws, &name, req, Some(p.actor().to_string()))
        .await?;
    Ok(Created(v))
}

/// `GET .../compute/{name}`: with the engine's pools and health.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<ComputeView> {
    Ok(Json(st.svc.compute_view(&ws, &name).await?))
}

/// `DELETE .../compute/{name}`: refused while a job on it has not ended.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<Empty> {
    st.svc.delete_compute(&ws, &name).await?;
    Ok(Json(Empty {}))
}
