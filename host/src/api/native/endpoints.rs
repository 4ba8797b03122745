//! Endpoint management: create (the key is shown once), deployments (create or update with
//! zero downtime), traffic split and mirror, key rotation, metrics as JSON.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Ws};
use crate::api::reply::{Empty, Upserted};
use crate::api::routes::Target;
use crate::serving::EndpointView;
use crate::serving::metrics::SeriesSnapshot;
use crate::workspace::endpoint::{AuthMode, DeploymentRequest};

type Reply<T> = Result<Json<T>, ApiError>;

/// Body of `PUT .../endpoints/{name}`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
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
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrafficBody {
    /// Percent of live traffic per deployment (sums to 100).
    #[serde(default)]
    pub traffic: BTreeMap<String, u32>,
    /// Percent of requests copied to one deployment (≤ 50).
    #[serde(default)]
    pub mirror: BTreeMap<String, u32>,
}

/// The endpoints of a workspace.
#[derive(Serialize, JsonSchema)]
pub struct EndpointList {
    /// By name.
    endpoints: Vec<EndpointView>,
}

/// `GET .../endpoints`.
pub async fn list(State(st): State<AppState>, Ws(ws): Ws) -> Reply<EndpointList> {
    let endpoints = st.serving.list(&ws).await?;
    Ok(Json(EndpointList { endpoints }))
}

/// `PUT .../endpoints/{name}`: creates the endpoint (201, with its key) or updates it.
pub async fn put(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<EndpointBody>,
) -> Result<Upserted<EndpointView>, ApiError> {
    if st.svc.store.endpoint(ws.id, &name).await?.is_some() {
        let v = st
            .serving
            .update_endpoint(&ws, &name, body.description, body.auth_mode)
            .await?;
        return Ok(Upserted {
            created: false,
            body: v,
        });
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
    Ok(Upserted {
        created: true,
        body: v,
    })
}

/// `GET .../endpoints/{name}`.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<EndpointView> {
    Ok(Json(st.serving.endpoint(&ws, &name).await?))
}

/// `DELETE .../endpoints/{name}`.
pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<Empty> {
    st.serving.delete_endpoint(&ws, &name).await?;
    Ok(Json(Empty {}))
}

/// `POST .../endpoints/{name}:regenerate-key`.
pub async fn regenerate_key(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Target(name): Target,
) -> Reply<EndpointView> {
    Ok(Json(st.serving.regenerate_key(&ws, &name).await?))
}

/// `PUT .../endpoints/{name}/deployments/{deployment}`: creates or updates a deployment; the
/// new instances are warm before traffic moves.
pub async fn put_deployment(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, deployment)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<DeploymentRequest>,
) -> Reply<EndpointView> {
    let v = st
        .serving
        .put_deployment(&ws, &name, &deployment, body)
        .await?;
    Ok(Json(v))
}

/// `DELETE .../endpoints/{name}/deployments/{deployment}`.
pub async fn delete_deployment(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name, deployment)): Path<(String, String, String)>,
) -> Reply<EndpointView> {
    let v = st
        .serving
        .delete_deployment(&ws, &name, &deployment)
        .await?;
    Ok(Json(v))
}

/// `PUT .../endpoints/{name}/traffic`.
pub async fn traffic(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<TrafficBody>,
) -> Reply<EndpointView> {
    let v = st
        .serving
        .set_traffic(&ws, &name, body.traffic, body.mirror)
        .await?;
    Ok(Json(v))
}

/// An endpoint's counters.
#[derive(Serialize, JsonSchema)]
pub struct EndpointMetrics {
    /// The endpoint's name.
    endpoint: String,
    /// Counters by deployment (`""`: requests that reached none, e.g. refused for a missing
    /// key).
    deployments: BTreeMap<String, SeriesSnapshot>,
}

/// `GET .../endpoints/{name}/metrics`.
pub async fn metrics(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, name)): Path<(String, String)>,
) -> Reply<EndpointMetrics> {
    let deployments = st.serving.endpoint_metrics(&ws, &name).await?;
    Ok(Json(EndpointMetrics {
        endpoint: name,
        deployments,
    }))
}
