//! Experiment endpoints.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ExperimentJson, split_action};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, QueryMap, Ws};
use crate::api::search;
use crate::workspace::{DomainError, LifecycleStage, ViewType, validate};

type Reply = Result<Json<Value>, ApiError>;

fn id_of(s: &str) -> Result<i64, DomainError> {
    crate::api::wire::experiment_id(s)
}

pub async fn list(State(st): State<AppState>, Ws(ws): Ws, q: QueryMap) -> Reply {
    let view = q
        .get("view")
        .map(ViewType::parse)
        .transpose()?
        .unwrap_or_default();
    let (exps, next) = search::experiments(
        &st.tracking,
        &ws,
        q.get("filter").unwrap_or(""),
        q.all("order_by"),
        view,
        q.int("max_results")?,
        q.get("page_token"),
    )
    .await?;
    Ok(Json(json!({
        "experiments": exps.iter().map(ExperimentJson::from).collect::<Vec<_>>(),
        "next_page_token": next,
    })))
}

#[derive(Deserialize)]
pub struct CreateReq {
    name: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// Datastore for the experiment's artifacts (default: the workspace's).
    #[serde(default)]
    artifact_datastore: Option<String>,
}

pub async fn create(
    State(st): State<AppState>,
    Ws(ws): Ws,
    JsonBody(req): JsonBody<CreateReq>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    validate::experiment_name(&req.name)?;
    validate::tags(&req.tags)?;
    if let Some(ds) = &req.artifact_datastore {
        st.tracking.store.datastore_by_name(ws.id, ds).await?;
    }
    let mut e = st
        .tracking
        .store
        .create_experiment(ws.id, &req.name, &req.tags)
        .await?;
    if let Some(ds) = &req.artifact_datastore {
        st.tracking
            .set_experiment_datastore(&ws, e.id, Some(ds))
            .await?;
        e = st.tracking.store.experiment(ws.id, e.id).await?;
    }
    Ok((StatusCode::CREATED, Json(json!(ExperimentJson::from(&e)))))
}

pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Reply {
    let e = st.tracking.store.experiment(ws.id, id_of(&id)?).await?;
    Ok(Json(json!(ExperimentJson::from(&e))))
}

#[derive(Deserialize)]
pub struct UpdateReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    remove_tags: Vec<String>,
    /// Datastore for new artifacts of the experiment ("" for the workspace default).
    #[serde(default)]
    artifact_datastore: Option<String>,
}

pub async fn update(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdateReq>,
) -> Reply {
    let id = id_of(&id)?;
    let store = &st.tracking.store;
    store.experiment(ws.id, id).await?;
    if let Some(name) = &req.name {
        validate::experiment_name(name)?;
    }
    validate::tags(&req.tags)?;
    if let Some(name) = &req.name {
        store.rename_experiment(ws.id, id, name).await?;
    }
    for (k, v) in &req.tags {
        store.set_experiment_tag(ws.id, id, k, Some(v)).await?;
    }
    for k in &req.remove_tags {
        store.set_experiment_tag(ws.id, id, k, None).await?;
    }
    if let Some(ds) = &req.artifact_datastore {
        st.tracking
            .set_experiment_datastore(&ws, id, Some(ds.as_str()).filter(|d| !d.is_empty()))
            .await?;
    }
    let e = store.experiment(ws.id, id).await?;
    Ok(Json(json!(ExperimentJson::from(&e))))
}

pub async fn delete(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, id)): Path<(String, String)>,
) -> Reply {
    st.tracking
        .store
        .set_experiment_stage(ws.id, id_of(&id)?, LifecycleStage::Deleted)
        .await?;
    Ok(Json(json!({})))
}

/// `POST .../experiments/{id}:restore`.
pub async fn action(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path((_, target)): Path<(String, String)>,
) -> Reply {
    match split_action(&target)? {
        (id, "restore") => {
            let id = id_of(id)?;
            st.tracking
                .store
                .set_experiment_stage(ws.id, id, LifecycleStage::Active)
                .await?;
            let e = st.tracking.store.experiment(ws.id, id).await?;
            Ok(Json(json!(ExperimentJson::from(&e))))
        }
        (_, other) => Err(DomainError::NotFound(format!(
            "unknown experiment action '{other}'; known: restore"
        ))
        .into()),
    }
}
