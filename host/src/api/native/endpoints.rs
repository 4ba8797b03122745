//! Endpoint management: create (the key is shown once), deployments (create or update with
//! zero downtime), traffic split and mirror, key rotation, metrics as JSON.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::split_action;
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Ws};
use crate::workspace::DomainError;
use crate::workspace::endpoint::{AuthMode, DeploymentRequest};

type Reply = Result<Json<Value>, ApiError>;

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError(DomainError::Internal(e.to_string())))
}

/// Body of `PUT .../endpoints/{name}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// `key` (default) or `none`.
    #[serde(default)]
    pub auth_mode: Option<AuthMode>,
}

/// Body of `PUT .../endpoints/{name}/traffic`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficBody {
    /// Percent of live traffic per deployment (sums to 100).
    #[serde(default)]
    pub traffic: BTreeMap<String, u32>,
    /// Percent of requests copied to one deployment (≤ 50).
    #[serde(default)]
    pub mirror: BTreeMap<String, u32>,
}

/// `GET .../endpoints`.
pub async fn list(State(st): State<AppState>, Ws(ws): Ws) -> Reply {
    let all = st.serving.list(&ws).await?;
    Ok(Json(json!({ "endpoints": to_json(&all)? })))
}

/// `PUT .../endpoints/{name}`: creates the endpoint (201, with its key) or updates it.
pub async fn put(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<EndpointBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if st.tracking.store.endpoint(ws.id, &name).await?.is_some() {
        let v = st
            .serving
            .update_endpoint(&ws, &name, body.description, body.auth_mode)
            .await?;
        return Ok((StatusCode::OK, Json(to_json(&v)?)));
    }
    let v = st
        .serving
        .create_endpoint(
            &ws,
            &name,
            body.description.as_deref().unwrap_or(""),
            body.auth_mode.unwrap_or_default(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(to_json(&v)?)))
}

/// `GET .../endpoints/{name}`.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply {
    Ok(Json(to_json(&st.serving.endpoint(&ws, &name).await?)?))
}

/// `DELETE .../endpoints/{name}`.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply {
    st.serving.delete_endpoint(&ws, &name).await?;
    Ok(Json(json!({})))
}

/// `POST .../endpoints/{name}:regenerate-key`.
pub async fn action(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, target)): Path<(String, String)>,
) -> Reply {
    match split_action(&target)? {
        (name, "regenerate-key") => {
            Ok(Json(to_json(&st.serving.regenerate_key(&ws, name).await?)?))
        }
        (_, other) => Err(DomainError::NotFound(format!(
            "unknown endpoint action '{other}'; known: regenerate-key"
        ))
        .into()),
    }
}

/// `PUT .../endpoints/{name}/deployments/{deployment}`: creates or updates a deployment; the
/// new instances are warm before traffic moves.
pub async fn put_deployment(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, deployment)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<DeploymentRequest>,
) -> Reply {
    let v = st
        .serving
        .put_deployment(&ws, &name, &deployment, body)
        .await?;
    Ok(Json(to_json(&v)?))
}

/// `DELETE .../endpoints/{name}/deployments/{deployment}`.
pub async fn delete_deployment(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, deployment)): Path<(String, String, String)>,
) -> Reply {
    let v = st
        .serving
        .delete_deployment(&ws, &name, &deployment)
        .await?;
    Ok(Json(to_json(&v)?))
}

/// `PUT .../endpoints/{name}/traffic`.
pub async fn traffic(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<TrafficBody>,
) -> Reply {
    let v = st
        .serving
        .set_traffic(&ws, &name, body.traffic, body.mirror)
        .await?;
    Ok(Json(to_json(&v)?))
}

/// `GET .../endpoints/{name}/metrics`: counters by deployment (`""`: requests that reached
/// none, e.g. refused for a missing key).
pub async fn metrics(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply {
    let m = st.serving.endpoint_metrics(&ws, &name).await?;
    Ok(Json(
        json!({ "endpoint": name, "deployments": to_json(&m)? }),
    ))
}
